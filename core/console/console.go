// Package console serves Sextant's web console: a few pages of plain HTML,
// CSS and JavaScript, embedded in the binary, that read and change the
// registry through the HTTP API the server already serves (the Nacos Open
// API, the v2 client API, the cluster nodes and Sextant's operator API).
// The console holds no data and checks no token itself: the pages are
// open, and every API call they make carries the token the login page
// obtained, checked by the API as any client's.
//
// The page is served at / and /console/; Nacos's console paths (/nacos,
// /nacos/, /nacos/index.html) redirect to /console/. Its assets are served
// only by their exact names under /console/: no directory is listed, any
// other path is 404.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assetFS embed.FS

// Root is the path the console is served under.
const Root = "/console/"

// versionPlaceholder is replaced in index.html by the assets' version, so
// that a new binary's page loads its own scripts and styles.
const versionPlaceholder = "{{version}}"

// The caching policies: the page is revalidated on every load (it is
// small, and names the assets' version); an asset requested with the
// current version is cached for good; one requested otherwise is
// revalidated.
const (
	cacheRevalidate = "no-cache"
	cacheImmutable  = "public, max-age=31536000, immutable"
)

// contentSecurityPolicy allows the page nothing but its own assets and its
// own server's API: no inline script or style, no frames, no other origin.
// It is the second line of defence behind the scripts' rule of rendering
// every value from the API as text.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// contentTypes are the media types of the assets, by extension.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves the console's page, its assets and the redirects of
// Nacos's console paths. Mount it on the paths Patterns lists.
type Handler struct {
	index   asset
	assets  map[string]asset // by name below Root
	version string
}

// indexName is the page's file among the assets.
const indexName = "index.html"

// New returns a console handler of the embedded assets.
func New() *Handler {
	h, err := newHandler(assetFS)
	if err != nil {
		panic(err) // the embedded files are part of the binary: a test catches this
	}
	return h
}

// newHandler reads the assets of fsys (the files under assets/).
func newHandler(fsys fs.FS) (*Handler, error) {
	h := &Handler{assets: map[string]asset{}}
	sum := sha256.New()
	err := fs.WalkDir(fsys, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("console asset %s: no content type for its extension", name)
		}
		fmt.Fprintf(sum, "%s\x00%d\x00", name, len(body))
		sum.Write(body)
		h.assets[name] = asset{body: body, contentType: ct}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the console's assets: %w", err)
	}
	index, ok := h.assets[indexName]
	if !ok {
		return nil, fmt.Errorf("the console's assets have no %s", indexName)
	}
	h.version = hex.EncodeToString(sum.Sum(nil))[:16]
	delete(h.assets, indexName)
	index.body = bytes.ReplaceAll(index.body, []byte(versionPlaceholder), []byte(h.version))
	h.index = index
	for name, a := range h.assets {
		h.assets[name] = withETag(a)
	}
	h.index = withETag(h.index)
	return h, nil
}

// withETag returns a with a strong ETag of its body.
func withETag(a asset) asset {
	sum := sha256.Sum256(a.body)
	a.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
	return a
}

// Patterns are the http.ServeMux patterns to mount the handler on: the page
// at / and under /console/, and Nacos's console paths. (GET patterns serve
// HEAD too; the mux answers other methods 405.)
func Patterns() []string {
	return []string{"GET /{$}", "GET " + Root, "GET /nacos", "GET /nacos/{$}", "GET /nacos/index.html"}
}

// Version is the assets' version: a hash of their names and contents.
func (h *Handler) Version() string { return h.version }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/nacos" || p == "/nacos/" || p == "/nacos/index.html":
		http.Redirect(w, r, Root, http.StatusFound)
	case p == "/" || p == Root || p == Root+indexName:
		serveAsset(w, r, h.index, cacheRevalidate)
	case strings.HasPrefix(p, Root):
		a, ok := h.assets[strings.TrimPrefix(p, Root)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		policy := cacheRevalidate
		if r.URL.Query().Get("v") == h.version {
			policy = cacheImmutable
		}
		serveAsset(w, r, a, policy)
	default:
		http.NotFound(w, r)
	}
}

// serveAsset writes a with the caching policy and the security headers
// (http.ServeContent answers If-None-Match with 304, and HEAD).
func serveAsset(w http.ResponseWriter, r *http.Request, a asset, policy string) {
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("Cache-Control", policy)
	hd.Set("ETag", a.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
