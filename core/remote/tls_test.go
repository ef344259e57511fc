package remote

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"

	"github.com/sextantd/sextant/core/tlsconfig"
	"github.com/sextantd/sextant/core/tlsconfig/tlstest"
	"github.com/sextantd/sextant/proto/nacos"
)

// dialWith returns a client of s with the given credentials.
func dialWith(t *testing.T, s *Server, creds credentials.TransportCredentials) *client {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+s.Addr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return &client{cc: cc, rpc: nacos.NewRequestClient(cc)}
}

// servedSerial makes a call on c and returns the serial number of the
// server's certificate it saw.
func (c *client) servedSerial(t *testing.T) string {
	t.Helper()
	var p peer.Peer
	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	defer cancel()
	if _, err := c.rpc.Request(ctx, &nacos.Payload{Metadata: &nacos.Metadata{Type: typeServerCheck}}, grpc.Peer(&p)); err != nil {
		t.Fatal(err)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		t.Fatalf("the call's peer has no TLS: %T", p.AuthInfo)
	}
	return info.State.PeerCertificates[0].SerialNumber.String()
}

// TestTLS checks the client port with TLS: a TLS client is served, a
// plaintext one is not; a client without a certificate is refused when a
// client CA is set; a reload changes the certificate for new connections
// and leaves open ones alone.
func TestTLS(t *testing.T) { forEachTransport(t, testTLS) }

func testTLS(t *testing.T, transport string) {
	dir := t.TempDir()
	ca, clientCA := tlstest.NewCA(t, "server CA"), tlstest.NewCA(t, "client CA")
	certFile, keyFile := ca.Server(t).WriteFiles(t, dir, "server")
	certs, err := tlsconfig.New(tlsconfig.Config{
		Files:        tlsconfig.Files{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCA.WriteFile(t, dir, "clients.crt")},
		PollInterval: -1,
		Logger:       hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := startLimitServer(t, func(c *Config) { c.Transport = transport; c.TLS = certs.ServerConfig() })

	clientCert := clientCA.Client(t, "sdk").TLS(t)
	trusted := func(withCert bool) credentials.TransportCredentials {
		cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
		if withCert {
			cfg.Certificates = []tls.Certificate{clientCert}
		}
		return credentials.NewTLS(cfg)
	}

	good := dialWith(t, s, trusted(true))
	good.openStream(t, true)
	first := good.servedSerial(t)

	if code, err := dialWith(t, s, insecure.NewCredentials()).call(typeServerCheck); err == nil {
		t.Fatalf("a plaintext client was answered (code %d)", code)
	}
	if code, err := dialWith(t, s, trusted(false)).call(typeServerCheck); err == nil {
		t.Fatalf("a client without a certificate was answered (code %d)", code)
	}

	next := ca.Server(t)
	next.WriteFiles(t, dir, "server")
	if err := certs.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := good.servedSerial(t); got != first {
		t.Errorf("the open connection now sees certificate %s, want its original %s", got, first)
	}
	if code, err := good.call(typeHealthCheck); err != nil || code != 0 {
		t.Errorf("the open connection after a reload: code %d, %v", code, err)
	}
	if got, want := dialWith(t, s, trusted(true)).servedSerial(t), next.Cert.SerialNumber.String(); got != want {
		t.Errorf("a new connection sees certificate %s, want the reloaded %s", got, want)
	}
	if n := s.connectionCount(); n != 1 {
		t.Errorf("%d connections set up, want the one", n)
	}
}

// TestBindLoopback checks that a server bound to 127.0.0.1 listens there
// only: it is not reachable on another address of this machine.
func TestBindLoopback(t *testing.T) { forEachTransport(t, testBindLoopback) }

func testBindLoopback(t *testing.T, transport string) {
	s, _ := startLimitServer(t, func(c *Config) { c.Transport = transport }) // Addr 127.0.0.1:0
	addr := s.Addr().(*net.TCPAddr)
	if !addr.IP.IsLoopback() {
		t.Fatalf("listening on %s", addr)
	}
	if code, err := dialClient(t, s).call(typeServerCheck); err != nil || code != 0 {
		t.Fatalf("on loopback: code %d, %v", code, err)
	}
	if ip := otherAddress(t); ip != nil {
		other := net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
		if c, err := net.DialTimeout("tcp", other, limitTimeout); err == nil {
			c.Close()
			t.Fatalf("reachable on %s", other)
		}
	}
}

// otherAddress returns an IPv4 address of this machine that is not
// loopback, or nil if it has none.
func otherAddress(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	t.Log("this machine has no address but loopback: only the listener's address is checked")
	return nil
}
