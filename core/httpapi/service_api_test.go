package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sextantd/sextant/core/naming"
)

// mustStatus fails the test unless rec has the status and, if body is not
// "", exactly that body (a JSON answer's trailing newline ignored).
func mustStatus(t *testing.T, what string, rec *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if rec.Code != status || body != "" && strings.TrimSuffix(rec.Body.String(), "\n") != body {
		t.Fatalf("%s: %d %s\nwant %d %s", what, rec.Code, rec.Body, status, body)
	}
}

// mustV2Error fails the test unless rec is a v2 refusal with the status and
// code, whose data starts with the parameter's name.
func mustV2Error(t *testing.T, what string, rec *httptest.ResponseRecorder, status, code int, param string) {
	t.Helper()
	b := decodeV2(t, rec)
	var data string
	_ = json.Unmarshal(b.Data, &data)
	if rec.Code != status || b.Code != code || !strings.HasPrefix(data, param+": ") {
		t.Fatalf("%s: %d %s, want %d with code %d about %s", what, rec.Code, rec.Body, status, code, param)
	}
}

func TestServiceLifecycle(t *testing.T) {
	h, reg, _, _ := newPersistentHandler(t)
	const selector = `{"type":"label","expression":"CONSUMER.label.zone = PROVIDER.label.zone"}`

	mustStatus(t, "create", send(h, "POST", "/nacos/v1/ns/service", form("serviceName", "svc", "protectThreshold", "0.5",
		"metadata", `{"owner":"team-a"}`, "selector", selector)), http.StatusOK, "ok")
	mustStatus(t, "get", send(h, "GET", "/nacos/v1/ns/service", form("serviceName", "svc")), http.StatusOK,
		`{"namespaceId":"public","groupName":"DEFAULT_GROUP","name":"svc","protectThreshold":0.5,"metadata":{"owner":"team-a"},`+
			`"selector":{"contextType":"CMDB","expression":"CONSUMER.label.zone = PROVIDER.label.zone","labels":["zone"],"type":"label"},"clusters":[]}`)
	// The same service, named group@@name, exists already.
	rec := send(h, "POST", "/nacos/v1/ns/service", form("serviceName", "DEFAULT_GROUP@@svc"))
	mustStatus(t, "create again", rec, http.StatusBadRequest, "")
	assertContains(t, "create again", rec.Body.String(), "serviceName: service DEFAULT_GROUP@@svc already exists")
	mustV2Error(t, "v2 create again", send(h, "POST", "/nacos/v2/ns/service", form("serviceName", "svc")),
		http.StatusBadRequest, codeServiceAlreadyExist, "serviceName")

	// It is listed without instances, by v1 and v2 alike.
	mustStatus(t, "v1 list", send(h, "GET", "/nacos/v1/ns/service/list", form("pageNo", "1", "pageSize", "10")),
		http.StatusOK, `{"count":1,"doms":["svc"]}`)
	mustStatus(t, "v2 list", send(h, "GET", "/nacos/v2/ns/service/list", form()),
		http.StatusOK, `{"code":0,"message":"success","data":{"count":1,"services":["svc"]}}`)

	// Instances in two clusters, one unhealthy: the view is protected
	// (1 of 2 healthy ≤ 0.5) and the clusters are the service's.
	for _, in := range []struct{ ip, cluster, healthy string }{{"10.0.0.1", "c1", "true"}, {"10.0.0.2", "c2", "false"}} {
		mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", in.ip, "port", "80",
			"clusterName", in.cluster, "healthy", in.healthy)), "ok")
	}
	info := decodeInfo(t, send(h, "GET", "/nacos/v1/ns/instance/list", form("serviceName", "svc")).Body.Bytes())
	if len(info.Hosts) != 2 || !info.Hosts[0].Healthy || !info.Hosts[1].Healthy {
		t.Errorf("protected view: %+v", info)
	}
	mustStatus(t, "get with clusters", send(h, "GET", "/nacos/v1/ns/service", form("serviceName", "svc")), http.StatusOK,
		`{"namespaceId":"public","groupName":"DEFAULT_GROUP","name":"svc","protectThreshold":0.5,"metadata":{"owner":"team-a"},`+
			`"selector":{"contextType":"CMDB","expression":"CONSUMER.label.zone = PROVIDER.label.zone","labels":["zone"],"type":"label"},`+
			`"clusters":[{"name":"c1","healthChecker":{"type":"TCP"},"checkPort":0,"useInstancePort4Check":true,"metadata":{}},{"name":"c2","healthChecker":{"type":"TCP"},"checkPort":0,"useInstancePort4Check":true,"metadata":{}}]}`)
	mustStatus(t, "v2 get", send(h, "GET", "/nacos/v2/ns/service", form("serviceName", "svc", "groupName", "DEFAULT_GROUP")), http.StatusOK,
		`{"code":0,"message":"success","data":{"namespace":"public","serviceName":"svc","groupName":"DEFAULT_GROUP",`+
			`"clusterMap":{"c1":{"clusterName":"c1","healthChecker":{"type":"TCP"},"checkPort":0,"useInstancePort4Check":true,"metadata":{}},"c2":{"clusterName":"c2","healthChecker":{"type":"TCP"},"checkPort":0,"useInstancePort4Check":true,"metadata":{}}},`+
			`"metadata":{"owner":"team-a"},"protectThreshold":0.5,`+
			`"selector":{"contextType":"CMDB","expression":"CONSUMER.label.zone = PROVIDER.label.zone","labels":["zone"],"type":"label"},"ephemeral":true}}`)

	// Deleting it while it has instances is refused, and changes nothing.
	rec = send(h, "DELETE", "/nacos/v1/ns/service", form("serviceName", "svc"))
	mustStatus(t, "delete with instances", rec, http.StatusBadRequest, "")
	assertContains(t, "delete with instances", rec.Body.String(), "still has instances")
	mustV2Error(t, "v2 delete with instances", send(h, "DELETE", "/nacos/v2/ns/service", form("serviceName", "svc")),
		http.StatusBadRequest, codeServiceDeleteFailure, "serviceName")

	// An update replaces the definition (v1 requires protectThreshold);
	// the view follows at once.
	rec = send(h, "PUT", "/nacos/v1/ns/service", form("serviceName", "svc"))
	mustStatus(t, "v1 update without protectThreshold", rec, http.StatusBadRequest, "protectThreshold: required parameter is missing")
	mustStatus(t, "v1 update", send(h, "PUT", "/nacos/v1/ns/service", form("serviceName", "svc", "protectThreshold", "0", "metadata", "k=v")),
		http.StatusOK, "ok")
	info = decodeInfo(t, send(h, "GET", "/nacos/v1/ns/instance/list", form("serviceName", "svc")).Body.Bytes())
	if len(info.Hosts) != 2 || info.Hosts[1].Healthy {
		t.Errorf("view after the threshold went to 0: %+v", info)
	}
	mustStatus(t, "v2 update", send(h, "PUT", "/nacos/v2/ns/service", form("serviceName", "svc", "metadata", `{"a":"b"}`)),
		http.StatusOK, `{"code":0,"message":"success","data":"ok"}`)
	mustStatus(t, "after updates", send(h, "GET", "/nacos/v2/ns/service", form("serviceName", "svc")), http.StatusOK, "")
	if d, _ := reg.ServiceDetail(testSvc); d.Meta.ProtectThreshold != 0 || d.Meta.Metadata["a"] != "b" || len(d.Meta.Metadata) != 1 ||
		d.Meta.Selector.Type != naming.SelectorNone {
		t.Errorf("after updates: %+v", d.Meta)
	}

	// Without instances it can go; then it is gone.
	for _, ip := range []string{"10.0.0.1", "10.0.0.2"} {
		mustOK(t, send(h, "DELETE", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", ip, "port", "80")), "ok")
	}
	mustStatus(t, "delete", send(h, "DELETE", "/nacos/v1/ns/service", form("serviceName", "svc")), http.StatusOK, "ok")
	rec = send(h, "GET", "/nacos/v1/ns/service", form("serviceName", "svc"))
	mustStatus(t, "get after delete", rec, http.StatusBadRequest, "serviceName: service DEFAULT_GROUP@@svc not found")
	mustV2Error(t, "v2 get after delete", send(h, "GET", "/nacos/v2/ns/service", form("serviceName", "svc")),
		http.StatusBadRequest, codeServiceNotExist, "serviceName")
	mustV2Error(t, "v2 update after delete", send(h, "PUT", "/nacos/v2/ns/service", form("serviceName", "svc")),
		http.StatusBadRequest, codeServiceNotExist, "serviceName")
	mustStatus(t, "list after delete", send(h, "GET", "/nacos/v1/ns/service/list", form("pageNo", "1", "pageSize", "10")),
		http.StatusOK, `{"count":0,"doms":[]}`)
	// Nothing defined: the selector is none.
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "plain", "ip", "10.0.0.1", "port", "80")), "ok")
	mustStatus(t, "get of an undefined service", send(h, "GET", "/nacos/v1/ns/service", form("serviceName", "plain")), http.StatusOK,
		`{"namespaceId":"public","groupName":"DEFAULT_GROUP","name":"plain","protectThreshold":0,"metadata":{},`+
			`"selector":{"contextType":"NONE","type":"none"},"clusters":[{"name":"DEFAULT","healthChecker":{"type":"TCP"},"checkPort":0,"useInstancePort4Check":true,"metadata":{}}]}`)
}

