package nacossdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	nacosgrpc "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// authSecret signs the tokens of the servers these tests start.
const authSecret = "e2e-token-secret-0123456789abcdef"

// startAuthServer runs a server with auth on and the users admin (global
// admin), app (rw on public) and dev (rw on namespace dev only), each with
// the password "<name>-pw".
func startAuthServer(t *testing.T) *servertest.Server {
	t.Helper()
	hash := func(password string) string { return servertest.PasswordHash(t, password) }
	config := `
auth {
  enabled = true
  users = [
    { name = "admin", password_hash = "` + hash("admin-pw") + `", global_admin = true },
    { name = "app", password_hash = "` + hash("app-pw") + `", roles = ["public-rw"] },
    { name = "dev", password_hash = "` + hash("dev-pw") + `", roles = ["dev-rw"] },
  ]
  roles = [
    { name = "public-rw", permissions = [{ namespace = "public", access = "rw" }] },
    { name = "dev-rw", permissions = [{ namespace = "dev", access = "rw" }] },
  ]
}
`
	return servertest.Start(t, servertest.Options{
		Config: config,
		Env:    []string{"SEXTANT_PUSH_DELAY=20ms", "SEXTANT_AUTH_TOKEN_SECRET=" + authSecret},
	})
}

// newAuthClient returns an SDK naming client of srv in namespace ns that logs
// in as user with password, closed when the test ends.
func newAuthClient(t *testing.T, srv *servertest.Server, ns, user, password string) naming_client.INamingClient {
	t.Helper()
	client, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: constant.NewClientConfig(
			constant.WithNamespaceId(ns),
			constant.WithUsername(user),
			constant.WithPassword(password),
			constant.WithTimeoutMs(3000),
			constant.WithNotLoadCacheAtStart(true),
			constant.WithUpdateCacheWhenEmpty(true),
			constant.WithLogDir(t.TempDir()),
			constant.WithCacheDir(t.TempDir()),
			constant.WithLogLevel("error"),
		),
		ServerConfigs: []constant.ServerConfig{*constant.NewServerConfig("127.0.0.1", uint64(srv.HTTPPort))},
	})
	if err != nil {
		t.Fatalf("creating a naming client: %v", err)
	}
	t.Cleanup(client.CloseClient)
	return client
}

// register registers an ephemeral instance and returns the SDK's error, or
// one for a registration that was not successful.
func register(client naming_client.INamingClient, svc, ip string) error {
	ok, err := client.RegisterInstance(vo.RegisterInstanceParam{
		Ip: ip, Port: 80, ServiceName: svc, Weight: 1, Enable: true, Healthy: true, Ephemeral: true,
	})
	if err == nil && !ok {
		return errors.New("the registration was not successful")
	}
	return err
}

func refusals(t *testing.T, srv *servertest.Server, typ string) float64 {
	return srv.Metric(t, `sextant_client_requests_total{code="403",type="`+typ+`"}`)
}

func TestAuthLoginRegisterSubscribePush(t *testing.T) {
	t.Parallel()
	srv := startAuthServer(t)
	svc := serviceName(t)
	provider := newAuthClient(t, srv, "", "app", "app-pw")
	consumer := newAuthClient(t, srv, "public", "admin", "admin-pw")

	w := nacostest.Subscribe(t, consumer, vo.SubscribeParam{ServiceName: svc})
	if err := register(provider, svc, "10.0.0.1"); err != nil {
		t.Fatalf("registering with app's credentials: %v\n%s", err, srv.Logs())
	}
	if got := nacostest.Addresses(w.AwaitCount(t, 1)); got[0] != "10.0.0.1:80" {
		t.Fatalf("pushed %v", got)
	}
	if n := refusals(t, srv, "InstanceRequest") + refusals(t, srv, "SubscribeServiceRequest"); n != 0 {
		t.Errorf("%v requests were refused", n)
	}
}

