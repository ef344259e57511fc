// Package grpcjs_test drives the real sextant binary with a second,
// independent HTTP/2 and gRPC implementation: @grpc/grpc-js, the gRPC of
// Node.js, running client.js. Every other end-to-end test talks to the
// client port through grpc-go (the raw wire client of package wire, and the
// Nacos Go SDK built on it), so a server that only worked with grpc-go's
// framing, flow control, header handling or stream ends would pass them all.
// Here a client written against another HTTP/2 stack lives through a whole
// Nacos 2.x naming session — server check, stream setup, registration,
// subscription and acknowledged pushes, queries, 50 multiplexed calls,
// messages beyond HTTP/2's initial flow-control window, and the close of
// its connections, after which the server must drop their instances — once
// per remote transport.
//
// The test needs node and npm on the PATH. It installs the pinned packages
// of package-lock.json with npm ci into a directory under os.TempDir() named
// after the lock's hash, reused by later runs; the repository holds no
// node_modules.
package grpcjs_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/servertest"
)

const (
	// protoPath is the Nacos wire's proto, from this package's directory.
	protoPath = "../../../../proto/nacos/nacos_grpc_service.proto"
	// clientTimeout bounds one run of client.js.
	clientTimeout = 60 * time.Second
	// installTimeout bounds npm ci.
	installTimeout = 5 * time.Minute
	// awaitTimeout bounds every wait for the server's state.
	awaitTimeout = 15 * time.Second
	// batchSize is how many instances client.js registers in its batch.
	batchSize = 300
)

// steps are what client.js reports, in order, when every step passes.
var steps = []string{"serverCheck", "notRegistered", "setup", "register", "subscribe", "secondConnection",
	"pushOnRegister",
	"query", "pushOnDeregister", "concurrent", "large", "awaitClose", "close"}

func TestMain(m *testing.M) { servertest.Main(m) }

// TestGRPCJSClient runs client.js's naming session against a server on each
// remote transport, then checks the server's side: the pushes counted as
// acknowledged, the instances seen over HTTP, and their removal once the
// client closed its connection.
func TestGRPCJSClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("this test needs Node.js (node on the PATH): %v", err)
	}
	if _, err := os.Stat(protoPath); err != nil {
		t.Fatalf("the Nacos proto: %v", err)
	}
	modules := installModules(t)
	for _, transport := range []string{"grpc", "h2"} {
		t.Run(transport, func(t *testing.T) {
			srv := servertest.Start(t, servertest.Options{Env: []string{
				"SEXTANT_PUSH_DELAY=20ms",
				"SEXTANT_REMOTE_TRANSPORT=" + transport,
			}})
			start := time.Now()
			runClient(t, srv, node, modules, fmt.Sprintf("grpcjs-%s-%d", transport, time.Now().UnixNano()))
			t.Logf("transport %s: the grpc-js session and its checks took %v", transport, time.Since(start).Round(time.Millisecond))
		})
	}
}

// report is one line client.js prints for a step that passed.
type report struct {
	Step    string `json:"step"`
	Ms      int64  `json:"ms"`
	Acks    int    `json:"acks"`
	Pushes  int    `json:"pushes"`
	Hosts   any    `json:"hosts"`
	Service string `json:"service"`
	// StreamStatus is, at close, how each half-closed stream ended.
	StreamStatus []string `json:"streamStatus"`
}

// runClient runs client.js for service svc against srv and checks the
// server while the client waits to close, and after it has.
func runClient(t *testing.T, srv *servertest.Server, node, modules, svc string) {
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.js", srv.GRPCAddr(), protoPath, svc)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.WaitDelay = 5 * time.Second
	stderr := &lineLogger{t: t, prefix: "client.js: "}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting client.js: %v", err)
	}
	waited := false
	wait := func() error {
		waited = true
		return cmd.Wait()
	}
	// A failing check kills the client and waits for it, so that nothing
	// logs after the test ends.
	defer func() {
		if !waited {
			cancel()
			_ = wait()
		}
	}()

	var out bytes.Buffer
	var seen []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		var r report
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Errorf("client.js printed a line that is not a step report: %q", line)
			continue
		}
		t.Logf("step %s passed at %d ms: %s", r.Step, r.Ms, line)
		seen = append(seen, r.Step)
		if r.Step == "close" {
			for _, st := range r.StreamStatus {
				if !strings.HasPrefix(st, "OK") {
					// The server drops a client's TCP connection as its
					// stream ends, before grpc-go writes the stream's status.
					t.Logf("a half-closed stream ended with %q, not OK: the server dropped the connection first", st)
				}
			}
		}
		if r.Step != "awaitClose" {
			continue
		}
		checkConnected(t, srv, svc, r.Acks)
		if _, err := io.WriteString(stdin, "close\n"); err != nil {
			t.Fatalf("telling client.js to close: %v", err)
		}
		_ = stdin.Close()
	}
	err = wait()
	if ctx.Err() != nil {
		t.Fatalf("client.js did not finish within %v (at step %s)\nstdout:\n%s\nstderr:\n%s", clientTimeout, last(seen), out.String(), stderr.String())
	}
	if err != nil {
		t.Fatalf("client.js failed after step %s: %v\nstdout:\n%s\nstderr:\n%s\nserver logs (tail):\n%s",
			last(seen), err, out.String(), stderr.String(), srv.Tail())
	}
	if !slices.Equal(seen, steps) {
		t.Fatalf("client.js exited 0 having passed steps %v, want %v\nstdout:\n%s", seen, steps, out.String())
	}

	// The client closed its stream and channel: the server drops the
	// connection and, with it, the client's ephemeral instances.
	servertest.Eventually(t, awaitTimeout, "the closed client's instances are gone", func() (bool, string) {
		a, b := instanceList(t, srv, svc), instanceList(t, srv, svc+"-big")
		return len(a) == 0 && len(b) == 0, fmt.Sprintf("%s: %v; %s-big: %d hosts", svc, a, svc, len(b))
	})
	servertest.Eventually(t, awaitTimeout, "the server holds no connection", func() (bool, string) {
		n := srv.Metric(t, "sextant_connections")
		return n == 0, fmt.Sprintf("sextant_connections %v", n)
	})
}

