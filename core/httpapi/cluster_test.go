package httpapi

import (
	"bytes"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/sextantd/sextant/core/healthcheck"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/persist"
)

// httpCluster is a PUT /nacos/v1/ns/cluster of cluster web of db with an
// HTTP checker on port 8081, as Nacos's console sends it.
func httpCluster(kv ...string) url.Values {
	return with(form("serviceName", "DEFAULT_GROUP@@db", "namespaceId", "public", "clusterName", "web", "checkPort", "8081",
		"useInstancePort4Check", "false", "healthChecker", `{"type":"HTTP","path":"/health","headers":"X-Token:s3cret|Host:db.example","expectedResponseCode":204}`,
		"metadata", `{"zone":"eu"}`), kv...)
}

// TestUpdateCluster: PUT /nacos/v1/ns/cluster stores the cluster's checker
// and metadata in the store; GET /service answers them; a new PUT replaces
// them.
func TestUpdateCluster(t *testing.T) {
	h, _, store, _ := newPersistentHandler(t)
	db := naming.Service{Name: "db"}
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "80",
		"clusterName", "web", "ephemeral", "false")), "ok")
	mustOK(t, send(h, "PUT", "/nacos/v1/ns/cluster", httpCluster()), "ok")
	want := persist.ClusterDefinition{Metadata: map[string]string{"zone": "eu"},
		Checker: healthcheck.Checker{Type: healthcheck.TypeHTTP, Path: "/health", ExpectedCode: 204, CheckPort: 8081,
			Headers: map[string]string{"X-Token": "s3cret", "Host": "db.example"}}}
	if got, ok := store.FSM().Cluster(db, "web"); !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("stored %+v %v, want %+v", got, ok, want)
	}
	// A cluster defined before its instances come is answered too; the
	// cluster of instances without a definition has Nacos's default.
	mustOK(t, send(h, "PUT", "/nacos/v1/ns/cluster", form("serviceName", "db", "groupName", "DEFAULT_GROUP", "clusterName", "manual",
		"healthChecker", `{"type":"none"}`, "checkPort", "80", "useInstancePort4Check", "true")), "ok")
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.2", "port", "80", "ephemeral", "false")), "ok")
	mustStatus(t, "v1 get", send(h, "GET", "/nacos/v1/ns/service", form("serviceName", "db")), http.StatusOK,
		`{"namespaceId":"public","groupName":"DEFAULT_GROUP","name":"db","protectThreshold":0,"metadata":{},"selector":{"contextType":"NONE","type":"none"},"clusters":[`+
			`{"name":"DEFAULT","healthChecker":{"type":"TCP"},"checkPort":0,"useInstancePort4Check":true,"metadata":{}},`+
			`{"name":"manual","healthChecker":{"type":"NONE"},"checkPort":80,"useInstancePort4Check":true,"metadata":{}},`+
			`{"name":"web","healthChecker":{"type":"HTTP","path":"/health","headers":"Host:db.example|X-Token:s3cret","expectedResponseCode":204},"checkPort":8081,"useInstancePort4Check":false,"metadata":{"zone":"eu"}}]}`)
	rec := send(h, "GET", "/nacos/v2/ns/service", form("serviceName", "db"))
	mustStatus(t, "v2 get", rec, http.StatusOK, "")
	assertContains(t, "v2 get", rec.Body.String(), `"web":{"clusterName":"web","healthChecker":{"type":"HTTP","path":"/health",`+
		`"headers":"Host:db.example|X-Token:s3cret","expectedResponseCode":204},"checkPort":8081,"useInstancePort4Check":false,"metadata":{"zone":"eu"}}`)
	assertContains(t, "v2 get", rec.Body.String(), `"manual":{"clusterName":"manual","healthChecker":{"type":"NONE"}`)

	// A PUT replaces the whole definition: absent metadata is none, an
	// absent useInstancePort4Check is true.
	mustOK(t, send(h, "PUT", "/nacos/v1/ns/cluster", form("serviceName", "db", "clusterName", "web", "healthChecker", `{"type":"TCP"}`)), "ok")
	if got, _ := store.FSM().Cluster(db, "web"); !reflect.DeepEqual(got, persist.DefaultClusterDefinition()) {
		t.Errorf("after the second PUT: %+v", got)
	}

	// Deleting the service takes its clusters; a service whose instances
	// are gone but whose clusters stay can be deleted.
	for _, ip := range []string{"10.0.0.1", "10.0.0.2"} {
		cluster := map[string]string{"10.0.0.1": "web", "10.0.0.2": "DEFAULT"}[ip]
		mustOK(t, send(h, "DELETE", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", ip, "port", "80", "clusterName", cluster,
			"ephemeral", "false")), "ok")
	}
	mustStatus(t, "get of clusters alone", send(h, "GET", "/nacos/v1/ns/service", form("serviceName", "db")), http.StatusBadRequest, "")
	mustOK(t, send(h, "PUT", "/nacos/v1/ns/cluster", httpCluster()), "ok") // its clusters keep it for a PUT
	mustOK(t, send(h, "DELETE", "/nacos/v1/ns/service", form("serviceName", "db")), "ok")
	if got := store.FSM().Clusters(db); got != nil {
		t.Errorf("clusters after the delete: %+v", got)
	}
	mustStatus(t, "delete again", send(h, "DELETE", "/nacos/v1/ns/service", form("serviceName", "db")), http.StatusBadRequest, "")
}