func TestAuthWrongPasswordIsRefused(t *testing.T) {
	t.Parallel()
	srv := startAuthServer(t)
	svc := serviceName(t)
	// The login fails (the SDK logs it and goes on without a token), and so
	// does every call. A refusal is the request's own response type with
	// code 403, as Nacos answers it, so the SDK neither retries nor reconnects:
	// it reports a registration that failed, and a subscription as made (the
	// SDK does not look at that answer's code), though the server refused it.
	client := newAuthClient(t, srv, "", "app", "wrong-pw")
	if err := register(client, svc, "10.0.0.1"); err == nil {
		t.Fatal("registered with a wrong password")
	}
	_ = client.Subscribe(&vo.SubscribeParam{ServiceName: svc, SubscribeCallback: func([]model.Instance, error) {}})
	if n := srv.Metric(t, "sextant_subscribers"); n != 0 {
		t.Errorf("%v subscribers recorded", n)
	}
	if refusals(t, srv, "InstanceRequest") == 0 || refusals(t, srv, "SubscribeServiceRequest") == 0 {
		t.Errorf("the calls did not fail with 403:\n%s", srv.Logs())
	}
	if n := srv.Metric(t, "sextant_instances"); n != 0 {
		t.Errorf("%v instances registered", n)
	}

	// The login endpoint says 403 without saying which of the two is wrong.
	for _, c := range [][2]string{{"app", "wrong-pw"}, {"nobody", "app-pw"}} {
		code, body := login(t, srv, c[0], c[1])
		if code != http.StatusForbidden || body != "invalid username or password\n" {
			t.Errorf("login %s/%s: %d %q", c[0], c[1], code, body)
		}
	}
}

func TestAuthOtherNamespacesRoleIsRefusedForPublic(t *testing.T) {
	t.Parallel()
	srv := startAuthServer(t)
	svc := serviceName(t)
	inPublic := newAuthClient(t, srv, "", "dev", "dev-pw")
	if err := register(inPublic, svc, "10.0.0.1"); err == nil {
		t.Fatal("dev registered in public")
	}
	if refusals(t, srv, "InstanceRequest") == 0 {
		t.Errorf("the registration did not fail with 403:\n%s", srv.Logs())
	}
	// In its own namespace, the same user may.
	inDev := newAuthClient(t, srv, "dev", "dev", "dev-pw")
	if err := register(inDev, svc, "10.0.0.2"); err != nil {
		t.Fatalf("dev registering in dev: %v", err)
	}
	if n := srv.Metric(t, "sextant_instances"); n != 1 {
		t.Errorf("%v instances, want the one in dev", n)
	}
}

