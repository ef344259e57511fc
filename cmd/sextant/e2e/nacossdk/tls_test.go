package nacossdk_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/common/http_agent"
	sdklogger "github.com/nacos-group/nacos-sdk-go/v2/common/logger"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
	"github.com/sextantd/sextant/core/tlsconfig/tlstest"
)

// tlsTimeout bounds the waits of these tests: start-up, a certificate
// rotation noticed by polling, a refused SDK client giving up.
const tlsTimeout = 30 * time.Second

// tlsServer is a sextant process serving TLS with certificates made by the
// test. servertest cannot start it: it waits for readiness over plain HTTP.
type tlsServer struct {
	httpPort, grpcPort int
	dir                string      // the PEM files
	ca                 *tlstest.CA // issued the server's certificate
	caFile             string      // ca, for the SDK's CaFile
	certFile, keyFile  string
	clientCA           *tlstest.CA // nil without mutual TLS
	clientCertFile     string      // a client certificate of clientCA, and its key
	clientKeyFile      string
	cmd                *exec.Cmd
	logs               *lockedBuffer
	exited             chan struct{}
}

// startTLSServer runs "sextant server" with tls.* set (and, if mutual,
// tls.client_ca_file), bound to 127.0.0.1, and waits until it is ready.
// It is stopped when the test ends, and must exit cleanly.
func startTLSServer(t *testing.T, mutual bool) *tlsServer {
	t.Helper()
	port := servertest.FreePorts(t, 1)[0]
	s := &tlsServer{httpPort: port, grpcPort: port + 1000, dir: t.TempDir(), ca: tlstest.NewCA(t, "sextant test CA"),
		logs: &lockedBuffer{}, exited: make(chan struct{})}
	s.caFile = s.ca.WriteFile(t, s.dir, "ca.crt")
	s.certFile, s.keyFile = s.ca.Server(t).WriteFiles(t, s.dir, "server")
	env := []string{
		"SEXTANT_TLS_CERT_FILE=" + s.certFile,
		"SEXTANT_TLS_KEY_FILE=" + s.keyFile,
		"SEXTANT_BIND=127.0.0.1",
		"SEXTANT_PUSH_DELAY=20ms",
		"SEXTANT_LOG_LEVEL=debug", // "connection set up" lines count the SDK's connections
	}
	if mutual {
		s.clientCA = tlstest.NewCA(t, "sextant test client CA")
		env = append(env, "SEXTANT_TLS_CLIENT_CA_FILE="+s.clientCA.WriteFile(t, s.dir, "clients.crt"))
		s.clientCertFile, s.clientKeyFile = s.clientCA.Client(t, "sdk").WriteFiles(t, s.dir, "client")
	}
	s.cmd = exec.Command(servertest.Binary(t), "server", "--port", strconv.Itoa(port), "--data-dir", filepath.Join(t.TempDir(), "data"))
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
			t.Errorf("sextant had exited by itself:\n%s", s.logs)
			return
		default:
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
			if code := s.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("sextant exited with %d:\n%s", code, s.logs)
			}
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
			t.Errorf("sextant did not stop within 10s of SIGTERM:\n%s", s.logs)
		}
	})
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: s.clientTLS(true)}}
	deadline := time.Now().Add(tlsTimeout)
	for {
		resp, err := client.Get("https://" + s.httpAddr() + "/nacos/v1/console/health/readiness")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				client.CloseIdleConnections()
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("sextant exited before it was ready:\n%s", s.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sextant was not ready over HTTPS within %v (%v):\n%s", tlsTimeout, err, s.logs)
		}
	}
}

func (s *tlsServer) httpAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.httpPort)) }
func (s *tlsServer) grpcAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.grpcPort)) }

