package tlsconfig

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/sextantd/sextant/core/tlsconfig/tlstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitTimeout = 5 * time.Second

// fixture is a set of files in a temporary directory.
type fixture struct {
	dir               string
	ca                *tlstest.CA
	certFile, keyFile string
	caFile            string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), ca: tlstest.NewCA(t, "test CA")}
	f.certFile, f.keyFile = f.ca.Server(t).WriteFiles(t, f.dir, "server")
	return f
}

// start returns a started Reloader of f's files, stopped when the test ends.
func (f *fixture) start(t *testing.T, poll time.Duration, metrics prometheus.Registerer) *Reloader {
	t.Helper()
	r, err := New(Config{Files: Files{CertFile: f.certFile, KeyFile: f.keyFile, ClientCAFile: f.caFile},
		PollInterval: poll, Logger: hclog.NewNullLogger(), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return r
}

// serve runs an echo server with cfg on loopback until the test ends.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return lis.Addr().String()
}

// dial connects to addr trusting ca, with the client certificate if any,
// and returns the connection after its handshake.
func dial(addr string, ca *tlstest.CA, client *tls.Certificate) (*tls.Conn, error) {
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	// With TLS 1.3 the server checks the client's certificate after the
	// client's handshake is done: a round trip shows the verdict.
	if err := echo(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func echo(c *tls.Conn) error {
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return errors.New("echo: got " + line)
	}
	return nil
}

// served returns the serial number of the certificate addr serves.
func served(t *testing.T, addr string, ca *tlstest.CA) string {
	t.Helper()
	c, err := dial(addr, ca, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServesTheLoadedCertificate(t *testing.T) {
	f := newFixture(t)
	r := f.start(t, -1, nil)
	addr := serve(t, r.ServerConfig())
	if got, want := served(t, addr, f.ca), r.Leaf().SerialNumber.String(); got != want {
		t.Fatalf("served certificate %s, want %s", got, want)
	}
	// Without a client CA no client certificate is asked for.
	c, err := dial(addr, f.ca, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestReloadsWhenTheFilesChange(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	r := f.start(t, 10*time.Millisecond, reg)
	addr := serve(t, r.ServerConfig())
	old := served(t, addr, f.ca)

	// A connection made before the change lives on after it.
	kept, err := dial(addr, f.ca, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()

	next := f.ca.Server(t)
	next.WriteFiles(t, f.dir, "server")
	want := next.Cert.SerialNumber.String()
	eventually(t, "the new certificate is served", func() bool { return served(t, addr, f.ca) == want })
	if want == old {
		t.Fatal("the two certificates have the same serial number")
	}
	if err := echo(kept); err != nil {
		t.Fatalf("the connection made before the reload: %v", err)
	}
	if n := reloads(t, r, "ok"); n < 1 {
		t.Errorf("ok reloads = %v", n)
	}
	if got := gaugeValue(t, reg, "sextant_tls_certificate_expiry_timestamp_seconds"); got != float64(next.Cert.NotAfter.Unix()) {
		t.Errorf("expiry gauge = %v, want %v", got, next.Cert.NotAfter.Unix())
	}
}

// reloads reads r's count of reloads with result.
func reloads(t *testing.T, r *Reloader, result string) float64 {
	t.Helper()
	var m dto.Metric
	if err := r.reloads.WithLabelValues(result).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestABadNewCertificateKeepsTheOldOne(t *testing.T) {
	f := newFixture(t)
	r := f.start(t, 10*time.Millisecond, prometheus.NewRegistry())
	addr := serve(t, r.ServerConfig())
	old := served(t, addr, f.ca)

	for _, bad := range []struct {
		name string
		make func()
	}{
		{"not PEM", func() { tlstest.WriteFile(t, f.certFile, []byte("not a certificate")) }},
		{"another key", func() { tlstest.WriteFile(t, f.certFile, f.ca.Server(t).CertPEM) }},
		{"missing", func() {
			if err := os.Remove(f.certFile); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		failed := reloads(t, r, "failed")
		bad.make()
		eventually(t, bad.name+": the reload fails", func() bool {
			return reloads(t, r, "failed") > failed
		})
		if got := served(t, addr, f.ca); got != old {
			t.Fatalf("%s: served %s, want the old certificate %s", bad.name, got, old)
		}
	}

	// A good set written afterwards is taken.
	next := f.ca.Server(t)
	next.WriteFiles(t, f.dir, "server")
	eventually(t, "the good certificate is served", func() bool { return served(t, addr, f.ca) == next.Cert.SerialNumber.String() })
}

func TestExplicitReload(t *testing.T) {
	f := newFixture(t)
	r := f.start(t, -1, nil) // no polling: only Reload (SIGHUP) reads the files
	addr := serve(t, r.ServerConfig())
	old := served(t, addr, f.ca)

	next := f.ca.Server(t)
	next.WriteFiles(t, f.dir, "server")
	time.Sleep(50 * time.Millisecond)
	if got := served(t, addr, f.ca); got != old {
		t.Fatalf("served %s before Reload, want %s", got, old)
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, want := served(t, addr, f.ca), next.Cert.SerialNumber.String(); got != want {
		t.Fatalf("served %s after Reload, want %s", got, want)
	}

	tlstest.WriteFile(t, f.keyFile, []byte("garbage"))
	err := r.Reload()
	if err == nil || !strings.Contains(err.Error(), f.keyFile) {
		t.Fatalf("Reload of a bad key = %v, want an error naming %s", err, f.keyFile)
	}
	if got, want := served(t, addr, f.ca), next.Cert.SerialNumber.String(); got != want {
		t.Fatalf("served %s after a failed Reload, want %s", got, want)
	}
}

func TestMutualTLS(t *testing.T) {
	f := newFixture(t)
	clientCA := tlstest.NewCA(t, "client CA")
	f.caFile = clientCA.WriteFile(t, f.dir, "clients.crt")
	r := f.start(t, -1, nil)
	addr := serve(t, r.ServerConfig())

	if c, err := dial(addr, f.ca, nil); err == nil {
		c.Close()
		t.Fatal("a client without a certificate was accepted")
	}
	stranger := tlstest.NewCA(t, "another CA").Client(t, "stranger").TLS(t)
	if c, err := dial(addr, f.ca, &stranger); err == nil {
		c.Close()
		t.Fatal("a client whose certificate is from another CA was accepted")
	}
	good := clientCA.Client(t, "good").TLS(t)
	c, err := dial(addr, f.ca, &good)
	if err != nil {
		t.Fatalf("a client with a certificate from the client CA: %v", err)
	}
	c.Close()

	// The client CA is reloaded too.
	tlstest.WriteFile(t, f.caFile, tlstest.NewCA(t, "the next client CA").PEM)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if c, err := dial(addr, f.ca, &good); err == nil {
		c.Close()
		t.Fatal("a client of the replaced client CA was accepted")
	}
}

func TestNewFailsNamingTheFile(t *testing.T) {
	f := newFixture(t)
	notPEM := filepath.Join(f.dir, "empty.crt")
	tlstest.WriteFile(t, notPEM, []byte("nothing"))
	other := f.ca.Server(t)
	otherCert, _ := other.WriteFiles(t, f.dir, "other")
	missing := filepath.Join(f.dir, "missing.pem")
	tests := []struct {
		name  string
		files Files
		want  string
	}{
		{"missing certificate", Files{CertFile: missing, KeyFile: f.keyFile}, missing},
		{"missing key", Files{CertFile: f.certFile, KeyFile: missing}, missing},
		{"missing client CA", Files{CertFile: f.certFile, KeyFile: f.keyFile, ClientCAFile: missing}, missing},
		{"certificate not PEM", Files{CertFile: notPEM, KeyFile: f.keyFile}, notPEM},
		{"key of another certificate", Files{CertFile: otherCert, KeyFile: f.keyFile}, otherCert},
		{"client CA not PEM", Files{CertFile: f.certFile, KeyFile: f.keyFile, ClientCAFile: notPEM}, notPEM},
		{"no key", Files{CertFile: f.certFile}, "key file"},
	}
	for _, tc := range tests {
		_, err := New(Config{Files: tc.files})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}

func TestServerConfigOffersTheGivenProtocols(t *testing.T) {
	f := newFixture(t)
	r := f.start(t, -1, nil)
	addr := serve(t, r.ServerConfig("h2", "http/1.1"))
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: f.ca.Pool(), ServerName: "localhost", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.ConnectionState().NegotiatedProtocol; got != "h2" {
		t.Fatalf("negotiated %q, want h2", got)
	}
	if got := c.ConnectionState().Version; got < tls.VersionTLS12 {
		t.Fatalf("TLS version %x", got)
	}
}
