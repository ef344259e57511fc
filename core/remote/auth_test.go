package remote

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/proto/nacos"
)

// newAuthServer returns a server with auth on, its users: admin (global
// admin), app (rw on public), reader (r on public) and other (rw on other).
func newAuthServer(t *testing.T) (*Server, *auth.Authority) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h := string(hash)
	a, err := auth.New(auth.Config{
		Secret: []byte("0123456789abcdef0123456789abcdef"),
		TTL:    time.Hour,
		Users: []auth.User{
			{Name: "admin", PasswordHash: h, GlobalAdmin: true},
			{Name: "app", PasswordHash: h, Roles: []string{"public-rw"}},
			{Name: "reader", PasswordHash: h, Roles: []string{"public-r"}},
			{Name: "other", PasswordHash: h, Roles: []string{"other-rw"}},
		},
		Roles: []auth.Role{
			{Name: "public-rw", Permissions: []auth.Permission{{Namespace: "public", Access: auth.ReadWrite}}},
			{Name: "public-r", Permissions: []auth.Permission{{Namespace: "public", Access: auth.Read}}},
			{Name: "other-rw", Permissions: []auth.Permission{{Namespace: "other", Access: auth.ReadWrite}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	registry := naming.NewRegistry(naming.Config{
		Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10,
			MaxServicesPerClient: 10, MaxSubscriptionsPerClient: 10, MaxClustersPerFilter: 8},
		Bus: notify.New(notify.Config{}),
	})
	s := New(Config{MaxMessageSize: 1 << 20, Registry: registry, Logger: hclog.NewNullLogger(), Metrics: prometheus.NewRegistry(), Auth: a})
	s.SetReady(true)
	return s, a
}

// serveWith serves one unary request with headers and returns the response
// type and decoded body.
func serveWith(s *Server, connID, typ string, headers map[string]string, body string) (string, map[string]any) {
	ctx := withConnectionID(context.Background(), connID)
	p := payloadOf(s.serveRequest(ctx, &nacos.Payload{Metadata: &nacos.Metadata{Type: typ, Headers: headers}, Body: &anypb.Any{Value: []byte(body)}}))
	var decoded map[string]any
	_ = json.Unmarshal(p.GetBody().GetValue(), &decoded)
	return p.GetMetadata().GetType(), decoded
}

func sign(t *testing.T, a *auth.Authority, user string, exp time.Time) string {
	t.Helper()
	tok, err := a.Sign(user, exp)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAuthRefusesAndChangesNothing(t *testing.T) {
	s, a := newAuthServer(t)
	addConn(t, s, "c1")
	hour := time.Now().Add(time.Hour)
	token := func(user string) map[string]string { return map[string]string{"accessToken": sign(t, a, user, hour)} }

	// A registration to read back, made by a user allowed to.
	const register = `{"requestId":"1","serviceName":"s","type":"registerInstance","instance":{"ip":"10.0.0.1","port":80,"weight":1,"enabled":true,"ephemeral":true}}`
	if typ, body := serveWith(s, "c1", "InstanceRequest", token("app"), register); typ != "InstanceResponse" {
		t.Fatalf("register with app's token: %s %v", typ, body)
	}
	before := s.registry.Stats()
	if before.Instances != 1 {
		t.Fatalf("registry after the registration: %+v", before)
	}

	otherSecret, _ := auth.New(auth.Config{Secret: []byte("another secret, also 32 bytes long")})
	forged, _ := otherSecret.Sign("admin", hour)
	ns := func(body, namespace string) string {
		return strings.Replace(body, `"serviceName"`, `"namespace":"`+namespace+`","serviceName"`, 1)
	}
	const (
		deregister = `{"requestId":"2","serviceName":"s","type":"deregisterInstance","instance":{"ip":"10.0.0.1","port":80,"ephemeral":true}}`
		batch      = `{"requestId":"3","serviceName":"s","type":"batchRegisterInstance","instances":[{"ip":"10.0.0.2","port":80,"weight":1,"enabled":true,"ephemeral":true}]}`
		subscribe  = `{"requestId":"4","serviceName":"s","subscribe":true}`
		query      = `{"requestId":"5","serviceName":"s"}`
		list       = `{"requestId":"6","pageNo":1,"pageSize":10}`
	)
	tests := []struct {
		name    string
		typ     string
		headers map[string]string
		body    string
		want    string // in the message
	}{
		{"no token", "InstanceRequest", nil, deregister, "no access token"},
		{"empty token", "InstanceRequest", map[string]string{"accessToken": ""}, deregister, "no access token"},
		{"token under another header", "InstanceRequest", map[string]string{"Authorization": token("app")["accessToken"]}, deregister, "no access token"},
		{"garbage token", "InstanceRequest", map[string]string{"accessToken": "x.y.z"}, deregister, "invalid access token"},
		{"another secret's token", "InstanceRequest", map[string]string{"accessToken": forged}, deregister, "invalid access token"},
		{"expired token", "InstanceRequest", map[string]string{"accessToken": sign(t, a, "app", time.Now().Add(-time.Second))}, deregister, "expired"},
		{"unknown user", "InstanceRequest", token("ghost"), deregister, "invalid access token"},
		{"Nacos-Server identity", "InstanceRequest", map[string]string{"User-Agent": "Nacos-Server", "user-agent": "Nacos-Server"}, deregister, "no access token"},
		{"read-only deregisters", "InstanceRequest", token("reader"), deregister, `user "reader" has no write permission on namespace "public"`},
		{"read-only batch-registers", "BatchInstanceRequest", token("reader"), batch, "no write permission"},
		{"other namespace's user deregisters", "InstanceRequest", token("other"), deregister, `user "other" has no write permission on namespace "public"`},
		{"public named explicitly", "InstanceRequest", token("other"), ns(deregister, "public"), `namespace "public"`},
		{"app in another namespace", "InstanceRequest", token("app"), ns(register, "other"), `user "app" has no write permission on namespace "other"`},
		{"other namespace's user subscribes", "SubscribeServiceRequest", token("other"), subscribe, "no read permission"},
		{"other namespace's user queries", "ServiceQueryRequest", token("other"), query, "no read permission"},
		{"other namespace's user lists", "ServiceListRequest", token("other"), list, "no read permission"},
		{"no token subscribes", "SubscribeServiceRequest", nil, subscribe, "no access token"},
	}
	for _, tc := range tests {
		typ, body := serveWith(s, "c1", tc.typ, tc.headers, tc.body)
		// As Nacos's auth filter: the request's own response type, failed.
		wantType := strings.Replace(tc.typ, "Request", "Response", 1)
		if tc.typ == "ServiceQueryRequest" {
			wantType = "QueryServiceResponse"
		}
		if typ != wantType || body["resultCode"] != 500.0 || body["errorCode"] != 403.0 || body["success"] != false ||
			!strings.Contains(body["message"].(string), tc.want) {
			t.Errorf("%s: %s %v, want %s 403 containing %q", tc.name, typ, body, wantType, tc.want)
		}
		if after := s.registry.Stats(); after != before {
			t.Errorf("%s changed the registry: %+v, was %+v", tc.name, after, before)
		}
	}
}

func TestAuthAllows(t *testing.T) {
	s, a := newAuthServer(t)
	addConn(t, s, "c1")
	hour := time.Now().Add(time.Hour)
	token := func(user string) map[string]string { return map[string]string{"accessToken": sign(t, a, user, hour)} }
	const (
		register  = `{"requestId":"1","serviceName":"s","type":"registerInstance","instance":{"ip":"10.0.0.1","port":80,"weight":1,"enabled":true,"ephemeral":true}}`
		subscribe = `{"requestId":"4","serviceName":"s","subscribe":true}`
		query     = `{"requestId":"5","namespace":"public","serviceName":"s"}`
		list      = `{"requestId":"6","pageNo":1,"pageSize":10}`
	)
	tests := []struct {
		name, typ string
		headers   map[string]string
		body      string
		wantType  string
	}{
		{"health check needs no token", "HealthCheckRequest", nil, `{"requestId":"0"}`, "HealthCheckResponse"},
		{"server check needs no token", "ServerCheckRequest", nil, `{}`, "ServerCheckResponse"},
		{"app registers", "InstanceRequest", token("app"), register, "InstanceResponse"},
		{"reader subscribes", "SubscribeServiceRequest", token("reader"), subscribe, "SubscribeServiceResponse"},
		{"reader queries", "ServiceQueryRequest", token("reader"), query, "QueryServiceResponse"},
		{"reader lists", "ServiceListRequest", token("reader"), list, "ServiceListResponse"},
		{"other registers in its namespace", "InstanceRequest", token("other"), strings.Replace(register, `"serviceName"`, `"namespace":"other","serviceName"`, 1), "InstanceResponse"},
		{"admin registers anywhere", "InstanceRequest", token("admin"), strings.Replace(register, `"serviceName"`, `"namespace":"third","serviceName"`, 1), "InstanceResponse"},
	}
	for _, tc := range tests {
		typ, body := serveWith(s, "c1", tc.typ, tc.headers, tc.body)
		if typ != tc.wantType || body["resultCode"] != 200.0 {
			t.Errorf("%s: %s %v, want %s", tc.name, typ, body, tc.wantType)
		}
	}
	if st := s.registry.Stats(); st.Instances != 3 || st.Subscribers != 1 {
		t.Errorf("registry: %+v, want 3 instances and 1 subscriber", st)
	}
}

func TestAuthRefusesRequestTypesWithoutAPermission(t *testing.T) {
	s, a := newAuthServer(t)
	addConn(t, s, "c1")
	s.handlers["NewRequest"] = handle[healthCheckRequest]("NewResponse", func(context.Context, *call, *healthCheckRequest) (response, error) {
		t.Error("the handler ran")
		return &healthCheckResponse{}, nil
	})
	typ, body := serveWith(s, "c1", "NewRequest", map[string]string{"accessToken": sign(t, a, "admin", time.Now().Add(time.Hour))}, `{}`)
	if typ != "NewResponse" || body["errorCode"] != 403.0 || !strings.Contains(body["message"].(string), "no permission covers it") {
		t.Errorf("a request type with no permission: %s %v", typ, body)
	}
	// Every handler is open or has a permission.
	for typ := range s.requestHandlers() {
		if _, ok := requestAccess[typ]; !ok && !openRequests[typ] {
			t.Errorf("request type %s is neither open nor in requestAccess", typ)
		}
	}
}

func TestAuthRefusalBeforeSetupIs301(t *testing.T) {
	s, _ := newAuthServer(t)
	// As in Nacos, an unknown connection is told so before its token is read.
	if typ, body := serveWith(s, "c9", "InstanceRequest", nil, `{}`); typ != "ErrorResponse" || body["errorCode"] != 301.0 {
		t.Errorf("request on a connection not set up: %s %v", typ, body)
	}
}