// TestServiceBadInput: every refusal is a 400 naming the parameter, and
// changes nothing.
func TestServiceBadInput(t *testing.T) {
	h, reg, _, _ := newPersistentHandler(t)
	mustOK(t, send(h, "POST", "/nacos/v1/ns/service", form("serviceName", "svc", "protectThreshold", "0.2")), "ok")
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80")), "ok")
	before, detail := stateOf(reg), func() naming.ServiceSummary { d, _ := reg.ServiceDetail(testSvc); return d }
	was := detail()

	for _, tc := range []struct {
		name, method, path string
		params             map[string][]string
		param              string
		v2code             int
	}{
		{"create without a name", "POST", "/service", form("protectThreshold", "0.1"), "serviceName", codeParameterMissing},
		{"create with a bad namespace", "POST", "/service", form("serviceName", "x", "namespaceId", "a b"), "namespaceId", codeParameterValidate},
		{"create with a bad threshold", "POST", "/service", form("serviceName", "x", "protectThreshold", "half"), "protectThreshold", codeParameterValidate},
		{"create with a threshold over 1", "POST", "/service", form("serviceName", "x", "protectThreshold", "1.5"), "protectThreshold", codeParameterValidate},
		{"create with bad metadata", "POST", "/service", form("serviceName", "x", "metadata", "{not json"), "metadata", codeParameterValidate},
		{"create with bad selector JSON", "POST", "/service", form("serviceName", "x", "selector", "{"), "selector", codeSelectorError},
		{"create with a selector without type", "POST", "/service", form("serviceName", "x", "selector", `{"expression":"a"}`), "selector", codeSelectorError},
		{"create with an unknown selector", "POST", "/service", form("serviceName", "x", "selector", `{"type":"cmdb"}`), "selector", codeSelectorError},
		{"create with a bad expression", "POST", "/service", form("serviceName", "x", "selector", `{"type":"label","expression":"a=b"}`), "selector", codeSelectorError},
		{"update with a bad threshold", "PUT", "/service", form("serviceName", "svc", "protectThreshold", "-1"), "protectThreshold", codeParameterValidate},
		{"update with bad metadata", "PUT", "/service", form("serviceName", "svc", "protectThreshold", "0", "metadata", "a"), "metadata", codeParameterValidate},
		{"delete without a name", "DELETE", "/service", form(), "serviceName", codeParameterMissing},
		{"get with a bad group", "GET", "/service", form("serviceName", "svc", "groupName", "a@@b"), "groupName", codeParameterValidate},
		{"list with pageNo 0", "GET", "/service/list", form("pageNo", "0", "pageSize", "10"), "pageNo", codeParameterValidate},
		{"list with a bad pageSize", "GET", "/service/list", form("pageNo", "1", "pageSize", "ten"), "pageSize", codeParameterValidate},
		{"list with a huge pageSize", "GET", "/service/list", form("pageNo", "1", "pageSize", "100000"), "pageSize", codeParameterValidate},
		{"health without healthy", "PUT", "/health/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80"), "healthy", codeParameterMissing},
		{"health with a bad healthy", "PUT", "/health/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80", "healthy", "maybe"), "healthy", codeParameterValidate},
		{"health without a port", "PUT", "/health/instance", form("serviceName", "svc", "ip", "10.0.0.1", "healthy", "false"), "port", codeParameterMissing},
		{"health with a bad port", "PUT", "/health/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "99999", "healthy", "false"), "port", codeParameterValidate},
	} {
		rec := send(h, tc.method, "/nacos/v1/ns"+tc.path, tc.params)
		if rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Body.String(), tc.param+": ") {
			t.Errorf("v1 %s: %d %q, want 400 about %s", tc.name, rec.Code, rec.Body, tc.param)
		}
		rec = send(h, tc.method, "/nacos/v2/ns"+tc.path, tc.params)
		b := decodeV2(t, rec)
		var data string
		_ = json.Unmarshal(b.Data, &data)
		if rec.Code != http.StatusBadRequest || b.Code != tc.v2code || !strings.HasPrefix(data, tc.param+": ") {
			t.Errorf("v2 %s: %d %s, want 400, code %d, about %s", tc.name, rec.Code, rec.Body, tc.v2code, tc.param)
		}
	}
	// v1's list requires its page.
	if rec := send(h, "GET", "/nacos/v1/ns/service/list", form("pageSize", "10")); rec.Code != http.StatusBadRequest ||
		rec.Body.String() != "pageNo: required parameter is missing\n" {
		t.Errorf("v1 list without pageNo: %d %q", rec.Code, rec.Body)
	}
	if after := stateOf(reg); after.View != before.View || after.Stats != before.Stats {
		t.Errorf("refusals changed the registry:\n%+v\n%+v", before, after)
	}
	if now := detail(); now.Meta.ProtectThreshold != was.Meta.ProtectThreshold || reg.ServiceCount() != 1 {
		t.Errorf("refusals changed the definitions: %+v, %d services", now, reg.ServiceCount())
	}
}

