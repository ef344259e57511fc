package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/consensus"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/persist"
)

// newStore returns the Raft store of a single node in a temporary
// directory, as a standalone server runs it, mirrored into reg; it returns
// once the node leads (a standalone node elects itself within a second or
// two). The node stops when the test ends.
func newStore(t *testing.T, reg *naming.Registry) (*persist.Store, *consensus.Node) {
	t.Helper()
	ctx := context.Background()
	fsm := persist.New(persist.Config{Limits: reg.Limits(), Registry: reg})
	node, err := consensus.New(consensus.Config{DataDir: t.TempDir(), Self: "127.0.0.1:8848", FSM: fsm,
		EncodeResult: persist.EncodeResponse, Router: cluster.NewRouter(), Logger: hclog.NewNullLogger(),
		HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond,
		LeaderLeaseTimeout: 400 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
		ApplyTimeout: 3 * time.Second, LeaderReads: true})
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
	})
	// A read barrier succeeds once the node leads and has applied its log.
	for deadline := time.Now().Add(15 * time.Second); ; {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		err := node.ReadBarrier(rctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the single node did not become leader: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return persist.NewStore(fsm, node, reg), node
}

// newPersistentHandler is a naming API over a registry and its store.
func newPersistentHandler(t *testing.T) (http.Handler, *naming.Registry, *persist.Store, *consensus.Node) {
	t.Helper()
	reg := newRegistry(t)
	store, node := newStore(t, reg)
	return handler(Config{Registry: reg, Store: store}), reg, store, node
}

// host is what instance/list tells of one instance.
type host struct {
	Weight    float64
	Healthy   bool
	Enabled   bool
	Ephemeral bool
	Cluster   string
	Metadata  map[string]string
}

// hostsOf returns the hosts instance/list (v1) answers for serviceName, by
// instance id.
func hostsOf(t *testing.T, h http.Handler, serviceName string) map[string]host {
	t.Helper()
	rec := send(h, "GET", "/nacos/v1/ns/instance/list", form("serviceName", serviceName))
	mustOK(t, rec, "")
	out := map[string]host{}
	for _, in := range decodeInfo(t, rec.Body.Bytes()).Hosts {
		out[in.InstanceID] = host{in.Weight, in.Healthy, in.Enabled, in.Ephemeral, in.ClusterName, in.Metadata}
	}
	return out
}

// TestPersistentInstances: ephemeral=false registers, updates and
// deregisters through the store, over v1 and v2; the instances are listed
// with ephemeral=false, found by GET /instance, need no beats (no HTTP
// client holds them), and beats of them change nothing.
func TestPersistentInstances(t *testing.T) {
	h, reg, store, _ := newPersistentHandler(t)
	const id1, id2 = "10.0.0.1#5432#DEFAULT#DEFAULT_GROUP@@db", "10.0.0.2#5432#c1#DEFAULT_GROUP@@db"

	// What the Nacos Go SDK 2.x sends for Ephemeral:false (naming_http).
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("namespaceId", "", "serviceName", "DEFAULT_GROUP@@db",
		"groupName", "DEFAULT_GROUP", "app", "", "clusterName", "", "ip", "10.0.0.1", "port", "5432", "weight", "2",
		"enable", "true", "healthy", "true", "metadata", `{"role":"primary"}`, "ephemeral", "false")), "ok")
	rec := send(h, "POST", "/nacos/v2/ns/instance", form("serviceName", "db", "ip", "10.0.0.2", "port", "5432",
		"clusterName", "c1", "ephemeral", "false"))
	mustStatus(t, "v2 register", rec, http.StatusOK, `{"code":0,"message":"success","data":"ok"}`)

	hosts := hostsOf(t, h, "db")
	if len(hosts) != 2 || hosts[id1].Ephemeral || hosts[id2].Ephemeral || hosts[id1].Weight != 2 ||
		hosts[id1].Metadata["role"] != "primary" || !hosts[id1].Healthy || !hosts[id1].Enabled || hosts[id2].Cluster != "c1" {
		t.Fatalf("listed %+v", hosts)
	}
	if n := len(store.FSM().Instances(naming.Service{Name: "db"})); n != 2 {
		t.Fatalf("the store holds %d instances", n)
	}
	// They belong to no HTTP client: nothing beats for them, nothing
	// expires them.
	if ids := reg.HTTPClients(); len(ids) != 0 {
		t.Fatalf("HTTP clients %v", ids)
	}
	mustStatus(t, "v1 get", send(h, "GET", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "5432")),
		http.StatusOK, `{"service":"DEFAULT_GROUP@@db","ip":"10.0.0.1","port":5432,"clusterName":"DEFAULT","weight":2,"healthy":true,`+
			`"instanceId":"`+id1+`","metadata":{"role":"primary"}}`)
	rec = send(h, "GET", "/nacos/v2/ns/instance", form("serviceName", "db", "ip", "10.0.0.2", "port", "5432", "clusterName", "c1"))
	if b := decodeV2(t, rec); rec.Code != http.StatusOK || !strings.Contains(string(b.Data), `"instanceId":"`+id2+`"`) {
		t.Fatalf("v2 get: %d %s", rec.Code, rec.Body)
	}

	// Update: the fields given, the others kept; without the ephemeral
	// parameter, the instance at the address is the persistent one.
	mustOK(t, send(h, "PUT", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "5432",
		"weight", "3", "ephemeral", "false")), "ok")
	mustStatus(t, "v2 update", send(h, "PUT", "/nacos/v2/ns/instance", form("serviceName", "db", "ip", "10.0.0.2", "port", "5432",
		"clusterName", "c1", "enabled", "false", "metadata", `{"k":"v"}`)), http.StatusOK, `{"code":0,"message":"success","data":"ok"}`)
	hosts = hostsOf(t, h, "db")
	if hosts[id1].Weight != 3 || hosts[id1].Metadata["role"] != "primary" || hosts[id1].Ephemeral {
		t.Errorf("after the v1 update: %+v", hosts[id1])
	}
	if _, listed := hosts[id2]; listed { // disabled: not in the view
		t.Errorf("a disabled instance is listed: %+v", hosts)
	}
	if in := store.FSM().Instances(naming.Service{Name: "db"}); len(in) != 2 || in[1].Enabled || in[1].Metadata["k"] != "v" || in[1].Weight != 1 {
		t.Errorf("after the v2 update: %+v", in)
	}
	rec = send(h, "PUT", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "9999", "weight", "1", "ephemeral", "false"))
	mustStatus(t, "update of none", rec, http.StatusNotFound, "instance not found")
	rec = send(h, "PUT", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "5432", "weight", "-1", "ephemeral", "false"))
	if rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Body.String(), "weight: ") {
		t.Errorf("update with a bad weight: %d %q", rec.Code, rec.Body)
	}

	// Beats change nothing: one that says ephemeral=false, and a light one.
	for _, p := range []map[string][]string{
		form("serviceName", "DEFAULT_GROUP@@db", "beat", `{"ip":"10.0.0.1","port":5432,"serviceName":"DEFAULT_GROUP@@db","ephemeral":false}`),
		form("serviceName", "db", "ip", "10.0.0.1", "port", "5432"),
		form("serviceName", "db", "beat", `{"ip":"10.0.0.2","port":5432,"cluster":"c1","serviceName":"DEFAULT_GROUP@@db"}`),
	} {
		mustStatus(t, "beat "+describe(p), send(h, "PUT", "/nacos/v1/ns/instance/beat", p), http.StatusOK,
			`{"clientBeatInterval":5000,"code":10200,"lightBeatEnabled":true}`)
	}
	mustStatus(t, "persistent beat of none", send(h, "PUT", "/nacos/v1/ns/instance/beat", form("serviceName", "db",
		"beat", `{"ip":"10.0.0.9","port":5432,"ephemeral":false}`)), http.StatusOK, `{"clientBeatInterval":5000,"code":20404,"lightBeatEnabled":true}`)
	if ids := reg.HTTPClients(); len(ids) != 0 {
		t.Fatalf("beats made HTTP clients %v", ids)
	}

	// Deregister: with the cluster, that address; without it, ip:port in
	// any cluster. Again is no error; without ephemeral=false, only an
	// ephemeral instance goes (there is none), as in Nacos.
	mustOK(t, send(h, "DELETE", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "5432",
		"clusterName", "DEFAULT", "ephemeral", "false")), "ok")
	mustOK(t, send(h, "DELETE", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "5432", "ephemeral", "false")), "ok")
	mustOK(t, send(h, "DELETE", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.2", "port", "5432")), "ok")
	if in := store.FSM().Instances(naming.Service{Name: "db"}); len(in) != 1 || in[0].IP != "10.0.0.2" {
		t.Fatalf("after deregistering 10.0.0.1: %+v", in)
	}
	mustStatus(t, "v2 deregister", send(h, "DELETE", "/nacos/v2/ns/instance", form("serviceName", "db", "ip", "10.0.0.2", "port", "5432",
		"ephemeral", "false")), http.StatusOK, `{"code":0,"message":"success","data":"ok"}`)
	if hosts := hostsOf(t, h, "db"); len(hosts) != 0 {
		t.Fatalf("after deregistering: %+v", hosts)
	}
	if n := len(store.FSM().Instances(naming.Service{Name: "db"})); n != 0 {
		t.Fatalf("the store still holds %d instances", n)
	}
}

// TestPersistentBadInput: a persistent instance's bad input is a 400 naming
// the parameter, and an address is ephemeral or persistent, never both:
// each registration at the other's address is refused naming ephemeral.
func TestPersistentBadInput(t *testing.T) {
	h, _, store, _ := newPersistentHandler(t)
	reg1 := form("serviceName", "svc", "ip", "10.0.0.1", "port", "80", "ephemeral", "false")
	for _, tc := range []struct {
		name   string
		params map[string][]string
		param  string
		code   int
	}{
		{"bad port", with(reg1, "port", "70000"), "port", codeParameterValidate},
		{"bad ip", with(reg1, "ip", "not an ip"), "ip", codeParameterValidate},
		{"bad weight", with(reg1, "weight", "20000"), "weight", codeParameterValidate},
		{"bad cluster", with(reg1, "clusterName", "a,b"), "clusterName", codeParameterValidate},
		{"bad namespace", with(reg1, "namespaceId", "a b"), "namespaceId", codeParameterValidate},
		{"no port", with(reg1, "port", ""), "port", codeParameterMissing},
	} {
		rec := send(h, "POST", "/nacos/v1/ns/instance", tc.params)
		if rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Body.String(), tc.param+": ") {
			t.Errorf("v1 %s: %d %q, want 400 about %s", tc.name, rec.Code, rec.Body, tc.param)
		}
		mustV2Error(t, "v2 "+tc.name, send(h, "POST", "/nacos/v2/ns/instance", tc.params), http.StatusBadRequest, tc.code, tc.param)
	}

	// An ephemeral instance's address cannot take a persistent one...
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80")), "ok")
	rec := send(h, "POST", "/nacos/v1/ns/instance", reg1)
	mustStatus(t, "persistent at an ephemeral address", rec, http.StatusBadRequest, "")
	assertContains(t, "persistent at an ephemeral address", rec.Body.String(), "ephemeral: 10.0.0.1:80 in cluster DEFAULT is an ephemeral instance")
	mustV2Error(t, "v2 persistent at an ephemeral address", send(h, "POST", "/nacos/v2/ns/instance", reg1),
		http.StatusBadRequest, codeParameterValidate, "ephemeral")
	// ... nor the reverse.
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", with(reg1, "ip", "10.0.0.2")), "ok")
	rec = send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", "10.0.0.2", "port", "80"))
	mustStatus(t, "ephemeral at a persistent address", rec, http.StatusBadRequest, "")
	assertContains(t, "ephemeral at a persistent address", rec.Body.String(), "ephemeral: 10.0.0.2:80 in cluster DEFAULT is a persistent instance")
	mustV2Error(t, "v2 ephemeral at a persistent address", send(h, "POST", "/nacos/v2/ns/instance",
		form("serviceName", "svc", "ip", "10.0.0.2", "port", "80", "ephemeral", "true")), http.StatusBadRequest, codeParameterValidate, "ephemeral")

	hosts := hostsOf(t, h, "svc")
	if len(hosts) != 2 || !hosts["10.0.0.1#80#DEFAULT#DEFAULT_GROUP@@svc"].Ephemeral || hosts["10.0.0.2#80#DEFAULT#DEFAULT_GROUP@@svc"].Ephemeral {
		t.Errorf("hosts %+v", hosts)
	}
	if n := len(store.FSM().Instances(testSvc)); n != 1 {
		t.Errorf("the store holds %d instances", n)
	}
}

