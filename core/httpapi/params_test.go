package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
)

// namingLimits are the registry's limits in these tests.
var namingLimits = naming.Limits{MaxNameLength: 512, MaxMetadataBytes: 16 << 10, MaxBatchSize: 100,
	MaxServicesPerClient: 1000, MaxSubscriptionsPerClient: 1000, MaxClustersPerFilter: 8}

// newRegistry returns a registry on a running bus, stopped when the test ends.
func newRegistry(t *testing.T) *naming.Registry {
	t.Helper()
	bus := notify.New(notify.Config{})
	if err := bus.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Stop(context.Background()) })
	return naming.NewRegistry(naming.Config{Limits: namingLimits, Bus: bus})
}

// send serves one naming request: params in the query for GET and DELETE,
// else in a form body.
func send(h http.Handler, method, path string, form url.Values) *httptest.ResponseRecorder {
	var req *http.Request
	if method == http.MethodGet || method == http.MethodDelete {
		req = httptest.NewRequest(method, path+"?"+form.Encode(), nil)
	} else {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// form builds parameters from pairs.
func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// with returns base with the pairs set (an empty value removes the key).
func with(base url.Values, kv ...string) url.Values {
	v := url.Values{}
	for k, vs := range base {
		v[k] = append([]string(nil), vs...)
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			v.Del(kv[i])
		} else {
			v.Set(kv[i], kv[i+1])
		}
	}
	return v
}

// state is what a refused request must leave as it was.
type state struct {
	Stats   naming.Stats
	Clients []string
	View    string
	UDP     []naming.Subscriber
}

var testSvc = naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "svc"}

func stateOf(reg *naming.Registry) state {
	return state{Stats: reg.Stats(), Clients: slices.Sorted(slices.Values(reg.HTTPClients())), View: string(reg.View(testSvc, naming.ViewFilter{GroupedName: true})),
		UDP: reg.UDPSubscribers(testSvc)}
}

// v2Body decodes a v2 envelope.
type v2Body struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func decodeV2(t *testing.T, rec *httptest.ResponseRecorder) v2Body {
	t.Helper()
	var b v2Body
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("v2 answer %q is not the envelope: %v", rec.Body.String(), err)
	}
	return b
}

