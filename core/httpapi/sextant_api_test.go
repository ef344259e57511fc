package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/pluginhost"
	sdkhost "github.com/sextantd/sextant/sdk/host"
)

// The addresses of this node and another member in these tests.
const (
	selfNode  = "10.0.0.1:8848"
	otherNode = "10.0.0.2:8848"
)

var testMembers = []cluster.Member{
	{Address: selfNode, State: cluster.Up, Self: true},
	{Address: otherNode, State: cluster.Suspicious, Failures: 2, LastReport: time.UnixMilli(1_700_000_000_000)},
}

// pageData decodes the page a successful answer carries.
func pageData[T any](t *testing.T, what string, h http.Handler, path string, params url.Values) sextantPage[T] {
	t.Helper()
	rec := send(h, http.MethodGet, path, params)
	var out struct {
		Code int            `json:"code"`
		Data sextantPage[T] `json:"data"`
	}
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: %d %s", what, rec.Code, rec.Body)
	}
	decodeInto(t, rec, &out)
	if out.Code != 0 {
		t.Fatalf("%s: %s", what, rec.Body)
	}
	return out.Data
}

func TestSextantPlugins(t *testing.T) {
	since := time.UnixMilli(1_700_000_000_000)
	statuses := []pluginhost.PluginStatus{
		{Name: "grpctransport", Kind: sdkhost.KindTransport, PID: 41, State: pluginhost.StateServing, ServingSince: since},
		{Name: "pushrpc", Kind: sdkhost.KindPush, Role: "rpc", InProcess: true, State: pluginhost.StateServing, ServingSince: since},
		{Name: "spi", Kind: sdkhost.KindPush, Role: "spi", Path: "/opt/spi", State: pluginhost.StateRestarting, Restarts: 3,
			LastError: "the plugin exited", LastErrorTime: since.Add(time.Second)},
	}
	h := handler(Config{Plugins: func() []pluginhost.PluginStatus { return statuses }})
	mustStatus(t, "plugins", send(h, "GET", "/v1/sextant/plugins", form()), http.StatusOK,
		`{"code":0,"message":"success","data":{"count":3,"pageNo":1,"pageSize":100,"items":[`+
			`{"name":"grpctransport","kind":"transport","builtin":true,"inProcess":false,"pid":41,"state":"serving","restarts":0,"servingSince":1700000000000},`+
			`{"name":"pushrpc","kind":"push","role":"rpc","builtin":true,"inProcess":true,"state":"serving","restarts":0,"servingSince":1700000000000},`+
			`{"name":"spi","kind":"push","role":"spi","builtin":false,"path":"/opt/spi","inProcess":false,"state":"restarting","restarts":3,`+
			`"lastError":"the plugin exited","lastErrorTime":1700000001000}]}}`)
	if p := pageData[pluginJSON](t, "page 2", h, "/v1/sextant/plugins", form("pageNo", "2", "pageSize", "2")); p.Count != 3 ||
		len(p.Items) != 1 || p.Items[0].Name != "spi" {
		t.Errorf("page 2 of 2: %+v", p)
	}
	// Without a registry or plugins, the lists are empty, not null.
	mustStatus(t, "no plugins", send(handler(Config{}), "GET", "/v1/sextant/plugins", form()), http.StatusOK,
		`{"code":0,"message":"success","data":{"count":0,"pageNo":1,"pageSize":100,"items":[]}}`)
	if rec := send(handler(Config{}), "GET", "/v1/sextant/services", form()); rec.Code != http.StatusNotFound {
		t.Errorf("services without a registry: %d %s", rec.Code, rec.Body)
	}
}

func TestSextantMembers(t *testing.T) {
	h := handler(Config{Members: func() []cluster.Member { return testMembers }})
	mustStatus(t, "members", send(h, "GET", "/v1/sextant/members", form()), http.StatusOK,
		`{"code":0,"message":"success","data":{"count":2,"pageNo":1,"pageSize":100,"items":[`+
			`{"address":"10.0.0.1:8848","ip":"10.0.0.1","port":8848,"state":"UP","self":true,"failures":0},`+
			`{"address":"10.0.0.2:8848","ip":"10.0.0.2","port":8848,"state":"SUSPICIOUS","self":false,"failures":2,"lastReport":1700000000000}]}}`)
}