// clientTLS trusts the server's CA and, with mutual TLS and withCert,
// presents the client certificate.
func (s *tlsServer) clientTLS(withCert bool) *tls.Config {
	cfg := &tls.Config{RootCAs: s.ca.Pool()}
	if withCert && s.clientCA != nil {
		cert, err := tls.LoadX509KeyPair(s.clientCertFile, s.clientKeyFile)
		if err != nil {
			panic(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// sdkTLS is the SDK's TLS setting for s: trust its CA and, with withCert,
// present the client certificate.
func (s *tlsServer) sdkTLS(withCert bool) constant.TLSConfig {
	c := constant.TLSConfig{Enable: true, CaFile: s.caFile}
	if withCert {
		c.CertFile, c.KeyFile = s.clientCertFile, s.clientKeyFile
	}
	return c
}

// servedSerial returns the serial number of the certificate addr presents
// to a new connection.
func (s *tlsServer) servedSerial(t *testing.T, addr string) string {
	t.Helper()
	cfg := s.clientTLS(true)
	cfg.ServerName, cfg.NextProtos = "127.0.0.1", []string{"h2"}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// setUps counts the client connections the server has set up so far.
func (s *tlsServer) setUps() int { return strings.Count(s.logs.String(), "connection set up") }

// newTLSClient returns an SDK naming client of s with the TLS setting tc
// and the https scheme for what it sends over HTTP. It is closed when the
// test ends; its logs and caches go to a directory of the test.
func newTLSClient(t *testing.T, s *tlsServer, tc constant.TLSConfig) naming_client.INamingClient {
	t.Helper()
	dir := sdkDir(t)
	client, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: constant.NewClientConfig(
			constant.WithTimeoutMs(5000),
			constant.WithNotLoadCacheAtStart(true),
			constant.WithUpdateCacheWhenEmpty(true),
			constant.WithLogDir(dir),
			constant.WithCacheDir(dir),
			constant.WithLogLevel("error"),
			constant.WithTLS(tc),
		),
		ServerConfigs: []constant.ServerConfig{*constant.NewServerConfig("127.0.0.1", uint64(s.httpPort), constant.WithScheme("https"))},
	})
	if err != nil {
		t.Fatalf("creating a naming client: %v", err)
	}
	t.Cleanup(client.CloseClient)
	return client
}

// sdkDir returns a directory for the SDK's logs and caches, removed when the
// test ends. The SDK's logger is global: once the test's clients are closed,
// it is pointed away from the directory, which is then removed.
func sdkDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { sdklogger.SetLogger(nopLogger{}) }) // after the clients close, before dir goes
	return dir
}

type nopLogger struct{}

func (nopLogger) Info(...any)           {}
func (nopLogger) Warn(...any)           {}
func (nopLogger) Error(...any)          {}
func (nopLogger) Debug(...any)          {}
func (nopLogger) Infof(string, ...any)  {}
func (nopLogger) Warnf(string, ...any)  {}
func (nopLogger) Errorf(string, ...any) {}
func (nopLogger) Debugf(string, ...any) {}

// registerAndPush registers an instance through one SDK client and checks
// that another, subscribed, is pushed it.
func registerAndPush(t *testing.T, svc string, provider, consumer naming_client.INamingClient) {
	t.Helper()
	w := nacostest.Subscribe(t, consumer, vo.SubscribeParam{ServiceName: svc})
	nacostest.Register(t, provider, vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: svc})
	w.Await(t, "10.0.0.1:80", func(is []model.Instance) bool {
		return len(is) == 1 && is[0].Ip == "10.0.0.1" && is[0].Port == 80
	})
}

// TestTLSWithTheSDK runs a server with tls.cert_file and tls.key_file: the
// official SDK with its TLS options registers, subscribes and is pushed, and
// its HTTP client reaches the HTTP port over HTTPS; plaintext clients are
// refused on both ports; bind keeps both ports on loopback.
func TestTLSWithTheSDK(t *testing.T) {
	s := startTLSServer(t, false)
	t.Run("sdk", func(t *testing.T) {
		registerAndPush(t, serviceName(t), newTLSClient(t, s, s.sdkTLS(false)), newTLSClient(t, s, s.sdkTLS(false)))
	})
	t.Run("sdk http", func(t *testing.T) {
		// How the SDK logs in and sends what goes over HTTP.
		for _, tc := range []constant.TLSConfig{s.sdkTLS(false), {Enable: true}} { // with the CA; trusting all
			agent := &http_agent.HttpAgent{TlsConfig: tc}
			resp, err := agent.Get("https://"+s.httpAddr()+"/nacos/v1/console/health/liveness", http.Header{}, 5000, nil)
			if err != nil {
				t.Fatalf("CaFile %q: %v", tc.CaFile, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("CaFile %q: %s", tc.CaFile, resp.Status)
			}
		}
	})
	t.Run("plaintext refused", func(t *testing.T) {
		plaintextRefused(t, s)
	})
	t.Run("bind", func(t *testing.T) {
		other := otherAddress(t)
		if other == nil {
			t.Skip("this machine has no address but loopback")
		}
		for _, port := range []int{s.httpPort, s.grpcPort} {
			addr := net.JoinHostPort(other.String(), strconv.Itoa(port))
			if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
				c.Close()
				t.Errorf("bind = 127.0.0.1, yet %s accepts connections", addr)
			}
		}
	})
}