// TestUpdateClusterRefused: bad input is refused with a 400 naming the
// parameter, and stores nothing; so is a service that does not exist.
func TestUpdateClusterRefused(t *testing.T) {
	h, _, store, _ := newPersistentHandler(t)
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "80", "ephemeral", "false")), "ok")
	for _, tc := range []struct {
		name  string
		form  url.Values
		param string
	}{
		{"no cluster name", httpCluster("clusterName", ""), "clusterName"},
		{"bad cluster name", httpCluster("clusterName", "a_b"), "clusterName"},
		{"two cluster names", httpCluster("clusterName", "a,b"), "clusterName"},
		{"no checker", httpCluster("healthChecker", ""), "healthChecker"},
		{"checker not JSON", httpCluster("healthChecker", "TCP"), "healthChecker"},
		{"unknown type", httpCluster("healthChecker", `{"type":"UDP"}`), "healthChecker.type"},
		{"mysql", httpCluster("healthChecker", `{"type":"MYSQL"}`), "healthChecker.type"},
		{"relative path", httpCluster("healthChecker", `{"type":"HTTP","path":"health"}`), "healthChecker.path"},
		{"absolute url", httpCluster("healthChecker", `{"type":"HTTP","path":"http://evil.example/"}`), "healthChecker.path"},
		{"code 99", httpCluster("healthChecker", `{"type":"HTTP","path":"/h","expectedResponseCode":99}`), "healthChecker.expectedResponseCode"},
		{"code 600", httpCluster("healthChecker", `{"type":"HTTP","path":"/h","expectedResponseCode":600}`), "healthChecker.expectedResponseCode"},
		{"bad header", httpCluster("healthChecker", `{"type":"HTTP","headers":"Transfer-Encoding:chunked"}`), "healthChecker.headers"},
		{"port too big", httpCluster("checkPort", "70000"), "checkPort"},
		{"port negative", httpCluster("checkPort", "-1", "useInstancePort4Check", "true"), "checkPort"},
		{"port not a number", httpCluster("checkPort", "eighty"), "checkPort"},
		{"no port to check", httpCluster("checkPort", ""), "checkPort"},
		{"port 0 to check", httpCluster("checkPort", "0"), "checkPort"},
		{"bad useInstancePort4Check", httpCluster("useInstancePort4Check", "maybe"), "useInstancePort4Check"},
		{"metadata not JSON", httpCluster("metadata", "{"), "metadata"},
		{"metadata too large", httpCluster("metadata", `{"k":"`+strings.Repeat("v", 16*1024)+`"}`), "metadata"},
		{"bad service", httpCluster("serviceName", "a@@b@@c"), "serviceName"},
		{"bad namespace", httpCluster("namespaceId", "a b"), "namespaceId"},
	} {
		rec := send(h, "PUT", "/nacos/v1/ns/cluster", tc.form)
		if rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Body.String(), tc.param+": ") {
			t.Errorf("%s: %d %q, want 400 naming %s", tc.name, rec.Code, rec.Body, tc.param)
		}
	}
	rec := send(h, "PUT", "/nacos/v1/ns/cluster", httpCluster("serviceName", "nope"))
	mustStatus(t, "unknown service", rec, http.StatusBadRequest, "serviceName: service DEFAULT_GROUP@@nope not found")
	if st := store.FSM().Stats(); st.Clusters != 0 {
		t.Errorf("stored %+v", st)
	}
	// Nacos serves no v2 path, nor a GET.
	mustStatus(t, "v2", send(h, "PUT", "/nacos/v2/ns/cluster", httpCluster()), http.StatusNotImplemented, "")
	mustStatus(t, "GET", send(h, "GET", "/nacos/v1/ns/cluster", httpCluster()), http.StatusMethodNotAllowed, "")
	// Without a store: 501.
	noStore := handler(Config{Registry: newRegistry(t)})
	mustOK(t, send(noStore, "POST", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "80")), "ok")
	mustStatus(t, "no store", send(noStore, "PUT", "/nacos/v1/ns/cluster", httpCluster()), http.StatusNotImplemented, "")
}

