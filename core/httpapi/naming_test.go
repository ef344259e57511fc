package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/naming"
)

// serviceInfo is the ServiceInfo JSON of instance/list as a 1.x client reads it.
type serviceInfo struct {
	Name        string `json:"name"`
	GroupName   string `json:"groupName"`
	Clusters    string `json:"clusters"`
	CacheMillis int    `json:"cacheMillis"`
	LastRefTime int64  `json:"lastRefTime"`
	Checksum    *string
	Valid       bool `json:"valid"`
	Hosts       []struct {
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

func decodeInfo(t *testing.T, b []byte) serviceInfo {
	t.Helper()
	var info serviceInfo
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatalf("ServiceInfo %q: %v", b, err)
	}
	return info
}

func mustOK(t *testing.T, rec *httptest.ResponseRecorder, body string) {
	t.Helper()
	if rec.Code != http.StatusOK || body != "" && rec.Body.String() != body {
		t.Fatalf("%d %q, want 200 %q", rec.Code, rec.Body, body)
	}
}

// TestOneRegistryTwoFrontEnds: an instance registered over HTTP is what a
// gRPC reader sees, with the same fields, and the reverse.
func TestOneRegistryTwoFrontEnds(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	h := handler(Config{Registry: reg})

	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "DEFAULT_GROUP@@svc", "ip", "10.0.0.1",
		"port", "8080", "weight", "2.5", "enable", "true", "healthy", "true", "clusterName", "c1",
		"metadata", `{"version":"1.0"}`, "ephemeral", "true")), "ok")
	if err := reg.Connect("conn-1", nil); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, "conn-1", testSvc, naming.Instance{IP: "10.0.0.2", Port: 9090, Weight: 3,
		Healthy: true, Enabled: true, Ephemeral: true, Cluster: "c2", Metadata: map[string]string{"zone": "a"}}); err != nil {
		t.Fatal(err)
	}

	// The gRPC view (bare name) and the HTTP one (group@@name) hold the
	// same instances, field for field.
	grpc := decodeInfo(t, reg.View(testSvc, naming.ViewFilter{}))
	rec := send(h, "GET", "/nacos/v1/ns/instance/list", form("serviceName", "svc"))
	mustOK(t, rec, "")
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	http1 := decodeInfo(t, rec.Body.Bytes())
	if grpc.Name != "svc" || http1.Name != "DEFAULT_GROUP@@svc" || http1.GroupName != "DEFAULT_GROUP" ||
		http1.CacheMillis != 10000 || !http1.Valid || http1.Checksum == nil || http1.LastRefTime != grpc.LastRefTime {
		t.Errorf("HTTP view %+v (gRPC %+v)", http1, grpc)
	}
	if len(http1.Hosts) != 2 {
		t.Fatalf("hosts %+v", http1.Hosts)
	}
	for i := range grpc.Hosts {
		if g, h := grpc.Hosts[i], http1.Hosts[i]; g.InstanceID != h.InstanceID || g.Weight != h.Weight ||
			g.ClusterName != h.ClusterName || g.Healthy != h.Healthy || g.Enabled != h.Enabled || len(g.Metadata) != len(h.Metadata) {
			t.Errorf("host %d: gRPC %+v, HTTP %+v", i, g, h)
		}
	}
	got := http1.Hosts[0]
	if got.InstanceID != "10.0.0.1#8080#c1#DEFAULT_GROUP@@svc" || got.Weight != 2.5 || got.ClusterName != "c1" ||
		got.Metadata["version"] != "1.0" || !got.Ephemeral || got.ServiceName != "DEFAULT_GROUP@@svc" {
		t.Errorf("the HTTP-registered host: %+v", got)
	}
	if d, ok := reg.Client(naming.HTTPClientID("10.0.0.1", 8080)); !ok || len(d.Services[testSvc]) != 1 {
		t.Errorf("client 10.0.0.1:8080#true = %+v, %v", d, ok)
	}

	// Cluster filter and healthyOnly.
	info := decodeInfo(t, send(h, "GET", "/nacos/v1/ns/instance/list", form("serviceName", "svc", "clusters", "c2")).Body.Bytes())
	if info.Clusters != "c2" || len(info.Hosts) != 1 || info.Hosts[0].IP != "10.0.0.2" {
		t.Errorf("clusters=c2: %+v", info)
	}

	// v2: the same view in the envelope.
	rec = send(h, "GET", "/nacos/v2/ns/instance/list", form("serviceName", "svc", "groupName", "DEFAULT_GROUP", "clusterName", "c1"))
	b := decodeV2(t, rec)
	if b.Code != 0 || b.Message != "success" {
		t.Fatalf("v2 list: %s", rec.Body)
	}
	if info := decodeInfo(t, b.Data); info.Name != "DEFAULT_GROUP@@svc" || len(info.Hosts) != 1 || info.Hosts[0].IP != "10.0.0.1" {
		t.Errorf("v2 list data %+v", info)
	}
}