// plaintextRefused checks that plain gRPC and plain HTTP get nothing.
func plaintextRefused(t *testing.T, s *tlsServer) {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+s.grpcAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Any call: the connection fails before the method matters.
	if _, err := grpc_health_v1.NewHealthClient(cc).Check(ctx, &grpc_health_v1.HealthCheckRequest{}); err == nil || !strings.Contains(err.Error(), "Unavailable") {
		t.Errorf("plaintext gRPC: %v, want the connection refused (Unavailable)", err)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + s.httpAddr() + "/nacos/v1/console/health/liveness")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP was served")
		}
	}
}

// TestTLSMutual runs a server with tls.client_ca_file: the SDK with a client
// certificate from that CA works; without one it cannot connect.
func TestTLSMutual(t *testing.T) {
	s := startTLSServer(t, true)
	t.Run("sdk with a client certificate", func(t *testing.T) {
		registerAndPush(t, serviceName(t), newTLSClient(t, s, s.sdkTLS(true)), newTLSClient(t, s, s.sdkTLS(true)))
	})
	t.Run("sdk without a client certificate", func(t *testing.T) {
		// In a process of its own: a client that cannot connect keeps
		// reconnecting, and the SDK's reconnection has a data race.
		if got := sdkInSubprocess(t, s, true); got != "registered" {
			t.Fatalf("the SDK with a client certificate, in a process of its own: %s", got)
		}
		if got := sdkInSubprocess(t, s, false); !strings.HasPrefix(got, "failed") {
			t.Fatalf("the SDK without a client certificate: %s", got)
		}
	})
	t.Run("https without a client certificate", func(t *testing.T) {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: s.clientTLS(false)}}
		if resp, err := client.Get("https://" + s.httpAddr() + "/nacos/v1/console/health/liveness"); err == nil {
			resp.Body.Close()
			t.Fatalf("served: %s", resp.Status)
		}
		agent := &http_agent.HttpAgent{TlsConfig: s.sdkTLS(true)}
		resp, err := agent.Get("https://"+s.httpAddr()+"/nacos/v1/console/health/liveness", http.Header{}, 5000, nil)
		if err != nil {
			t.Fatalf("the SDK's HTTP client with its certificate: %v", err)
		}
		resp.Body.Close()
	})
}

