package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/core/remote/serveropts"
	"github.com/sextantd/sextant/proto/nacos"
)

// fuzzResponseTypes is the response class of each request type served.
var fuzzResponseTypes = map[string]string{
	"ServerCheckRequest":      "ServerCheckResponse",
	"HealthCheckRequest":      "HealthCheckResponse",
	"InstanceRequest":         "InstanceResponse",
	"BatchInstanceRequest":    "BatchInstanceResponse",
	"SubscribeServiceRequest": "SubscribeServiceResponse",
	"ServiceQueryRequest":     "QueryServiceResponse",
	"ServiceListRequest":      "ServiceListResponse",
}

// fuzzRefusalCodes are the errorCodes a client's bad request may get: never
// 500, which is what a handler's panic (recovered by dispatch) or any other
// server fault is answered with.
var fuzzRefusalCodes = map[int]bool{codeInvalidParam: true, codeNoHandler: true, codeBadBody: true, codeNotRegistered: true}

// fuzzRegistryState is what the registry holds, as its readers see it.
type fuzzRegistryState struct {
	Stats   naming.Stats
	Clients map[string]naming.ClientData
}

func fuzzStateOf(r *naming.Registry) fuzzRegistryState {
	s := fuzzRegistryState{Stats: r.Stats(), Clients: map[string]naming.ClientData{}}
	r.EachClient(func(d naming.ClientData) bool {
		s.Clients[d.ID] = d
		return true
	})
	return s
}

// fuzzAnswer is a response as a client reads it.
type fuzzAnswer struct {
	typ string
	responseBase
	ServiceInfo  json.RawMessage `json:"serviceInfo"`
	Count        int             `json:"count"`
	ServiceNames []string        `json:"serviceNames"`
	raw          []byte
}

// fuzzServe serves one unary request as the gRPC handler does.
func fuzzServe(t *testing.T, s *Server, connID, typ string, body []byte, headers map[string]string) fuzzAnswer {
	t.Helper()
	ctx := withConnectionID(context.Background(), connID)
	p := payloadOf(s.serveRequest(ctx, &nacos.Payload{Metadata: &nacos.Metadata{Type: typ, Headers: headers}, Body: &anypb.Any{Value: body}}))
	a := fuzzAnswer{typ: p.GetMetadata().GetType(), raw: p.GetBody().GetValue()}
	if !json.Valid(a.raw) {
		t.Fatalf("%s %q: the %s body is not valid JSON: %q", typ, body, a.typ, a.raw)
	}
	if err := json.Unmarshal(a.raw, &a); err != nil {
		t.Fatalf("%s %q: the %s body does not decode: %v: %s", typ, body, a.typ, err, a.raw)
	}
	return a
}

// fuzzHost is an instance of a ServiceInfo as a client reads it.
type fuzzHost struct {
	InstanceID  string            `json:"instanceId"`
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	Ephemeral   bool              `json:"ephemeral"`
	ClusterName string            `json:"clusterName"`
	Metadata    map[string]string `json:"metadata"`
}

// fuzzCheckQueried checks that a query of svc, over the wire, returns each
// of insts (normalised) as registered: the enabled ones, and only those.
func fuzzCheckQueried(t *testing.T, s *Server, svc naming.Service, insts []naming.Instance) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"requestId": "q", "namespace": svc.Namespace, "groupName": svc.Group, "serviceName": svc.Name})
	a := fuzzServe(t, s, "c1", "ServiceQueryRequest", body, nil)
	if a.typ != "QueryServiceResponse" || !a.Success {
		t.Fatalf("query of the registered %v: %s %s", svc, a.typ, a.raw)
	}
	var info struct {
		Name, GroupName string
		Hosts           []fuzzHost
	}
	if err := json.Unmarshal(a.ServiceInfo, &info); err != nil || info.Name != svc.Name || info.GroupName != svc.Group {
		t.Fatalf("query of %v: serviceInfo %s (%v)", svc, a.ServiceInfo, err)
	}
	for _, inst := range insts {
		i := -1
		for j, h := range info.Hosts {
			if h.IP == inst.IP && h.Port == inst.Port && h.ClusterName == inst.Cluster {
				i = j
			}
		}
		if (i >= 0) != inst.Enabled {
			t.Fatalf("query of %v: %+v is in the hosts %v, want %v: %s", svc, inst, i >= 0, inst.Enabled, a.ServiceInfo)
		}
		if i < 0 {
			continue
		}
		h := info.Hosts[i]
		md := inst.Metadata
		if md == nil {
			md = map[string]string{}
		}
		if h.InstanceID != inst.ID || h.Weight != inst.Weight || inst.Healthy && !h.Healthy || !h.Ephemeral ||
			!maps.Equal(h.Metadata, md) {
			t.Fatalf("query of %v returned %+v, want %+v", svc, h, inst)
		}
	}
}