func TestGetInstance(t *testing.T) {
	reg := newRegistry(t)
	h := handler(Config{Registry: reg})
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "groupName", "g", "ip", "10.0.0.1",
		"port", "80", "weight", "2", "metadata", "k=v")), "ok")

	rec := send(h, "GET", "/nacos/v1/ns/instance", form("serviceName", "svc", "groupName", "g", "ip", "10.0.0.1", "port", "80"))
	mustOK(t, rec, `{"service":"g@@svc","ip":"10.0.0.1","port":80,"clusterName":"DEFAULT","weight":2,"healthy":true,`+
		`"instanceId":"10.0.0.1#80#DEFAULT#g@@svc","metadata":{"k":"v"}}`+"\n")
	rec = send(h, "GET", "/nacos/v2/ns/instance", form("serviceName", "svc", "groupName", "g", "ip", "10.0.0.1", "port", "80", "clusterName", "DEFAULT"))
	mustOK(t, rec, `{"code":0,"message":"success","data":{"serviceName":"g@@svc","ip":"10.0.0.1","port":80,"clusterName":"DEFAULT",`+
		`"weight":2,"healthy":true,"instanceId":"10.0.0.1#80#DEFAULT#g@@svc","metadata":{"k":"v"}}}`)

	rec = send(h, "GET", "/nacos/v1/ns/instance", form("serviceName", "svc", "groupName", "g", "ip", "10.0.0.1", "port", "80", "cluster", "other"))
	if rec.Code != http.StatusNotFound || rec.Body.String() != "instance not found\n" {
		t.Errorf("v1 unknown: %d %q", rec.Code, rec.Body)
	}
	rec = send(h, "GET", "/nacos/v2/ns/instance", form("serviceName", "nothing", "ip", "10.0.0.1", "port", "80"))
	if b := decodeV2(t, rec); rec.Code != http.StatusNotFound || b.Code != codeResourceNotFound || b.Message != "resource not found" {
		t.Errorf("v2 unknown: %d %s", rec.Code, rec.Body)
	}
}

func TestUpdateAndDeregister(t *testing.T) {
	reg := newRegistry(t)
	h := handler(Config{Registry: reg})
	base := form("serviceName", "svc", "ip", "10.0.0.1", "port", "80")
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", with(base, "metadata", `{"a":"1"}`)), "ok")

	mustOK(t, send(h, "PUT", "/nacos/v1/ns/instance", with(base, "weight", "7", "enabled", "false", "metadata", `{"b":"2"}`)), "ok")
	in, err := reg.Instance(testSvc, "10.0.0.1", 80, "")
	if err != nil || in.Weight != 7 || in.Enabled || in.Metadata["b"] != "2" || in.Metadata["a"] != "" {
		t.Fatalf("after update: %+v, %v", in, err)
	}
	// Absent parameters keep their values.
	mustOK(t, send(h, "PUT", "/nacos/v2/ns/instance", with(base, "enabled", "true")), `{"code":0,"message":"success","data":"ok"}`)
	if in, _ := reg.Instance(testSvc, "10.0.0.1", 80, ""); in.Weight != 7 || !in.Enabled || in.Metadata["b"] != "2" {
		t.Fatalf("after a partial update: %+v", in)
	}
	if rec := send(h, "PUT", "/nacos/v1/ns/instance", with(base, "port", "81", "weight", "1")); rec.Code != http.StatusNotFound {
		t.Errorf("update of nothing: %d %q", rec.Code, rec.Body)
	}

	// Deregistration ignores the cluster, and is idempotent.
	mustOK(t, send(h, "DELETE", "/nacos/v1/ns/instance", with(base, "clusterName", "whatever")), "ok")
	mustOK(t, send(h, "DELETE", "/nacos/v2/ns/instance", base), `{"code":0,"message":"success","data":"ok"}`)
	if s := reg.Stats(); s.Instances != 0 || s.Clients != 0 {
		t.Errorf("after deregistering: %+v", s)
	}
}

