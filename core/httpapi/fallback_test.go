package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// unimplementedCounts reads sextant_http_unimplemented_requests_total by path.
func unimplementedCounts(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != unimplementedMetric {
			continue
		}
		for _, m := range f.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestFallback: a /nacos/ path no endpoint serves gets 501 with a JSON body
// naming it, counted under a bounded path label; a served path with another
// method gets 405.
func TestFallback(t *testing.T) {
	metrics := prometheus.NewRegistry()
	h := handler(Config{Registry: newRegistry(t), Metrics: metrics})

	rec := do(h, http.MethodGet, "/nacos/v1/cs/configs?dataId=a&group=b")
	if rec.Code != http.StatusNotImplemented || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("config: %d %q", rec.Code, rec.Body)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if len(body) != 4 || body["code"] != 501.0 || body["method"] != "GET" || body["path"] != "/nacos/v1/cs/configs" ||
		!strings.Contains(body["message"].(string), "not implemented: GET /nacos/v1/cs/configs: ") ||
		!strings.Contains(body["message"].(string), "config service") {
		t.Errorf("config body: %s", rec.Body)
	}
	for path, label := range map[string]string{
		"/nacos/v2/cs/config":                "/nacos/v2/cs/config",
		"/nacos/v1/ns/raft/datum":            "/nacos/v1/ns/*",
		"/nacos/v1/ns/upgrade/ops/metrics/x": "/nacos/v1/ns/*",
		"/nacos/v3/admin/ns/ops/metrics":     "/nacos/v3/admin/*",
		"/nacos/v9/ns/instance":              "other",
		"/nacos/v1/zz/instance":              "other",
		"/nacos/v1/auth/users":               "/nacos/v1/auth/users",
		"/nacos/v1/console/namespaces/x":     "/nacos/v1/console/*",
	} {
		if rec := do(h, http.MethodGet, path); rec.Code != http.StatusNotImplemented || !strings.Contains(rec.Body.String(), `"path":"`+path+`"`) {
			t.Errorf("GET %s: %d %q", path, rec.Code, rec.Body)
		}
		if got := unimplementedLabel(path); got != label {
			t.Errorf("label of %s: %q, want %q", path, got, label)
		}
	}
	// Whatever clients send, the labels stay few.
	for i := range 500 {
		do(h, http.MethodPost, fmt.Sprintf("/nacos/v1/ns/x%d/%d", i, i))
		do(h, http.MethodGet, fmt.Sprintf("/nacos/junk%d", i))
	}
	counts := unimplementedCounts(t, metrics)
	if counts["/nacos/v1/cs/configs"] != 1 || counts["/nacos/v1/ns/*"] != 502 || counts["other"] != 502 || len(counts) > 12 {
		t.Errorf("counts: %v", counts)
	}

	// A served path with another method: 405 and what is allowed, not 501.
	for path, allow := range map[string]string{
		"/nacos/v1/ns/instance":             "DELETE, GET, HEAD, POST, PUT",
		"/nacos/v1/ns/instance/beat":        "PUT",
		"/nacos/v1/console/health/liveness": "GET, HEAD",
		"/nacos/v1/ns/operator/switches":    "GET, HEAD",
	} {
		rec := do(h, http.MethodPatch, path)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != allow {
			t.Errorf("PATCH %s: %d Allow %q, want 405 %q", path, rec.Code, rec.Header().Get("Allow"), allow)
		}
	}
	if n := unimplementedCounts(t, metrics); len(n) != len(counts) {
		t.Errorf("405s were counted: %v", n)
	}
}

// TestNacosConsolePaths: Nacos's console paths redirect to Sextant's
// console, which is served at / and /console/; other methods get 405, and
// none of them is counted as unimplemented.
func TestNacosConsolePaths(t *testing.T) {
	metrics := prometheus.NewRegistry()
	h := handler(Config{Registry: newRegistry(t), Metrics: metrics})
	for _, path := range []string{"/nacos", "/nacos/", "/nacos/index.html"} {
		rec := do(h, http.MethodGet, path)
		if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/console/" {
			t.Errorf("GET %s: %d Location %q, want 302 /console/", path, rec.Code, rec.Header().Get("Location"))
		}
		if rec := do(h, http.MethodPost, path); rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("POST %s: %d Allow %q, want 405 GET, HEAD", path, rec.Code, rec.Header().Get("Allow"))
		}
	}
	for _, path := range []string{"/", "/console/"} {
		if rec := do(h, http.MethodGet, path); rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") ||
			!strings.Contains(rec.Body.String(), "Sextant console") {
			t.Errorf("GET %s: %d %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
	if rec := do(h, http.MethodGet, "/console"); rec.Code != http.StatusTemporaryRedirect || rec.Header().Get("Location") != "/console/" {
		t.Errorf("GET /console: %d Location %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec := do(h, http.MethodGet, "/nacos/console-ui/x.js"); rec.Code != http.StatusNotImplemented {
		t.Errorf("GET /nacos/console-ui/x.js: %d, want 501", rec.Code)
	}
	if n := unimplementedCounts(t, metrics); len(n) != 1 || n["other"] != 1 {
		t.Errorf("counted: %v", n)
	}
}
