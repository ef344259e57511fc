package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// run runs a command with env as its environment and returns its exit code
// and output.
func run(env map[string]string, command string, args ...string) (code int, stdout, stderr string) {
	var out, errOut strings.Builder
	code = Run(command, args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		command string
		args    []string
		want    string
	}{
		{"instances", nil, "wants SERVICE, got 0 argument(s)"},
		{"instances", []string{"a", "b"}, "wants SERVICE, got 2 argument(s)"},
		{"instances", []string{" "}, "SERVICE must not be empty"},
		{"clients", []string{"x"}, `takes no arguments, got ["x"]`},
		{"deregister", []string{"svc"}, "wants SERVICE IP:PORT"},
		{"deregister", []string{"svc", "10.0.0.1"}, `IP:PORT "10.0.0.1"`},
		{"deregister", []string{"svc", "10.0.0.1:0"}, `IP:PORT "10.0.0.1:0"`},
		{"deregister", []string{"svc", "10.0.0.1:70000"}, `IP:PORT "10.0.0.1:70000"`},
		{"deregister", []string{"svc", ":80"}, `IP:PORT ":80"`},
		{"members", []string{"--bogus"}, "flag provided but not defined: -bogus"},
		{"members", []string{"--cluster", "c"}, "flag provided but not defined: -cluster"},
		{"members", []string{"--json=maybe"}, "invalid boolean value"},
		{"members", []string{"--username", "u"}, "--username and --password go together"},
		{"members", []string{"--token", "t", "--username", "u", "--password", "p"}, "not both"},
		{"members", []string{"--timeout", "0s"}, "--timeout must be positive"},
		{"members", []string{"--server", "ftp://x:1"}, `--server "ftp://x:1"`},
		{"members", []string{"--server", "host:99999"}, `--server "host:99999"`},
		{"members", []string{"--server", "http://"}, `--server "http://"`},
		{"bogus", nil, `unknown admin command "bogus"`},
	} {
		code, out, errOut := run(nil, tc.command, tc.args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "sextant help") {
			t.Errorf("%s %q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.command, tc.args, code, out, errOut, tc.want)
		}
	}
	for _, arg := range []string{"-h", "--help"} {
		if code, out, _ := run(nil, "instances", arg); code != exitOK || out != Usage {
			t.Errorf("%s: exit %d, %q", arg, code, out)
		}
	}
}

func TestFlagsAnywhere(t *testing.T) {
	env := map[string]string{envAddr: "10.0.0.1:9000", envToken: "from-env"}
	for _, tc := range []struct {
		args           []string
		server, token  string
		service, group string
		json           bool
	}{
		{[]string{"svc"}, "10.0.0.1:9000", "from-env", "svc", "", false},
		{[]string{"--json", "svc", "--group", "g"}, "10.0.0.1:9000", "from-env", "svc", "g", true},
		{[]string{"svc", "--server=h:1", "--token", "t"}, "h:1", "t", "svc", "", false},
		{[]string{"--", "--svc"}, "10.0.0.1:9000", "from-env", "--svc", "", false},
		{[]string{"--username", "u", "--password", "p", "svc"}, "10.0.0.1:9000", "", "svc", "", false},
	} {
		o, err := parse("instances", tc.args, func(k string) string { return env[k] }, &strings.Builder{})
		if err != nil || o.server != tc.server || o.token != tc.token || o.service != tc.service || o.group != tc.group || o.json != tc.json {
			t.Errorf("%q: %+v, %v", tc.args, o, err)
		}
	}
	if o, err := parse("members", nil, func(string) string { return "" }, &strings.Builder{}); err != nil || o.server != defaultServer {
		t.Errorf("no server: %+v, %v", o, err)
	}
}

func TestBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1:8848":          "http://10.0.0.1:8848",
		"localhost":              "http://localhost:8848",
		"[::1]:9":                "http://[::1]:9",
		"https://sextant.local/": "https://sextant.local",
		"http://h:1/prefix":      "http://h:1/prefix",
	} {
		if u, err := baseURL(in); err != nil || u.String() != want {
			t.Errorf("%q: %v, %v; want %s", in, u, err, want)
		}
	}
}

func TestExitCodes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/sextant/members":
			if r.Header.Get(tokenHeader) != "good" {
				http.Error(w, "token invalid", http.StatusForbidden)
				return
			}
			_, _ = w.Write([]byte(`{"code":0,"message":"success","data":{"count":1,"pageNo":1,"pageSize":1000,"items":[` +
				`{"address":"10.0.0.1:8848","state":"UP","self":true,"failures":0,"extra":"kept"}]}}`))
		case "/v1/sextant/instances":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code":20004,"message":"resource not found","data":"serviceName: service \"x\" not found"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	env := map[string]string{envAddr: addr}

	code, out, errOut := run(env, "members", "--token", "good")
	if code != exitOK || !strings.Contains(out, "ADDRESS") || !strings.Contains(out, "10.0.0.1:8848  UP     true") || errOut != "" {
		t.Errorf("members: %d %q %q", code, out, errOut)
	}
	code, out, _ = run(map[string]string{envAddr: addr, envToken: "good"}, "members", "--json")
	if code != exitOK || !strings.Contains(out, `"extra": "kept"`) || !strings.HasPrefix(out, "[") {
		t.Errorf("members --json: %d %q", code, out)
	}
	code, _, errOut = run(env, "members")
	if code != exitServer || !strings.Contains(errOut, "token invalid") || !strings.Contains(errOut, "--token") {
		t.Errorf("no token: %d %q", code, errOut)
	}
	code, _, errOut = run(env, "instances", "x")
	if code != exitServer || !strings.Contains(errOut, `serviceName: service "x" not found (HTTP 404)`) {
		t.Errorf("unknown service: %d %q", code, errOut)
	}
	code, _, errOut = run(env, "plugins")
	if code != exitServer || !strings.Contains(errOut, "does not serve /v1/sextant/plugins") {
		t.Errorf("an old server: %d %q", code, errOut)
	}
	srv.Close()
	code, _, errOut = run(env, "members")
	if code != exitUnreachable || !strings.Contains(errOut, "cannot reach the server") {
		t.Errorf("unreachable: %d %q", code, errOut)
	}
}

func TestCell(t *testing.T) {
	for in, want := range map[string]string{"": "-", "a b": "a b", "a\tb\nc": "a b c", "\x1b[31mred": "?[31mred", "é\u0085": "é?"} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
}
