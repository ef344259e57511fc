package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Every /nacos/ path that no endpoint serves is answered 501 with a JSON body
// naming the method and path (not a bare 404, so that a client of a Nacos
// API Sextant lacks learns what is missing), and counted in
// sextant_http_unimplemented_requests_total by path. The path label is
// bounded whatever clients send: a Nacos API path of the table below as is,
// another path of a known version and module as /nacos/VERSION/MODULE/*,
// anything else as "other". A path that is served with other methods gets 405
// and its Allow header instead, as the mux answers elsewhere. (Nacos's
// console paths, /nacos/ and /nacos/index.html, redirect to Sextant's
// console: core/console.)

// unimplementedMetric is the counter's name.
const unimplementedMetric = "sextant_http_unimplemented_requests_total"

// knownNacosPaths are Nacos 2.x HTTP API paths Sextant does not serve, which
// are counted under their own name.
var knownNacosPaths = map[string]bool{}

func init() {
	for _, p := range []string{
		// config
		"/nacos/v1/cs/configs", "/nacos/v1/cs/configs/listener", "/nacos/v1/cs/configs/catalog",
		"/nacos/v1/cs/history", "/nacos/v1/cs/history/previous", "/nacos/v1/cs/history/configs",
		"/nacos/v1/cs/capacity", "/nacos/v1/cs/communication/configWatchers",
		"/nacos/v2/cs/config", "/nacos/v2/cs/config/listener", "/nacos/v2/cs/history", "/nacos/v2/cs/history/detail",
		"/nacos/v2/cs/history/previous", "/nacos/v2/cs/history/configs",
		// naming
		"/nacos/v1/ns/service/names", "/nacos/v1/ns/service/subscribers", "/nacos/v1/ns/service/searchDom",
		"/nacos/v1/ns/instance/statuses", "/nacos/v1/ns/instance/metadata/batch",
		"/nacos/v1/ns/catalog/instances", "/nacos/v1/ns/catalog/service",
		"/nacos/v1/ns/health", "/nacos/v1/ns/health/checkers",
		"/nacos/v1/ns/operator/servers", "/nacos/v1/ns/operator/cluster/state", "/nacos/v1/ns/operator/push/state",
		"/nacos/v1/ns/operator/distro/client", "/nacos/v1/ns/operator/log",
		"/nacos/v1/ns/client/list", "/nacos/v1/ns/client", "/nacos/v1/ns/client/publish/list",
		"/nacos/v1/ns/client/subscribe/list", "/nacos/v1/ns/client/service/publisher/list",
		"/nacos/v1/ns/client/service/subscriber/list", "/nacos/v1/ns/client/distro",
		"/nacos/v2/ns/instance/metadata/batch", "/nacos/v2/ns/health/checkers", "/nacos/v2/ns/catalog/instances",
		"/nacos/v2/ns/operator/servers",
		// core and console
		"/nacos/v1/core/cluster/node/self", "/nacos/v1/core/cluster/node/list", "/nacos/v1/core/cluster/node/self/health",
		"/nacos/v1/core/cluster/server/leave", "/nacos/v1/core/cluster/lookup", "/nacos/v1/core/ops/log",
		"/nacos/v1/core/ops/raft", "/nacos/v1/core/loader/current",
		"/nacos/v2/core/cluster/node/self", "/nacos/v2/core/cluster/node/list", "/nacos/v2/core/cluster/node/self/health",
		"/nacos/v2/core/ops/log", "/nacos/v2/core/ops/raft",
		"/nacos/v1/console/server/announcement", "/nacos/v1/console/server/guide",
		"/nacos/v2/console/namespace", "/nacos/v2/console/namespace/list",
		"/nacos/v2/console/health/liveness", "/nacos/v2/console/health/readiness",
		// auth
		"/nacos/v1/auth/users", "/nacos/v1/auth/users/search", "/nacos/v1/auth/users/admin", "/nacos/v1/auth/roles",
		"/nacos/v1/auth/roles/search", "/nacos/v1/auth/permissions",
	} {
		knownNacosPaths[p] = true
	}
}

// The versions and modules a path is counted under as /nacos/VERSION/MODULE/*.
var (
	knownVersions = []string{"v1", "v2", "v3"}
	knownModules  = []string{"cs", "ns", "core", "console", "auth", "cmdb", "admin", "client", "ai"}
)

// unimplementedLabel is the path label a request for path is counted under.
func unimplementedLabel(path string) string {
	if knownNacosPaths[path] {
		return path
	}
	parts := strings.SplitN(strings.TrimPrefix(path, "/nacos/"), "/", 3)
	if len(parts) >= 2 && slices.Contains(knownVersions, parts[0]) && slices.Contains(knownModules, parts[1]) {
		return "/nacos/" + parts[0] + "/" + parts[1] + "/*"
	}
	return "other"
}

// fallback answers the /nacos/ paths no endpoint serves.
type fallback struct {
	mux     *http.ServeMux
	log     hclog.Logger
	counter *prometheus.CounterVec
}

// registerFallback adds the fallback to mux, registering its counter with
// reg (none when nil).
func registerFallback(mux *http.ServeMux, reg prometheus.Registerer, log hclog.Logger) {
	f := &fallback{mux: mux, log: log, counter: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: unimplementedMetric,
		Help: "Requests to /nacos/ paths Sextant does not serve, answered 501, by path: a known Nacos API path, " +
			"/nacos/VERSION/MODULE/* for another path of a known module, or other.",
	}, []string{"path"})}
	if reg != nil {
		reg.MustRegister(f.counter)
	}
	mux.Handle("/nacos/", f)
	mux.Handle("/nacos", f)
}

// probeMethods are the methods a path is tried with for its Allow header.
var probeMethods = []string{http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodOptions,
	http.MethodPatch, http.MethodPost, http.MethodPut}

// allowed returns the methods other endpoints serve r's path with, sorted.
func (f *fallback) allowed(r *http.Request) []string {
	var ms []string
	for _, m := range probeMethods {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := f.mux.Handler(probe); pattern != "" && pattern != "/nacos/" && pattern != "/nacos" {
			ms = append(ms, m)
		}
	}
	return ms
}

// unimplementedAnswer is the 501's body.
type unimplementedAnswer struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Method  string `json:"method"`
	Path    string `json:"path"`
}

func (f *fallback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ms := f.allowed(r); len(ms) > 0 {
		w.Header().Set("Allow", strings.Join(ms, ", "))
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	label := unimplementedLabel(r.URL.Path)
	f.counter.WithLabelValues(label).Inc()
	path, method := r.URL.Path, r.Method
	if len(path) > 256 {
		path = path[:256] + "..."
	}
	if len(method) > 32 {
		method = method[:32] + "..."
	}
	f.log.Debug("request for a Nacos API Sextant does not serve", "method", method, "path", quote(path), "counted_as", label)
	what := "this endpoint of the Nacos API is not implemented by Sextant"
	switch {
	case strings.Contains(label, "/cs/"):
		what = "Sextant is a naming server: the Nacos config service (/cs/) is not part of it"
	case strings.HasPrefix(label, "/nacos/v1/auth/"):
		what = "Sextant's users, roles and permissions come from its configuration (auth.*), not from this API"
	}
	body, _ := json.Marshal(unimplementedAnswer{Code: http.StatusNotImplemented,
		Message: "not implemented: " + method + " " + path + ": " + what, Method: method, Path: path})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotImplemented)
	_, _ = w.Write(body)
}
