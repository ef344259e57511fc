package httpapi

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/sextantd/sextant/core/naming"
)

// fuzzEndpoints are the instance endpoints FuzzHTTPParams sends requests
// to, chosen by the low bits of its op.
var fuzzEndpoints = []struct{ method, path string }{
	{http.MethodPost, "/instance"},     // register
	{http.MethodPut, "/instance"},      // update
	{http.MethodPut, "/instance/beat"}, // beat
	{http.MethodGet, "/instance/list"}, // list
	{http.MethodGet, "/instance"},      // get
	{http.MethodDelete, "/instance"},   // deregister
	{http.MethodPost, "/instance"},     // register (twice as likely: its invariant is the richest)
	{http.MethodPut, "/instance/beat"}, // beat
}

// The bits of FuzzHTTPParams's op above the endpoint's.
const (
	fuzzV2      = 1 << 3 // the v2 API
	fuzzInQuery = 1 << 4 // a POST's or PUT's parameters in the query, not the body
	fuzzEnable  = 1 << 5 // the first boolean is "enable" (the Go SDK's), not "enabled"
)

// fuzzBeat is a 1.x client's beat JSON (TestBeat's).
const fuzzBeat = `{"ip":"10.0.0.1","port":80,"weight":3,"serviceName":"DEFAULT_GROUP@@svc","cluster":"c1",` +
	`"metadata":{"preserved.heart.beat.interval":"1000","preserved.heart.beat.timeout":"3000","preserved.ip.delete.timeout":"6000"},"scheduled":true}`

