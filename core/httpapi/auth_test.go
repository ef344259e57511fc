package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sextantd/sextant/core/auth"
)

// newAuthority has users admin (global admin, password "admin-pw"), app (rw
// on public, "app-pw") and reader (r on public, "reader-pw").
func newAuthority(t *testing.T) *auth.Authority {
	t.Helper()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	a, err := auth.New(auth.Config{
		Secret: []byte("0123456789abcdef0123456789abcdef"),
		TTL:    time.Hour,
		Users: []auth.User{
			{Name: "admin", PasswordHash: hash("admin-pw"), GlobalAdmin: true},
			{Name: "app", PasswordHash: hash("app-pw"), Roles: []string{"public-rw"}},
			{Name: "reader", PasswordHash: hash("reader-pw"), Roles: []string{"public-r"}},
		},
		Roles: []auth.Role{
			{Name: "public-rw", Permissions: []auth.Permission{{Namespace: "public", Access: auth.ReadWrite}}},
			{Name: "public-r", Permissions: []auth.Permission{{Namespace: "public", Access: auth.Read}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// post sends a login: form in the body, query in the URL.
func post(h http.Handler, path string, query, form url.Values) *httptest.ResponseRecorder {
	target := path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func creds(user, password string) url.Values {
	return url.Values{"username": {user}, "password": {password}}
}

func TestLogin(t *testing.T) {
	a := newAuthority(t)
	h := handler(Config{Auth: a})
	tests := []struct {
		name        string
		path        string
		query, form url.Values
		user        string
		admin       bool
	}{
		{"the SDKs' path, form", usersLoginPath, nil, creds("app", "app-pw"), "app", false},
		{"the console's path, form", loginPath, nil, creds("admin", "admin-pw"), "admin", true},
		{"query parameters", usersLoginPath, creds("reader", "reader-pw"), nil, "reader", false},
		{"user in the query, password in the form (Java client)", usersLoginPath,
			url.Values{"username": {"app"}}, url.Values{"password": {"app-pw"}}, "app", false},
	}
	for _, tc := range tests {
		rec := post(h, tc.path, tc.query, tc.form)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s %s", tc.name, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			continue
		}
		var got map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v: %s", tc.name, err, rec.Body)
		}
		token, _ := got["accessToken"].(string)
		if len(got) != 4 || got["tokenTtl"] != 3600.0 || got["globalAdmin"] != tc.admin || got["username"] != tc.user {
			t.Errorf("%s: %s", tc.name, rec.Body)
		}
		if id, err := a.Authenticate(token); err != nil || id.Name != tc.user {
			t.Errorf("%s: the token authenticates %v, %v", tc.name, id, err)
		}
	}
}

func TestLoginRefusals(t *testing.T) {
	log, out := newLogger()
	h := handler(Config{Auth: newAuthority(t), Logger: log})

	wrongPassword := post(h, usersLoginPath, nil, creds("app", "nope-pw"))
	unknownUser := post(h, usersLoginPath, nil, creds("nobody", "app-pw"))
	for name, rec := range map[string]*httptest.ResponseRecorder{"wrong password": wrongPassword, "unknown user": unknownUser} {
		if rec.Code != http.StatusForbidden || rec.Body.String() != "invalid username or password\n" {
			t.Errorf("%s: %d %q", name, rec.Code, rec.Body)
		}
	}
	if strings.Contains(out.String(), "nope-pw") {
		t.Errorf("the log holds a password:\n%s", out)
	}
	assertContains(t, "log", out.String(), `login refused: username=nobody`)

	if rec := post(h, usersLoginPath, nil, url.Values{"username": {"app"}}); rec.Code != http.StatusBadRequest {
		t.Errorf("no password: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, http.MethodGet, usersLoginPath+"?username=app&password=app-pw"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d %s", rec.Code, rec.Body)
	}
	big := url.Values{"username": {"app"}, "password": {strings.Repeat("x", maxLoginBody)}}
	if rec := post(h, usersLoginPath, nil, big); rec.Code != http.StatusBadRequest {
		t.Errorf("oversized form: %d %s", rec.Code, rec.Body)
	}
}

func TestLoginWithAuthOff(t *testing.T) {
	// Clients configured with a user and password keep working quietly.
	rec := post(handler(Config{}), usersLoginPath, nil, creds("nacos", "nacos"))
	assertResponse(t, rec, http.StatusOK, "application/json", `{"accessToken":"","tokenTtl":18000,"globalAdmin":true,"username":"nacos"}`+"\n")
}

func TestOpenAndGuardedPaths(t *testing.T) {
	a := newAuthority(t)
	h := handler(Config{Auth: a, Pprof: true})
	admin, _ := a.Sign("admin", time.Now().Add(time.Hour))
	app, _ := a.Sign("app", time.Now().Add(time.Hour))
	expired, _ := a.Sign("admin", time.Now().Add(-time.Minute))

	get := func(target string, header http.Header) int {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, open := range []string{livenessPath, readinessPath, statePath, metricsPath} {
		if code := get(open, nil); code != http.StatusOK {
			t.Errorf("%s without a token: %d, want 200", open, code)
		}
	}
	for _, guarded := range []string{nodesPath, "/debug/pprof/", "/debug/pprof/cmdline"} {
		for _, c := range []struct {
			name   string
			target string
			header http.Header
			want   int
		}{
			{"no token", guarded, nil, http.StatusForbidden},
			{"Nacos-Server user agent", guarded, http.Header{"User-Agent": {"Nacos-Server"}}, http.StatusForbidden},
			{"Nacos server identity headers", guarded, http.Header{"Serveridentity": {"security"}, "User-Agent": {"Nacos-Server"}}, http.StatusForbidden},
			{"not an admin", guarded, http.Header{"Accesstoken": {app}}, http.StatusForbidden},
			{"expired", guarded, http.Header{"Accesstoken": {expired}}, http.StatusForbidden},
			{"admin in the header", guarded, http.Header{"Accesstoken": {admin}}, http.StatusOK},
			{"admin in the query", guarded + "?accessToken=" + admin, nil, http.StatusOK},
			{"admin as a bearer", guarded, http.Header{"Authorization": {"Bearer " + admin}}, http.StatusOK},
		} {
			if code := get(c.target, c.header); code != c.want {
				t.Errorf("%s, %s: %d, want %d", guarded, c.name, code, c.want)
			}
		}
	}
	// With auth off, the same paths are open.
	if code := do(handler(Config{}), http.MethodGet, nodesPath).Code; code != http.StatusOK {
		t.Errorf("nodes with auth off: %d", code)
	}
}

func TestRequireAccess(t *testing.T) {
	a := newAuthority(t)
	ran := 0
	inner := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { ran++ })
	read := RequireAccess(a, auth.Read, NamespaceParam, inner)
	write := RequireAccess(a, auth.Write, NamespaceParam, inner)
	reader, _ := a.Sign("reader", time.Now().Add(time.Hour))
	app, _ := a.Sign("app", time.Now().Add(time.Hour))

	tests := []struct {
		name    string
		h       http.Handler
		target  string
		want    int
		message string
	}{
		{"reader reads public", read, "/x?accessToken=" + reader, http.StatusOK, ""},
		{"reader reads public, named", read, "/x?namespaceId=public&accessToken=" + reader, http.StatusOK, ""},
		{"reader writes public", write, "/x?accessToken=" + reader, http.StatusForbidden, `user "reader" has no write permission on namespace "public"`},
		{"app writes public", write, "/x?accessToken=" + app, http.StatusOK, ""},
		{"app writes another namespace", write, "/x?namespaceId=dev&accessToken=" + app, http.StatusForbidden, `namespace "dev"`},
		{"no token", read, "/x", http.StatusForbidden, "no access token"},
		{"bad token", read, "/x?accessToken=abc", http.StatusForbidden, "invalid access token"},
	}
	for _, tc := range tests {
		before := ran
		rec := do(tc.h, http.MethodGet, tc.target)
		if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.message) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, rec.Code, rec.Body, tc.want, tc.message)
		}
		if ranNow := ran > before; ranNow != (tc.want == http.StatusOK) {
			t.Errorf("%s: the handler ran: %v", tc.name, ranNow)
		}
	}
	if RequireAccess(nil, auth.Write, NamespaceParam, inner) == nil || RequireAdmin(nil, inner) == nil {
		t.Fatal("nil handler with auth off")
	}
	if rec := do(RequireAccess(nil, auth.Write, NamespaceParam, inner), http.MethodGet, "/x"); rec.Code != http.StatusOK {
		t.Errorf("auth off: %d", rec.Code)
	}
}

func TestTokenFrom(t *testing.T) {
	for _, c := range []struct {
		target string
		header http.Header
		want   string
	}{
		{"/", nil, ""},
		{"/?accessToken=q", nil, "q"},
		{"/", http.Header{"Accesstoken": {"h"}}, "h"},
		{"/?accessToken=q", http.Header{"Accesstoken": {"h"}}, "h"},
		{"/", http.Header{"Authorization": {"Bearer b"}}, "b"},
		{"/", http.Header{"Authorization": {"Basic b"}}, ""},
	} {
		req := httptest.NewRequest(http.MethodGet, c.target, nil)
		req.Header = c.header
		if req.Header == nil {
			req.Header = http.Header{}
		}
		if got := TokenFrom(req); got != c.want {
			t.Errorf("TokenFrom(%s, %v) = %q, want %q", c.target, c.header, got, c.want)
		}
	}
}
