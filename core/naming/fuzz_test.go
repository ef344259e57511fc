package naming

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sextantd/sextant/core/notify"
)

// fuzzLimits are small, so that the fuzzer reaches every limit.
var fuzzLimits = Limits{MaxNameLength: 64, MaxMetadataBytes: 256, MaxBatchSize: 4,
	MaxServicesPerClient: 3, MaxSubscriptionsPerClient: 3, MaxClustersPerFilter: 4}

// fuzzState is what the registry holds, as its readers see it.
type fuzzState struct {
	Stats   Stats
	Clients map[string]ClientData
}

func fuzzStateOf(r *Registry) fuzzState {
	s := fuzzState{Stats: r.Stats(), Clients: map[string]ClientData{}}
	r.EachClient(func(d ClientData) bool {
		s.Clients[d.ID] = d
		return true
	})
	return s
}

// fuzzRefused checks that err is an *InvalidError naming a field and that
// the registry is as it was.
func fuzzRefused(t *testing.T, r *Registry, op string, err error, before fuzzState) {
	t.Helper()
	var invalid *InvalidError
	if !errors.As(err, &invalid) || invalid.Field == "" {
		t.Fatalf("%s refused with %v (%T), want an *InvalidError naming the field", op, err, err)
	}
	if after := fuzzStateOf(r); !reflect.DeepEqual(before, after) {
		t.Fatalf("%s was refused (%v) but changed the registry:\nbefore %+v\nafter  %+v", op, err, before, after)
	}
}

// equal reports whether two instances are the same in every field.
func (i Instance) equal(o Instance) bool {
	return i.ID == o.ID && i.IP == o.IP && i.Port == o.Port && i.Weight == o.Weight && i.Healthy == o.Healthy &&
		i.Enabled == o.Enabled && i.Ephemeral == o.Ephemeral && i.Cluster == o.Cluster && maps.Equal(i.Metadata, o.Metadata)
}

// fuzzMetadata decodes metadata from fuzz bytes: pairs separated by 0x01,
// key and value by 0x00 (control characters, which metadata may not hold).
func fuzzMetadata(b []byte) map[string]string {
	if b == nil {
		return nil
	}
	md := map[string]string{}
	for pair := range bytes.SplitSeq(b, []byte{1}) {
		k, v, _ := bytes.Cut(pair, []byte{0})
		md[string(k)] = string(v)
	}
	return md
}

// fuzzView is a ServiceInfo as a client decodes it.
type fuzzView struct {
	Name      string `json:"name"`
	GroupName string `json:"groupName"`
	Clusters  string `json:"clusters"`
	Hosts     []struct {
		InstanceID  string            `json:"instanceId"`
		IP          string            `json:"ip"`
		Port        int               `json:"port"`
		Weight      float64           `json:"weight"`
		Healthy     bool              `json:"healthy"`
		Enabled     bool              `json:"enabled"`
		Ephemeral   bool              `json:"ephemeral"`
		ClusterName string            `json:"clusterName"`
		ServiceName string            `json:"serviceName"`
		Metadata    map[string]string `json:"metadata"`
	} `json:"hosts"`
}

// fuzzDecodeView checks that b is the JSON ServiceInfo of svc for f: every
// host enabled, of the filter's clusters, healthy if asked for.
func fuzzDecodeView(t *testing.T, b []byte, svc Service, f ViewFilter) fuzzView {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("view of %v is not valid JSON: %q", svc, b)
	}
	var v fuzzView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("view of %v: %v: %s", svc, err, b)
	}
	if v.Name != svc.Name || v.GroupName != svc.Group || v.Clusters != f.Clusters {
		t.Fatalf("view of %v with filter %+v names %q, %q, %q: %s", svc, f, v.Name, v.GroupName, v.Clusters, b)
	}
	for _, h := range v.Hosts {
		if !h.Enabled || f.HealthyOnly && !h.Healthy ||
			f.Clusters != "" && !slices.Contains(strings.Split(f.Clusters, ","), h.ClusterName) ||
			h.ServiceName != svc.GroupedName() {
			t.Fatalf("view of %v with filter %+v holds %+v", svc, f, h)
		}
	}
	return v
}

