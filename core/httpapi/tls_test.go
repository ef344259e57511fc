package httpapi

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/sextantd/sextant/core/tlsconfig"
	"github.com/sextantd/sextant/core/tlsconfig/tlstest"
)

// TestTLS checks HTTPS on the HTTP port: HTTP/1.1 and HTTP/2 clients that
// trust the CA are served, a plain HTTP client is not, and with a client CA
// a client without a certificate is refused.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, clientCA := tlstest.NewCA(t, "server CA"), tlstest.NewCA(t, "client CA")
	certFile, keyFile := ca.Server(t).WriteFiles(t, dir, "server")
	certs, err := tlsconfig.New(tlsconfig.Config{
		Files:        tlsconfig.Files{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCA.WriteFile(t, dir, "clients.crt")},
		PollInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{TLS: certs.ServerConfig("h2", "http/1.1")})
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	url := "https://" + s.Addr().String() + livenessPath

	clientCert := clientCA.Client(t, "client").TLS(t)
	httpsClient := func(h2, withCert bool) *http.Client {
		cfg := &tls.Config{RootCAs: ca.Pool()}
		if withCert {
			cfg.Certificates = []tls.Certificate{clientCert}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2, DisableKeepAlives: true}}
	}
	for _, h2 := range []bool{false, true} {
		c := httpsClient(h2, true)
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("HTTP/2 %v: %v", h2, err)
		}
		resp.Body.Close()
		if wantMajor := map[bool]int{false: 1, true: 2}[h2]; resp.StatusCode != http.StatusOK || resp.ProtoMajor != wantMajor {
			t.Errorf("HTTP/2 %v: %s over %s", h2, resp.Status, resp.Proto)
		}
		c.CloseIdleConnections()
	}
	if r := get(newClient(), http.MethodGet, "http://"+s.Addr().String()+livenessPath); r.err == nil && r.code == http.StatusOK {
		t.Errorf("plain HTTP was served: %d %q", r.code, r.body)
	}
	if resp, err := httpsClient(false, false).Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("a client without a certificate was served: %s", resp.Status)
	}
}

// TestBindLoopback checks that a server bound to 127.0.0.1 is not reachable
// on another address of this machine.
func TestBindLoopback(t *testing.T) {
	s := startServer(t, Config{}) // Addr 127.0.0.1:0
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	addr := s.Addr().(*net.TCPAddr)
	if !addr.IP.IsLoopback() {
		t.Fatalf("listening on %s", addr)
	}
	if r := get(newClient(), http.MethodGet, "http://"+addr.String()+livenessPath); r.err != nil || r.code != http.StatusOK {
		t.Fatalf("on loopback: %d %v", r.code, r.err)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.To4() == nil {
			continue
		}
		other := net.JoinHostPort(n.IP.String(), strconv.Itoa(addr.Port))
		if !dialRefused(other) {
			t.Errorf("reachable on %s", other)
		}
		return
	}
	t.Log("this machine has no address but loopback: only the listener's address is checked")
}
