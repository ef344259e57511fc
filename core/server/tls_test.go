package server

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/core/config"
	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/core/tlsconfig/tlstest"
	sdkpush "github.com/sextantd/sextant/sdk/push"
)

func tlsTestConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Port = freePort(t)
	cfg.Remote.GRPCPort = freePort(t)
	cfg.DataDir = t.TempDir()
	cfg.Plugins = map[string]config.Plugin{"fakepush": {InProcess: true}}
	return cfg
}

func tlsTestOptions() Options {
	return Options{
		Logger:   hclog.NewNullLogger(),
		Builtins: pluginhost.Builtins{Push: map[string]sdkpush.Plugin{"fakepush": fakePush(make(chan sdkpush.Batch, 1))}},
	}
}

// TestTLSFileMissing checks that a TLS file that cannot be read stops the
// server from being built, with an error naming the file.
func TestTLSFileMissing(t *testing.T) {
	cfg := tlsTestConfig(t)
	dir := t.TempDir()
	certFile, _ := tlstest.NewCA(t, "ca").Server(t).WriteFiles(t, dir, "server")
	cfg.TLS = config.TLS{CertFile: certFile, KeyFile: filepath.Join(dir, "missing.key")}
	if _, err := New(cfg, tlsTestOptions()); err == nil || !strings.Contains(err.Error(), cfg.TLS.KeyFile) {
		t.Fatalf("New = %v, want an error naming %s", err, cfg.TLS.KeyFile)
	}
}

// TestBindAndTLS starts a server bound to loopback with TLS: both client
// ports listen on 127.0.0.1 and speak TLS, and Reload takes new files.
func TestBindAndTLS(t *testing.T) {
	cfg := tlsTestConfig(t)
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	cfg.TLS.CertFile, cfg.TLS.KeyFile = ca.Server(t).WriteFiles(t, dir, "server")
	cfg.Bind = "127.0.0.1"
	srv, err := New(cfg, tlsTestOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), StopTimeout)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	for _, addr := range []net.Addr{srv.http.Addr(), srv.remote.Addr()} {
		if ip := addr.(*net.TCPAddr).IP; !ip.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("listening on %s, want 127.0.0.1", addr)
		}
	}
	serial := func(addr string) string {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2"}, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatalf("TLS to %s: %v", addr, err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, DisableKeepAlives: true}}
	resp, err := client.Get("https://" + srv.http.Addr().String() + "/nacos/v1/console/health/readiness")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readiness over HTTPS: %s", resp.Status)
	}

	next := ca.Server(t)
	next.WriteFiles(t, dir, "server")
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []net.Addr{srv.http.Addr(), srv.remote.Addr()} {
		if got, want := serial(addr.String()), next.Cert.SerialNumber.String(); got != want {
			t.Errorf("%s serves %s after Reload, want %s", addr, got, want)
		}
	}
}
