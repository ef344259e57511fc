// Package admin_test runs the admin CLI — the real sextant binary, as an
// operator would — against a real server holding registrations made with
// the official Nacos Go SDK (2.x, gRPC) and the HTTP Open API. It must not
// import Sextant's proto package: the SDK registers the same protobuf
// message names.
package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
	"github.com/sextantd/sextant/cmd/internal/sextantproc"
)

func TestMain(m *testing.M) { nacostest.Main(m) }

// awaitTimeout bounds every wait for the server to show something.
const awaitTimeout = 30 * time.Second

// result is what one run of the CLI did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cli runs "sextant ARGS" with env added to an environment without the
// CLI's own variables.
func cli(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sextantproc.StartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, servertest.Binary(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SEXTANT_ADDR=") && !strings.HasPrefix(kv, "SEXTANT_TOKEN=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("sextant %q did not exit in time", args)
	}
	var exit *exec.ExitError
	if err != nil && !exitAs(err, &exit) {
		t.Fatalf("running sextant %q: %v", args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

func exitAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*target = e
	return ok
}

// ok runs the CLI and fails the test unless it exits 0 with nothing on stderr.
func ok(t *testing.T, env []string, args ...string) string {
	t.Helper()
	r := cli(t, env, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("sextant %q: %s", args, r)
	}
	return r.stdout
}

// items runs the CLI with --json and decodes the items it prints.
func items(t *testing.T, env []string, args ...string) []map[string]any {
	t.Helper()
	out := ok(t, env, append(args, "--json")...)
	var v []map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("sextant %q --json: %v\n%s", args, err, out)
	}
	return v
}

// eventually polls cond until it holds, failing with describe's words after
// awaitTimeout.
func eventually(t *testing.T, what string, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(awaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; %s", what, awaitTimeout, describe())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// row returns the table line of out whose first cells are those given.
func row(out string, first ...string) (string, bool) {
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) >= len(first) && slices.Equal(f[:len(first)], first) {
			return line, true
		}
	}
	return "", false
}

// fields returns the cells of the table line of out that starts with first
// (cells hold no spaces in these tests).
func fields(t *testing.T, out string, first ...string) []string {
	t.Helper()
	line, found := row(out, first...)
	if !found {
		t.Fatalf("no row %q in:\n%s", first, out)
	}
	return strings.Fields(line)
}

// postForm sends an HTTP Open API write and fails the test unless it is
// answered 200.
func postForm(t *testing.T, srv *servertest.Server, path string, form url.Values) {
	t.Helper()
	resp, err := http.PostForm("http://"+srv.HTTPAddr()+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s %v: %d %s", path, form, resp.StatusCode, body)
	}
}

// TestAdminCLI: every command's table and JSON against a server with
// instances of two gRPC clients, of the HTTP API and a persistent one, and a
// gRPC subscriber; deregister; the exit codes.
func TestAdminCLI(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, servertest.Options{Env: []string{"SEXTANT_PUSH_DELAY=20ms"}})
	env := []string{"SEXTANT_ADDR=" + srv.HTTPAddr()}

	// A gRPC client registers one instance per service.
	provider, provider2, consumer := nacostest.NewClient(t, srv, ""), nacostest.NewClient(t, srv, ""), nacostest.NewClient(t, srv, "")
	nacostest.Register(t, provider, vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 8080, ServiceName: "orders", Weight: 2,
		Metadata: map[string]string{"version": "1.0"}})
	nacostest.Register(t, provider2, vo.RegisterInstanceParam{Ip: "10.0.0.2", Port: 8080, ServiceName: "orders", ClusterName: "east"})
	nacostest.Register(t, consumer, vo.RegisterInstanceParam{Ip: "10.0.0.9", Port: 9000, ServiceName: "payments", GroupName: "shop"})
	w := nacostest.Subscribe(t, consumer, vo.SubscribeParam{ServiceName: "orders"})
	w.AwaitCount(t, 2)
	postForm(t, srv, "/nacos/v1/ns/instance", url.Values{"serviceName": {"orders"}, "ip": {"10.0.0.3"}, "port": {"80"}})
	postForm(t, srv, "/nacos/v1/ns/instance", url.Values{"serviceName": {"orders"}, "ip": {"10.0.0.4"}, "port": {"3306"},
		"ephemeral": {"false"}, "clusterName": {"db"}})

	// members: this node alone, UP.
	ms := items(t, env, "members")
	if len(ms) != 1 || ms[0]["self"] != true || ms[0]["state"] != "UP" {
		t.Fatalf("members: %v", ms)
	}
	self := ms[0]["address"].(string)
	if f := fields(t, ok(t, env, "members"), self); f[1] != "UP" || f[2] != "true" {
		t.Errorf("members table: %q", f)
	}

	// services: a flag before or after the command's own.
	out := ok(t, env, "services")
	if f := fields(t, out, "DEFAULT_GROUP", "orders"); !slices.Equal(f[2:], []string{"DEFAULT,db,east", "4", "4", "1"}) {
		t.Errorf("services: orders %q\n%s", f, out)
	}
	if f := fields(t, out, "shop", "payments"); !slices.Equal(f[2:], []string{"DEFAULT", "1", "1", "0"}) {
		t.Errorf("services: payments %q", f)
	}
	if _, found := row(out, "GROUP", "SERVICE", "CLUSTERS", "INSTANCES", "HEALTHY", "SUBSCRIBERS"); !found {
		t.Errorf("services: no header\n%s", out)
	}
	if svcs := items(t, env, "services", "--group", "shop"); len(svcs) != 1 || svcs[0]["name"] != "payments" {
		t.Errorf("services --group shop: %v", svcs)
	}
	if svcs := items(t, env, "services", "--namespace", "dev"); len(svcs) != 0 {
		t.Errorf("services of an empty namespace: %v", svcs)
	}

	// instances: the client owning each, and its node.
	ins := items(t, env, "instances", "orders")
	var got []string
	for _, in := range ins {
		got = append(got, fmt.Sprintf("%s:%v %s %s %v %v", in["ip"], in["port"], in["clusterName"], in["clientType"], in["ownerNode"], in["local"]))
	}
	want := []string{
		"10.0.0.1:8080 DEFAULT connection " + self + " true",
		"10.0.0.2:8080 east connection " + self + " true",
		"10.0.0.3:80 DEFAULT ipPort " + self + " true",
		"10.0.0.4:3306 db persistent <nil> false",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("instances --json:\n got %q\nwant %q", got, want)
	}
	if ins[0]["clientId"] == ins[1]["clientId"] || ins[0]["weight"] != 2.0 || ins[0]["metadata"].(map[string]any)["version"] != "1.0" {
		t.Errorf("instances: %v", ins[:2])
	}
	provClient := ins[0]["clientId"].(string)
	out = ok(t, env, "instances", "orders")
	if f := fields(t, out, "10.0.0.1:8080"); !slices.Equal(f[1:], []string{"DEFAULT", "2", "true", "true", "true", provClient, self, "version=1.0"}) {
		t.Errorf("instances table: %q\n%s", f, out)
	}
	if f := fields(t, out, "10.0.0.4:3306"); !slices.Equal(f[1:], []string{"db", "1", "true", "true", "false", "10.0.0.4:3306#false", "-", "-"}) {
		t.Errorf("instances table, persistent: %q", f)
	}
	if f := fields(t, ok(t, env, "instances", "shop@@payments"), "10.0.0.9:9000"); f[1] != "DEFAULT" {
		t.Errorf("instances shop@@payments: %q", f)
	}
	if ins := items(t, env, "instances", "payments", "--group", "shop"); len(ins) != 1 {
		t.Errorf("instances payments --group shop: %v", ins)
	}

	// subscribers and clients.
	subs := items(t, env, "subscribers", "orders")
	if len(subs) != 1 || subs[0]["clientType"] != "connection" || !strings.HasPrefix(fmt.Sprint(subs[0]["agent"]), "Nacos-Go-Client") ||
		subs[0]["ownerNode"] != self {
		t.Fatalf("subscribers: %v", subs)
	}
	consClient := subs[0]["clientId"].(string)
	if f := fields(t, ok(t, env, "subscribers", "orders"), consClient); f[1] != "connection" || f[len(f)-1] != self {
		t.Errorf("subscribers table: %q", f)
	}
	if subs := items(t, env, "subscribers", "nobody"); len(subs) != 0 {
		t.Errorf("subscribers of a service nobody watches: %v", subs)
	}
	cls := items(t, env, "clients")
	byID := map[string]map[string]any{}
	for _, c := range cls {
		byID[c["clientId"].(string)] = c
	}
	if p, c, h := byID[provClient], byID[consClient], byID["10.0.0.3:80#true"]; len(cls) != 4 || p == nil || c == nil || h == nil ||
		p["instances"] != 1.0 || p["subscriptions"] != 0.0 || c["instances"] != 1.0 || c["subscriptions"] != 1.0 ||
		!strings.HasPrefix(fmt.Sprint(p["version"]), "Nacos-Go-Client") || h["clientType"] != "ipPort" || h["ownerNode"] != self {
		t.Errorf("clients: %v", cls)
	}
	if f := fields(t, ok(t, env, "clients"), "10.0.0.3:80#true"); !slices.Equal(f[1:], []string{"ipPort", "10.0.0.3:80", "-", "-", self, "1", "0"}) {
		t.Errorf("clients table: %q", f)
	}

	// plugins: the built-in push plugins, each a child process of the server.
	ps := items(t, env, "plugins")
	children := map[float64]bool{}
	for _, c := range sextantproc.Children(srv.PID()) {
		children[float64(c.PID)] = true
	}
	if len(ps) != 2 || ps[0]["name"] != "pushrpc" || ps[1]["name"] != "pushudp" {
		t.Fatalf("plugins: %v", ps)
	}
	for _, p := range ps {
		if p["kind"] != "push" || p["builtin"] != true || p["state"] != "serving" || p["restarts"] != 0.0 || !children[p["pid"].(float64)] {
			t.Errorf("plugin %v (children %v)", p, children)
		}
	}
	if f := fields(t, ok(t, env, "plugins"), "pushudp"); !slices.Equal(f[1:4], []string{"push", "udp", "builtin"}) || f[5] != "serving" {
		t.Errorf("plugins table: %q", f)
	}

	// deregister: the HTTP client's instance and the persistent one go; a
	// gRPC client's is refused with why.
	if out := ok(t, env, "deregister", "orders", "10.0.0.3:80"); out != "deregistered 10.0.0.3:80 from DEFAULT_GROUP@@orders in namespace public\n" {
		t.Errorf("deregister: %q", out)
	}
	r := cli(t, env, "deregister", "orders", "10.0.0.4:3306")
	if r.code != 1 || !strings.Contains(r.stderr, "persistent instance: add --ephemeral=false") {
		t.Errorf("deregister a persistent instance as ephemeral: %s", r)
	}
	out = ok(t, env, "deregister", "--json", "orders", "10.0.0.4:3306", "--ephemeral=false", "--cluster", "db")
	var dereg struct {
		Deregistered []map[string]any `json:"deregistered"`
	}
	if err := json.Unmarshal([]byte(out), &dereg); err != nil || len(dereg.Deregistered) != 1 || dereg.Deregistered[0]["clientType"] != "persistent" {
		t.Errorf("deregister --json: %v %s", err, out)
	}
	r = cli(t, env, "deregister", "orders", "10.0.0.1:8080")
	if r.code != 1 || !strings.Contains(r.stderr, "registered by the gRPC connection "+provClient) {
		t.Errorf("deregister a gRPC client's instance: %s", r)
	}
	r = cli(t, env, "deregister", "orders", "10.9.9.9:1")
	if r.code != 1 || !strings.Contains(r.stderr, "no instance 10.9.9.9:1 in service DEFAULT_GROUP@@orders") {
		t.Errorf("deregister an unknown instance: %s", r)
	}
	w.AwaitCount(t, 2) // the subscriber was pushed the removals
	ins = items(t, env, "instances", "orders")
	if len(ins) != 2 || ins[0]["ip"] != "10.0.0.1" || ins[1]["ip"] != "10.0.0.2" {
		t.Errorf("instances after deregister: %v", ins)
	}

	// Exit codes: 1 unknown service, 2 usage, 3 unreachable.
	for _, tc := range []struct {
		env  []string
		args []string
		code int
		want string
	}{
		{env, []string{"instances", "nope"}, 1, `serviceName: service "DEFAULT_GROUP@@nope" not found in namespace "public" (HTTP 404)`},
		{env, []string{"instances", "orders", "--namespace", "bad ns!"}, 1, "namespaceId: "},
		{env, []string{"instances"}, 2, "wants SERVICE, got 0 argument(s)"},
		{env, []string{"members", "--frobnicate"}, 2, "flag provided but not defined"},
		{env, []string{"deregister", "orders", "10.0.0.1"}, 2, `IP:PORT "10.0.0.1"`},
		{[]string{"SEXTANT_ADDR=127.0.0.1:1"}, []string{"services"}, 3, "cannot reach the server"},
		{nil, []string{"members", "--server", "127.0.0.1:1", "--timeout", "2s"}, 3, "connection refused"},
	} {
		if r := cli(t, tc.env, tc.args...); r.code != tc.code || r.stdout != "" || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("sextant %q: %s\nwant exit %d and %q", tc.args, r, tc.code, tc.want)
		}
	}
	if r := cli(t, env, "services", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Exit codes: 0 done; 1 the server answered an error") {
		t.Errorf("services --help: %s", r)
	}
}