// TestPersistentWithoutStore: a server without a store refuses every
// persistent write with 501, as before the store existed.
func TestPersistentWithoutStore(t *testing.T) {
	reg := newRegistry(t)
	h := handler(Config{Registry: reg})
	for _, tc := range []struct {
		method, path string
		params       map[string][]string
	}{
		{"POST", "/nacos/v1/ns/service", form("serviceName", "s")},
		{"PUT", "/nacos/v2/ns/service", form("serviceName", "s")},
		{"DELETE", "/nacos/v1/ns/service", form("serviceName", "s")},
		{"POST", consoleNamespace, form("customNamespaceId", "dev", "namespaceName", "Dev")},
		{"PUT", consoleNamespace, form("namespace", "dev", "namespaceShowName", "Dev")},
		{"DELETE", consoleNamespace, form("namespaceId", "dev")},
	} {
		if rec := send(h, tc.method, tc.path, tc.params); rec.Code != http.StatusNotImplemented || !strings.Contains(rec.Body.String(), "Raft store") {
			t.Errorf("%s %s: %d %q, want 501", tc.method, tc.path, rec.Code, rec.Body)
		}
	}
	mustStatus(t, "exist", send(h, "GET", consoleNamespace+"/exist", form("customNamespaceId", "dev")), http.StatusOK, "false")
	mustStatus(t, "exist public", send(h, "GET", consoleNamespace+"/exist", form("customNamespaceId", "public")), http.StatusOK, "true")
}