// TestSextantPaging: pageNo and pageSize are checked, a page past the end is
// empty, and no pageNo overflows.
func TestSextantPaging(t *testing.T) {
	h := handler(Config{Members: func() []cluster.Member { return testMembers }})
	for _, tc := range []struct {
		params url.Values
		want   string
	}{
		{form("pageNo", "0"), "pageNo: 0 must be at least 1"},
		{form("pageNo", "-3"), "pageNo: -3 must be at least 1"},
		{form("pageNo", "one"), `pageNo: "one" is not an integer`},
		{form("pageNo", "99999999999999999999"), `pageNo: "99999999999999999999" is not an integer`},
		{form("pageSize", "0"), "pageSize: 0 is out of range 1-1000"},
		{form("pageSize", "1001"), "pageSize: 1001 is out of range 1-1000"},
		{form("pageSize", "1e3"), `pageSize: "1e3" is not an integer`},
	} {
		mustStatus(t, tc.params.Encode(), send(h, "GET", "/v1/sextant/members", tc.params), http.StatusBadRequest,
			`{"code":20002,"message":"parameter validate error","data":`+strconv.Quote(tc.want)+`}`)
	}
	for _, tc := range []struct {
		pageNo, pageSize string
		want             []string
	}{
		{"1", "1", []string{selfNode}},
		{"2", "1", []string{otherNode}},
		{"3", "1", nil},
		{"2", "1000", nil},
		{strconv.Itoa(int(^uint(0) >> 1)), "1000", nil},
	} {
		p := pageData[memberJSON](t, "page", h, "/v1/sextant/members", form("pageNo", tc.pageNo, "pageSize", tc.pageSize))
		var got []string
		for _, m := range p.Items {
			got = append(got, m.Address)
		}
		if p.Count != 2 || fmt.Sprint(got) != fmt.Sprint(tc.want) || p.Items == nil {
			t.Errorf("page %s of size %s: %+v, want %v", tc.pageNo, tc.pageSize, p, tc.want)
		}
	}
	if rec := send(h, "POST", "/v1/sextant/members", form()); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

// sextantRegistry returns a registry holding, in the service svc: a
// connection's instance (this node's, app "shop"), an HTTP client's, a
// replica's of the other member, and a persistent one; and subscribers of
// svc: the connection, and a UDP subscriber.
func sextantRegistry(t *testing.T) (*naming.Registry, http.Handler) {
	t.Helper()
	ctx := context.Background()
	reg := newRegistry(t)
	const conn = "1700000000000_10.0.0.9_50000"
	h := handler(Config{Registry: reg, Members: func() []cluster.Member { return testMembers },
		Connections: fakeConnections{conn: {ID: conn, RemoteAddr: "10.0.0.9:50000", ClientVersion: "Nacos-Go-Client:v2.3.2",
			LastActive: time.UnixMilli(1_700_000_123_456)}}})
	if err := reg.Connect(conn, map[string]string{"AppName": "shop"}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, conn, testSvc, naming.Instance{IP: "10.0.0.9", Port: 8080, Weight: 2, Healthy: true, Enabled: true, Ephemeral: true,
		Metadata: map[string]string{"version": "1.0"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Subscribe(ctx, conn, testSvc, naming.Subscription{App: "shop", Clusters: "DEFAULT"}); err != nil {
		t.Fatal(err)
	}
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80", "enabled", "false")), "ok")
	mustOK(t, send(h, "GET", "/nacos/v1/ns/instance/list", form("serviceName", "svc", "clientIP", "10.0.0.7", "udpPort", "5000")), "")
	if skipped, err := reg.Apply(ctx, []naming.ClientData{{ID: "1700000000001_10.0.0.5_6000", Owner: otherNode, Revision: 1,
		Services: map[naming.Service][]naming.Instance{testSvc: {{IP: "10.0.0.5", Port: 9000, Weight: 1, Healthy: false, Enabled: true,
			Ephemeral: true, Cluster: "c2"}}}}}); err != nil || len(skipped) > 0 {
		t.Fatalf("applying a replica: %v %v", skipped, err)
	}
	if err := reg.SetPersistent(ctx, testSvc, []naming.Instance{{IP: "10.0.0.3", Port: 3306, Weight: 1, Healthy: true, Enabled: true,
		Cluster: "DEFAULT"}}); err != nil {
		t.Fatal(err)
	}
	return reg, h
}

func TestSextantInstances(t *testing.T) {
	_, h := sextantRegistry(t)
	p := pageData[instanceJSON](t, "instances", h, "/v1/sextant/instances", form("serviceName", "svc"))
	type row struct {
		addr, cluster, client, typ, owner string
		local, healthy, enabled, eph      bool
		weight                            float64
	}
	var got []row
	for _, in := range p.Items {
		got = append(got, row{fmt.Sprintf("%s:%d", in.IP, in.Port), in.ClusterName, in.ClientID, in.ClientType, in.OwnerNode,
			in.Local, in.Healthy, in.Enabled, in.Ephemeral, in.Weight})
	}
	want := []row{
		{"10.0.0.1:80", "DEFAULT", "10.0.0.1:80#true", "ipPort", selfNode, true, true, false, true, 1},
		{"10.0.0.3:3306", "DEFAULT", "10.0.0.3:3306#false", "persistent", "", false, true, true, false, 1},
		{"10.0.0.5:9000", "c2", "1700000000001_10.0.0.5_6000", "connection", otherNode, false, false, true, true, 1},
		{"10.0.0.9:8080", "DEFAULT", "1700000000000_10.0.0.9_50000", "connection", selfNode, true, true, true, true, 2},
	}
	if p.Count != 4 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("instances:\n got %v\nwant %v", got, want)
	}
	if md := p.Items[3].Metadata; md["version"] != "1.0" || p.Items[0].Metadata == nil || p.Items[3].InstanceID == "" {
		t.Errorf("metadata and id: %+v", p.Items)
	}
	rec := send(h, "GET", "/v1/sextant/instances", form("serviceName", "svc"))
	assertContains(t, "the JSON", rec.Body.String(), `"metadata":{},"clientId":"10.0.0.1:80#true","clientType":"ipPort","ownerNode":"10.0.0.1:8848","local":true}`)

	// group@@name names the group; pages hold pageSize.
	p = pageData[instanceJSON](t, "page 2", h, "/v1/sextant/instances", form("serviceName", "DEFAULT_GROUP@@svc", "pageNo", "2", "pageSize", "3"))
	if p.Count != 4 || len(p.Items) != 1 || p.Items[0].Port != 8080 {
		t.Errorf("page 2: %+v", p)
	}

	for _, tc := range []struct {
		params url.Values
		status int
		body   string
	}{
		{form(), 400, `{"code":10000,"message":"parameter missing","data":"serviceName: required parameter is missing"}`},
		{form("serviceName", "nope"), 404, `{"code":20004,"message":"resource not found","data":"serviceName: service \"DEFAULT_GROUP@@nope\" not found in namespace \"public\""}`},
		{form("serviceName", "svc", "groupName", "other"), 404, `{"code":20004,"message":"resource not found","data":"serviceName: service \"other@@svc\" not found in namespace \"public\""}`},
		{form("serviceName", "@@svc"), 400, ""},
		{form("serviceName", "svc", "namespaceId", "bad ns!"), 400, ""},
		{form("serviceName", "svc", "pageSize", "x"), 400, `{"code":20002,"message":"parameter validate error","data":"pageSize: \"x\" is not an integer"}`},
	} {
		rec := send(h, "GET", "/v1/sextant/instances", tc.params)
		mustStatus(t, tc.params.Encode(), rec, tc.status, tc.body)
	}
	rec = send(h, "GET", "/v1/sextant/instances", form("serviceName", "svc", "namespaceId", "bad ns!"))
	assertContains(t, "a bad namespace", rec.Body.String(), `"data":"namespaceId: `)
}

func TestSextantServices(t *testing.T) {
	ctx := context.Background()
	reg, h := sextantRegistry(t)
	for _, svc := range []naming.Service{
		{Namespace: "public", Group: "DEFAULT_GROUP", Name: "Orders"},
		{Namespace: "public", Group: "shop", Name: "orders-api"},
		{Namespace: "dev", Group: "DEFAULT_GROUP", Name: "orders"},
	} {
		if err := reg.RegisterHTTP(ctx, "instance", svc, naming.Instance{IP: "10.0.0.4", Port: 1, Weight: 1, Healthy: false, Enabled: true, Ephemeral: true}); err != nil {
			t.Fatal(err)
		}
	}
	names := func(params url.Values) string {
		t.Helper()
		p := pageData[serviceJSON](t, params.Encode(), h, "/v1/sextant/services", params)
		out := fmt.Sprint(p.Count)
		for _, s := range p.Items {
			out += " " + s.GroupName + "@@" + s.Name
		}
		return out
	}
	for _, tc := range []struct {
		params url.Values
		want   string
	}{
		{form(), "3 DEFAULT_GROUP@@Orders DEFAULT_GROUP@@svc shop@@orders-api"},
		{form("namespaceId", "public"), "3 DEFAULT_GROUP@@Orders DEFAULT_GROUP@@svc shop@@orders-api"},
		{form("namespaceId", "dev"), "1 DEFAULT_GROUP@@orders"},
		{form("namespaceId", "nobody"), "0"},
		{form("groupName", "shop"), "1 shop@@orders-api"},
		{form("groupName", "sho"), "0"},
		{form("search", "ORDER"), "2 DEFAULT_GROUP@@Orders shop@@orders-api"},
		{form("search", "order", "groupName", "DEFAULT_GROUP"), "1 DEFAULT_GROUP@@Orders"},
		{form("pageNo", "2", "pageSize", "2"), "3 shop@@orders-api"},
	} {
		if got := names(tc.params); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.params.Encode(), got, tc.want)
		}
	}
	rec := send(h, "GET", "/v1/sextant/services", form("search", "svc"))
	mustStatus(t, "svc", rec, http.StatusOK, `{"code":0,"message":"success","data":{"count":1,"pageNo":1,"pageSize":100,"items":[`+
		`{"namespaceId":"public","groupName":"DEFAULT_GROUP","name":"svc","clusters":["DEFAULT","c2"],"instances":4,"healthy":3,`+
		`"subscribers":2,"defined":false,"protectThreshold":0,"protectionReached":false}]}}`)

	// A defined service without instances is listed, unless hasInstances.
	store, _ := newStore(t, reg)
	mustOK(t, send(handler(Config{Registry: reg, Store: store}), "POST", "/nacos/v1/ns/service",
		form("serviceName", "defined", "protectThreshold", "0.5")), "ok")
	rec = send(h, "GET", "/v1/sextant/services", form("search", "defined"))
	assertContains(t, "a defined service", rec.Body.String(), `"count":1,`)
	assertContains(t, "a defined service", rec.Body.String(), `"name":"defined","clusters":[],"instances":0,"healthy":0,`+
		`"subscribers":0,"defined":true,"protectThreshold":0.5,"protectionReached":false}`)
	if got := names(form("search", "defined", "hasInstances", "true")); got != "0" {
		t.Errorf("a defined service with hasInstances: %q", got)
	}
	for _, tc := range []struct {
		params url.Values
		want   string
	}{
		{form("hasInstances", "perhaps"), `hasInstances: "perhaps" is not a boolean (true or false)`},
		{form("groupName", "a@@b"), "groupName: "},
		{form("groupName", "bell\a"), "groupName: "},
		{form("namespaceId", "bad ns!"), "namespaceId: "},
		{form("pageSize", "5000"), "pageSize: 5000 is out of range 1-1000"},
	} {
		rec := send(h, "GET", "/v1/sextant/services", tc.params)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", tc.params.Encode(), rec.Code, rec.Body)
		}
		assertContains(t, tc.params.Encode(), rec.Body.String(), `"data":`+strconv.Quote(tc.want)[:len(strconv.Quote(tc.want))-1])
	}
}