func TestBeat(t *testing.T) {
	reg := newRegistry(t)
	h := handler(Config{Registry: reg})
	beat := `{"ip":"10.0.0.1","port":80,"weight":3,"serviceName":"DEFAULT_GROUP@@svc","cluster":"c1",` +
		`"metadata":{"preserved.heart.beat.interval":"1000","preserved.heart.beat.timeout":"3000","preserved.ip.delete.timeout":"6000"},"scheduled":true}`

	// A light beat of nothing: 20404, and the client registers again.
	rec := send(h, "PUT", "/nacos/v1/ns/instance/beat", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80"))
	mustOK(t, rec, `{"clientBeatInterval":5000,"code":20404,"lightBeatEnabled":true}`+"\n")

	// A beat with its JSON registers the instance again, healthy.
	rec = send(h, "PUT", "/nacos/v1/ns/instance/beat", form("serviceName", "DEFAULT_GROUP@@svc", "beat", beat))
	mustOK(t, rec, `{"clientBeatInterval":1000,"code":10200,"lightBeatEnabled":true}`+"\n")
	in, err := reg.Instance(testSvc, "10.0.0.1", 80, "c1")
	if err != nil || in.Weight != 3 || !in.Healthy || !in.Enabled || in.Metadata[naming.MetaHeartbeatTimeout] != "3000" {
		t.Fatalf("re-registered by a beat: %+v, %v", in, err)
	}

	// A beat makes an unhealthy instance healthy.
	state, _ := reg.HTTPClient(naming.HTTPClientID("10.0.0.1", 80))
	if _, err := reg.SetHealthy(context.Background(), naming.HTTPClientID("10.0.0.1", 80), testSvc, false, state.Beats[0].Last); err != nil {
		t.Fatal(err)
	}
	rec = send(h, "PUT", "/nacos/v2/ns/instance/beat", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80"))
	mustOK(t, rec, `{"code":0,"message":"success","data":{"clientBeatInterval":1000,"code":10200,"lightBeatEnabled":true}}`)
	if in, _ := reg.Instance(testSvc, "10.0.0.1", 80, "c1"); !in.Healthy {
		t.Error("a beat left the instance unhealthy")
	}
	// The beat's serviceName serves when the parameter is absent.
	rec = send(h, "PUT", "/nacos/v1/ns/instance/beat", form("beat", beat))
	mustOK(t, rec, `{"clientBeatInterval":1000,"code":10200,"lightBeatEnabled":true}`+"\n")
}

// TestListRecordsUDPSubscribers: a poll with a UDP port records its caller as
// a subscriber; the client IP defaults to the caller's address.
func TestListRecordsUDPSubscribers(t *testing.T) {
	reg := newRegistry(t)
	h := handler(Config{Registry: reg})
	mustOK(t, send(h, "GET", "/nacos/v1/ns/instance/list", form("serviceName", "svc", "udpPort", "55000",
		"clientIP", "10.0.0.9", "clusters", "DEFAULT", "app", "shop")), "")
	req := httptest.NewRequest("GET", "/nacos/v2/ns/instance/list?serviceName=svc&port=55001", nil)
	req.RemoteAddr = "192.0.2.7:40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	mustOK(t, rec, "")
	mustOK(t, send(h, "GET", "/nacos/v1/ns/instance/list", form("serviceName", "svc")), "") // no port: no subscriber

	subs := reg.UDPSubscribers(testSvc)
	byAddr := map[string]naming.Subscriber{}
	for _, s := range subs {
		byAddr[s.Addr] = s
	}
	if len(subs) != 2 || byAddr["10.0.0.9:55000"].Clusters != "DEFAULT" || byAddr["10.0.0.9:55000"].App != "shop" ||
		byAddr["10.0.0.9:55000"].ClientID != "10.0.0.9:55000#true" || byAddr["192.0.2.7:55001"].ClientID == "" {
		t.Errorf("UDP subscribers %+v", subs)
	}
	if len(reg.Subscribers(testSvc, nil)) != 0 {
		t.Error("UDP subscribers are among the connections' subscribers")
	}
}

func TestMethodsAndPaths(t *testing.T) {
	h := handler(Config{Registry: newRegistry(t)})
	if rec := send(h, "PATCH", "/nacos/v1/ns/instance", form()); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("PATCH: %d", rec.Code)
	}
	if rec := send(h, "POST", "/nacos/v1/ns/instance/beat", form()); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST beat: %d", rec.Code)
	}
	if rec := send(handler(Config{}), "GET", "/nacos/v1/ns/instance/list", form("serviceName", "s")); rec.Code != http.StatusNotImplemented {
		t.Errorf("without a registry: %d, want 501", rec.Code)
	}
}