// The series of pushes the client acknowledged (resultCode 200) and of
// pushes that failed: server requests sent on the stream, by type and result.
const (
	pushesAcked  = `sextant_server_requests_total{result="ok",type="NotifySubscriberRequest"}`
	pushesFailed = `sextant_server_requests_total{result="failed",type="NotifySubscriberRequest"}`
)

// checkConnected checks the server while client.js is connected and has
// acknowledged acks pushes: its instances are served over HTTP, its
// connection is counted, and so are its acknowledgements.
func checkConnected(t *testing.T, srv *servertest.Server, svc string, acks int) {
	t.Helper()
	if acks < 3 {
		t.Fatalf("client.js acknowledged %d pushes; it awaits at least 3 (register, deregister, batch)", acks)
	}
	if got := instanceList(t, srv, svc); !slices.Equal(got, []string{"10.10.0.1:8001"}) {
		t.Errorf("GET instance/list of %s: hosts %v, want [10.10.0.1:8001]", svc, got)
	}
	if got := instanceList(t, srv, svc+"-big"); len(got) != batchSize {
		t.Errorf("GET instance/list of %s-big: %d hosts, want %d", svc, len(got), batchSize)
	}
	if n := srv.Metric(t, "sextant_connections"); n != 2 {
		t.Errorf("sextant_connections = %v with client.js's two connections set up, want 2", n)
	}
	// The server counts an acknowledgement once it has read it from the
	// stream, which may be after the client went on.
	servertest.Eventually(t, awaitTimeout, fmt.Sprintf("the server counts %d acknowledged pushes", acks), func() (bool, string) {
		n := srv.Metric(t, pushesAcked)
		return n >= float64(acks), fmt.Sprintf("%s %v", pushesAcked, n)
	})
	if n := srv.Metric(t, pushesFailed); n != 0 {
		t.Errorf("%s = %v, want 0: every push was answered 200", pushesFailed, n)
	}
}

// instanceList returns the ip:port of the service's instances as
// GET /nacos/v1/ns/instance/list serves them.
func instanceList(t *testing.T, srv *servertest.Server, svc string) []string {
	t.Helper()
	u := "http://" + srv.HTTPAddr() + "/nacos/v1/ns/instance/list?" + url.Values{"serviceName": {svc}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", u, resp.Status, body)
	}
	var list struct {
		Hosts []struct {
			IP   string `json:"ip"`
			Port int    `json:"port"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, body)
	}
	addrs := make([]string, len(list.Hosts))
	for i, h := range list.Hosts {
		addrs[i] = fmt.Sprintf("%s:%d", h.IP, h.Port)
	}
	slices.Sort(addrs)
	return addrs
}

// installModules installs package-lock.json's packages with npm ci, once
// per version of the lock: into a directory under os.TempDir() named after
// the hash of package.json and package-lock.json, built under another name
// and renamed into place when complete, so that concurrent runs never see
// half an install. It returns the node_modules directory.
func installModules(t *testing.T) string {
	t.Helper()
	h := sha256.New()
	files := []string{"package.json", "package-lock.json"}
	contents := make([][]byte, len(files))
	for i, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		contents[i] = b
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	dir := filepath.Join(os.TempDir(), "sextant-grpcjs-"+hex.EncodeToString(h.Sum(nil))[:16])
	modules := filepath.Join(dir, "node_modules")
	done := filepath.Join(dir, ".installed")
	if _, err := os.Stat(done); err == nil {
		t.Logf("using the npm packages installed in %s", dir)
		return modules
	}

	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("this test needs npm on the PATH to install @grpc/grpc-js: %v", err)
	}
	tmp, err := os.MkdirTemp(os.TempDir(), "sextant-grpcjs-install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp) // gone once renamed
	for i, name := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), contents[i], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	start := time.Now()
	// No install scripts: the packages are plain JavaScript, and the only
	// script among them (protobufjs's) serves its command line tools.
	cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", tmp, err, out)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".installed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another run installed the same lock first: use its install.
		if _, statErr := os.Stat(done); statErr != nil {
			t.Fatalf("moving the npm install into place: %v (and %s is not a complete install: %v)", err, dir, statErr)
		}
		t.Logf("using the npm packages another run installed into %s first (%v)", dir, err)
		return modules
	}
	t.Logf("installed the npm packages into %s in %v", dir, time.Since(start).Round(time.Millisecond))
	return modules
}

func last(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return s[len(s)-1]
}

// lineLogger logs what is written to it line by line, and keeps it.
type lineLogger struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	all    bytes.Buffer
	line   []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.line = append(l.line, p...)
	for {
		i := bytes.IndexByte(l.line, '\n')
		if i < 0 {
			break
		}
		l.t.Log(l.prefix + string(l.line[:i]))
		l.line = l.line[i+1:]
	}
	return len(p), nil
}

func (l *lineLogger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.all.String())
}