// fuzzCheckCarries checks that view v carries inst, as registered to svc,
// exactly as it is stored (wantIn), or not at all.
func fuzzCheckCarries(t *testing.T, v fuzzView, svc Service, inst Instance, wantIn bool) {
	t.Helper()
	found := false
	for _, h := range v.Hosts {
		if h.IP != inst.IP || h.Port != inst.Port || h.ClusterName != inst.Cluster {
			continue
		}
		found = true
		md := inst.Metadata
		if md == nil {
			md = map[string]string{}
		}
		if h.InstanceID != inst.ID || h.Weight != inst.Weight || inst.Healthy && !h.Healthy ||
			h.Enabled != inst.Enabled || h.Ephemeral != inst.Ephemeral || !maps.Equal(h.Metadata, md) {
			t.Fatalf("view of %v carries %+v, want %+v", svc, h, inst)
		}
	}
	if found != wantIn {
		t.Fatalf("view of %v: carries %+v is %v, want %v; hosts %+v", svc, inst, found, wantIn, v.Hosts)
	}
}

// FuzzRegistry sends what a client could send — names, an instance, a
// cluster filter, a page — to the registry's entry points. Refused input is
// an *InvalidError and changes nothing; accepted input is stored as sent
// (normalised) and comes back, through the view's JSON, as stored.
func FuzzRegistry(f *testing.F) {
	type seed struct {
		namespace, group, name, cluster, ip string
		port                                int
		weight                              float64
		healthy, enabled                    bool
		id                                  string
		metadata                            []byte
		clusters                            string
		healthyOnly                         bool
		pageNo, pageSize                    int
	}
	seeds := []seed{
		// registry_test.go and limits_test.go
		{"", "", "a", "", "10.0.0.1", 80, 1, true, true, "", nil, "", false, 1, 10},
		{"dev", "G", "orders", "DEFAULT", "10.0.0.2", 81, 1, true, true, "", []byte("version\x001.0\x01zone\x00eu"), "DEFAULT", false, 1, 100},
		{"public", "DEFAULT_GROUP", "s", "c1", "10.0.0.1", 8080, 0.5, false, true, "id-1", nil, "c1,c2", true, 2, 1},
		{"", "", "DEFAULT_GROUP@@guarded", "", "10.0.0.1", 80, 1, true, true, "", nil, "", false, 1, 10},
		{"bad ns/!", "a@@b", "x", "bad_cluster!", "", -1, -1, true, true, "", nil, "a,,b", false, 0, 10},
		{"", "", "s", "", "10.0.0.1", 70000, 20000, true, true, "a\x00b", []byte("k\x00\x1b[2J"), "", false, 1, 10001},
		{"", "", "s", "", "fe80::1%eth0", 65535, 10000, true, false, "", []byte("preserved.heart.beat.interval\x0020000\x01preserved.heart.beat.timeout\x0015000"), "", false, math.MaxInt64, 10000},
		{"", "", "s", "", "host-name.example_1", 0, 0, true, true, "", []byte("\x00empty key"), "", false, math.MinInt64, 1},
		{"", "", "s", "", "::1", 1, math.NaN(), true, true, "", nil, "", false, 1, 1},
		{"", "", "s", "", "::1", 1, math.Inf(1), true, true, "", nil, "", false, 1, 1},
		{"", "", "s", "", "::1", 1, math.Inf(-1), true, true, "", nil, "", false, 1, 1},
		{"", "", "ünï", "", "10.0.0.1", 80, 1, true, true, "", []byte("k\x00multi\nline\tvalue\r"), "", false, 1, 1},
		{"", "", "s\xff", "", "10.0.0.1", 80, 1, true, true, "", []byte("k\x00\xc2\x85"), "DEFAULT,a,b,c,d", false, 1, 1},
		// Found by fuzzing: an IPv6 zone that is not valid UTF-8, or holds
		// control characters, was accepted and did not survive the view's JSON.
		{"", "", "s", "", "fe80::1%\xff", 80, 1, true, true, "i", nil, "", false, 1, 1},
		{"", "", "s", "", "fe80::1%\x1b[2J", 80, 1, true, true, "i", nil, "", false, 1, 1},
		{"", "", strings.Repeat("n", 65), "", "10.0.0.1", 80, 1, true, true, strings.Repeat("i", 513), []byte("big\x00" + strings.Repeat("x", 300)), "", false, 1, 1},
	}
	for _, s := range seeds {
		f.Add(s.namespace, s.group, s.name, s.cluster, s.ip, s.port, s.weight, s.healthy, s.enabled, s.id, s.metadata,
			s.clusters, s.healthyOnly, s.pageNo, s.pageSize)
	}
	f.Fuzz(func(t *testing.T, namespace, group, name, cluster, ip string, port int, weight float64, healthy, enabled bool,
		id string, metadata []byte, clusters string, healthyOnly bool, pageNo, pageSize int) {
		ctx := context.Background()
		r := NewRegistry(Config{Limits: fuzzLimits, Bus: notify.New(notify.Config{})})
		for _, c := range []string{"c1", "c2"} {
			if err := r.Connect(c, map[string]string{"source": "fuzz"}); err != nil {
				t.Fatal(err)
			}
		}
		base := Service{Namespace: DefaultNamespace, Group: DefaultGroup, Name: "base"}
		if err := r.Register(ctx, "c1", base, Instance{IP: "10.0.0.9", Port: 9, Weight: 1, Healthy: true, Enabled: true, Ephemeral: true}); err != nil {
			t.Fatal(err)
		}

		svc := Service{Namespace: namespace, Group: group, Name: name}
		inst := Instance{ID: id, IP: ip, Port: port, Weight: weight, Healthy: healthy, Enabled: enabled, Ephemeral: true,
			Cluster: cluster, Metadata: fuzzMetadata(metadata)}
		// What an accepted registration is stored as.
		nsvc := svc
		if nsvc.Namespace == "" {
			nsvc.Namespace = DefaultNamespace
		}
		if nsvc.Group == "" {
			nsvc.Group = DefaultGroup
		}
		want := inst
		if want.Cluster == "" {
			want.Cluster = DefaultCluster
		}
		if want.ID == "" {
			want.ID = want.IP + "#" + strconv.Itoa(want.Port) + "#" + want.Cluster + "#" + nsvc.GroupedName()
		}

		// Register.
		before := fuzzStateOf(r)
		err := r.Register(ctx, "c1", svc, inst)
		registered := err == nil
		if !registered {
			fuzzRefused(t, r, "Register", err, before)
		} else {
			if math.IsNaN(weight) || weight < 0 || weight > maxWeight || port < 0 || port > 65535 {
				t.Fatalf("Register accepted weight %v, port %d", weight, port)
			}
			// Everything stored is text a client may store.
			texts := []string{nsvc.Namespace, nsvc.Group, nsvc.Name, want.ID, want.IP, want.Cluster}
			for k, v := range want.Metadata {
				texts = append(texts, k, strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(v))
			}
			for _, s := range texts {
				if p := textProblem(s, false); p != "" {
					t.Fatalf("Register(%+v, %+v) accepted %q, which %s", svc, inst, s, p)
				}
			}
			d, _ := r.Client("c1")
			if got := d.Services[nsvc]; len(got) != 1 || !got[0].equal(want) {
				t.Fatalf("Register(%+v, %+v) stored %+v, want %+v", svc, inst, got, want)
			}
			if got, want := r.Stats().Instances, before.Stats.Instances+1; nsvc != base && got != want {
				t.Fatalf("%d instances after a registration, want %d", got, want)
			}
			v := fuzzDecodeView(t, r.View(nsvc, ViewFilter{}), nsvc, ViewFilter{})
			fuzzCheckCarries(t, v, nsvc, want, want.Enabled)
		}

		// Query, with the filter.
		before = fuzzStateOf(r)
		filter := ViewFilter{Clusters: clusters, HealthyOnly: healthyOnly}
		if view, err := r.Query(svc, filter); err != nil {
			fuzzRefused(t, r, "Query", err, before)
		} else {
			v := fuzzDecodeView(t, view, nsvc, filter)
			if registered {
				in := want.Enabled && (clusters == "" || slices.Contains(strings.Split(clusters, ","), want.Cluster)) &&
					(want.Healthy || !healthyOnly)
				fuzzCheckCarries(t, v, nsvc, want, in)
			}
		}

		// Subscribe and unsubscribe.
		before = fuzzStateOf(r)
		if view, err := r.Subscribe(ctx, "c2", svc, Subscription{Clusters: clusters, App: name}); err != nil {
			fuzzRefused(t, r, "Subscribe", err, before)
		} else {
			fuzzDecodeView(t, view, nsvc, ViewFilter{Clusters: clusters})
			if got := r.Stats().Subscribers; got != before.Stats.Subscribers+1 {
				t.Fatalf("%d subscribers after a subscription, want %d", got, before.Stats.Subscribers+1)
			}
			if subs := r.Subscribers(nsvc, nil); len(subs) != 1 || subs[0].ClientID != "c2" || subs[0].Clusters != clusters {
				t.Fatalf("subscribers of %v: %+v", nsvc, subs)
			}
			before = fuzzStateOf(r)
			if view, err := r.Unsubscribe("c2", svc, clusters); err != nil {
				t.Fatalf("Unsubscribe after Subscribe: %v", err)
			} else {
				fuzzDecodeView(t, view, nsvc, ViewFilter{Clusters: clusters})
			}
			if got := r.Stats().Subscribers; got != before.Stats.Subscribers-1 {
				t.Fatalf("%d subscribers after unsubscribing, want %d", got, before.Stats.Subscribers-1)
			}
		}

		// A batch of the instance and its neighbour.
		before = fuzzStateOf(r)
		next := inst
		next.Port, next.ID = port+1, ""
		if err := r.BatchRegister(ctx, "c2", svc, []Instance{inst, next}); err != nil {
			fuzzRefused(t, r, "BatchRegister", err, before)
		} else {
			d, _ := r.Client("c2")
			if got := d.Services[nsvc]; len(got) != 2 || !got[0].equal(want) {
				t.Fatalf("BatchRegister(%+v) stored %+v, want %+v first", svc, got, want)
			}
			v := fuzzDecodeView(t, r.View(nsvc, ViewFilter{}), nsvc, ViewFilter{})
			fuzzCheckCarries(t, v, nsvc, d.Services[nsvc][1], want.Enabled)
		}

		// A page of the service names of the scope.
		before = fuzzStateOf(r)
		if count, page, err := r.ListServices(namespace, group, pageNo, pageSize); err != nil {
			fuzzRefused(t, r, "ListServices", err, before)
		} else {
			all, all2, err := r.ListServices(namespace, group, 1, MaxPageSize)
			if err != nil || all != count || len(all2) != count || !slices.IsSorted(all2) {
				t.Fatalf("the whole list: %d %v %v, want %d sorted names", all, all2, err, count)
			}
			var wantPage []string
			if pages := (count + pageSize - 1) / pageSize; pageNo-1 < pages {
				start := (pageNo - 1) * pageSize
				wantPage = all2[start:min(start+pageSize, count)]
			}
			if page == nil || !slices.Equal(page, wantPage) {
				t.Fatalf("page %d of %d: %q, want %q of %q", pageNo, pageSize, page, wantPage, all2)
			}
			if out, _ := json.Marshal(page); !json.Valid(out) {
				t.Fatalf("page %q does not encode", page)
			}
			if ns, g, _ := r.Limits().NormalizeScope(namespace, group); registered && ns == nsvc.Namespace && g == nsvc.Group &&
				!slices.Contains(all2, nsvc.Name) {
				t.Fatalf("%v is registered but not listed in %q", nsvc, all2)
			}
		}

		// Deregister: the client's one instance of the service goes.
		before = fuzzStateOf(r)
		if err := r.Deregister(ctx, "c1", svc, inst); err != nil {
			fuzzRefused(t, r, "Deregister", err, before)
		} else if d, _ := r.Client("c1"); registered && len(d.Services[nsvc]) != 0 {
			t.Fatalf("Deregister left %+v", d.Services[nsvc])
		}
	})
}