// TestAdminCLIPluginRestart: a plugin process killed shows as restarted,
// under a new pid, with its last error.
func TestAdminCLIPluginRestart(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, servertest.Options{})
	env := []string{"SEXTANT_ADDR=" + srv.HTTPAddr()}
	var udp map[string]any
	for _, p := range items(t, env, "plugins") {
		if p["name"] == "pushudp" {
			udp = p
		}
	}
	if udp == nil {
		t.Fatal("no pushudp plugin")
	}
	pid := int(udp["pid"].(float64))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var last map[string]any
	eventually(t, "pushudp restarted", func() bool {
		for _, p := range items(t, env, "plugins") {
			if p["name"] == "pushudp" {
				last = p
			}
		}
		return last["state"] == "serving" && last["restarts"] == 1.0 && last["pid"] != float64(pid)
	}, func() string { return fmt.Sprint(last) })
	if msg, _ := last["lastError"].(string); !strings.HasPrefix(msg, "the plugin exited") || !strings.Contains(msg, "killed") || last["lastErrorTime"] == nil {
		t.Errorf("pushudp after a restart: %v", last)
	}
	if f := fields(t, ok(t, env, "plugins"), "pushudp"); f[6] != "1" || !strings.Contains(strings.Join(f, " "), "the plugin exited") {
		t.Errorf("plugins table after a restart: %q", f)
	}
}