// TestStoreNotRunning: a node that is stopped, or has no quorum, refuses
// persistent writes with 503 (v2 code 30000), which clients retry; reads
// keep being served.
func TestStoreNotRunning(t *testing.T) {
	h, _, _, node := newPersistentHandler(t)
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "1", "ephemeral", "false")), "ok")
	if err := node.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		params       map[string][]string
	}{
		{"POST", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.2", "port", "1", "ephemeral", "false")},
		{"DELETE", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "1", "ephemeral", "false")},
		{"PUT", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "1", "weight", "2")},
		{"POST", "/nacos/v1/ns/service", form("serviceName", "other")},
		{"POST", consoleNamespace, form("customNamespaceId", "dev", "namespaceName", "Dev")},
	} {
		rec := send(h, tc.method, tc.path, tc.params)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "Raft store is not running") {
			t.Errorf("%s %s: %d %q, want 503", tc.method, tc.path, rec.Code, rec.Body)
		}
	}
	rec := send(h, "POST", "/nacos/v2/ns/instance", form("serviceName", "db", "ip", "10.0.0.2", "port", "1", "ephemeral", "false"))
	if b := decodeV2(t, rec); rec.Code != http.StatusServiceUnavailable || b.Code != codeServerError {
		t.Errorf("v2: %d %s", rec.Code, rec.Body)
	}
	if hosts := hostsOf(t, h, "db"); len(hosts) != 1 {
		t.Errorf("hosts %+v", hosts)
	}
	// What a quorum lost answers.
	api := toAPIError(&wrapped{consensus.ErrNoQuorum}, nil)
	if api.status != http.StatusServiceUnavailable || api.code != codeServerError ||
		!strings.HasPrefix(api.msg, "no Raft quorum: persistent writes are refused until a majority of members is up") {
		t.Errorf("no quorum: %+v", api)
	}
}

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "consensus: leader unknown: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

