package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/naming"
)

// Which paths need a token when auth is on (Config.Auth set):
//
//   - open: /nacos/v1/console/health/liveness and /readiness (probes),
//     /nacos/v1/console/server/state (version and mode only; Nacos's console
//     reads it before logging in), /metrics (scrapers), and the login paths
//     below;
//   - a global admin's token: /nacos/v1/core/cluster/nodes (the cluster's
//     addresses) and /debug/pprof/ (when debug.pprof is on);
//   - the HTTP Open API, when it comes: wrap each handler in RequireAccess
//     with the access it needs and NamespaceParam.
//
// A token comes in the accessToken header or query parameter, as Nacos's
// clients send it, or as "Authorization: Bearer <token>". Nothing else
// identifies a caller: Nacos's "User-Agent: Nacos-Server" bypass, or any
// other header, grants nothing.

// The login paths: Nacos 2.x clients use the second.
const (
	loginPath      = "/nacos/v1/auth/login"
	usersLoginPath = "/nacos/v1/auth/users/login"
)

// maxLoginBody bounds a login request's form.
const maxLoginBody = 64 << 10

// loginTimeout bounds a login's wait for its turn to check a password.
const loginTimeout = 10 * time.Second

// loginResponse is Nacos's answer to a login; the SDKs read accessToken and
// tokenTtl (seconds), and renew the token before tokenTtl runs out.
type loginResponse struct {
	AccessToken string `json:"accessToken"`
	TokenTTL    int64  `json:"tokenTtl"`
	GlobalAdmin bool   `json:"globalAdmin"`
	Username    string `json:"username"`
}

// registerAuth adds the login endpoints and guards the paths above.
func registerAuth(mux *http.ServeMux, a *auth.Authority, log hclog.Logger) {
	login := loginHandler(a, log)
	mux.Handle("POST "+loginPath, login)
	mux.Handle("POST "+usersLoginPath, login)
}

// loginHandler answers a login: the form (or query) parameters username and
// password. A wrong user or password gets 403 with a message that does not
// say which. With auth off (a == nil) every login succeeds with an empty
// token, so clients configured with a user and password keep working quietly:
// the registry is open to everyone anyway.
func loginHandler(a *auth.Authority, log hclog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "the login form could not be read", http.StatusBadRequest)
			return
		}
		username, password := r.Form.Get("username"), r.Form.Get("password")
		if a == nil {
			writeJSON(w, loginResponse{TokenTTL: int64(auth.DefaultTTL / time.Second), GlobalAdmin: true, Username: username})
			return
		}
		if username == "" || password == "" {
			http.Error(w, "username and password are required", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), loginTimeout)
		defer cancel()
		tok, err := a.Login(ctx, username, password)
		switch {
		case errors.Is(err, auth.ErrBadCredentials):
			log.Info("login refused", "username", username, "remote", remoteIP(r))
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		case err != nil:
			http.Error(w, "login could not be checked now, try again", http.StatusServiceUnavailable)
			return
		}
		log.Debug("login", "username", username, "remote", remoteIP(r))
		writeJSON(w, loginResponse{
			AccessToken: tok.Value,
			TokenTTL:    int64(tok.TTL / time.Second),
			GlobalAdmin: tok.Identity.GlobalAdmin,
			Username:    tok.Identity.Name,
		})
	})
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// TokenFrom returns the token an HTTP request carries: its accessToken
// header, else its accessToken query parameter, else an
// "Authorization: Bearer" token.
func TokenFrom(r *http.Request) string {
	if t := r.Header.Get(auth.TokenHeader); t != "" {
		return t
	}
	if t := r.URL.Query().Get(auth.TokenHeader); t != "" {
		return t
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// NamespaceParam is the namespace a Nacos Open API request names: its
// namespaceId parameter ("" is the public namespace).
func NamespaceParam(r *http.Request) string { return r.FormValue("namespaceId") }

// RequireAccess wraps h so that, with auth on (a != nil), it runs only for a
// request whose token's user has need on the namespace namespaceOf(r) names
// ("" meaning public). Any other request gets 403 and h does not run. With
// auth off it returns h.
func RequireAccess(a *auth.Authority, need auth.Access, namespaceOf func(*http.Request) string, h http.Handler) http.Handler {
	if a == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := a.Authenticate(TokenFrom(r))
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		ns := namespaceOf(r)
		if ns == "" {
			ns = naming.DefaultNamespace
		}
		if !id.Can(ns, need) {
			http.Error(w, (&auth.ForbiddenError{User: id.Name, Namespace: ns, Need: need}).Error(), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// RequireAdmin wraps h so that, with auth on (a != nil), it runs only for a
// global admin's token; any other request gets 403. With auth off it
// returns h.
func RequireAdmin(a *auth.Authority, h http.Handler) http.Handler {
	if a == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := a.Authenticate(TokenFrom(r))
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if !id.GlobalAdmin {
			http.Error(w, "user \""+id.Name+"\" is not a global admin", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
