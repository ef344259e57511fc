package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// startAuthServer runs a server with auth on and the users admin (a global
// admin) and app (read and write on public), each with the password
// "<name>-pw".
func startAuthServer(t *testing.T) *servertest.Server {
	t.Helper()
	hash := func(password string) string { return servertest.PasswordHash(t, password) }
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
	return servertest.Start(t, servertest.Options{
		Config: config,
		Env:    []string{"SEXTANT_AUTH_TOKEN_SECRET=console-e2e-token-secret-0123456789"},
	})
}

// post sends a form to the server's HTTP API and returns the body, failing
// the test unless it is answered 200.
func post(t *testing.T, srv *servertest.Server, path string, form url.Values) string {
	t.Helper()
	resp, err := http.PostForm("http://"+srv.HTTPAddr()+path, form)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s %v", path, resp.StatusCode, body, err)
	}
	return string(body)
}

// TestConsoleLogin: with auth on, the console asks to log in, refuses a
// wrong password, keeps the token for the tab (a reload stays logged in),
// sends it on every call, and logs out. A user who is not a global admin
// sees the services of its namespace, and is told what it may not see.
func TestConsoleLogin(t *testing.T) {
	t.Parallel()
	srv := startAuthServer(t)
	var login struct {
		AccessToken string `json:"accessToken"`
	}
	if err := json.Unmarshal([]byte(post(t, srv, "/nacos/v1/auth/login", url.Values{"username": {"admin"}, "password": {"admin-pw"}})), &login); err != nil {
		t.Fatal(err)
	}
	post(t, srv, "/nacos/v1/ns/instance", url.Values{"accessToken": {login.AccessToken}, "serviceName": {"billing"},
		"ip": {"10.2.0.1"}, "port": {"8443"}, "ephemeral": {"false"}})
	shots := artifacts(t)

	b := newBrowser(t)
	b.do("opening the console", chromedp.Navigate("http://"+srv.HTTPAddr()+"/"), chromedp.WaitVisible(chromedp.CSS("#login-user")))
	b.screenshot(shots, "login")
	logIn := func(user, password string) {
		t.Helper()
		b.clear("login-user")
		b.clear("login-password")
		b.do("logging in as "+user, chromedp.SendKeys(chromedp.CSS("#login-user"), user),
			chromedp.SendKeys(chromedp.CSS("#login-password"), password), chromedp.Click(chromedp.CSS("#login-submit")))
	}

	logIn("admin", "wrong")
	b.await("the refusal", `(e => e && !e.hidden && e.textContent === 'Wrong user or password.')(document.getElementById('login-error'))`)
	if tok := b.sessionToken(); tok != "" {
		t.Errorf("a refused login kept a token: %q", tok)
	}

	logIn("admin", "admin-pw")
	b.awaitRows("services", "the services, logged in", `rows.length === 1 && rows[0][0] === 'billing' && rows[0][5] === '0'`)
	if tok := b.sessionToken(); tok == "" {
		t.Fatal("the page keeps no token")
	}
	b.await("who is logged in", `document.getElementById('user').textContent === 'signed in as admin'`)
	b.do("reloading", chromedp.Reload())
	b.awaitRows("services", "the services after a reload", `rows.length === 1 && rows[0][0] === 'billing'`)
	b.click("opening billing", "#services tbody a")
	inst := b.awaitRows("instances", "billing's instance", `rows.length === 1`)
	if r := inst[0]; cell(r, 0) != "10.2.0.1:8443" || cell(r, 5) != "no" {
		t.Errorf("billing's instance: %q, want 10.2.0.1:8443, persistent", r)
	}
	b.do("opening plugins", chromedp.Click(chromedp.CSS(`#nav a[data-page="plugins"]`)))
	b.awaitRows("plugins", "the plugins, for an admin", `rows.length >= 1`)

	b.do("logging out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-user")))
	if tok := b.sessionToken(); tok != "" {
		t.Errorf("logging out kept the token")
	}

	// Not a global admin: the services of public (Nacos's catalog, without
	// subscriber counts), and a refusal of the clients.
	logIn("app", "app-pw")
	b.awaitRows("services", "the services, for app", `rows.length === 1 && rows[0][0] === 'billing' && rows[0][5] === '–'`)
	b.do("opening clients", chromedp.Click(chromedp.CSS(`#nav a[data-page="clients"]`)))
	b.await("the refusal of the clients", `(e => !e.hidden && e.textContent.includes('not a global admin'))(document.getElementById('error'))`)
	if !strings.Contains(eval[string](b, `location.hash`), "clients") {
		t.Errorf("a refusal of rights sent the user elsewhere: %s", eval[string](b, `location.hash`))
	}
}
