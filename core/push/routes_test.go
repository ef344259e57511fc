package push

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/naming"
	sdkpush "github.com/sextantd/sextant/sdk/push"
)

// subscribeUDP records a UDP subscriber of the HTTP API, as a 1.x client's
// instance/list with udpPort does.
func (f *fixture) subscribeUDP(t *testing.T, ip string, port int, clusters string) string {
	t.Helper()
	if err := f.registry.SubscribeHTTP(svc, ip, port, naming.Subscription{Clusters: clusters}); err != nil {
		t.Fatal(err)
	}
	return naming.HTTPClientID(ip, port)
}

func viewName(t *testing.T, b sdkpush.Batch) string {
	t.Helper()
	var info struct{ Name string }
	if err := json.Unmarshal(b.ServiceInfo, &info); err != nil {
		t.Fatal(err)
	}
	return info.Name
}

// TestUDPSubscribersGoToTheUDPExecutor: a change reaches the connection's
// subscriber through rpc and the HTTP API's through udp, at its address,
// with the view named group@@name as 1.x clients read it.
func TestUDPSubscribersGoToTheUDPExecutor(t *testing.T) {
	udp := newRecorder()
	f := start(t, 0, time.Hour, Route{Name: "udp", Role: sdkpush.RoleUDP, Executor: udp})
	f.connect(t, "grpc-sub", "p")
	f.subscribe(t, "grpc-sub", "")
	f.exec.awaitPushed(t, "grpc-sub")
	id := f.subscribeUDP(t, "10.1.0.5", 55001, "")

	f.register(t, "p", "10.0.0.1")
	rpc := f.exec.next(t)
	if !slices.Equal(targets(rpc), []string{"grpc-sub"}) || rpc.Targets[0].ConnectionID != "grpc-sub" || rpc.Targets[0].Address != "" {
		t.Fatalf("the rpc executor got %+v", rpc.Targets)
	}
	if name := viewName(t, rpc); name != "orders" {
		t.Errorf("the rpc view is named %q, want the bare name", name)
	}
	b := udp.next(t)
	if len(b.Targets) != 1 || b.Targets[0].ClientID != id || b.Targets[0].Address != "10.1.0.5:55001" || b.Targets[0].ConnectionID != "" {
		t.Fatalf("the udp executor got %+v", b.Targets)
	}
	if name := viewName(t, b); name != "DEFAULT_GROUP@@orders" {
		t.Errorf("the udp view is named %q, want DEFAULT_GROUP@@orders", name)
	}
	if ips := hostIPs(t, b); !slices.Equal(ips, []string{"10.0.0.1"}) {
		t.Errorf("the udp view has %v", ips)
	}
}

// TestAFailedUDPPushIsRetriedAlone: only the failed UDP target is pushed
// again.
func TestAFailedUDPPushIsRetriedAlone(t *testing.T) {
	udp := newRecorder()
	f := start(t, 0, 20*time.Millisecond, Route{Name: "udp", Role: sdkpush.RoleUDP, Executor: udp})
	f.connect(t, "p")
	lost := f.subscribeUDP(t, "10.1.0.5", 55001, "")
	kept := f.subscribeUDP(t, "10.1.0.6", 55001, "")
	udp.setFail(func(target sdkpush.Target) bool { return target.ClientID == lost })
	f.register(t, "p", "10.0.0.1")
	if b := udp.next(t); !slices.Equal(targets(b), []string{lost, kept}) {
		t.Fatalf("first push to %v", targets(b))
	}
	udp.setFail(nil)
	if b := udp.next(t); !slices.Equal(targets(b), []string{lost}) {
		t.Fatalf("retry pushed %v, want only %s", targets(b), lost)
	}
}

// TestWithoutAUDPExecutorUDPSubscribersOnlyPoll: no executor serves the
// udp role, so a UDP subscriber is pushed nothing (and nothing fails).
func TestWithoutAUDPExecutorUDPSubscribersOnlyPoll(t *testing.T) {
	f := start(t, 0, time.Hour)
	f.connect(t, "grpc-sub", "p", "p2")
	f.subscribeUDP(t, "10.1.0.5", 55001, "")
	f.subscribe(t, "grpc-sub", "")
	f.exec.awaitPushed(t, "grpc-sub")
	f.register(t, "p", "10.0.0.1")
	f.exec.awaitPushed(t, "grpc-sub")
	// A push's batches all arrive before the next push's: by the push of
	// the second instance, a batch for the UDP subscriber would have come.
	f.register(t, "p2", "10.0.0.2")
	for {
		b := f.exec.next(t)
		if !slices.Equal(targets(b), []string{"grpc-sub"}) {
			t.Fatalf("the rpc executor got %v", targets(b))
		}
		if len(hostIPs(t, b)) == 2 {
			return
		}
	}
}

// TestAnSPIExecutorTakesOverUDPSubscribers: an spi interest covering the
// service serves its UDP subscriber too, with the 1.x view and address.
func TestAnSPIExecutorTakesOverUDPSubscribers(t *testing.T) {
	udp, spi := newRecorder(), newRecorder()
	f := start(t, 0, time.Hour, Route{Name: "udp", Role: sdkpush.RoleUDP, Executor: udp},
		Route{Name: "custom", Role: sdkpush.RoleSPI, Executor: spi, Interest: sdkpush.Interest{Services: []string{"orders"}, Subscribers: true}})
	f.connect(t, "p")
	id := f.subscribeUDP(t, "10.1.0.5", 55001, "")
	f.register(t, "p", "10.0.0.1")
	b := spi.next(t)
	if !slices.Equal(targets(b), []string{id}) || b.Targets[0].Address != "10.1.0.5:55001" || viewName(t, b) != "DEFAULT_GROUP@@orders" {
		t.Fatalf("the spi executor got %+v named %q", b.Targets, viewName(t, b))
	}
	select {
	case b := <-udp.batches:
		t.Fatalf("the udp executor was pushed %v too", targets(b))
	default:
	}
}

func TestTwoUDPExecutorsAreRefused(t *testing.T) {
	_, err := newRoutes([]Route{{Name: "rpc", Role: sdkpush.RoleRPC}, {Name: "a", Role: sdkpush.RoleUDP}, {Name: "b", Role: sdkpush.RoleUDP}})
	if err == nil {
		t.Fatal("two udp executors were accepted")
	}
}
