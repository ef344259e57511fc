package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sextantd/sextant/sdk/push/pushtest"
)

// The conformance kit, against the plugin served in process...
func TestConformance(t *testing.T) {
	hook := newHookServer(t)
	pushtest.Run(t, pushtest.Options{Plugin: &Plugin, Config: hookConfig(hook), Deliveries: hook})
}

// ...and against the binary, as Sextant runs it.
func TestConformanceBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "push-webhook")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	hook := newHookServer(t)
	pushtest.Run(t, pushtest.Options{Binary: bin, Config: hookConfig(hook), Deliveries: hook})
}

func hookConfig(hook *hookServer) map[string]any {
	return map[string]any{"url": hook.URL, "timeout": "5s", "retries": 1, "services": []any{"pushtest-*"}}
}

// hookServer is a webhook endpoint whose answers the kit steers: it
// implements pushtest.Deliveries.
type hookServer struct {
	*httptest.Server
	release chan struct{} // closed at the end of the test: hanging POSTs return

	mu     sync.Mutex
	status int    // the answer to a POST, unless hanging
	hang   func() // when hanging: called as a POST starts to hang
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{status: http.StatusOK, release: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	t.Cleanup(func() { close(h.release) }) // before Close, which waits for every POST
	return h
}

func (h *hookServer) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body) // the server notices the client leave only once the body is read
	h.mu.Lock()
	status, hang := h.status, h.hang
	h.mu.Unlock()
	if hang == nil {
		w.WriteHeader(status)
		return
	}
	hang()
	select {
	case <-r.Context().Done():
	case <-h.release:
	}
}

func (h *hookServer) set(status int, hang func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status, h.hang = status, hang
}

// Succeed implements pushtest.Deliveries.
func (h *hookServer) Succeed() { h.set(http.StatusOK, nil) }

// Fail implements pushtest.Deliveries.
func (h *hookServer) Fail() { h.set(http.StatusServiceUnavailable, nil) }

// Hang implements pushtest.Deliveries.
func (h *hookServer) Hang() <-chan struct{} {
	hung := make(chan struct{})
	h.set(0, sync.OnceFunc(func() { close(hung) }))
	return hung
}