// TestManualHealth: with its cluster's checker NONE, an operator sets a
// persistent instance's health (v1 and v2), and every reader sees it; with
// another checker it is refused again.
func TestManualHealth(t *testing.T) {
	h, reg, store, _ := newPersistentHandler(t)
	db := naming.Service{Name: "db"}
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "80", "ephemeral", "false")), "ok")
	set := func(path, healthy string) *bytes.Buffer {
		return send(h, "PUT", path, form("serviceName", "db", "ip", "10.0.0.1", "port", "80", "healthy", healthy)).Body
	}
	mustStatus(t, "tcp", send(h, "PUT", "/nacos/v1/ns/health/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "80",
		"healthy", "false")), http.StatusBadRequest, "")

	mustOK(t, send(h, "PUT", "/nacos/v1/ns/cluster", form("serviceName", "db", "clusterName", "DEFAULT", "healthChecker", `{"type":"NONE"}`)), "ok")
	if body := set("/nacos/v1/ns/health/instance", "false"); body.String() != "ok" {
		t.Fatalf("v1: %s", body)
	}
	if in := store.FSM().Instances(db); len(in) != 1 || in[0].Healthy {
		t.Fatalf("after v1: %+v", in)
	}
	// The registry mirrors it (the list would apply the protection
	// threshold: 0 healthy of 1).
	if in, err := reg.Instance(db, "10.0.0.1", 80, ""); err != nil || in.Healthy {
		t.Errorf("the registry holds %+v (%v)", in, err)
	}
	if body := set("/nacos/v2/ns/health/instance", "true"); body.String() != `{"code":0,"message":"success","data":"ok"}` {
		t.Fatalf("v2: %s", body)
	}
	if in := store.FSM().Instances(db); !in[0].Healthy {
		t.Fatalf("after v2: %+v", in)
	}
	if body := set("/nacos/v1/ns/health", "false"); body.String() != "ok" { // v1's other path
		t.Fatalf("v1 /health: %s", body)
	}

	// Checked by the server again: refused, and the health stays.
	mustOK(t, send(h, "PUT", "/nacos/v1/ns/cluster", form("serviceName", "db", "clusterName", "DEFAULT",
		"healthChecker", `{"type":"HTTP","path":"/h"}`)), "ok")
	rec := send(h, "PUT", "/nacos/v2/ns/health/instance", form("serviceName", "db", "ip", "10.0.0.1", "port", "80", "healthy", "true"))
	mustV2Error(t, "http checker", rec, http.StatusBadRequest, codeInstanceError, "healthy")
	assertContains(t, "http checker", rec.Body.String(), `PUT /nacos/v1/ns/cluster`)
	if in := store.FSM().Instances(db); in[0].Healthy {
		t.Fatalf("after the refusal: %+v", in)
	}
}