// fuzzHeaders decodes "key:value" lines.
func fuzzHeaders(s string) map[string]string {
	if s == "" {
		return nil
	}
	h := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		k, v, _ := strings.Cut(line, ":")
		h[k] = v
	}
	return h
}

// FuzzDispatch sends a request — its type, JSON body and headers — through
// serveRequest, the function the gRPC handler calls, to a real registry, on
// a set-up connection or one that is not. Every answer is valid JSON of the
// type's response class, or an ErrorResponse with code 400, 302, 502 or 301
// (never 500: a panic in a handler is recovered as 500); a refused request
// changes nothing; an accepted registration is queried back, normalised. A
// ConnectionSetupRequest body is also fed to the stream's setup.
func FuzzDispatch(f *testing.F) {
	const instance = `{"requestId":"9","serviceName":"s","type":"registerInstance","instance":{"ip":"10.0.0.1","port":80,"weight":1,"enabled":true,"ephemeral":true}}`
	register := func(edit string) string {
		return `{"requestId":"1","serviceName":"s","type":"registerInstance","instance":{"ip":"10.0.0.1","port":80,"weight":1,"enabled":true,"ephemeral":true` + edit + `}}`
	}
	seeds := []struct {
		typ, body, headers string
		setUp              bool
	}{
		// remote_test.go
		{"ServerCheckRequest", `{}`, "", false},
		{"HealthCheckRequest", `{"requestId":"1"}`, "", true},
		{"InstanceRequest", instance, "", true},
		{"InstanceRequest", instance, "", false},
		{"ConfigQueryRequest", `{}`, "", true},
		{"InstanceRequest", `{"requestId":`, "", true},
		{"InstanceRequest", `{"requestId":"3","instance":{"port":"80"}}`, "", true},
		{"InstanceRequest", strings.Replace(instance, `"serviceName":"s"`, `"serviceName":"a@@b"`, 1), "", true},
		{"InstanceRequest", register(`,"instanceId":"a\u0000b"`), "", true},
		{"InstanceRequest", register(`,"metadata":{"k":"\u001b[2J"}`), "", true},
		{"InstanceRequest", register(`,"clusterName":"c1","healthy":true,"metadata":{"version":"1","preserved.heart.beat.interval":"1000"}`), "", true},
		{"InstanceRequest", register(`,"weight":1e400`), "", true},
		{"InstanceRequest", register(`,"port":70000`), "", true},
		{"InstanceRequest", strings.Replace(register(""), "registerInstance", "deregisterInstance", 1), "", true},
		{"InstanceRequest", strings.Replace(register(""), "registerInstance", "updateInstance", 1), "", true},
		{"InstanceRequest", strings.Replace(register(""), `"ephemeral":true`, `"ephemeral":false`, 1), "", true},
		{"ServiceListRequest", `{"requestId":"2","pageNo":9223372036854775807,"pageSize":10000}`, "", true},
		{"ServiceListRequest", `{"requestId":"2","pageNo":2,"pageSize":1}`, "", true},
		{"ServiceListRequest", `{"requestId":"2","pageNo":0,"pageSize":10}`, "", true},
		{"ServiceListRequest", `{"requestId":"2","pageNo":-9223372036854775808,"pageSize":10}`, "", true},
		{"ServiceListRequest", `{"requestId":"2","pageNo":1,"pageSize":10001}`, "", true},
		{"ServiceListRequest", `{"requestId":"2","pageNo":1e30,"pageSize":10}`, "", true},
		{"SubscribeServiceRequest", `{"requestId":"3","serviceName":"s","subscribe":true,"clusters":"` + strings.Repeat("a,", 20) + `a"}`, "", true},
		{"ServiceQueryRequest", `{"requestId":"4","serviceName":"s","cluster":"` + strings.Repeat("a", 600) + `"}`, "", true},
		// cmd/sextant/e2e/wire
		{"InstanceRequest", `{"type": registerInstance`, "", true},
		{"InstanceRequest", `[1,2,3]`, "", true},
		{"BatchInstanceRequest", `{"requestId":"5","namespace":"dev","groupName":"g","serviceName":"b","type":"batchRegisterInstance","instances":[` +
			`{"ip":"10.9.9.1","port":9000,"weight":1,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"DEFAULT","metadata":{}},` +
			`{"ip":"10.9.9.2","port":9000,"weight":1,"healthy":true,"enabled":false,"ephemeral":true,"clusterName":"DEFAULT","metadata":{}}]}`, "", true},
		{"BatchInstanceRequest", `{"requestId":"5","serviceName":"b","type":"batchRegisterInstance","instances":[` +
			`{"ip":"10.9.9.1","port":9000,"ephemeral":true},{"ip":"10.9.9.1","port":9000,"ephemeral":true}]}`, "", true},
		{"BatchInstanceRequest", `{"requestId":"5","serviceName":"b","type":"batchRegisterInstance","instances":[]}`, "", true},
		{"SubscribeServiceRequest", `{"requestId":"6","namespace":"","groupName":"DEFAULT_GROUP","serviceName":"a","subscribe":true,"clusters":""}`, "app:wire-test", true},
		{"SubscribeServiceRequest", `{"requestId":"6","serviceName":"a","subscribe":true,"clusters":"a,,b"}`, "", true},
		{"SubscribeServiceRequest", `{"requestId":"6","serviceName":"base","subscribe":false,"clusters":"DEFAULT"}`, "app:x\nother:y", true},
		{"ServiceQueryRequest", `{"requestId":"7","namespace":"public","groupName":"DEFAULT_GROUP","serviceName":"base","cluster":"","healthyOnly":false}`, "", true},
		{"HealthCheckRequest", `{"module":"internal"}`, "", true},
		{"ConnectionSetupRequest", `{"clientVersion":"test","labels":{"source":"sdk","module":"naming"}}`, "", false},
		{"ConnectionSetupRequest", `{"clientVersion":1}`, "", false},
		{"ClientDetectionRequest", `{"module":"internal"}`, "", true},
	}
	for _, s := range seeds {
		f.Add(s.typ, []byte(s.body), s.headers, s.setUp)
	}
	f.Fuzz(func(t *testing.T, typ string, body []byte, headers string, setUp bool) {
		var logs bytes.Buffer
		registry := naming.NewRegistry(naming.Config{
			Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10,
				MaxServicesPerClient: 10, MaxSubscriptionsPerClient: 10, MaxClustersPerFilter: 8},
			Bus: notify.New(notify.Config{}),
		})
		s := New(Config{MaxMessageSize: 1 << 20, Registry: registry, Metrics: prometheus.NewRegistry(),
			Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Error})})
		s.SetReady(true)
		c := newConn("c1", "", time.Now(), func(serveropts.Message) error { return nil }, func(error) {})
		if err := s.register(c, []byte(`{"clientVersion":"test"}`)); err != nil {
			t.Fatal(err)
		}
		defer c.close()
		if a := fuzzServe(t, s, "c1", "InstanceRequest", []byte(strings.Replace(instance, `"s"`, `"base"`, 1)), nil); !a.Success {
			t.Fatalf("registering the base instance: %s", a.raw)
		}
		connID := "c9" // never set up
		if setUp {
			connID = "c1"
		}
		hdrs := fuzzHeaders(headers)

		// The stream's setup.
		if typ == typeConnectionSetup {
			before := fuzzStateOf(registry)
			c2 := newConn("c2", "", time.Now(), func(serveropts.Message) error { return nil }, func(error) {})
			defer c2.close()
			if err := s.register(c2, body); err != nil {
				if after := fuzzStateOf(registry); !reflect.DeepEqual(before, after) || s.conn("c2") != nil {
					t.Fatalf("setup %q refused (%v) but changed the registry or the connections", body, err)
				}
			} else if s.conn("c2") == nil || registry.Stats().Clients != before.Stats.Clients+1 {
				t.Fatalf("setup %q accepted, but connection c2 is not registered", body)
			}
		}

		before := fuzzStateOf(registry)
		a := fuzzServe(t, s, connID, typ, body, hdrs)
		if strings.Contains(logs.String(), "panicked") {
			t.Fatalf("%s %q: a handler panicked: %s", typ, body, logs.String())
		}
		wantType, served := fuzzResponseTypes[typ]
		if h, ok := s.handlers[typ]; ok && !served {
			wantType, served = h.respType, true
		}
		switch {
		case a.typ == typeErrorResponse:
			if a.ResultCode != codeFail || a.Success || !fuzzRefusalCodes[a.ErrorCode] {
				t.Fatalf("%s %q: error %d/%d, want one of 400, 302, 502, 301: %s", typ, body, a.ResultCode, a.ErrorCode, a.raw)
			}
			wantCode := codeInvalidParam
			switch {
			case typ == typeServerCheck:
				t.Fatalf("ServerCheckRequest refused: %s", a.raw)
			case !served:
				wantCode = codeNoHandler
			case !setUp:
				wantCode = codeNotRegistered
			}
			if a.ErrorCode != wantCode && !(wantCode == codeInvalidParam && a.ErrorCode == codeBadBody) {
				t.Fatalf("%s %q on a connection set up %v: error %d, want %d: %s", typ, body, setUp, a.ErrorCode, wantCode, a.raw)
			}
			if after := fuzzStateOf(registry); !reflect.DeepEqual(before, after) {
				t.Fatalf("%s %q was refused (%s) but changed the registry:\nbefore %+v\nafter  %+v", typ, body, a.raw, before, after)
			}
			return
		case !served || !setUp && typ != typeServerCheck:
			t.Fatalf("%s %q on a connection set up %v: answered %s, want an ErrorResponse", typ, body, setUp, a.raw)
		case a.typ != wantType || a.ResultCode != codeOK || a.ErrorCode != 0 || !a.Success:
			t.Fatalf("%s %q: answered %s %s, want a successful %s", typ, body, a.typ, a.raw, wantType)
		}

		// Accepted.
		var id requestBase
		if typ != typeServerCheck && (json.Unmarshal(body, &id) != nil || id.RequestID != a.RequestID) {
			t.Fatalf("%s %q: requestId %q not echoed", typ, body, a.RequestID)
		}
		limits := registry.Limits()
		switch typ {
		case "InstanceRequest":
			var req instanceRequest
			if err := json.Unmarshal(body, &req); err != nil || req.Instance == nil {
				t.Fatalf("InstanceRequest %q accepted: %v", body, err)
			}
			svc, err := limits.NormalizeService(req.service())
			if err != nil {
				t.Fatalf("InstanceRequest %q accepted with %v", body, err)
			}
			inst, err := limits.NormalizeInstance(svc, "instance", req.Instance.instance())
			if err != nil {
				t.Fatalf("InstanceRequest %q accepted with %v", body, err)
			}
			if req.Type == opRegister {
				fuzzCheckQueried(t, s, svc, []naming.Instance{inst})
			}
		case "BatchInstanceRequest":
			var req batchInstanceRequest
			if err := json.Unmarshal(body, &req); err != nil {
				t.Fatalf("BatchInstanceRequest %q accepted: %v", body, err)
			}
			svc, err := limits.NormalizeService(req.service())
			if err != nil {
				t.Fatalf("BatchInstanceRequest %q accepted with %v", body, err)
			}
			insts := make([]naming.Instance, len(req.Instances))
			for i := range req.Instances {
				if insts[i], err = limits.NormalizeInstance(svc, "instances", req.Instances[i].instance()); err != nil {
					t.Fatalf("BatchInstanceRequest %q accepted with %v", body, err)
				}
			}
			fuzzCheckQueried(t, s, svc, insts)
		case "SubscribeServiceRequest", "ServiceQueryRequest":
			var info struct{ Name string }
			if err := json.Unmarshal(a.ServiceInfo, &info); err != nil || info.Name == "" {
				t.Fatalf("%s %q: serviceInfo %s (%v)", typ, body, a.ServiceInfo, err)
			}
		case "ServiceListRequest":
			var req serviceListRequest
			if err := json.Unmarshal(body, &req); err != nil {
				t.Fatalf("ServiceListRequest %q accepted: %v", body, err)
			}
			if a.ServiceNames == nil || len(a.ServiceNames) > req.PageSize || len(a.ServiceNames) > a.Count {
				t.Fatalf("ServiceListRequest %q: %s", body, a.raw)
			}
		}
	})
}