func TestAuthRawWire(t *testing.T) {
	t.Parallel()
	srv := startAuthServer(t)
	conn := setUpRaw(t, srv)
	body := `{"requestId":"1","serviceName":"raw","groupName":"DEFAULT_GROUP","type":"registerInstance",` +
		`"instance":{"ip":"10.0.0.9","port":80,"weight":1,"healthy":true,"enabled":true,"ephemeral":true}}`

	sign := func(exp time.Time) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: "app", ExpiresAt: jwt.NewNumericDate(exp)}).
			SignedString([]byte(authSecret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	_, loginBody := login(t, srv, "app", "app-pw")
	var fresh struct {
		AccessToken string `json:"accessToken"`
		TokenTTL    int    `json:"tokenTtl"`
	}
	if err := json.Unmarshal([]byte(loginBody), &fresh); err != nil || fresh.AccessToken == "" || fresh.TokenTTL != 18000 {
		t.Fatalf("login: %s (%v)", loginBody, err)
	}

	for _, c := range []struct {
		name    string
		headers map[string]string
		want    string // in the 403's message
	}{
		{"no token", nil, "no access token"},
		{"Nacos-Server identity", map[string]string{"User-Agent": "Nacos-Server", "serverIdentity": "security"}, "no access token"},
		{"expired token", map[string]string{"accessToken": sign(time.Now().Add(-time.Minute))}, "expired"},
		{"another secret's token", map[string]string{"accessToken": jwtWithSecret(t, "not the server's secret, 32 bytes+")}, "invalid access token"},
	} {
		typ, resp := conn.call(t, "InstanceRequest", c.headers, body)
		// As Nacos's auth filter answers: the request's own response type.
		if typ != "InstanceResponse" || resp.ResultCode != 500 || resp.ErrorCode != 403 || !strings.Contains(resp.Message, c.want) {
			t.Errorf("%s: %s %+v, want InstanceResponse 403 containing %q", c.name, typ, resp, c.want)
		}
	}
	if n := srv.Metric(t, "sextant_instances"); n != 0 {
		t.Fatalf("%v instances after refused registrations", n)
	}
	for name, token := range map[string]string{"the login's token": fresh.AccessToken, "a token signed with the secret": sign(time.Now().Add(time.Minute))} {
		if typ, resp := conn.call(t, "InstanceRequest", map[string]string{"accessToken": token}, body); typ != "InstanceResponse" || resp.ResultCode != 200 {
			t.Errorf("%s: %s %+v", name, typ, resp)
		}
	}
}

func TestAuthOnWithoutASecretDoesNotStart(t *testing.T) {
	t.Parallel()
	port := servertest.FreePorts(t, 1)[0]
	code, out := servertest.Run(t, []string{"SEXTANT_AUTH_ENABLED=true"}, "server", "--port", strconv.Itoa(port))
	if code != 2 || !strings.Contains(out, "auth.token_secret: must be set") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	code, out = servertest.Run(t, []string{"SEXTANT_AUTH_ENABLED=true", "SEXTANT_AUTH_TOKEN_SECRET=nacos"}, "server", "--port", strconv.Itoa(port))
	if code != 2 || !strings.Contains(out, "auth.token_secret: has 5 bytes") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestAuthOffIsLogged(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	if logs := srv.Logs(); !strings.Contains(logs, "auth is off: any client that reaches the client gRPC or HTTP port can read and write the registry") {
		t.Errorf("no warning that auth is off:\n%s", logs)
	}
}

// login posts a login form to srv as the SDK does.
func login(t *testing.T, srv *servertest.Server, user, password string) (int, string) {
	t.Helper()
	resp, err := http.PostForm("http://"+srv.HTTPAddr()+"/nacos/v1/auth/users/login", url.Values{"username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// jwtWithSecret signs a token for app with secret.
func jwtWithSecret(t *testing.T, secret string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: "app", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}).
		SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rawConn is a client connection driven by hand with the SDK's own wire
// types, its stream set up.
type rawConn struct {
	rpc nacosgrpc.RequestClient
}

// response holds the fields of a Nacos response the tests read.
type response struct {
	ResultCode int    `json:"resultCode"`
	ErrorCode  int    `json:"errorCode"`
	Message    string `json:"message"`
}

func setUpRaw(t *testing.T, srv *servertest.Server) *rawConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	c := &rawConn{rpc: nacosgrpc.NewRequestClient(cc)}
	if typ, _ := c.call(t, "ServerCheckRequest", nil, `{}`); typ != "ServerCheckResponse" {
		t.Fatalf("ServerCheckRequest answered %s", typ)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := nacosgrpc.NewBiRequestStreamClient(cc).RequestBiStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	setup := &nacosgrpc.Payload{
		Metadata: &nacosgrpc.Metadata{Type: "ConnectionSetupRequest"},
		Body:     &anypb.Any{Value: []byte(`{"clientVersion":"test","labels":{"source":"sdk","module":"naming"}}`)},
	}
	if err := stream.Send(setup); err != nil {
		t.Fatal(err)
	}
	go func() { // drain what the server sends
		for {
			if _, err := stream.Recv(); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(nacostest.AwaitTimeout)
	for {
		// The keep-alive needs no token.
		typ, resp := c.call(t, "HealthCheckRequest", nil, `{"requestId":"0"}`)
		if typ == "HealthCheckResponse" {
			return c
		}
		if resp.ErrorCode != 301 || time.Now().After(deadline) {
			t.Fatalf("HealthCheckRequest answered %s %+v", typ, resp)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// call sends a unary request and returns the response's type and fields.
func (c *rawConn) call(t *testing.T, typ string, headers map[string]string, body string) (string, response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := c.rpc.Request(ctx, &nacosgrpc.Payload{
		Metadata: &nacosgrpc.Metadata{Type: typ, Headers: headers},
		Body:     &anypb.Any{Value: []byte(body)},
	})
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	var r response
	if err := json.Unmarshal(p.GetBody().GetValue(), &r); err != nil {
		t.Fatalf("%s answered %s: %v", typ, p.GetBody().GetValue(), err)
	}
	return p.GetMetadata().GetType(), r
}