// TestBadParameters: every refusal is a 400 whose message begins with the
// parameter's name (v1: the text; v2: the envelope's data, with a v2 code),
// and changes nothing.
func TestBadParameters(t *testing.T) {
	reg := newRegistry(t)
	h := handler(Config{Registry: reg})
	// Something registered and subscribed, so that a refusal that changed it
	// would show.
	if rec := send(h, "POST", "/nacos/v1/ns/instance", form("serviceName", "svc", "ip", "10.0.0.1", "port", "80")); rec.Code != 200 {
		t.Fatalf("registering: %d %s", rec.Code, rec.Body)
	}
	if rec := send(h, "GET", "/nacos/v1/ns/instance/list", form("serviceName", "svc", "udpPort", "55000", "clientIP", "10.0.0.9")); rec.Code != 200 {
		t.Fatalf("listing: %d %s", rec.Code, rec.Body)
	}
	before := stateOf(reg)

	reg1 := form("serviceName", "svc", "ip", "10.0.0.2", "port", "81")
	long := strings.Repeat("s", namingLimits.MaxNameLength+1)
	bigMeta, _ := json.Marshal(map[string]string{"k": strings.Repeat("v", namingLimits.MaxMetadataBytes)})
	tests := []struct {
		name, method, path string
		params             url.Values
		param              string // the parameter the message must name first
		v2code             int
	}{
		// missing
		{"no serviceName", "POST", "/instance", with(reg1, "serviceName", ""), "serviceName", codeParameterMissing},
		{"blank serviceName", "POST", "/instance", with(reg1, "serviceName", "  "), "serviceName", codeParameterMissing},
		{"no ip", "POST", "/instance", with(reg1, "ip", ""), "ip", codeParameterMissing},
		{"no port", "POST", "/instance", with(reg1, "port", ""), "port", codeParameterMissing},
		{"deregister without port", "DELETE", "/instance", with(reg1, "port", ""), "port", codeParameterMissing},
		{"update without ip", "PUT", "/instance", with(reg1, "ip", ""), "ip", codeParameterMissing},
		{"get without ip", "GET", "/instance", with(reg1, "ip", ""), "ip", codeParameterMissing},
		{"list without serviceName", "GET", "/instance/list", form("groupName", "g"), "serviceName", codeParameterMissing},
		{"light beat without ip", "PUT", "/instance/beat", with(reg1, "ip", ""), "ip", codeParameterMissing},
		// wrong type
		{"port not a number", "POST", "/instance", with(reg1, "port", "eighty"), "port", codeParameterValidate},
		{"port a float", "POST", "/instance", with(reg1, "port", "80.5"), "port", codeParameterValidate},
		{"weight not a number", "POST", "/instance", with(reg1, "weight", "heavy"), "weight", codeParameterValidate},
		{"healthy not a boolean", "POST", "/instance", with(reg1, "healthy", "maybe"), "healthy", codeParameterValidate},
		{"enabled not a boolean", "POST", "/instance", with(reg1, "enabled", "2"), "enabled", codeParameterValidate},
		{"enable not a boolean", "POST", "/instance", with(reg1, "enable", "yesno"), "enable", codeParameterValidate},
		{"ephemeral not a boolean", "POST", "/instance", with(reg1, "ephemeral", "sometimes"), "ephemeral", codeParameterValidate},
		{"metadata not JSON", "POST", "/instance", with(reg1, "metadata", "{bad"), "metadata", codeParameterValidate},
		{"metadata not pairs", "POST", "/instance", with(reg1, "metadata", "a=b=c"), "metadata", codeParameterValidate},
		{"metadata value an object", "POST", "/instance", with(reg1, "metadata", `{"a":{"b":1}}`), "metadata", codeParameterValidate},
		{"update weight not a number", "PUT", "/instance", with(reg1, "weight", "x"), "weight", codeParameterValidate},
		{"healthyOnly not a boolean", "GET", "/instance/list", form("serviceName", "svc", "healthyOnly", "perhaps"), "healthyOnly", codeParameterValidate},
		{"udpPort not a number", "GET", "/instance/list", form("serviceName", "svc", "udpPort", "x"), "udpPort", codeParameterValidate},
		{"beat not JSON", "PUT", "/instance/beat", form("serviceName", "svc", "beat", "{"), "beat", codeParameterValidate},
		{"beat port a string", "PUT", "/instance/beat", form("serviceName", "svc", "beat", `{"ip":"10.0.0.2","port":"81"}`), "beat", codeParameterValidate},
		// out of range, or refused by the registry
		{"port too large", "POST", "/instance", with(reg1, "port", "65536"), "port", codeParameterValidate},
		{"port negative", "POST", "/instance", with(reg1, "port", "-1"), "port", codeParameterValidate},
		{"weight too large", "POST", "/instance", with(reg1, "weight", "10001"), "weight", codeParameterValidate},
		{"weight negative", "POST", "/instance", with(reg1, "weight", "-0.5"), "weight", codeParameterValidate},
		{"weight NaN", "POST", "/instance", with(reg1, "weight", "NaN"), "weight", codeParameterValidate},
		{"weight past float64", "POST", "/instance", with(reg1, "weight", "1e400"), "weight", codeParameterValidate},
		{"bad ip", "POST", "/instance", with(reg1, "ip", "10.0.0.1/24"), "ip", codeParameterValidate},
		{"bad cluster", "POST", "/instance", with(reg1, "clusterName", "a b"), "clusterName", codeParameterValidate},
		{"bad namespace", "POST", "/instance", with(reg1, "namespaceId", "a/b"), "namespaceId", codeParameterValidate},
		{"empty group before @@", "POST", "/instance", with(reg1, "serviceName", "@@svc"), "serviceName", codeParameterValidate},
		{"@@ twice", "POST", "/instance", with(reg1, "serviceName", "g@@s@@t"), "serviceName", codeParameterValidate},
		{"bad heartbeat timeout", "POST", "/instance", with(reg1, "metadata", `{"preserved.heart.beat.timeout":"-1"}`),
			"metadata.preserved.heart.beat.timeout", codeParameterValidate},
		{"bad legacy metadata timeout", "POST", "/instance", with(reg1, "metadata", "preserved.ip.delete.timeout=soon"),
			"metadata.preserved.ip.delete.timeout", codeParameterValidate},
		{"update weight too large", "PUT", "/instance", with(reg1, "ip", "10.0.0.1", "port", "80", "weight", "20000"), "weight", codeParameterValidate},
		{"udpPort too large", "GET", "/instance/list", form("serviceName", "svc", "udpPort", "65536", "clientIP", "10.0.0.9"), "udpPort", codeParameterValidate},
		{"udpPort negative", "GET", "/instance/list", form("serviceName", "svc", "udpPort", "-2", "clientIP", "10.0.0.9"), "udpPort", codeParameterValidate},
		{"bad clientIP", "GET", "/instance/list", form("serviceName", "svc", "udpPort", "55001", "clientIP", "not an ip"), "clientIP", codeParameterValidate},
		{"bad clusters", "GET", "/instance/list", form("serviceName", "svc", "clusters", "a,,b"), "clusters", codeParameterValidate},
		{"too many clusters", "GET", "/instance/list", form("serviceName", "svc", "clusters", "a,b,c,d,e,f,g,h,i"), "clusters", codeParameterValidate},
		{"get with a bad cluster", "GET", "/instance", with(reg1, "cluster", "a b"), "cluster", codeParameterValidate},
		{"beat port out of range", "PUT", "/instance/beat", form("serviceName", "svc", "beat", `{"ip":"10.0.0.2","port":70000}`), "beat.port", codeParameterValidate},
		{"beat bad cluster", "PUT", "/instance/beat", form("serviceName", "svc", "beat", `{"ip":"10.0.0.2","port":81,"cluster":"a b"}`), "beat.cluster", codeParameterValidate},
		{"light beat port out of range", "PUT", "/instance/beat", with(reg1, "port", "65536"), "port", codeParameterValidate},
		// oversized
		{"serviceName too long", "POST", "/instance", with(reg1, "serviceName", long), "serviceName", codeParameterValidate},
		{"groupName too long", "POST", "/instance", with(reg1, "groupName", long), "groupName", codeParameterValidate},
		{"metadata too large", "POST", "/instance", with(reg1, "metadata", string(bigMeta)), "metadata", codeParameterValidate},
		{"list serviceName too long", "GET", "/instance/list", form("serviceName", long), "serviceName", codeParameterValidate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := send(h, tc.method, namingV1Prefix+tc.path, tc.params)
			if rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Body.String(), tc.param+": ") {
				t.Errorf("v1: %d %q, want 400 naming %s", rec.Code, rec.Body, tc.param)
			}
			params := tc.params
			if tc.path == "/instance/list" { // v2 names the subscriber's address ip and port
				params = with(params, "ip", params.Get("clientIP"), "port", params.Get("udpPort"), "clientIP", "", "udpPort", "")
			}
			rec = send(h, tc.method, namingV2Prefix+tc.path, params)
			b := decodeV2(t, rec)
			param := tc.param
			if to, ok := map[string]string{"udpPort": "port", "clientIP": "ip"}[tc.param]; ok && tc.path == "/instance/list" {
				param = to
			}
			var data string
			_ = json.Unmarshal(b.Data, &data)
			if rec.Code != http.StatusBadRequest || b.Code != tc.v2code || b.Message != codeMessages[tc.v2code] ||
				!strings.HasPrefix(data, param+": ") {
				t.Errorf("v2: %d %s, want 400 with code %d naming %s", rec.Code, rec.Body, tc.v2code, param)
			}
			if after := stateOf(reg); !reflect.DeepEqual(after, before) {
				t.Errorf("the refusal changed the registry:\n%+v\nwas\n%+v", after, before)
			}
		})
	}
}