// TestServiceDefinitionsInStore: the service API writes definitions through
// the store; "exists" counts ephemeral instances as Nacos does.
func TestServiceDefinitionsInStore(t *testing.T) {
	h, _, store, _ := newPersistentHandler(t)
	mustOK(t, send(h, "POST", "/nacos/v1/ns/service", form("serviceName", "defined", "protectThreshold", "0.3",
		"metadata", `{"team":"a"}`)), "ok")
	if d, ok := store.FSM().Service(naming.Service{Name: "defined"}); !ok || d.ProtectThreshold != 0.3 || d.Metadata["team"] != "a" {
		t.Fatalf("the store holds %+v, %v", d, ok)
	}

	// A service with ephemeral instances only exists: it cannot be
	// created, it can be updated (which defines it), not deleted.
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "eph", "ip", "10.0.0.1", "port", "80")), "ok")
	mustV2Error(t, "create of a service with instances", send(h, "POST", "/nacos/v2/ns/service", form("serviceName", "eph")),
		http.StatusBadRequest, codeServiceAlreadyExist, "serviceName")
	mustOK(t, send(h, "PUT", "/nacos/v1/ns/service", form("serviceName", "eph", "protectThreshold", "0.5")), "ok")
	if d, ok := store.FSM().Service(naming.Service{Name: "eph"}); !ok || d.ProtectThreshold != 0.5 {
		t.Fatalf("eph in the store: %+v, %v", d, ok)
	}
	rec := send(h, "DELETE", "/nacos/v1/ns/service", form("serviceName", "eph"))
	mustStatus(t, "delete with ephemeral instances", rec, http.StatusBadRequest, "")
	assertContains(t, "delete with ephemeral instances", rec.Body.String(), "still has instances")

	// One with persistent instances alike.
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "per", "ip", "10.0.0.1", "port", "80", "ephemeral", "false")), "ok")
	mustV2Error(t, "create of a service with persistent instances", send(h, "POST", "/nacos/v2/ns/service", form("serviceName", "per")),
		http.StatusBadRequest, codeServiceAlreadyExist, "serviceName")
	mustOK(t, send(h, "PUT", "/nacos/v1/ns/service", form("serviceName", "per", "protectThreshold", "0.1")), "ok")
	mustV2Error(t, "delete with persistent instances", send(h, "DELETE", "/nacos/v2/ns/service", form("serviceName", "per")),
		http.StatusBadRequest, codeServiceDeleteFailure, "serviceName")
	mustOK(t, send(h, "DELETE", "/nacos/v1/ns/instance", form("serviceName", "per", "ip", "10.0.0.1", "port", "80", "ephemeral", "false")), "ok")
	mustOK(t, send(h, "DELETE", "/nacos/v1/ns/service", form("serviceName", "per")), "ok")
	mustStatus(t, "per after delete", send(h, "GET", "/nacos/v1/ns/service", form("serviceName", "per")), http.StatusBadRequest,
		"serviceName: service DEFAULT_GROUP@@per not found")

	// An unknown service cannot be updated or deleted.
	for _, method := range []string{"PUT", "DELETE"} {
		mustV2Error(t, method+" of an unknown service", send(h, method, "/nacos/v2/ns/service", form("serviceName", "nope")),
			http.StatusBadRequest, codeServiceNotExist, "serviceName")
	}
	mustOK(t, send(h, "DELETE", "/nacos/v1/ns/service", form("serviceName", "defined")), "ok")
	if _, ok := store.FSM().Service(naming.Service{Name: "defined"}); ok {
		t.Error("defined outlived its delete")
	}
}

