package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/naming"
)

// asUser serves requests on h with user's token (none when tok is "").
func asUser(h http.Handler, tok string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok != "" {
			r.Header.Set(auth.TokenHeader, tok)
		}
		h.ServeHTTP(w, r)
	})
}

func login(t *testing.T, a *auth.Authority, user, password string) string {
	t.Helper()
	tok, err := a.Login(context.Background(), user, password)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Value
}

func TestOperatorMetrics(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	store, _ := newStore(t, reg)
	var ready atomic.Bool
	h := handler(Config{Registry: reg, Store: store, Ready: ready.Load})

	for _, path := range []string{"/nacos/v1/ns/operator/metrics", "/nacos/v1/ns/ops/metrics"} {
		mustStatus(t, "not ready "+path, send(h, "GET", path, form()), http.StatusOK, `{"status":"DOWN"}`)
	}
	ready.Store(true)
	mustStatus(t, "ready", send(h, "GET", "/nacos/v1/ns/operator/metrics", form()), http.StatusOK, `{"status":"UP"}`)
	mustStatus(t, "v2", send(h, "GET", "/nacos/v2/ns/operator/metrics", form("onlyStatus", "true")), http.StatusOK,
		`{"code":0,"message":"success","data":{"status":"UP"}}`)

	// A connection with an instance and a subscription, an HTTP instance in
	// the same service, and a defined service without instances.
	if err := reg.Connect("c1", nil); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, "c1", testSvc, naming.Instance{IP: "10.0.0.1", Port: 80, Weight: 1, Healthy: true, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Subscribe(ctx, "c1", testSvc, naming.Subscription{}); err != nil {
		t.Fatal(err)
	}
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", "10.0.0.2", "port", "80")), "ok")
	mustOK(t, send(h, "POST", "/nacos/v1/ns/service", form("serviceName", "defined")), "ok")

	for _, path := range []string{"/nacos/v1/ns/operator/metrics", "/nacos/v2/ns/ops/metrics"} {
		rec := send(h, "GET", path, form("onlyStatus", "false"))
		mustStatus(t, path, rec, http.StatusOK, "")
		raw := rec.Body.Bytes()
		if strings.HasPrefix(path, namingV2Prefix) {
			raw = decodeV2(t, rec).Data
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		want := map[string]float64{"serviceCount": 2, "instanceCount": 2, "subscribeCount": 1, "responsibleInstanceCount": 2,
			"clientCount": 2, "connectionBasedClientCount": 1, "ephemeralIpPortClientCount": 1, "persistentIpPortClientCount": 0,
			"responsibleClientCount": 2}
		if m["status"] != "UP" || len(m) != len(want)+4 {
			t.Errorf("%s: %v", path, m)
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("%s: %s = %v, want %v", path, k, m[k], v)
			}
		}
		for _, k := range []string{"cpu", "load", "mem"} {
			if v, ok := m[k].(float64); !ok || v < 0 || k != "load" && v > 1 {
				t.Errorf("%s: %s = %v", path, k, m[k])
			}
		}
	}
	if rec := send(h, "GET", "/nacos/v1/ns/operator/metrics", form("onlyStatus", "sometimes")); rec.Code != http.StatusBadRequest ||
		rec.Body.String() != "onlyStatus: \"sometimes\" is not a boolean (true or false)\n" {
		t.Errorf("bad onlyStatus: %d %q", rec.Code, rec.Body)
	}
}

func TestOperatorSwitches(t *testing.T) {
	members := []cluster.Member{{Address: "10.0.0.1:8848", Self: true}}
	h := handler(Config{Registry: newRegistry(t), Members: func() []cluster.Member { return members },
		Switches: Switches{PushDelay: 500 * time.Millisecond, PushTimeout: 5 * time.Second, PushRetryDelay: time.Second,
			ProtectEmpty: true, ProtectEmptyGrace: 15 * time.Second, HealthCheckInterval: time.Second,
			ReportInterval: 2 * time.Second, VerifyInterval: 5 * time.Second, ClientExpiry: 10 * time.Second}})
	const want = `{"name":"00-00---000-NACOS_SWITCH_DOMAIN-000---00-00","masters":null,"adWeightMap":{},` +
		`"defaultPushCacheMillis":10000,"clientBeatInterval":5000,"defaultCacheMillis":10000,"healthCheckEnabled":true,` +
		`"autoChangeHealthCheckEnabled":true,"distroEnabled":%s,"enableStandalone":true,"pushEnabled":true,"checkTimes":3,` +
		`"incrementalList":[],"serverStatusSynchronizationPeriodMillis":2000,"serviceStatusSynchronizationPeriodMillis":5000,` +
		`"disableAddIP":false,"sendBeatOnly":false,"lightBeatEnabled":true,"doubleWriteEnabled":false,"limitedUrlMap":{},` +
		`"distroServerExpiredMillis":10000,"enableAuthentication":false,"overriddenServerStatus":null,"defaultInstanceEphemeral":true,` +
		`"healthCheckWhiteList":[],"checksum":null,"sextant":{"pushDelayMillis":500,"pushTimeoutMillis":5000,"pushRetryDelayMillis":1000,` +
		`"pushProtectEmpty":true,"pushProtectEmptyGraceMillis":15000,"healthCheckIntervalMillis":1000}}`
	mustStatus(t, "standalone", send(h, "GET", "/nacos/v1/ns/operator/switches", form()), http.StatusOK, fmt.Sprintf(want, "false"))
	members = append(members, cluster.Member{Address: "10.0.0.2:8848"})
	mustStatus(t, "clustered", send(h, "GET", "/nacos/v1/ns/ops/switches", form()), http.StatusOK, fmt.Sprintf(want, "true"))
	mustStatus(t, "v2", send(h, "GET", "/nacos/v2/ns/operator/switches", form()), http.StatusOK,
		`{"code":0,"message":"success","data":`+fmt.Sprintf(want, "true")+`}`)
	// Read-only: a change is not implemented.
	if rec := send(h, "PUT", "/nacos/v1/ns/operator/switches", form("entry", "pushEnabled", "value", "false")); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT switches: %d %q", rec.Code, rec.Body)
	}
}