func TestOversizedBody(t *testing.T) {
	reg := newRegistry(t)
	h := handler(Config{Registry: reg})
	huge := with(form("serviceName", "svc", "ip", "10.0.0.1", "port", "80"), "metadata", strings.Repeat("x", 2<<20))
	for _, prefix := range []string{namingV1Prefix, namingV2Prefix} {
		rec := send(h, "POST", prefix+"/instance", huge)
		if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "request body") {
			t.Errorf("%s: %d %q, want 413", prefix, rec.Code, rec.Body)
		}
	}
	if s := reg.Stats(); s.Instances != 0 {
		t.Errorf("an oversized request registered: %+v", s)
	}
}

// TestPersistentInstancesRefused: without a store (Config.Store nil),
// ephemeral=false gets 501 with a clear message, and nothing changes.
func TestPersistentInstancesRefused(t *testing.T) {
	reg := newRegistry(t)
	h := handler(Config{Registry: reg})
	p := form("serviceName", "svc", "ip", "10.0.0.1", "port", "80", "ephemeral", "false")
	for _, method := range []string{"POST", "PUT", "DELETE"} {
		rec := send(h, method, namingV1Prefix+"/instance", p)
		if rec.Code != http.StatusNotImplemented || !strings.Contains(rec.Body.String(), "persistent instances are not supported yet") ||
			!strings.HasPrefix(rec.Body.String(), "ephemeral: ") {
			t.Errorf("v1 %s: %d %q", method, rec.Code, rec.Body)
		}
		rec = send(h, method, namingV2Prefix+"/instance", p)
		if b := decodeV2(t, rec); rec.Code != http.StatusNotImplemented || b.Code != codeParameterValidate ||
			!strings.Contains(string(b.Data), "persistent instances are not supported yet") {
			t.Errorf("v2 %s: %d %s", method, rec.Code, rec.Body)
		}
	}
	rec := send(h, "PUT", namingV1Prefix+"/instance/beat", form("serviceName", "svc", "beat", `{"ip":"10.0.0.1","port":80,"ephemeral":false}`))
	if rec.Code != http.StatusNotImplemented || !strings.HasPrefix(rec.Body.String(), "beat.ephemeral: ") {
		t.Errorf("persistent beat: %d %q", rec.Code, rec.Body)
	}
	if s := reg.Stats(); s.Instances != 0 || s.Clients != 0 {
		t.Errorf("a persistent instance changed the registry: %+v", s)
	}
}

