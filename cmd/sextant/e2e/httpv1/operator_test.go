package httpv1_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	v1vo "github.com/nacos-group/nacos-sdk-go/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// call sends one request to the server's HTTP API, its parameters in the
// query for GET and DELETE and in a form body otherwise, and returns the
// status and body.
func call(t *testing.T, srv *servertest.Server, method, path string, params url.Values) (int, string) {
	t.Helper()
	target, body := "http://"+srv.HTTPAddr()+path, io.Reader(nil)
	if method == http.MethodGet || method == http.MethodDelete {
		target += "?" + params.Encode()
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSuffix(string(b), "\n")
}

// v2Data checks a v2 answer is a success and decodes its data into v.
func v2Data(t *testing.T, what string, code int, body string, v any) {
	t.Helper()
	var env struct {
		Code int             `json:"code"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil || code != http.StatusOK || env.Code != 0 {
		t.Fatalf("%s: %d %s (%v)", what, code, body, err)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		t.Fatalf("%s: data %s: %v", what, env.Data, err)
	}
}

// TestServicesAndOperator: the v1 SDK's service list, the service API, the
// console's catalog and namespaces, the operator's metrics and switches, the
// 2.x client API and the 501 of what is not served, on the real binary.
func TestServicesAndOperator(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := serviceName(t)
	v1 := nacostest.NewV1Client(t, srv.HTTPAddr())
	v1Register(t, v1, v1vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: svc + "-a"})
	v1Register(t, v1, v1vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 81, ServiceName: svc + "-b", GroupName: "other"})
	grpc := nacostest.NewClient(t, srv, "")
	nacostest.Register(t, grpc, vo.RegisterInstanceParam{Ip: "10.0.0.2", Port: 90, ServiceName: svc + "-a"})

	// An operator defines a service that has no instances yet.
	if code, body := call(t, srv, "POST", "/nacos/v1/ns/service", url.Values{"serviceName": {svc + "-c"},
		"protectThreshold": {"0.6"}, "metadata": {`{"owner":"ops"}`}}); code != 200 || body != "ok" {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, body := call(t, srv, "POST", "/nacos/v1/ns/service", url.Values{"serviceName": {svc + "-c"}}); code != 400 ||
		!strings.Contains(body, "already exists") {
		t.Errorf("create again: %d %s", code, body)
	}

	// The v1 SDK's GetAllServicesInfo (GET /nacos/v1/ns/service/list), and
	// the 2.x SDK's over gRPC: the same services, the defined one included.
	list, err := v1.GetAllServicesInfo(v1vo.GetAllServiceInfoParam{PageNo: 1, PageSize: 10})
	if want := []string{svc + "-a", svc + "-c"}; err != nil || list.Count != 2 || !slices.Equal(list.Doms, want) {
		t.Errorf("v1 GetAllServicesInfo = %+v, %v; want %v", list, err, want)
	}
	list, err = v1.GetAllServicesInfo(v1vo.GetAllServiceInfoParam{GroupName: "other", PageNo: 1, PageSize: 10})
	if err != nil || list.Count != 1 || !slices.Equal(list.Doms, []string{svc + "-b"}) {
		t.Errorf("v1 GetAllServicesInfo(other) = %+v, %v", list, err)
	}
	if page, err := v1.GetAllServicesInfo(v1vo.GetAllServiceInfoParam{PageNo: 2, PageSize: 1}); err != nil || page.Count != 2 ||
		!slices.Equal(page.Doms, []string{svc + "-c"}) {
		t.Errorf("v1 GetAllServicesInfo page 2 = %+v, %v", page, err)
	}
	viaGRPC, err := grpc.GetAllServicesInfo(vo.GetAllServiceInfoParam{PageNo: 1, PageSize: 10})
	if err != nil || viaGRPC.Count != 2 || !slices.Equal(viaGRPC.Doms, []string{svc + "-a", svc + "-c"}) {
		t.Errorf("v2 GetAllServicesInfo = %+v, %v", viaGRPC, err)
	}

	// The definition, and the clusters of a service's instances.
	if code, body := call(t, srv, "GET", "/nacos/v1/ns/service", url.Values{"serviceName": {svc + "-c"}}); code != 200 ||
		body != `{"namespaceId":"public","groupName":"DEFAULT_GROUP","name":"`+svc+`-c","protectThreshold":0.6,"metadata":{"owner":"ops"},`+
			`"selector":{"contextType":"NONE","type":"none"},"clusters":[]}` {
		t.Errorf("GET service: %d %s", code, body)
	}
	var detail struct {
		ServiceName string                     `json:"serviceName"`
		ClusterMap  map[string]json.RawMessage `json:"clusterMap"`
	}
	code, body := call(t, srv, "GET", "/nacos/v2/ns/service", url.Values{"serviceName": {svc + "-a"}})
	v2Data(t, "v2 GET service", code, body, &detail)
	if detail.ServiceName != svc+"-a" || len(detail.ClusterMap) != 1 || detail.ClusterMap["DEFAULT"] == nil {
		t.Errorf("v2 GET service: %s", body)
	}
	// A service with instances is not deleted; an empty one is.
	if code, body := call(t, srv, "DELETE", "/nacos/v1/ns/service", url.Values{"serviceName": {svc + "-a"}}); code != 400 ||
		!strings.Contains(body, "still has instances") {
		t.Errorf("delete with instances: %d %s", code, body)
	}

	// The console's list.
	code, body = call(t, srv, "GET", "/nacos/v1/ns/catalog/services", url.Values{"pageNo": {"1"}, "pageSize": {"10"}, "hasIpCount": {"true"}})
	if want := `{"count":2,"serviceList":[` +
		`{"name":"` + svc + `-a","groupName":"DEFAULT_GROUP","clusterCount":1,"ipCount":2,"healthyInstanceCount":2,"triggerFlag":"false"},` +
		`{"name":"` + svc + `-b","groupName":"other","clusterCount":1,"ipCount":1,"healthyInstanceCount":1,"triggerFlag":"false"}]}`; code != 200 || body != want {
		t.Errorf("catalog: %d %s\nwant %s", code, body, want)
	}
	if code, body := call(t, srv, "GET", "/nacos/v1/console/namespaces", nil); code != 200 ||
		body != `{"code":200,"message":null,"data":[{"namespace":"","namespaceShowName":"public","namespaceDesc":null,"quota":200,"configCount":0,"type":0}]}` {
		t.Errorf("namespaces: %d %s", code, body)
	}

	// The operator's view.
	if code, body := call(t, srv, "GET", "/nacos/v1/ns/operator/metrics", nil); code != 200 || body != `{"status":"UP"}` {
		t.Errorf("metrics: %d %s", code, body)
	}
	var metrics map[string]any
	code, body = call(t, srv, "GET", "/nacos/v1/ns/operator/metrics", url.Values{"onlyStatus": {"false"}})
	if err := json.Unmarshal([]byte(body), &metrics); err != nil || code != 200 {
		t.Fatalf("full metrics: %d %s", code, body)
	}
	// Clients: the 2.x SDK's connection, and one per ip:port of the v1 SDK's
	// instances.
	for k, want := range map[string]float64{"serviceCount": 3, "instanceCount": 3, "clientCount": 3,
		"connectionBasedClientCount": 1, "ephemeralIpPortClientCount": 2} {
		if metrics[k] != want {
			t.Errorf("metrics %s = %v, want %v (%s)", k, metrics[k], want, body)
		}
	}
	var switches map[string]any
	code, body = call(t, srv, "GET", "/nacos/v1/ns/operator/switches", nil)
	if err := json.Unmarshal([]byte(body), &switches); err != nil || code != 200 || switches["pushEnabled"] != true ||
		switches["clientBeatInterval"] != 5000.0 || switches["distroEnabled"] != false {
		t.Errorf("switches: %d %s", code, body)
	}
	if sx, _ := switches["sextant"].(map[string]any); sx["pushDelayMillis"] != 20.0 || sx["healthCheckIntervalMillis"] != 100.0 {
		t.Errorf("switches do not carry the server's settings: %s", body)
	}

	// The 2.x client API: the SDK's connection and the v1 SDK's ip:port.
	var ids []string
	code, body = call(t, srv, "GET", "/nacos/v2/ns/client/list", nil)
	v2Data(t, "client list", code, body, &ids)
	conn := slices.IndexFunc(ids, func(id string) bool { return !strings.HasSuffix(id, "#true") })
	if len(ids) != 3 || conn < 0 || !slices.Contains(ids, "10.0.0.1:80#true") || !slices.Contains(ids, "10.0.0.1:81#true") {
		t.Fatalf("client ids %v", ids)
	}
	var client map[string]any
	code, body = call(t, srv, "GET", "/nacos/v2/ns/client", url.Values{"clientId": {ids[conn]}})
	v2Data(t, "client", code, body, &client)
	if client["clientType"] != "connection" || client["connectType"] != "GRPC" || client["clientIp"] != "127.0.0.1" ||
		!strings.HasPrefix(client["version"].(string), "Nacos-Go-Client:") || client["lastUpdatedTime"].(float64) <= 0 {
		t.Errorf("client %s: %s", ids[conn], body)
	}
	var pubs []map[string]any
	code, body = call(t, srv, "GET", "/nacos/v2/ns/client/service/publisher/list", url.Values{"serviceName": {svc + "-a"}})
	v2Data(t, "publishers", code, body, &pubs)
	if len(pubs) != 2 {
		t.Errorf("publishers: %s", body)
	}

	// Operators cannot set an ephemeral instance's health.
	if code, body := call(t, srv, "PUT", "/nacos/v1/ns/health/instance", url.Values{"serviceName": {svc + "-a"}, "ip": {"10.0.0.1"},
		"port": {"80"}, "healthy": {"false"}}); code != 400 || !strings.Contains(body, "ephemeral") {
		t.Errorf("health: %d %s", code, body)
	}

	// What is not served: 501, counted.
	if code, body := call(t, srv, "GET", "/nacos/v1/cs/configs", url.Values{"dataId": {"d"}, "group": {"g"}}); code != 501 ||
		!strings.Contains(body, `"path":"/nacos/v1/cs/configs"`) {
		t.Errorf("config: %d %s", code, body)
	}
	if n := srv.Metric(t, `sextant_http_unimplemented_requests_total{path="/nacos/v1/cs/configs"}`); n != 1 {
		t.Errorf("unimplemented counted %v times", n)
	}
}
