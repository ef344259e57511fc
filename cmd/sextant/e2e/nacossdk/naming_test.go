package nacossdk_test

import (
	"fmt"
	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

func TestRegisterPushesEveryFieldIntact(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	provider, consumer := nacostest.NewClient(t, srv, ""), nacostest.NewClient(t, srv, "")
	svc := serviceName(t)
	w := nacostest.Subscribe(t, consumer, vo.SubscribeParam{ServiceName: svc})

	nacostest.Register(t, provider, vo.RegisterInstanceParam{
		Ip: "10.1.2.3", Port: 8080, ServiceName: svc, ClusterName: "c-1", Weight: 2.5,
		Metadata: map[string]string{"version": "1.2", "zone": "a"},
	})

	got := w.AwaitCount(t, 1)[0]
	want := model.Instance{
		InstanceId:                "10.1.2.3#8080#c-1#DEFAULT_GROUP@@" + svc,
		Ip:                        "10.1.2.3",
		Port:                      8080,
		Weight:                    2.5,
		Healthy:                   true,
		Enable:                    true,
		Ephemeral:                 true,
		ClusterName:               "c-1",
		ServiceName:               "DEFAULT_GROUP@@" + svc,
		Metadata:                  map[string]string{"version": "1.2", "zone": "a"},
		InstanceHeartBeatInterval: 5000,
		IpDeleteTimeout:           30000,
		InstanceHeartBeatTimeOut:  15000,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pushed instance:\n got %+v\nwant %+v", got, want)
	}
}

func TestSecondInstanceAndDeregister(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	p1, p2, consumer := nacostest.NewClient(t, srv, ""), nacostest.NewClient(t, srv, ""), nacostest.NewClient(t, srv, "")
	svc := serviceName(t)
	w := nacostest.Subscribe(t, consumer, vo.SubscribeParam{ServiceName: svc})

	nacostest.Register(t, p1, vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: svc})
	w.AwaitCount(t, 1)
	nacostest.Register(t, p2, vo.RegisterInstanceParam{Ip: "10.0.0.2", Port: 80, ServiceName: svc})
	if got := nacostest.Addresses(w.AwaitCount(t, 2)); !slices.Equal(got, []string{"10.0.0.1:80", "10.0.0.2:80"}) {
		t.Fatalf("after the second register: %v", got)
	}

	ok, err := p1.DeregisterInstance(vo.DeregisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: svc, Ephemeral: true})
	if err != nil || !ok {
		t.Fatalf("deregister: ok=%v err=%v", ok, err)
	}
	if got := nacostest.Addresses(w.AwaitCount(t, 1)); !slices.Equal(got, []string{"10.0.0.2:80"}) {
		t.Fatalf("after deregister: %v", got)
	}
}

func TestUpdateWeightEnabledMetadata(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	provider, consumer := nacostest.NewClient(t, srv, ""), nacostest.NewClient(t, srv, "")
	svc := serviceName(t)
	w := nacostest.Subscribe(t, consumer, vo.SubscribeParam{ServiceName: svc})
	nacostest.Register(t, provider, vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: svc, Weight: 1, Metadata: map[string]string{"v": "1"}})
	w.AwaitCount(t, 1)

	update := vo.UpdateInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: svc, Weight: 7, Enable: true, Healthy: true,
		Ephemeral: true, Metadata: map[string]string{"v": "2", "new": "yes"}}
	if ok, err := provider.UpdateInstance(update); err != nil || !ok {
		t.Fatalf("update: ok=%v err=%v", ok, err)
	}
	w.Await(t, "weight 7 and the new metadata", func(is []model.Instance) bool {
		return len(is) == 1 && is[0].Weight == 7 && reflect.DeepEqual(is[0].Metadata, update.Metadata)
	})

	update.Enable = false
	if ok, err := provider.UpdateInstance(update); err != nil || !ok {
		t.Fatalf("disable: ok=%v err=%v", ok, err)
	}
	w.AwaitCount(t, 0) // only enabled instances are pushed
}

func TestClosedClientsInstancesVanish(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	provider, stays, consumer := nacostest.NewClient(t, srv, ""), nacostest.NewClient(t, srv, ""), nacostest.NewClient(t, srv, "")
	svc := serviceName(t)
	w := nacostest.Subscribe(t, consumer, vo.SubscribeParam{ServiceName: svc})
	nacostest.Register(t, provider, vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: svc})
	nacostest.Register(t, stays, vo.RegisterInstanceParam{Ip: "10.0.0.2", Port: 80, ServiceName: svc})
	w.AwaitCount(t, 2)

	provider.CloseClient()
	if got := nacostest.Addresses(w.AwaitCount(t, 1)); !slices.Equal(got, []string{"10.0.0.2:80"}) {
		t.Fatalf("after the provider closed: %v", got)
	}
}

func TestBatchRegister(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	provider, consumer := nacostest.NewClient(t, srv, ""), nacostest.NewClient(t, srv, "")
	svc := serviceName(t)
	w := nacostest.Subscribe(t, consumer, vo.SubscribeParam{ServiceName: svc})

	var batch []vo.RegisterInstanceParam
	for i := range 5 {
		batch = append(batch, vo.RegisterInstanceParam{Ip: fmt.Sprintf("10.0.1.%d", i), Port: 9000, Weight: 1,
			Enable: true, Healthy: true, Ephemeral: true})
	}
	if ok, err := provider.BatchRegisterInstance(vo.BatchRegisterInstanceParam{ServiceName: svc, Instances: batch}); err != nil || !ok {
		t.Fatalf("batch register: ok=%v err=%v", ok, err)
	}
	w.AwaitCount(t, 5)

	// A new batch replaces the set.
	if ok, err := provider.BatchRegisterInstance(vo.BatchRegisterInstanceParam{ServiceName: svc, Instances: batch[:2]}); err != nil || !ok {
		t.Fatalf("second batch register: ok=%v err=%v", ok, err)
	}
	if got := nacostest.Addresses(w.AwaitCount(t, 2)); !slices.Equal(got, []string{"10.0.1.0:9000", "10.0.1.1:9000"}) {
		t.Fatalf("after the second batch: %v", got)
	}
}

