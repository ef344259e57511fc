package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/remote"
)

// fakeConnections is what the gRPC port knows of its connections.
type fakeConnections map[string]remote.ConnectionInfo

func (f fakeConnections) Connection(id string) (remote.ConnectionInfo, bool) {
	c, ok := f[id]
	return c, ok
}

func TestClientAPI(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	const conn = "1700000000000_10.0.0.9_50000"
	active := time.UnixMilli(1_700_000_123_456)
	h := handler(Config{Registry: reg, Connections: fakeConnections{conn: {ID: conn, RemoteAddr: "10.0.0.9:50000",
		ClientVersion: "Nacos-Java-Client:v2.3.0", LastActive: active}}})
	other := naming.Service{Namespace: "public", Group: "g", Name: "other"}

	// A connection (app "shop") publishing two instances and subscribing;
	// an HTTP client's instance; a UDP subscriber of the HTTP API.
	if err := reg.Connect(conn, map[string]string{"AppName": "shop", "module": "naming"}); err != nil {
		t.Fatal(err)
	}
	if err := reg.BatchRegister(ctx, conn, testSvc, []naming.Instance{
		{IP: "10.0.0.9", Port: 8080, Weight: 1, Healthy: true, Enabled: true},
		{IP: "10.0.0.9", Port: 8081, Weight: 1, Healthy: true, Enabled: true, Cluster: "c2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Subscribe(ctx, conn, other, naming.Subscription{App: "shop-app"}); err != nil {
		t.Fatal(err)
	}
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80")), "ok")
	mustOK(t, send(h, "GET", "/nacos/v1/ns/instance/list", form("serviceName", "g@@other", "clientIP", "10.0.0.7", "udpPort", "5000")), "")
	httpClient, udpClient := naming.HTTPClientID("10.0.0.1", 80), naming.HTTPClientID("10.0.0.7", 5000)

	mustStatus(t, "list", send(h, "GET", "/nacos/v2/ns/client/list", form()), http.StatusOK,
		`{"code":0,"message":"success","data":["10.0.0.1:80#true","10.0.0.7:5000#true","`+conn+`"]}`)

	mustStatus(t, "a connection", send(h, "GET", "/nacos/v2/ns/client", form("clientId", conn)), http.StatusOK,
		`{"code":0,"message":"success","data":{"clientId":"`+conn+`","ephemeral":true,"lastUpdatedTime":1700000123456,`+
			`"clientType":"connection","connectType":"GRPC","appName":"shop","version":"Nacos-Java-Client:v2.3.0",`+
			`"clientIp":"10.0.0.9","clientPort":"50000"}}`)
	rec := send(h, "GET", "/nacos/v2/ns/client", form("clientId", httpClient))
	var d struct {
		Data map[string]any `json:"data"`
	}
	decodeInto(t, rec, &d)
	if len(d.Data) != 6 || d.Data["clientType"] != "ipPort" || d.Data["clientIp"] != "10.0.0.1" || d.Data["clientPort"] != "80" ||
		d.Data["ephemeral"] != true || d.Data["lastUpdatedTime"].(float64) <= 0 || d.Data["clientId"] != httpClient {
		t.Errorf("an HTTP client: %s", rec.Body)
	}

	mustStatus(t, "published", send(h, "GET", "/nacos/v2/ns/client/publish/list", form("clientId", conn)), http.StatusOK,
		`{"code":0,"message":"success","data":[`+
			`{"namespace":"public","group":"DEFAULT_GROUP","serviceName":"svc","registeredInstance":{"ip":"10.0.0.9","port":8080,"cluster":"DEFAULT"}},`+
			`{"namespace":"public","group":"DEFAULT_GROUP","serviceName":"svc","registeredInstance":{"ip":"10.0.0.9","port":8081,"cluster":"c2"}}]}`)
	mustStatus(t, "subscribed", send(h, "GET", "/nacos/v2/ns/client/subscribe/list", form("clientId", conn)), http.StatusOK,
		`{"code":0,"message":"success","data":[{"namespace":"public","group":"g","serviceName":"other",`+
			`"subscriberInfo":{"app":"shop-app","agent":"Nacos-Java-Client:v2.3.0","addr":"10.0.0.9"}}]}`)
	mustStatus(t, "subscribed over UDP", send(h, "GET", "/nacos/v2/ns/client/subscribe/list", form("clientId", udpClient)), http.StatusOK,
		`{"code":0,"message":"success","data":[{"namespace":"public","group":"g","serviceName":"other",`+
			`"subscriberInfo":{"app":"-","agent":"","addr":"10.0.0.7:5000"}}]}`)
	mustStatus(t, "nothing subscribed", send(h, "GET", "/nacos/v2/ns/client/subscribe/list", form("clientId", httpClient)), http.StatusOK,
		`{"code":0,"message":"success","data":[]}`)

	mustStatus(t, "publishers", send(h, "GET", "/nacos/v2/ns/client/service/publisher/list", form("serviceName", "svc")), http.StatusOK,
		`{"code":0,"message":"success","data":[{"clientId":"10.0.0.1:80#true","ip":"10.0.0.1","port":80},`+
			`{"clientId":"`+conn+`","ip":"10.0.0.9","port":8080},{"clientId":"`+conn+`","ip":"10.0.0.9","port":8081}]}`)
	mustStatus(t, "publishers at an address", send(h, "GET", "/nacos/v2/ns/client/service/publisher/list",
		form("serviceName", "svc", "ip", "10.0.0.9", "port", "8081")), http.StatusOK,
		`{"code":0,"message":"success","data":[{"clientId":"`+conn+`","ip":"10.0.0.9","port":8081}]}`)
	mustStatus(t, "subscribers", send(h, "GET", "/nacos/v2/ns/client/service/subscriber/list", form("serviceName", "other", "groupName", "g")),
		http.StatusOK, `{"code":0,"message":"success","data":[{"clientId":"10.0.0.7:5000#true","ip":"10.0.0.7","port":5000},`+
			`{"clientId":"`+conn+`","ip":"10.0.0.9","port":0}]}`)
	mustStatus(t, "subscribers at an ip", send(h, "GET", "/nacos/v2/ns/client/service/subscriber/list",
		form("serviceName", "g@@other", "ip", "10.0.0.7")), http.StatusOK,
		`{"code":0,"message":"success","data":[{"clientId":"10.0.0.7:5000#true","ip":"10.0.0.7","port":5000}]}`)
	mustStatus(t, "no subscribers", send(h, "GET", "/nacos/v2/ns/client/service/subscriber/list", form("serviceName", "nothing")),
		http.StatusOK, `{"code":0,"message":"success","data":[]}`)

	// Refusals.
	mustStatus(t, "unknown client", send(h, "GET", "/nacos/v2/ns/client", form("clientId", "nobody")), http.StatusNotFound,
		`{"code":20004,"message":"resource not found","data":"clientId: client \"nobody\" does not exist"}`)
	for _, path := range []string{"/client", "/client/publish/list", "/client/subscribe/list"} {
		mustV2Error(t, path, send(h, "GET", "/nacos/v2/ns"+path, form()), http.StatusBadRequest, codeParameterMissing, "clientId")
	}
	for _, path := range []string{"/client/service/publisher/list", "/client/service/subscriber/list"} {
		mustV2Error(t, path, send(h, "GET", "/nacos/v2/ns"+path, form()), http.StatusBadRequest, codeParameterMissing, "serviceName")
		mustV2Error(t, path+" bad port", send(h, "GET", "/nacos/v2/ns"+path, form("serviceName", "svc", "port", "x")),
			http.StatusBadRequest, codeParameterValidate, "port")
		mustV2Error(t, path+" bad namespace", send(h, "GET", "/nacos/v2/ns"+path, form("serviceName", "svc", "namespaceId", "a b")),
			http.StatusBadRequest, codeParameterValidate, "namespaceId")
	}
	// v2 only, as in Nacos.
	if rec := send(h, "GET", "/nacos/v1/ns/client/list", form()); rec.Code != http.StatusNotImplemented {
		t.Errorf("v1 client list: %d", rec.Code)
	}
}

// TestClientOfAnotherNode: a replica, or a connection the gRPC port does not
// know, is described from its id and labels.
func TestClientOfAnotherNode(t *testing.T) {
	reg := newRegistry(t)
	h := handler(Config{Registry: reg}) // no Connections
	const conn = "1700000000000_10.0.0.9_50000"
	if err := reg.Connect(conn, nil); err != nil {
		t.Fatal(err)
	}
	mustStatus(t, "a connection", send(h, "GET", "/nacos/v2/ns/client", form("clientId", conn)), http.StatusOK,
		`{"code":0,"message":"success","data":{"clientId":"`+conn+`","ephemeral":true,"lastUpdatedTime":0,`+
			`"clientType":"connection","connectType":"GRPC","appName":"-","version":"","clientIp":"10.0.0.9","clientPort":"50000"}}`)
}

// decodeInto decodes a JSON answer into v.
func decodeInto(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("%q: %v", rec.Body, err)
	}
}