func TestSextantClients(t *testing.T) {
	_, h := sextantRegistry(t)
	rec := send(h, "GET", "/v1/sextant/clients", form())
	mustStatus(t, "clients", rec, http.StatusOK, "")
	var out struct {
		Data sextantPage[map[string]any] `json:"data"`
	}
	decodeInto(t, rec, &out)
	want := []string{
		`map[clientId:10.0.0.1:80#true clientType:ipPort instances:1 ip:10.0.0.1 lastUpdated:LAST local:true ownerNode:10.0.0.1:8848 port:80 subscriptions:0]`,
		`map[clientId:10.0.0.7:5000#true clientType:ipPort instances:0 ip:10.0.0.7 lastUpdated:LAST local:true ownerNode:10.0.0.1:8848 port:5000 subscriptions:1]`,
		`map[app:shop clientId:1700000000000_10.0.0.9_50000 clientType:connection instances:1 ip:10.0.0.9 lastUpdated:1.700000123456e+12 local:true ownerNode:10.0.0.1:8848 port:50000 subscriptions:1 version:Nacos-Go-Client:v2.3.2]`,
		`map[clientId:1700000000001_10.0.0.5_6000 clientType:connection instances:1 ip:10.0.0.5 lastUpdated:LAST local:false ownerNode:10.0.0.2:8848 port:6000 subscriptions:0]`,
	}
	if out.Data.Count != 4 || len(out.Data.Items) != 4 {
		t.Fatalf("clients: %s", rec.Body)
	}
	for i, c := range out.Data.Items {
		if last, ok := c["lastUpdated"].(float64); !ok || last <= 0 {
			t.Errorf("client %v: no lastUpdated", c["clientId"])
		} else if i != 2 {
			c["lastUpdated"] = "LAST"
		}
		if got := fmt.Sprint(c); got != want[i] {
			t.Errorf("client %d:\n got %s\nwant %s", i, got, want[i])
		}
	}
	if p := pageData[clientJSON](t, "page 4", h, "/v1/sextant/clients", form("pageNo", "4", "pageSize", "1")); p.Count != 4 ||
		len(p.Items) != 1 || p.Items[0].OwnerNode != otherNode {
		t.Errorf("page 4: %+v", p)
	}
}