func TestConsoleNamespaces(t *testing.T) {
	reg := newRegistry(t)
	store, _ := newStore(t, reg)
	h := handler(Config{Registry: reg, Store: store})
	const public = `{"namespace":"","namespaceShowName":"public","namespaceDesc":null,"quota":200,"configCount":0,"type":0}`
	mustStatus(t, "empty", send(h, "GET", "/nacos/v1/console/namespaces", form()), http.StatusOK,
		`{"code":200,"message":null,"data":[`+public+`]}`)
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80", "namespaceId", "dev")), "ok")
	mustOK(t, send(h, "POST", "/nacos/v1/ns/service", form("serviceName", "x", "namespaceId", "ops")), "ok")
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80")), "ok")
	custom := func(ns string) string {
		return `{"namespace":"` + ns + `","namespaceShowName":"` + ns + `","namespaceDesc":null,"quota":200,"configCount":0,"type":2}`
	}
	mustStatus(t, "three", send(h, "GET", "/nacos/v1/console/namespaces", form()), http.StatusOK,
		`{"code":200,"message":null,"data":[`+public+`,`+custom("dev")+`,`+custom("ops")+`]}`)

	// With auth on: a token is needed, and each user sees what it may read.
	a := newAuthority(t)
	h = handler(Config{Registry: reg, Store: store, Auth: a})
	if rec := send(h, "GET", "/nacos/v1/console/namespaces", form()); rec.Code != http.StatusForbidden {
		t.Errorf("without a token: %d", rec.Code)
	}
	mustStatus(t, "reader", send(asUser(h, login(t, a, "reader", "reader-pw")), "GET", "/nacos/v1/console/namespaces", form()),
		http.StatusOK, `{"code":200,"message":null,"data":[`+public+`]}`)
	mustStatus(t, "admin", send(asUser(h, login(t, a, "admin", "admin-pw")), "GET", "/nacos/v1/console/namespaces", form()),
		http.StatusOK, `{"code":200,"message":null,"data":[`+public+`,`+custom("dev")+`,`+custom("ops")+`]}`)
}

// TestOperatorAuth: with auth on, the status is open, the full metrics,
// switches and client API need a global admin, and the service endpoints
// the namespace's read or write access.
func TestOperatorAuth(t *testing.T) {
	a := newAuthority(t)
	reg := newRegistry(t)
	store, _ := newStore(t, reg)
	h := handler(Config{Registry: reg, Store: store, Auth: a})
	admin, app, reader := login(t, a, "admin", "admin-pw"), login(t, a, "app", "app-pw"), login(t, a, "reader", "reader-pw")
	for _, tc := range []struct {
		name, method, path string
		params             map[string][]string
		ok, refused        []string // tokens, by user
	}{
		{"status", "GET", "/nacos/v1/ns/operator/metrics", form(), []string{"", reader}, nil},
		{"full metrics", "GET", "/nacos/v1/ns/operator/metrics", form("onlyStatus", "false"), []string{admin}, []string{"", app}},
		{"switches", "GET", "/nacos/v2/ns/ops/switches", form(), []string{admin}, []string{"", app}},
		{"client list", "GET", "/nacos/v2/ns/client/list", form(), []string{admin}, []string{"", app}},
		{"service list", "GET", "/nacos/v1/ns/service/list", form("pageNo", "1", "pageSize", "1"), []string{reader, app, admin}, []string{""}},
		{"catalog", "GET", "/nacos/v1/ns/catalog/services", form(), []string{reader}, []string{""}},
		{"catalog of dev", "GET", "/nacos/v1/ns/catalog/services", form("namespaceId", "dev"), []string{admin}, []string{reader}},
		{"create", "POST", "/nacos/v1/ns/service", form("serviceName", "s"), []string{app}, []string{"", reader}},
		{"get", "GET", "/nacos/v2/ns/service", form("serviceName", "s"), []string{reader}, []string{""}},
		{"delete", "DELETE", "/nacos/v2/ns/service", form("serviceName", "s"), []string{app}, []string{reader}},
		{"health", "PUT", "/nacos/v1/ns/health/instance", form("serviceName", "s", "ip", "10.0.0.1", "port", "1", "healthy", "true"),
			nil, []string{"", reader}},
	} {
		for _, tok := range tc.refused {
			if rec := send(asUser(h, tok), tc.method, tc.path, tc.params); rec.Code != http.StatusForbidden {
				t.Errorf("%s refused: %d %q", tc.name, rec.Code, rec.Body)
			}
		}
		for _, tok := range tc.ok {
			if rec := send(asUser(h, tok), tc.method, tc.path, tc.params); rec.Code != http.StatusOK {
				t.Errorf("%s: %d %q", tc.name, rec.Code, rec.Body)
			}
		}
	}
	if reg.ServiceCount() != 0 {
		t.Error("a service outlived its delete")
	}
}

// A cpuSampler never reports more than the whole machine, nor less than 0.
func TestCPUSampler(t *testing.T) {
	var s cpuSampler
	for range 3 {
		if u := s.usage(); u < 0 || u > 1 {
			t.Fatalf("usage %v", u)
		}
	}
}
