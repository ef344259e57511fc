package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

// serve mounts a console handler as httpapi does and serves one request.
func serve(t *testing.T, method, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	mux := http.NewServeMux()
	h := New()
	for _, p := range Patterns() {
		mux.Handle(p, h)
	}
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec
}

// TestPages: the page at /, /console/ and /console/index.html, revalidated
// on every load, naming the assets' current version; its assets with their
// content types, cached for good when asked for with that version.
func TestPages(t *testing.T) {
	version := New().Version()
	if len(version) != 16 {
		t.Fatalf("version %q", version)
	}
	for _, path := range []string{"/", "/console/", "/console/index.html"} {
		rec := serve(t, http.MethodGet, path, nil)
		body := rec.Body.String()
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" ||
			rec.Header().Get("Cache-Control") != "no-cache" || rec.Header().Get("ETag") == "" {
			t.Errorf("GET %s: %d %v", path, rec.Code, rec.Header())
		}
		if !strings.Contains(body, "/console/app.js?v="+version) || !strings.Contains(body, "/console/app.css?v="+version) ||
			strings.Contains(body, versionPlaceholder) {
			t.Errorf("GET %s: the page does not name the assets' version %s", path, version)
		}
	}
	for name, ct := range map[string]string{
		"app.js":      "text/javascript; charset=utf-8",
		"app.css":     "text/css; charset=utf-8",
		"favicon.svg": "image/svg+xml",
	} {
		rec := serve(t, http.MethodGet, "/console/"+name+"?v="+version, nil)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != ct || rec.Body.Len() == 0 ||
			rec.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: %d %v", name, rec.Code, rec.Header())
		}
		// Without the version, or with another: revalidated.
		for _, q := range []string{"", "?v=0123456789abcdef"} {
			if rec := serve(t, http.MethodGet, "/console/"+name+q, nil); rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-cache" {
				t.Errorf("GET %s%s: %d %v", name, q, rec.Code, rec.Header())
			}
		}
	}
}

// TestSecurityHeaders: every answer forbids sniffing, framing and any
// script or style but the console's own files.
func TestSecurityHeaders(t *testing.T) {
	for _, path := range []string{"/", "/console/app.js"} {
		h := serve(t, http.MethodGet, path, nil).Header()
		csp := h.Get("Content-Security-Policy")
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" ||
			!strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: %v", path, h)
		}
	}
}

// TestRevalidation: a page or asset whose ETag the browser holds is
// answered 304 without a body; HEAD has the headers and no body.
func TestRevalidation(t *testing.T) {
	for _, path := range []string{"/console/", "/console/app.css"} {
		first := serve(t, http.MethodGet, path, nil)
		etag := first.Header().Get("ETag")
		if !strings.HasPrefix(etag, `"`) {
			t.Fatalf("GET %s: ETag %q", path, etag)
		}
		rec := serve(t, http.MethodGet, path, http.Header{"If-None-Match": {etag}})
		if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
			t.Errorf("GET %s If-None-Match: %d, %d bytes", path, rec.Code, rec.Body.Len())
		}
		rec = serve(t, http.MethodGet, path, http.Header{"If-None-Match": {`"other"`}})
		if rec.Code != http.StatusOK || rec.Body.String() != first.Body.String() {
			t.Errorf("GET %s with a stale ETag: %d", path, rec.Code)
		}
		rec = serve(t, http.MethodHead, path, nil)
		if rec.Code != http.StatusOK || rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != first.Header().Get("Content-Type") {
			t.Errorf("HEAD %s: %d, %d bytes, %v", path, rec.Code, rec.Body.Len(), rec.Header())
		}
	}
}

// TestNotFound: nothing but the assets' exact names is served: no
// directory listing, no path outside the assets, no dot files.
func TestNotFound(t *testing.T) {
	for _, path := range []string{
		"/console/nope.js", "/console/assets/", "/console/assets/app.js", "/console/app.js/", "/console/sub/",
		"/console/../console/app.js.map", "/console/.hidden", "/console/%2e%2e/go.mod", "/console/APP.JS", "/index.html", "/app.js",
	} {
		rec := serve(t, http.MethodGet, path, nil)
		if loc := rec.Header().Get("Location"); rec.Code/100 == 3 {
			// The mux cleans a path first: the clean one is 404 too.
			rec = serve(t, http.MethodGet, loc, nil)
		}
		if rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), "app.css") {
			t.Errorf("GET %s: %d %q, want 404", path, rec.Code, rec.Body)
		}
	}
	// Handled directly (not through the mux), a path of no pattern is 404.
	rec := httptest.NewRecorder()
	New().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/elsewhere", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /elsewhere: %d", rec.Code)
	}
}

// TestRedirectsAndMethods: Nacos's console paths redirect to the console;
// methods other than GET and HEAD get 405.
func TestRedirectsAndMethods(t *testing.T) {
	for _, path := range []string{"/nacos", "/nacos/", "/nacos/index.html"} {
		rec := serve(t, http.MethodGet, path, nil)
		if rec.Code != http.StatusFound || rec.Header().Get("Location") != Root {
			t.Errorf("GET %s: %d %q", path, rec.Code, rec.Header().Get("Location"))
		}
	}
	for _, path := range []string{"/", "/console/", "/console/app.js", "/nacos/"} {
		if rec := serve(t, http.MethodPost, path, nil); rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d", path, rec.Code)
		}
		rec := httptest.NewRecorder()
		New().ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, path, nil))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("DELETE %s (direct): %d %v", path, rec.Code, rec.Header())
		}
	}
}

// TestNewHandler: the assets need a page and known extensions; the version
// changes with any asset's content.
func TestNewHandler(t *testing.T) {
	page := &fstest.MapFile{Data: []byte("<script src=/console/a.js?v={{version}}></script>")}
	h1, err := newHandler(fstest.MapFS{"assets/index.html": page, "assets/a.js": {Data: []byte("1")}})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := newHandler(fstest.MapFS{"assets/index.html": page, "assets/a.js": {Data: []byte("2")}})
	if err != nil {
		t.Fatal(err)
	}
	if h1.Version() == h2.Version() || !strings.Contains(string(h1.index.body), h1.Version()) {
		t.Errorf("versions %s %s, page %q", h1.Version(), h2.Version(), h1.index.body)
	}
	if _, err := newHandler(fstest.MapFS{"assets/a.js": {Data: []byte("1")}}); err == nil || !strings.Contains(err.Error(), "index.html") {
		t.Errorf("no page: %v", err)
	}
	if _, err := newHandler(fstest.MapFS{"assets/index.html": page, "assets/a.exe": {}}); err == nil || !strings.Contains(err.Error(), "a.exe") {
		t.Errorf("unknown extension: %v", err)
	}
}

// TestNoMarkupFromData: the script never puts text into the page as markup.
func TestNoMarkupFromData(t *testing.T) {
	js, err := assetFS.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(string(js), sink) {
			t.Errorf("app.js uses %s", sink)
		}
	}
}