// TestPersistentInstanceHealth: an operator cannot set a persistent
// instance's health while its cluster's checker (TCP, by default) sets it,
// as Nacos refuses unless the checker is NONE (TestManualHealth).
func TestPersistentInstanceHealth(t *testing.T) {
	h, _, store, _ := newPersistentHandler(t)
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "80",
		"clusterName", "c1", "ephemeral", "false")), "ok")
	for _, path := range []string{"/nacos/v1/ns/health/instance", "/nacos/v2/ns/health/instance"} {
		rec := send(h, "PUT", path, form("serviceName", "db", "ip", "10.0.0.1", "port", "80", "clusterName", "c1", "healthy", "false"))
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `healthChecker {\"type\":\"TCP\"}`) &&
			!strings.Contains(rec.Body.String(), `healthChecker {"type":"TCP"}`) {
			t.Errorf("%s: %d %s, want 400 naming the health checker", path, rec.Code, rec.Body)
		}
	}
	if in := store.FSM().Instances(naming.Service{Name: "db"}); len(in) != 1 || !in[0].Healthy {
		t.Fatalf("after the refused writes: %+v", in)
	}
	mustStatus(t, "other cluster", send(h, "PUT", "/nacos/v1/ns/health/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "80",
		"healthy", "false")), http.StatusNotFound, "instance not found")
}