func TestCatalogServices(t *testing.T) {
	h, _, _, _ := newPersistentHandler(t)
	for _, r := range []struct{ svc, group, ip, healthy string }{
		{"orders", "shop", "10.0.0.1", "true"}, {"orders", "shop", "10.0.0.2", "false"},
		{"users", "DEFAULT_GROUP", "10.0.0.3", "true"}, {"ordering", "DEFAULT_GROUP", "10.0.0.4", "true"},
	} {
		mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", r.svc, "groupName", r.group, "ip", r.ip,
			"port", "80", "healthy", r.healthy, "clusterName", "c-"+r.ip[len(r.ip)-1:])), "ok")
	}
	mustOK(t, send(h, "PUT", "/nacos/v1/ns/service", form("serviceName", "orders", "groupName", "shop", "protectThreshold", "0.5")), "ok")
	mustOK(t, send(h, "POST", "/nacos/v1/ns/service", form("serviceName", "empty")), "ok")
	mustOK(t, send(h, "POST", "/nacos/v1/ns/service", form("serviceName", "elsewhere", "namespaceId", "dev")), "ok")
	const (
		empty    = `{"name":"empty","groupName":"DEFAULT_GROUP","clusterCount":0,"ipCount":0,"healthyInstanceCount":0,"triggerFlag":"false"}`
		ordering = `{"name":"ordering","groupName":"DEFAULT_GROUP","clusterCount":1,"ipCount":1,"healthyInstanceCount":1,"triggerFlag":"false"}`
		users    = `{"name":"users","groupName":"DEFAULT_GROUP","clusterCount":1,"ipCount":1,"healthyInstanceCount":1,"triggerFlag":"false"}`
		orders   = `{"name":"orders","groupName":"shop","clusterCount":2,"ipCount":2,"healthyInstanceCount":1,"triggerFlag":"true"}`
	)
	for _, tc := range []struct {
		params map[string][]string
		want   string
	}{
		{form(), `{"count":4,"serviceList":[` + empty + `,` + ordering + `,` + users + `,` + orders + `]}`},
		{form("hasIpCount", "true"), `{"count":3,"serviceList":[` + ordering + `,` + users + `,` + orders + `]}`},
		{form("pageNo", "2", "pageSize", "3"), `{"count":4,"serviceList":[` + orders + `]}`},
		{form("pageNo", "3", "pageSize", "3"), `{"count":4,"serviceList":[]}`},
		{form("serviceNameParam", "order"), `{"count":2,"serviceList":[` + ordering + `,` + orders + `]}`},
		{form("serviceNameParam", "order", "groupNameParam", "sho"), `{"count":1,"serviceList":[` + orders + `]}`},
		{form("namespaceId", "dev"), `{"count":1,"serviceList":[{"name":"elsewhere","groupName":"DEFAULT_GROUP","clusterCount":0,"ipCount":0,"healthyInstanceCount":0,"triggerFlag":"false"}]}`},
	} {
		mustStatus(t, "catalog "+describe(tc.params), send(h, "GET", "/nacos/v1/ns/catalog/services", tc.params), http.StatusOK, tc.want)
	}
	for _, bad := range []struct {
		params map[string][]string
		param  string
	}{
		{form("pageNo", "0"), "pageNo"}, {form("pageSize", "x"), "pageSize"}, {form("hasIpCount", "perhaps"), "hasIpCount"},
		{form("namespaceId", "a/b"), "namespaceId"},
	} {
		if rec := send(h, "GET", "/nacos/v1/ns/catalog/services", bad.params); rec.Code != http.StatusBadRequest ||
			!strings.HasPrefix(rec.Body.String(), bad.param+": ") {
			t.Errorf("catalog %s: %d %q", describe(bad.params), rec.Code, rec.Body)
		}
	}
	if rec := send(h, "GET", "/nacos/v1/ns/catalog/services", form("withInstances", "true")); rec.Code != http.StatusNotImplemented {
		t.Errorf("withInstances: %d %q", rec.Code, rec.Body)
	}
	if rec := send(h, "GET", "/nacos/v2/ns/catalog/services", form()); rec.Code != http.StatusNotImplemented {
		t.Errorf("v2 catalog: %d, want 501 (Nacos has none)", rec.Code)
	}
}