// FuzzHTTPParams sends fuzzed parameters — names and values: services with
// and without '@@', addresses, ports, weights (NaN, Inf, huge), booleans,
// metadata as JSON and as legacy k=v pairs, beat JSON, and whatever extra
// form text — to the v1 and v2 instance endpoints (register, update, beat,
// list, get, deregister) in front of a real registry that already holds an
// instance and a UDP subscriber. Whatever comes:
//   - nothing panics;
//   - the answer is 200 with the endpoint's documented body (v1: "ok", the
//     beat answer, a ServiceInfo, an instance; v2: the same in the envelope),
//     or a 4xx or 501 with a message (v1: text; v2: the envelope with an
//     error code, its message and the detail);
//   - a refused request changes nothing (registry stats, HTTP clients, the
//     service's view, UDP subscribers);
//   - an accepted registration is read back, field for field, by
//     instance/list (when enabled: the list shows enabled instances) and by
//     GET /instance.
func FuzzHTTPParams(f *testing.F) {
	// From TestOneRegistryTwoFrontEnds, TestGetInstance, TestUpdateAndDeregister,
	// TestBeat, TestBadParameters, TestPersistentInstancesRefused and the e2e
	// httpv1 tests (the SDKs' registrations, updates and beats).
	seeds := []struct {
		op                                                  uint8
		svc, ip, port, weight, bools, metadata, beat, extra string
	}{
		{0, "DEFAULT_GROUP@@svc", "10.0.0.1", "8080", "2.5", "true,true,true", `{"version":"1.0"}`, "", "clusterName=c1"},
		{0, "svc", "10.0.0.2", "81", "", "", "", "", ""},
		{0 | fuzzEnable, "svc", "10.1.2.3", "8080", "2.5", "true,true,true", `{"version":"1.2","zone":"a"}`, "", "clusterName=c-1"},
		{0 | fuzzV2, "svc", "10.0.0.1", "80", "", "", "", "", "groupName=g"},
		{0 | fuzzInQuery, "svc", "10.0.0.1", "80", "2", "", "k=v", "", "groupName=g"},
		{0, "svc", "10.0.0.1", "80", "", "", `{"a":"1","b":2,"c":true,"d":1.5}`, "", ""},
		{0, "svc", "10.0.0.1", "80", "", "", `{"preserved.heart.beat.timeout":"-1"}`, "", ""},
		{0, "svc", "10.0.0.1", "80", "", "", "preserved.ip.delete.timeout=soon", "", ""},
		{0, "svc", "10.0.0.1", "80", "", "", "a=b=c", "", ""},
		{0, "svc", "10.0.0.1", "80", "", "", `{"a":{"b":1}}`, "", ""},
		{0, "svc", "10.0.0.1", "80", "", "", `{"a":null}`, "", ""},
		{0, "svc", "10.0.0.1", "80", "NaN", "", "", "", ""},
		{0, "svc", "10.0.0.1", "80", "+Inf", "", "", "", ""},
		{0, "svc", "10.0.0.1", "80", "1e400", "", "", "", ""},
		{0, "svc", "10.0.0.1", "80", "-0.5", "", "", "", ""},
		{0, "svc", "10.0.0.1", "80", "10001", "", "", "", ""},
		{0, "svc", "10.0.0.1", "80", "0", "false,false,true", "", "", ""},
		{0, "svc", "10.0.0.1", "65536", "", "", "", "", ""},
		{0, "svc", "10.0.0.1", "-1", "", "", "", "", ""},
		{0, "svc", "10.0.0.1", "80.5", "", "", "", "", ""},
		{0, "svc", "10.0.0.1", " 80 ", "", "", "", "", ""},
		{0, "svc", "10.0.0.1/24", "80", "", "", "", "", ""},
		{0, "svc", "::1", "80", "", "", "", "", ""},
		{0, "svc", "10.0.0.1", "80", "", "maybe", "", "", ""},
		{0, "svc", "10.0.0.1", "80", "", "yes,on,sometimes", "", "", ""},
		{0, "svc", "10.0.0.1", "80", "", "TRUE,1,false", "", "", ""},
		{0, "@@svc", "10.0.0.1", "80", "", "", "", "", ""},
		{0, "g@@s@@t", "10.0.0.1", "80", "", "", "", "", ""},
		{0, "  ", "10.0.0.1", "80", "", "", "", "", ""},
		{0, " svc ", "10.0.0.1", "80", "", "", "", "", "groupName=other"},
		{0, "svc", "10.0.0.1", "80", "", "", "", "", "clusterName=a+b"},
		{0, "svc", "10.0.0.1", "80", "", "", "", "", "namespaceId=a%2Fb"},
		{0, "svc", "10.0.0.1", "80", "", "", "", "", "namespaceId=dev&groupName=g"},
		{0, "svc", "10.0.0.1", "80", "", "", "", "", "a;b"},
		{0, "svc", "10.0.0.1", "80", "", "", "", "", "%zz"},
		{0, "svc", "10.0.0.1", "80", "", "", "", "", "serviceName=other&ip=10.0.0.3"},
		{1, "svc", "10.0.0.1", "80", "7", "false", `{"b":"2"}`, "", ""},
		{1 | fuzzV2, "svc", "10.0.0.1", "80", "", "true", "", "", ""},
		{1, "svc", "10.0.0.1", "81", "1", "", "", "", ""},
		{1, "svc", "10.0.0.1", "80", "20000", "", "", "", ""},
		{1, "svc", "10.0.0.1", "80", "x", "", "", "", ""},
		{2, "svc", "10.0.0.1", "80", "", "", "", "", ""},
		{2, "DEFAULT_GROUP@@svc", "", "", "", "", "", fuzzBeat, ""},
		{2 | fuzzV2, "svc", "10.0.0.1", "80", "", "", "", "", ""},
		{2, "", "", "", "", "", "", fuzzBeat, ""},
		{2, "svc", "", "", "", "", "", "{", ""},
		{2, "svc", "", "", "", "", "", `{"ip":"10.0.0.2","port":"81"}`, ""},
		{2, "svc", "", "", "", "", "", `{"ip":"10.0.0.2","port":70000}`, ""},
		{2, "svc", "", "", "", "", "", `{"ip":"10.0.0.2","port":81,"cluster":"a b"}`, ""},
		{2, "svc", "", "", "", "", "", `{"ip":"10.0.0.1","port":80,"ephemeral":false}`, ""},
		{2, "svc", "", "", "", "", "", `{"ip":"10.0.0.9","port":9,"weight":1e308,"metadata":{"k":"v"}}`, ""},
		{2, "svc", "10.0.0.1", "65536", "", "", "", "", ""},
		{3, "svc", "", "", "", "", "", "", ""},
		{3, "svc", "", "", "", "", "", "", "clusters=c2"},
		{3 | fuzzV2, "svc", "", "", "", "", "", "", "groupName=DEFAULT_GROUP&clusterName=c1"},
		{3, "svc", "", "", "", "", "", "", "udpPort=55000&clientIP=10.0.0.9&clusters=DEFAULT&app=shop"},
		{3 | fuzzV2, "svc", "", "", "", "", "", "", "port=55001&ip=10.0.0.8"},
		{3, "svc", "", "", "", "perhaps", "", "", ""},
		{3, "svc", "", "", "", "", "", "", "udpPort=x"},
		{3, "svc", "", "", "", "", "", "", "udpPort=65536&clientIP=10.0.0.9"},
		{3, "svc", "", "", "", "", "", "", "udpPort=55001&clientIP=not+an+ip"},
		{3, "svc", "", "", "", "", "", "", "clusters=a,,b"},
		{3, "svc", "", "", "", "", "", "", "clusters=a,b,c,d,e,f,g,h,i"},
		{3, "", "", "", "", "", "", "", "groupName=g"},
		{4, "svc", "10.0.0.1", "80", "", "", "", "", ""},
		{4 | fuzzV2, "svc", "10.0.0.1", "80", "", "", "", "", "clusterName=DEFAULT"},
		{4, "svc", "10.0.0.1", "80", "", "", "", "", "cluster=a+b"},
		{4, "nothing", "10.0.0.1", "80", "", "", "", "", ""},
		{5, "svc", "10.0.0.1", "80", "", "", "", "", "clusterName=whatever"},
		{5 | fuzzV2, "svc", "10.0.0.1", "80", "", "", "", "", ""},
		{5, "svc", "10.0.0.1", "", "", "", "", "", ""},
		{5, "svc", "10.0.0.1", "80", "", ",,false", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.op, s.svc, s.ip, s.port, s.weight, s.bools, s.metadata, s.beat, s.extra)
	}
	f.Fuzz(func(t *testing.T, op uint8, svc, ip, port, weight, bools, metadata, beat, extra string) {
		reg := newRegistry(t)
		h := handler(Config{Registry: reg})
		// Something registered and subscribed, that a request may change,
		// and that a refusal must not.
		for _, p := range []url.Values{
			form("serviceName", "svc", "ip", "10.0.0.1", "port", "80", "metadata", "k=v"),
			form("serviceName", "svc", "ip", "10.0.0.2", "port", "81", "clusterName", "c2", "weight", "2"),
		} {
			if rec := send(h, "POST", namingV1Prefix+"/instance", p); rec.Code != http.StatusOK {
				t.Fatalf("registering %v: %d %s", p, rec.Code, rec.Body)
			}
		}
		if rec := send(h, "GET", namingV1Prefix+"/instance/list", form("serviceName", "svc", "udpPort", "55000", "clientIP", "10.0.0.9")); rec.Code != http.StatusOK {
			t.Fatalf("subscribing: %d %s", rec.Code, rec.Body)
		}
		before := stateOf(reg)

		// The request.
		e := fuzzEndpoints[op&7]
		v := v1
		if op&fuzzV2 != 0 {
			v = v2
		}
		values := url.Values{}
		set := func(name, value string) {
			if value != "" {
				values.Set(name, value)
			}
		}
		set("serviceName", svc)
		set("ip", ip)
		set("port", port)
		set("weight", weight)
		set("metadata", metadata)
		set("beat", beat)
		bs := strings.SplitN(bools, ",", 5)
		boolNames := []string{"enabled", "healthy", "ephemeral", "healthyOnly"}
		if op&fuzzEnable != 0 {
			boolNames[0] = "enable"
		}
		for i, b := range bs[:min(len(bs), len(boolNames))] {
			set(boolNames[i], b)
		}
		encoded := values.Encode()
		if extra != "" {
			if encoded != "" {
				encoded += "&"
			}
			encoded += extra
		}
		var req *http.Request
		if e.method == http.MethodGet || e.method == http.MethodDelete || op&fuzzInQuery != 0 {
			req = httptest.NewRequest(e.method, v.prefix()+e.path, nil)
			req.URL.RawQuery = encoded
		} else {
			req = httptest.NewRequest(e.method, v.prefix()+e.path, strings.NewReader(encoded))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req) // a panic fails the fuzzer
		what := e.method + " " + v.prefix() + e.path + "?" + encoded

		// The answer.
		body := rec.Body.Bytes()
		if rec.Code != http.StatusOK {
			if !(rec.Code >= 400 && rec.Code < 500 || rec.Code == http.StatusNotImplemented) {
				t.Fatalf("%s: status %d (%s), want 200, a 4xx or 501", what, rec.Code, body)
			}
			checkRefusal(t, what, v, rec)
			if after := stateOf(reg); !reflect.DeepEqual(after, before) {
				t.Fatalf("%s: refused (%d %s) but it changed the registry:\n%+v\nwas\n%+v", what, rec.Code, body, after, before)
			}
			return
		}
		data := body
		if v == v2 {
			env := decodeEnvelope(t, what, body)
			if env.Code != codeSuccess || env.Message != "success" {
				t.Fatalf("%s: 200 with the envelope %s", what, body)
			}
			data = env.Data
		}
		switch {
		case e.path == "/instance" && e.method != http.MethodGet: // register, update, deregister
			want := `ok`
			if v == v2 {
				want = `"ok"`
			}
			if string(data) != want {
				t.Fatalf("%s: 200 %q, want %s", what, data, want)
			}
		case e.path == "/instance/beat":
			var b beatAnswer
			if err := strictDecode(data, &b); err != nil || b.ClientBeatInterval <= 0 || !b.LightBeatEnabled ||
				b.Code != beatOK && b.Code != beatNotFound {
				t.Fatalf("%s: 200 %q is not a beat answer (%v)", what, data, err)
			}
		case e.path == "/instance/list":
			var info serviceInfo
			if err := json.Unmarshal(data, &info); err != nil || !strings.Contains(info.Name, "@@") || !info.Valid {
				t.Fatalf("%s: 200 %q is not a ServiceInfo (%v)", what, data, err)
			}
		default: // get
			var d instanceDetail
			if err := strictDecode(data, &d); err != nil || d.IP == "" || d.InstanceID == "" || d.Metadata == nil {
				t.Fatalf("%s: 200 %q is not an instance (%v)", what, data, err)
			}
		}
		if e.method == http.MethodPost {
			checkRegistered(t, what, h, reg, req)
		}
	})
}