// TestTLSRotation replaces the certificate files while SDK clients are
// connected: their connections survive and keep being served, new
// connections get the new certificate, once by polling and once on SIGHUP.
func TestTLSRotation(t *testing.T) {
	s := startTLSServer(t, false)
	provider, consumer := newTLSClient(t, s, s.sdkTLS(false)), newTLSClient(t, s, s.sdkTLS(false))
	svc := serviceName(t)
	w := nacostest.Subscribe(t, consumer, vo.SubscribeParam{ServiceName: svc})
	nacostest.Register(t, provider, vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: svc})
	w.AwaitCount(t, 1)
	connections := s.setUps()
	first := s.servedSerial(t, s.grpcAddr())

	awaitSerial := func(want string) {
		t.Helper()
		deadline := time.Now().Add(tlsTimeout)
		for _, addr := range []string{s.grpcAddr(), s.httpAddr()} {
			for s.servedSerial(t, addr) != want {
				if time.Now().After(deadline) {
					t.Fatalf("%s does not serve the new certificate %s within %v:\n%s", addr, want, tlsTimeout, s.logs)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	for i, rotate := range []func(){
		func() {}, // the poll notices the new files
		func() { _ = s.cmd.Process.Signal(syscall.SIGHUP) },
	} {
		next := s.ca.Server(t)
		next.WriteFiles(t, s.dir, "server")
		rotate()
		awaitSerial(next.Cert.SerialNumber.String())
		if next.Cert.SerialNumber.String() == first {
			t.Fatal("the new certificate has the old serial number")
		}

		// The SDK's connections were not dropped: they are still served,
		// and no new one was set up.
		port := uint64(81 + i)
		nacostest.Register(t, provider, vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: port, ServiceName: svc})
		w.Await(t, fmt.Sprintf("10.0.0.1:%d", port), func(is []model.Instance) bool { return len(is) == 1 && is[0].Port == port })
		if n := s.setUps(); n != connections {
			t.Fatalf("rotation %d: %d connections set up, want the %d from before", i, n, connections)
		}
	}
	if !strings.Contains(s.logs.String(), "SIGHUP: reloading") {
		t.Errorf("no reload logged on SIGHUP:\n%s", s.logs)
	}

	// A new SDK client trusts the same CA and connects.
	registerAndPush(t, svc+"-after", newTLSClient(t, s, s.sdkTLS(false)), consumer)
}

// sdkInSubprocess runs an SDK client of s in a process of its own (this
// test binary, as TestTLSSDKSubprocess) and returns what it said:
// "registered", or "failed: ...".
func sdkInSubprocess(t *testing.T, s *tlsServer, withCert bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*tlsTimeout)
	defer cancel()
	tc := s.sdkTLS(withCert)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestTLSSDKSubprocess$", "-test.count=1")
	cmd.Env = append(os.Environ(), subprocessEnv+"=1",
		"SDK_PORT="+strconv.Itoa(s.httpPort), "SDK_CA="+tc.CaFile, "SDK_CERT="+tc.CertFile, "SDK_KEY="+tc.KeyFile, "SDK_DIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, _ := cmd.Output() // its exit status may tell of the SDK's data race
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "registered") || strings.HasPrefix(line, "failed") {
			return line
		}
	}
	t.Fatalf("the SDK subprocess said nothing (%v):\n%s\n%s", ctx.Err(), out, stderr.String())
	return ""
}

const subprocessEnv = "SEXTANT_TLS_SDK_SUBPROCESS"

// TestTLSSDKSubprocess is the SDK client sdkInSubprocess runs; on its own it
// is skipped.
func TestTLSSDKSubprocess(t *testing.T) {
	if os.Getenv(subprocessEnv) == "" {
		t.Skip("run by sdkInSubprocess")
	}
	port, _ := strconv.ParseUint(os.Getenv("SDK_PORT"), 10, 64)
	dir := os.Getenv("SDK_DIR")
	client, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: constant.NewClientConfig(constant.WithTimeoutMs(3000), constant.WithNotLoadCacheAtStart(true),
			constant.WithLogDir(dir), constant.WithCacheDir(dir), constant.WithLogLevel("error"),
			constant.WithTLS(constant.TLSConfig{Enable: true, CaFile: os.Getenv("SDK_CA"), CertFile: os.Getenv("SDK_CERT"), KeyFile: os.Getenv("SDK_KEY")})),
		ServerConfigs: []constant.ServerConfig{*constant.NewServerConfig("127.0.0.1", port, constant.WithScheme("https"))},
	})
	if err == nil {
		var ok bool
		ok, err = client.RegisterInstance(vo.RegisterInstanceParam{Ip: "10.9.9.9", Port: 80, ServiceName: "subprocess",
			Weight: 1, Enable: true, Healthy: true, Ephemeral: true})
		if err == nil && !ok {
			err = fmt.Errorf("not registered")
		}
	}
	if err != nil {
		fmt.Printf("failed: %v\n", strings.ReplaceAll(err.Error(), "\n", " "))
	} else {
		fmt.Println("registered")
	}
	// The client is left as it is: the process ends with the test.
}

// otherAddress returns an IPv4 address of this machine that is not
// loopback, or nil.
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
	return nil
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