func describe(p map[string][]string) string {
	b, _ := json.Marshal(p)
	return string(b)
}

// TestInstanceHealth: an operator cannot set an ephemeral instance's health,
// as in Nacos 2.x; the instance is left as it was.
func TestInstanceHealth(t *testing.T) {
	reg := newRegistry(t)
	h := handler(Config{Registry: reg})
	mustOK(t, send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80")), "ok")
	before := stateOf(reg)
	for _, path := range []string{"/nacos/v1/ns/health/instance", "/nacos/v1/ns/health"} {
		rec := send(h, "PUT", path, form("serviceName", "svc", "ip", "10.0.0.1", "port", "80", "healthy", "false"))
		mustStatus(t, "v1 "+path, rec, http.StatusBadRequest, "")
		assertContains(t, "v1 "+path, rec.Body.String(), "healthy: instance 10.0.0.1#80#DEFAULT#DEFAULT_GROUP@@svc is ephemeral")
	}
	// v1 takes Nacos 1.x's "valid" too.
	mustStatus(t, "v1 valid", send(h, "PUT", "/nacos/v1/ns/health/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80", "valid", "false")),
		http.StatusBadRequest, "")
	mustV2Error(t, "v2", send(h, "PUT", "/nacos/v2/ns/health/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80", "healthy", "false")),
		http.StatusBadRequest, codeInstanceError, "healthy")
	// An instance that is not there is not found.
	rec := send(h, "PUT", "/nacos/v1/ns/health/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "81", "healthy", "false"))
	mustStatus(t, "no such instance", rec, http.StatusNotFound, "instance not found")
	mustStatus(t, "v2 other cluster", send(h, "PUT", "/nacos/v2/ns/health/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80",
		"clusterName", "other", "healthy", "false")), http.StatusNotFound, `{"code":20004,"message":"resource not found","data":"instance not found"}`)
	if after := stateOf(reg); after.View != before.View {
		t.Errorf("the view changed:\n%s\n%s", before.View, after.View)
	}
}