func TestServiceListPages(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	const ns = "paging"
	provider := nacostest.NewClient(t, srv, ns)
	want := make([]string, 25)
	for i := range want {
		want[i] = fmt.Sprintf("svc-%02d", i)
		nacostest.Register(t, provider, vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: want[i], GroupName: "paged"})
	}
	var got []string
	for page, size := range []int{10, 10, 5} {
		list, err := provider.GetAllServicesInfo(vo.GetAllServiceInfoParam{NameSpace: ns, GroupName: "paged", PageNo: uint32(page + 1), PageSize: 10})
		if err != nil {
			t.Fatalf("page %d: %v", page+1, err)
		}
		if list.Count != 25 || len(list.Doms) != size {
			t.Fatalf("page %d: count %d with %d names, want count 25 with %d", page+1, list.Count, len(list.Doms), size)
		}
		got = append(got, list.Doms...)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("pages hold %v, want %v", got, want)
	}
}

func TestNamespacesAndGroupsAreIsolated(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := serviceName(t)
	inA, inB := nacostest.NewClient(t, srv, "ns-a"), nacostest.NewClient(t, srv, "ns-b")
	nacostest.Register(t, inA, vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: svc, GroupName: "g1"})
	nacostest.Register(t, inB, vo.RegisterInstanceParam{Ip: "10.0.0.2", Port: 80, ServiceName: svc, GroupName: "g1"})
	nacostest.Register(t, inA, vo.RegisterInstanceParam{Ip: "10.0.0.3", Port: 80, ServiceName: svc, GroupName: "g2"})

	for _, tc := range []struct {
		name   string
		client func() []model.Instance
		want   []string
	}{
		{"ns-a/g1", func() []model.Instance { return selectAll(t, nacostest.NewClient(t, srv, "ns-a"), svc, "g1") }, []string{"10.0.0.1:80"}},
		{"ns-b/g1", func() []model.Instance { return selectAll(t, nacostest.NewClient(t, srv, "ns-b"), svc, "g1") }, []string{"10.0.0.2:80"}},
		{"ns-a/g2", func() []model.Instance { return selectAll(t, nacostest.NewClient(t, srv, "ns-a"), svc, "g2") }, []string{"10.0.0.3:80"}},
		{"ns-b/g2", func() []model.Instance { return selectAll(t, nacostest.NewClient(t, srv, "ns-b"), svc, "g2") }, []string{}},
		{"public/g1", func() []model.Instance { return selectAll(t, nacostest.NewClient(t, srv, ""), svc, "g1") }, []string{}},
	} {
		if got := nacostest.Addresses(tc.client()); !slices.Equal(got, tc.want) {
			t.Errorf("%s sees %v, want %v", tc.name, got, tc.want)
		}
	}
}

func selectAll(t *testing.T, client interface {
	SelectAllInstances(vo.SelectAllInstancesParam) ([]model.Instance, error)
}, svc, group string) []model.Instance {
	t.Helper()
	is, err := client.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: svc, GroupName: group})
	if err != nil {
		t.Fatalf("select %s in %s: %v", svc, group, err)
	}
	return is
}

func TestClusterSubscriptionSeesOnlyItsCluster(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	provider1, provider2, consumer := nacostest.NewClient(t, srv, ""), nacostest.NewClient(t, srv, ""), nacostest.NewClient(t, srv, "")
	svc := serviceName(t)
	all := nacostest.Subscribe(t, consumer, vo.SubscribeParam{ServiceName: svc})
	onlyA := nacostest.Subscribe(t, nacostest.NewClient(t, srv, ""), vo.SubscribeParam{ServiceName: svc, Clusters: []string{"cluster-a"}})

	nacostest.Register(t, provider1, vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: svc, ClusterName: "cluster-a"})
	nacostest.Register(t, provider2, vo.RegisterInstanceParam{Ip: "10.0.0.2", Port: 80, ServiceName: svc, ClusterName: "cluster-b"})

	all.AwaitCount(t, 2)
	got := onlyA.AwaitCount(t, 1)
	if got[0].ClusterName != "cluster-a" {
		t.Fatalf("the cluster-a subscriber was pushed %s", nacostest.Describe(got))
	}
}

func TestTwentySubscribersAllGetOneChange(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := serviceName(t)
	watchers := make([]*nacostest.Watcher, 20)
	for i := range watchers {
		watchers[i] = nacostest.Subscribe(t, nacostest.NewClient(t, srv, ""), vo.SubscribeParam{ServiceName: svc})
	}
	nacostest.Register(t, nacostest.NewClient(t, srv, ""), vo.RegisterInstanceParam{Ip: "10.0.0.9", Port: 443, ServiceName: svc})

	var wg sync.WaitGroup
	for i, w := range watchers {
		wg.Go(func() {
			if _, err := w.Wait("the instance", nacostest.CountIs(1)); err != nil {
				t.Errorf("subscriber %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}