// authSecret signs the tokens of the server TestAdminCLIAuth starts.
const authSecret = "e2e-admin-token-secret-0123456789"

// TestAdminCLIAuth: with auth on, the CLI needs a global admin's token:
// from --token or SEXTANT_TOKEN, or by logging in with --username and
// --password.
func TestAdminCLIAuth(t *testing.T) {
	t.Parallel()
	hash := func(pw string) string { return servertest.PasswordHash(t, pw) }
	config := `
auth {
  enabled = true
  users = [
    { name = "admin", password_hash = "` + hash("admin-pw") + `", global_admin = true },
    { name = "app", password_hash = "` + hash("app-pw") + `", roles = ["public-rw"] },
  ]
  roles = [{ name = "public-rw", permissions = [{ namespace = "public", access = "rw" }] }]
}
`
	srv := servertest.Start(t, servertest.Options{Config: config, Env: []string{"SEXTANT_AUTH_TOKEN_SECRET=" + authSecret}})
	env := []string{"SEXTANT_ADDR=" + srv.HTTPAddr()}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"members"}, "(HTTP 403)"},
		{[]string{"members", "--token", "forged"}, "(HTTP 403)"},
		{[]string{"members", "--username", "app", "--password", "app-pw"}, `user "app" is not a global admin`},
		{[]string{"members", "--username", "admin", "--password", "wrong"}, `login as "admin" refused`},
	} {
		if r := cli(t, env, tc.args...); r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("sextant %q: %s\nwant exit 1 and %q", tc.args, r, tc.want)
		}
	}
	if r := cli(t, env, "members"); !strings.Contains(r.stderr, "--token") {
		t.Errorf("no hint at a token: %s", r)
	}
	if ms := items(t, env, "members", "--username", "admin", "--password", "admin-pw"); len(ms) != 1 {
		t.Errorf("members as admin: %v", ms)
	}

	resp, err := http.PostForm("http://"+srv.HTTPAddr()+"/nacos/v1/auth/login", url.Values{"username": {"admin"}, "password": {"admin-pw"}})
	if err != nil {
		t.Fatal(err)
	}
	var login struct {
		AccessToken string `json:"accessToken"`
	}
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if err != nil || login.AccessToken == "" {
		t.Fatalf("login: %v %+v", err, login)
	}
	withToken := append(env, "SEXTANT_TOKEN="+login.AccessToken)
	if ps := items(t, withToken, "plugins"); len(ps) != 2 {
		t.Errorf("plugins with SEXTANT_TOKEN: %v", ps)
	}
	if out := ok(t, env, "services", "--token", login.AccessToken); !strings.HasPrefix(out, "GROUP") {
		t.Errorf("services with --token: %q", out)
	}
}