func TestParseMetadata(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{`{"a":"1","b":2,"c":true,"d":1.5}`, map[string]string{"a": "1", "b": "2", "c": "true", "d": "1.5"}},
		{`{}`, map[string]string{}},
		{`a=1,b=2`, map[string]string{"a": "1", "b": "2"}},
		{`a=`, map[string]string{"a": ""}},
	} {
		got, err := parseMetadata("metadata", tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseMetadata(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`{"a":null}`, `{"a":[1]}`, `{"a":"1"`, `a`, `a=1,b`} {
		if _, err := parseMetadata("metadata", bad); err == nil {
			t.Errorf("parseMetadata(%q) accepted it", bad)
		}
	}
}

func TestBooleans(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "TRUE": true, "1": true, "yes": true, "on": true,
		"false": false, "False": false, "0": false, "no": false, "off": false} {
		got, err := params(form("b", in)).boolean("b", !want)
		if err != nil || got != want {
			t.Errorf("boolean(%q) = %v, %v", in, got, err)
		}
	}
	if got, err := params(form()).boolean("b", true); !got || err != nil {
		t.Errorf("absent: %v, %v; want the default", got, err)
	}
}

func TestServiceParam(t *testing.T) {
	for _, tc := range []struct {
		p    url.Values
		want naming.Service
	}{
		{form("serviceName", "s"), naming.Service{Name: "s"}},
		{form("serviceName", "s", "groupName", "g", "namespaceId", "ns"), naming.Service{Namespace: "ns", Group: "g", Name: "s"}},
		{form("serviceName", "g@@s"), naming.Service{Group: "g", Name: "s"}},
		{form("serviceName", "g@@s", "groupName", "other"), naming.Service{Group: "g", Name: "s"}}, // as Nacos
		{form("serviceName", " s "), naming.Service{Name: "s"}},
	} {
		got, err := params(tc.p).service()
		if err != nil || got != tc.want {
			t.Errorf("service(%v) = %+v, %v; want %+v", tc.p, got, err, tc.want)
		}
	}
}