// namespacesOf decodes GET /nacos/v1/console/namespaces.
func namespacesOf(t *testing.T, h http.Handler) []namespaceJSON {
	t.Helper()
	rec := send(h, "GET", consoleNamespace, form())
	var out struct {
		Code int             `json:"code"`
		Data []namespaceJSON `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); rec.Code != http.StatusOK || err != nil || out.Code != 200 {
		t.Fatalf("namespaces: %d %s (%v)", rec.Code, rec.Body, err)
	}
	return out.Data
}

// TestConsoleNamespaceWrites: the console creates, checks, shows, updates
// and deletes namespaces in the store; the list merges them with the
// namespaces that hold instances.
func TestConsoleNamespaceWrites(t *testing.T) {
	h, _, store, _ := newPersistentHandler(t)
	mustStatus(t, "create", send(h, "POST", consoleNamespace, form("customNamespaceId", "dev", "namespaceName", "Development",
		"namespaceDesc", "for developers")), http.StatusOK, "true")
	mustStatus(t, "create again", send(h, "POST", consoleNamespace, form("customNamespaceId", "dev", "namespaceName", "Other")),
		http.StatusBadRequest, `customNamespaceId: namespace "dev" already exists`)
	for _, tc := range []struct {
		name   string
		params map[string][]string
		param  string
	}{
		{"no name", form("customNamespaceId", "x"), "namespaceName"},
		{"a bad name", form("customNamespaceId", "x", "namespaceName", "a@b"), "namespaceName"},
		{"a bad id", form("customNamespaceId", "a b", "namespaceName", "A"), "customNamespaceId"},
		{"public", form("customNamespaceId", "public", "namespaceName", "P"), "customNamespaceId"},
	} {
		if rec := send(h, "POST", consoleNamespace, tc.params); rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Body.String(), tc.param+": ") {
			t.Errorf("create with %s: %d %q, want 400 about %s", tc.name, rec.Code, rec.Body, tc.param)
		}
	}
	// Without an id: a UUID, as Nacos gives.
	mustStatus(t, "create without an id", send(h, "POST", consoleNamespace, form("customNamespaceId", "", "namespaceName", "Generated")),
		http.StatusOK, "true")
	var generated string
	for _, ns := range store.FSM().Namespaces() {
		if ns.Name == "Generated" {
			generated = ns.ID
		}
	}
	if len(generated) != 36 || strings.Count(generated, "-") != 4 {
		t.Fatalf("generated id %q", generated)
	}

	// exist, in Nacos's form and as /exist.
	for id, want := range map[string]string{"dev": "true", "public": "true", "nope": "false", "": "false", generated: "true"} {
		mustStatus(t, "exist "+id, send(h, "GET", consoleNamespace, form("checkNamespaceIdExist", "true", "customNamespaceId", id)), http.StatusOK, want)
		mustStatus(t, "/exist "+id, send(h, "GET", consoleNamespace+"/exist", form("customNamespaceId", id)), http.StatusOK, want)
	}
	mustStatus(t, "show", send(h, "GET", consoleNamespace, form("show", "all", "namespaceId", "dev")), http.StatusOK,
		`{"namespace":"dev","namespaceShowName":"Development","namespaceDesc":"for developers","quota":200,"configCount":0,"type":2}`)
	mustStatus(t, "show public", send(h, "GET", consoleNamespace, form("show", "all", "namespaceId", "")), http.StatusOK,
		`{"namespace":"","namespaceShowName":"public","namespaceDesc":null,"quota":200,"configCount":0,"type":0}`)
	mustStatus(t, "show none", send(h, "GET", consoleNamespace, form("show", "all", "namespaceId", "nope")), http.StatusNotFound,
		`namespaceId: namespace "nope" not found`)

	// The list: public, then created and holding namespaces, by id.
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80", "namespaceId", "ops")), "ok")
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80", "namespaceId", "dev")), "ok")
	list := namespacesOf(t, h)
	if len(list) != 4 || list[0] != publicNamespaceJSON || !slices.IsSortedFunc(list[1:], func(a, b namespaceJSON) int {
		return strings.Compare(a.Namespace, b.Namespace)
	}) {
		t.Fatalf("list %+v", list)
	}
	byID := func(list []namespaceJSON) map[string]namespaceJSON {
		m := map[string]namespaceJSON{}
		for _, ns := range list {
			m[ns.Namespace] = ns
		}
		return m
	}
	if m := byID(list); m["dev"].NamespaceShowName != "Development" || m["dev"].NamespaceDesc == nil || *m["dev"].NamespaceDesc != "for developers" ||
		m["dev"].Type != namespaceCustom || m[generated].NamespaceShowName != "Generated" || m["ops"] != implicitNamespaceJSON("ops") {
		t.Fatalf("list %+v", list)
	}

	// Update: a created one, and one that only holds instances (which
	// creates it); an unknown one is not found, public cannot be.
	mustStatus(t, "update", send(h, "PUT", consoleNamespace, form("namespace", "dev", "namespaceShowName", "Dev")), http.StatusOK, "true")
	mustStatus(t, "update a holding one", send(h, "PUT", consoleNamespace, form("namespace", "ops", "namespaceShowName", "Operations",
		"namespaceDesc", "ops team")), http.StatusOK, "true")
	mustStatus(t, "update none", send(h, "PUT", consoleNamespace, form("namespace", "nope", "namespaceShowName", "N")),
		http.StatusNotFound, `namespace: namespace "nope" not found`)
	if rec := send(h, "PUT", consoleNamespace, form("namespace", "public", "namespaceShowName", "P")); rec.Code != http.StatusBadRequest ||
		!strings.HasPrefix(rec.Body.String(), "namespace: ") {
		t.Errorf("update public: %d %q", rec.Code, rec.Body)
	}
	if rec := send(h, "PUT", consoleNamespace, form("namespace", "dev", "namespaceShowName", "a#b")); rec.Code != http.StatusBadRequest ||
		!strings.HasPrefix(rec.Body.String(), "namespaceShowName: ") {
		t.Errorf("update with a bad name: %d %q", rec.Code, rec.Body)
	}
	if m := byID(namespacesOf(t, h)); m["dev"].NamespaceShowName != "Dev" || m["dev"].NamespaceDesc != nil ||
		m["ops"].NamespaceShowName != "Operations" || m["ops"].NamespaceDesc == nil || *m["ops"].NamespaceDesc != "ops team" {
		t.Errorf("after the updates: %+v", m)
	}

	// Delete: not public, not while it holds instances, not what is not
	// there.
	if rec := send(h, "DELETE", consoleNamespace, form("namespaceId", "public")); rec.Code != http.StatusBadRequest ||
		!strings.Contains(rec.Body.String(), "public namespace") {
		t.Errorf("delete public: %d %q", rec.Code, rec.Body)
	}
	rec := send(h, "DELETE", consoleNamespace, form("namespaceId", "dev"))
	if rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Body.String(), "namespaceId: namespace \"dev\" holds 1 services") {
		t.Errorf("delete with instances: %d %q", rec.Code, rec.Body)
	}
	mustOK(t, send(h, "DELETE", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80", "namespaceId", "dev")), "ok")
	mustStatus(t, "delete", send(h, "DELETE", consoleNamespace, form("namespaceId", "dev")), http.StatusOK, "true")
	mustStatus(t, "delete again", send(h, "DELETE", consoleNamespace, form("namespaceId", "dev")), http.StatusNotFound,
		`namespaceId: namespace "dev" not found`)
	if _, ok := store.FSM().Namespace("dev"); ok {
		t.Error("dev outlived its delete")
	}
	if m := byID(namespacesOf(t, h)); len(m) != 3 || m["dev"] != (namespaceJSON{}) {
		t.Errorf("after the delete: %+v", m)
	}
}

// TestConsoleNamespaceAuth: with auth on, the writes need a global admin
// (the token in the form body, as the console sends it, too); exist and
// show the namespace's read access.
func TestConsoleNamespaceAuth(t *testing.T) {
	a := newAuthority(t)
	reg := newRegistry(t)
	store, _ := newStore(t, reg)
	h := handler(Config{Registry: reg, Store: store, Auth: a})
	admin, app, reader := login(t, a, "admin", "admin-pw"), login(t, a, "app", "app-pw"), login(t, a, "reader", "reader-pw")
	create := form("customNamespaceId", "dev", "namespaceName", "Dev")
	for _, tok := range []string{"", app, reader} {
		if rec := send(asUser(h, tok), "POST", consoleNamespace, create); rec.Code != http.StatusForbidden {
			t.Errorf("create by %q: %d %q", tok, rec.Code, rec.Body)
		}
	}
	mustStatus(t, "create by admin (token in the form)", send(h, "POST", consoleNamespace, with(create, "accessToken", admin)), http.StatusOK, "true")
	for _, tc := range []struct {
		method string
		params map[string][]string
	}{
		{"PUT", form("namespace", "dev", "namespaceShowName", "D")},
		{"DELETE", form("namespaceId", "dev")},
	} {
		if rec := send(asUser(h, app), tc.method, consoleNamespace, tc.params); rec.Code != http.StatusForbidden {
			t.Errorf("%s by app: %d %q", tc.method, rec.Code, rec.Body)
		}
		mustStatus(t, tc.method+" by admin", send(asUser(h, admin), tc.method, consoleNamespace, tc.params), http.StatusOK, "true")
	}
	// exist: the namespace's read access.
	if rec := send(asUser(h, reader), "GET", consoleNamespace+"/exist", form("customNamespaceId", "dev")); rec.Code != http.StatusForbidden {
		t.Errorf("exist of dev by reader: %d %q", rec.Code, rec.Body)
	}
	mustStatus(t, "exist of public by reader", send(asUser(h, reader), "GET", consoleNamespace,
		form("checkNamespaceIdExist", "true", "customNamespaceId", "public")), http.StatusOK, "true")
	mustStatus(t, "exist of dev by admin", send(asUser(h, admin), "GET", consoleNamespace+"/exist",
		form("customNamespaceId", "dev")), http.StatusOK, "false")
}
