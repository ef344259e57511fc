package persistent_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// TestStandaloneRestartKeepsPersistentInstances: a standalone server with a
// data directory stores persistent instances (over gRPC and over HTTP) in
// its single-node Raft log; stopped with SIGTERM and started again on the
// same directory, it lists them again — its log replayed — but not the
// ephemeral instance of a client that is gone, and it takes writes again.
func TestStandaloneRestartKeepsPersistentInstances(t *testing.T) {
	t.Parallel()
	port := servertest.FreePorts(t, 1)[0]
	opts := servertest.Options{Port: port, DataDir: t.TempDir(), Env: env}
	srv := servertest.Start(t, opts)
	const svc = "standalone-persistent"

	conn, err := dial(srv.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A standalone node elects itself once it is started: until then a
	// persistent write is refused with 503.
	deadline := time.Now().Add(awaitTimeout)
	for {
		a, err := conn.registerPersistent(requestTimeout, svc, "10.40.0.1", 8080, map[string]string{"via": "grpc"})
		if err != nil {
			t.Fatal(err)
		}
		if a.ResultCode == 200 {
			break
		}
		if a.ErrorCode != 503 || time.Now().After(deadline) {
			t.Fatalf("PersistentInstanceRequest on a standalone server: %s", a)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status, body, err := httpRegister(srv.HTTPAddr(), svc, "10.40.0.2", 8080, false, map[string]string{"via": "http"}); err != nil || status != http.StatusOK || body != "ok" {
		t.Fatalf("POST instance ephemeral=false: %d %q %v", status, body, err)
	}
	persistent := []string{"10.40.0.1:8080", "10.40.0.2:8080"}
	if a, err := conn.registerEphemeral(svc, "10.40.0.9", 8080); err != nil || a.ResultCode != 200 {
		t.Fatalf("InstanceRequest (ephemeral): %v %v", a, err)
	}
	awaitList(t, srv.HTTPAddr(), svc, both(persistentAt(persistent...), listedEphemeral("10.40.0.9:8080")))

	conn.Close()
	if err := srv.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, srv.Tail())
	}
	srv = servertest.Start(t, opts)
	ready := time.Now()
	hosts := awaitList(t, srv.HTTPAddr(), svc, persistentAt(persistent...))
	t.Logf("the persistent instances were listed %v after the restarted server said it was ready", time.Since(ready).Round(time.Millisecond))
	if len(hosts) != len(persistent) {
		t.Fatalf("after the restart: %s, want %v", describe(hosts), persistent)
	}
	if h := hosts["10.40.0.1:8080"]; h.Metadata["via"] != "grpc" || h.Weight != 1 || !h.Enabled {
		t.Errorf("after the restart: %+v", h)
	}

	// And it writes again: it elected itself again from its own log.
	conn, err = dial(srv.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline = time.Now().Add(awaitTimeout)
	for {
		a, err := conn.deregisterPersistent(svc, "10.40.0.1", 8080)
		if err != nil {
			t.Fatal(err)
		}
		if a.ResultCode == 200 {
			break
		}
		if a.ErrorCode != 503 || time.Now().After(deadline) {
			t.Fatalf("deregistering after the restart: %s", a)
		}
		time.Sleep(50 * time.Millisecond)
	}
	awaitList(t, srv.HTTPAddr(), svc, both(absent("10.40.0.1:8080"), persistentAt(slices.DeleteFunc(persistent, func(a string) bool { return a == "10.40.0.1:8080" })...)))
}