// TestNamingAuth: with auth on, writing needs w and reading r on the
// namespace the request names; a refusal changes nothing.
func TestNamingAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{
		Secret: []byte(strings.Repeat("k", auth.MinSecretLength)), TTL: time.Hour,
		Users: []auth.User{{Name: "reader", PasswordHash: string(hash), Roles: []string{"r"}},
			{Name: "writer", PasswordHash: string(hash), Roles: []string{"rw"}}},
		Roles: []auth.Role{{Name: "r", Permissions: []auth.Permission{{Namespace: "public", Access: auth.Read}}},
			{Name: "rw", Permissions: []auth.Permission{{Namespace: "public", Access: auth.ReadWrite}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	token := func(user string) string {
		tok, err := a.Login(context.Background(), user, "pw")
		if err != nil {
			t.Fatal(err)
		}
		return tok.Value
	}
	reader, writer := token("reader"), token("writer")
	reg := newRegistry(t)
	h := handler(Config{Registry: reg, Auth: a})
	reg1 := form("serviceName", "svc", "ip", "10.0.0.1", "port", "80")

	for _, tc := range []struct {
		name, method, path, token string
		params                    map[string][]string
		want                      int
	}{
		{"register without a token", "POST", "/nacos/v1/ns/instance", "", reg1, http.StatusForbidden},
		{"register as a reader", "POST", "/nacos/v1/ns/instance", reader, reg1, http.StatusForbidden},
		{"beat as a reader", "PUT", "/nacos/v2/ns/instance/beat", reader, reg1, http.StatusForbidden},
		{"register in another namespace", "POST", "/nacos/v1/ns/instance", writer, with(reg1, "namespaceId", "other"), http.StatusForbidden},
		{"list without a token", "GET", "/nacos/v1/ns/instance/list", "", form("serviceName", "svc"), http.StatusForbidden},
		{"register as a writer", "POST", "/nacos/v1/ns/instance", writer, reg1, http.StatusOK},
		{"list as a reader", "GET", "/nacos/v1/ns/instance/list", reader, form("serviceName", "svc"), http.StatusOK},
		{"get as a reader", "GET", "/nacos/v2/ns/instance", reader, reg1, http.StatusOK},
	} {
		hh := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tc.token != "" {
				r.Header.Set(auth.TokenHeader, tc.token)
			}
			h.ServeHTTP(w, r)
		})
		if rec := send(hh, tc.method, tc.path, tc.params); rec.Code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, rec.Code, rec.Body, tc.want)
		}
		if tc.want == http.StatusForbidden && reg.Stats().Instances != 0 {
			t.Fatalf("%s: a refused request registered", tc.name)
		}
	}
	// The SDKs send the token as a parameter: in a POST's or PUT's form.
	if rec := send(h, "PUT", "/nacos/v1/ns/instance/beat", with(reg1, auth.TokenHeader, writer)); rec.Code != http.StatusOK {
		t.Errorf("beat with the token in the form: %d %q", rec.Code, rec.Body)
	}
	if rec := send(h, "DELETE", "/nacos/v1/ns/instance", with(reg1, auth.TokenHeader, reader)); rec.Code != http.StatusForbidden {
		t.Errorf("deregister with a reader's token in the query: %d %q", rec.Code, rec.Body)
	}
}