func TestSextantSubscribers(t *testing.T) {
	_, h := sextantRegistry(t)
	mustStatus(t, "subscribers", send(h, "GET", "/v1/sextant/subscribers", form("serviceName", "svc")), http.StatusOK,
		`{"code":0,"message":"success","data":{"count":2,"pageNo":1,"pageSize":100,"items":[`+
			`{"clientId":"10.0.0.7:5000#true","clientType":"ipPort","ip":"10.0.0.7","port":5000,"clusters":"","ownerNode":"10.0.0.1:8848","local":true},`+
			`{"clientId":"1700000000000_10.0.0.9_50000","clientType":"connection","ip":"10.0.0.9","port":0,"app":"shop",`+
			`"agent":"Nacos-Go-Client:v2.3.2","clusters":"DEFAULT","ownerNode":"10.0.0.1:8848","local":true}]}}`)
	mustStatus(t, "nobody subscribes", send(h, "GET", "/v1/sextant/subscribers", form("serviceName", "nope")), http.StatusOK,
		`{"code":0,"message":"success","data":{"count":0,"pageNo":1,"pageSize":100,"items":[]}}`)
	mustStatus(t, "no service", send(h, "GET", "/v1/sextant/subscribers", form()), http.StatusBadRequest,
		`{"code":10000,"message":"parameter missing","data":"serviceName: required parameter is missing"}`)
}

