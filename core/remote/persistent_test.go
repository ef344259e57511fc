package remote

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/consensus"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/core/persist"
)

// newPersistentServer is newTestServer with a store: a single node's Raft
// in a temporary directory, as a standalone server runs it.
func newPersistentServer(t *testing.T) (*Server, *naming.Registry) {
	t.Helper()
	ctx := context.Background()
	bus := notify.New(notify.Config{})
	if err := bus.Start(ctx); err != nil {
		t.Fatal(err)
	}
	registry := naming.NewRegistry(naming.Config{Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10}, Bus: bus})
	fsm := persist.New(persist.Config{Limits: registry.Limits(), Registry: registry})
	node, err := consensus.New(consensus.Config{DataDir: t.TempDir(), Self: "127.0.0.1:8848", FSM: fsm,
		EncodeResult: persist.EncodeResponse, Router: cluster.NewRouter(), Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	node.SetMembers([]string{"127.0.0.1:8848"})
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := node.Stop(ctx); err != nil {
			t.Error(err)
		}
		_ = bus.Stop(ctx)
	})
	s := New(Config{MaxMessageSize: 1 << 20, Registry: registry, Logger: hclog.NewNullLogger(), Metrics: prometheus.NewRegistry()})
	s.UsePersistentStore(persist.NewStore(fsm, node, registry))
	s.SetReady(true)
	return s, registry
}

// TestPersistentInstances: a PersistentInstanceRequest, and an
// InstanceRequest of an ephemeral=false instance, register through the
// store an instance that outlives the connection; deregistering it names
// its address; bad input is answered 400 naming the field.
func TestPersistentInstances(t *testing.T) {
	s, registry := newPersistentServer(t)
	c, _ := addConn(t, s, "c1")
	svc := naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "db"}
	const register = `{"requestId":"1","serviceName":"db","type":"registerInstance","instance":{"ip":"10.0.0.1","port":5432,"weight":1,"enabled":true,"healthy":true,"ephemeral":false}}`
	hosts := func() []string {
		var view struct{ Hosts []struct{ IP string } }
		if err := json.Unmarshal(registry.View(svc, naming.ViewFilter{}), &view); err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, h := range view.Hosts {
			ips = append(ips, h.IP)
		}
		return ips
	}
	// The single node elects itself within a second or two.
	deadline := time.Now().Add(10 * time.Second)
	for {
		typ, body := serve(s, "c1", "PersistentInstanceRequest", register)
		if typ == "InstanceResponse" {
			break
		}
		if body["errorCode"] != 503.0 || time.Now().After(deadline) {
			t.Fatalf("PersistentInstanceRequest: %s %v", typ, body)
		}
	}
	if got := hosts(); len(got) != 1 || got[0] != "10.0.0.1" {
		t.Fatalf("hosts %v", got)
	}
	if typ, body := serve(s, "c1", "InstanceRequest", strings.Replace(register, "10.0.0.1", "10.0.0.2", 1)); typ != "InstanceResponse" {
		t.Fatalf("InstanceRequest ephemeral=false: %s %v", typ, body)
	}
	c.close()
	if err := registry.Disconnect(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	if got := hosts(); len(got) != 2 {
		t.Fatalf("the persistent instances did not outlive their connection: %v", got)
	}

	addConn(t, s, "c2")
	for _, tc := range []struct{ name, typ, body, want string }{
		{"bad port", "PersistentInstanceRequest", strings.Replace(register, `"port":5432`, `"port":-5`, 1), "port"},
		{"unknown address", "PersistentInstanceRequest", strings.Replace(strings.Replace(register, "registerInstance", "deregisterInstance", 1), "10.0.0.1", "10.9.9.9", 1), "not found"},
		{"persistent in a batch", "BatchInstanceRequest", `{"requestId":"2","serviceName":"db","type":"batchRegisterInstance","instances":[{"ip":"10.0.0.3","port":1,"weight":1,"ephemeral":false}]}`, "instances[0].ephemeral"},
		{"ephemeral at a persistent address", "InstanceRequest", strings.Replace(register, `"ephemeral":false`, `"ephemeral":true`, 1), "persistent instance"},
	} {
		typ, body := serve(s, "c2", tc.typ, tc.body)
		if msg, _ := body["message"].(string); typ != "ErrorResponse" || body["errorCode"] != 400.0 || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %s %v, want 400 naming %q", tc.name, typ, body, tc.want)
		}
	}
	if typ, body := serve(s, "c2", "PersistentInstanceRequest", strings.Replace(register, "registerInstance", "deregisterInstance", 1)); typ != "InstanceResponse" {
		t.Fatalf("deregister: %s %v", typ, body)
	}
	if got := hosts(); len(got) != 1 || got[0] != "10.0.0.2" {
		t.Fatalf("after deregistering 10.0.0.1: %v", got)
	}
}