// strictDecode decodes data into v, refusing fields v does not have.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func decodeEnvelope(t *testing.T, what string, body []byte) v2Body {
	t.Helper()
	var b v2Body
	if err := json.Unmarshal(body, &b); err != nil || b.Data == nil {
		t.Fatalf("%s: answer %q is not the v2 envelope (%v)", what, body, err)
	}
	return b
}

// checkRefusal checks a refusal carries a message: v1 as text, v2 in the
// envelope with an error code and its message.
func checkRefusal(t *testing.T, what string, v apiVersion, rec *httptest.ResponseRecorder) {
	t.Helper()
	body := rec.Body.Bytes()
	if v == v1 {
		if len(strings.TrimSpace(string(body))) == 0 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
			t.Fatalf("%s: refused %d without a message: %q (%s)", what, rec.Code, body, rec.Header().Get("Content-Type"))
		}
		return
	}
	env := decodeEnvelope(t, what, body)
	var detail string
	if err := json.Unmarshal(env.Data, &detail); err != nil || detail == "" || env.Code == codeSuccess ||
		env.Message == "" || env.Message != codeMessages[env.Code] {
		t.Fatalf("%s: refused %d with the envelope %s", what, rec.Code, body)
	}
}

// checkRegistered checks that the accepted registration req (its parameters
// parsed by the server) is what instance/list and GET /instance
// read back: its address, cluster, weight, health, enablement and metadata.
func checkRegistered(t *testing.T, what string, h http.Handler, reg *naming.Registry, req *http.Request) {
	t.Helper()
	p := params(req.Form)
	svc, err := p.service()
	if err != nil {
		t.Fatalf("%s: accepted, but its service does not read: %v", what, err)
	}
	in, err := p.instance()
	if err != nil {
		t.Fatalf("%s: accepted, but its instance does not read: %v", what, err)
	}
	svc, err = reg.Limits().NormalizeService(svc)
	if err != nil {
		t.Fatalf("%s: accepted, but its service is not one: %v", what, err)
	}
	cluster := in.Cluster
	if cluster == "" {
		cluster = naming.DefaultCluster
	}
	md := in.Metadata
	if md == nil {
		md = map[string]string{}
	}
	grouped := svc.GroupedName()
	id := in.IP + "#" + strconv.Itoa(in.Port) + "#" + cluster + "#" + grouped
	at := url.Values{"serviceName": {svc.Name}, "groupName": {svc.Group}, "namespaceId": {svc.Namespace}}

	rec := send(h, http.MethodGet, namingV1Prefix+"/instance/list", at)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: accepted, but its service does not list: %d %s", what, rec.Code, rec.Body)
	}
	info := decodeInfo(t, rec.Body.Bytes())
	var found int
	for _, host := range info.Hosts {
		if host.IP != in.IP || host.Port != in.Port {
			continue
		}
		found++
		if host.InstanceID != id || host.ClusterName != cluster || host.Weight != in.Weight || host.Healthy != in.Healthy ||
			!host.Enabled || !host.Ephemeral || host.ServiceName != grouped || !maps.Equal(host.Metadata, md) {
			t.Fatalf("%s: accepted as %+v (cluster %s), listed as %+v", what, in, cluster, host)
		}
	}
	if want := map[bool]int{true: 1, false: 0}[in.Enabled]; found != want || info.Name != grouped {
		t.Fatalf("%s: accepted (enabled %v), listed %d times in %s: %s", what, in.Enabled, found, info.Name, rec.Body)
	}

	q := maps.Clone(at)
	q.Set("ip", in.IP)
	q.Set("port", strconv.Itoa(in.Port))
	q.Set("cluster", cluster)
	rec = send(h, http.MethodGet, namingV1Prefix+"/instance", q)
	var d instanceDetail
	if rec.Code != http.StatusOK || strictDecode(rec.Body.Bytes(), &d) != nil {
		t.Fatalf("%s: accepted, but GET /instance answers %d %s", what, rec.Code, rec.Body)
	}
	if want := (instanceDetail{Service: grouped, IP: in.IP, Port: in.Port, ClusterName: cluster, Weight: in.Weight,
		Healthy: in.Healthy, InstanceID: id, Metadata: md}); !reflect.DeepEqual(d, want) {
		t.Fatalf("%s: accepted, GET /instance answers\n%+v\nwant\n%+v", what, d, want)
	}
}