// TestSextantAuth: with auth on, every endpoint needs a global admin.
func TestSextantAuth(t *testing.T) {
	a := newAuthority(t)
	reg := newRegistry(t)
	h := handler(Config{Registry: reg, Auth: a, Members: func() []cluster.Member { return testMembers },
		Connections: fakeConnections{}, Plugins: func() []pluginhost.PluginStatus { return nil }})
	admin, app := login(t, a, "admin", "admin-pw"), login(t, a, "app", "app-pw")
	for _, path := range []string{"plugins", "members", "services", "instances", "clients", "subscribers"} {
		params := form("serviceName", "svc")
		for _, tok := range []string{"", app, "not-a-token"} {
			if rec := send(asUser(h, tok), "GET", "/v1/sextant/"+path, params); rec.Code != http.StatusForbidden {
				t.Errorf("%s with token %.10q: %d %s", path, tok, rec.Code, rec.Body)
			}
		}
		rec := send(asUser(h, admin), "GET", "/v1/sextant/"+path, params)
		if want := map[bool]int{true: http.StatusNotFound, false: http.StatusOK}[path == "instances"]; rec.Code != want {
			t.Errorf("%s as admin: %d %s", path, rec.Code, rec.Body)
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	// The token may come as a query parameter or a bearer token too.
	if rec := send(h, "GET", "/v1/sextant/members", form("accessToken", admin)); rec.Code != http.StatusOK {
		t.Errorf("token in the query: %d", rec.Code)
	}
	req := send(bearer(h, admin), "GET", "/v1/sextant/members", form())
	if req.Code != http.StatusOK {
		t.Errorf("bearer token: %d", req.Code)
	}
}

// bearer sends tok as an Authorization: Bearer token.
func bearer(h http.Handler, tok string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+tok)
		h.ServeHTTP(w, r)
	})
}
