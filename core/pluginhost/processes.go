package pluginhost

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	goplugin "github.com/hashicorp/go-plugin"
)

// A plugin process listens on a Unix socket it makes in the directory
// go-plugin's PLUGIN_UNIX_SOCKET_DIR names (the system's temporary directory
// by default), and leaves it behind when it dies without closing it: killed,
// crashed, or exiting because the server died. So each launch gets a
// directory of its own, inside one of the host's, and the host removes the
// launch's directory once the process is gone and its own at Stop. A
// server that was killed cannot; the next host to start removes the
// directories of hosts whose process is gone. The host's side of the
// brokered connections rides the plugin's own socket
// (GRPCBrokerMultiplex), so the host makes no socket file.

// socketRootPattern names the hosts' directories: the process id and
// MkdirTemp's random digits.
var socketRootPattern = regexp.MustCompile(`^sextant-plugins-([0-9]+)-[0-9]+$`)

// sockets are the directories of one host's plugin sockets.
type sockets struct {
	mu   sync.Mutex
	root string // "" until the first launch, and after remove
}

// dir makes a directory for one launch's sockets.
func (s *sockets) dir() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root == "" {
		sweepSockets()
		root, err := os.MkdirTemp("", fmt.Sprintf("sextant-plugins-%d-", os.Getpid()))
		if err != nil {
			return "", fmt.Errorf("a directory for the plugin's socket: %w", err)
		}
		s.root = root
	}
	dir, err := os.MkdirTemp(s.root, "")
	if err != nil {
		return "", fmt.Errorf("a directory for the plugin's socket: %w", err)
	}
	return dir, nil
}

// remove removes every directory of the host's.
func (s *sockets) remove() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root != "" {
		_ = os.RemoveAll(s.root)
		s.root = ""
	}
}

// sweepSockets removes the socket directories of hosts whose process is
// gone, left behind by servers that were killed.
func sweepSockets() {
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		m := socketRootPattern.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		if pid, err := strconv.Atoi(m[1]); err == nil && pid != os.Getpid() && !alive(pid) {
			_ = os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
		}
	}
}

// process is a plugin's running process and the directory of its socket.
type process struct {
	client *goplugin.Client
	dir    string
	cmd    *exec.Cmd
	osPID  int // set once the handshake is done
}

func (p *process) pid() int { return p.osPID }

// exitStatus says how the process ended, such as "exit status 2" or
// "signal: killed"; call it once it has exited (after kill).
func (p *process) exitStatus() string {
	if p.cmd.ProcessState == nil {
		return "it did not start"
	}
	return p.cmd.ProcessState.String()
}

// stoppedBySignal reports whether the process, which has exited, was ended
// by SIGTERM or SIGINT: the signals that stop a server, sent to its process
// group by systemd or by Ctrl-C in a terminal.
func (p *process) stoppedBySignal() bool {
	if p.cmd.ProcessState == nil {
		return false
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && (ws.Signal() == syscall.SIGTERM || ws.Signal() == syscall.SIGINT)
}

// said returns err, the error of a failed start, with how the process
// ended and the end of what it wrote to its stderr; call it after kill.
func (p *process) said(err error, stderr *stderrTail) error {
	var parts []string
	if p.cmd.ProcessState != nil {
		parts = append(parts, "the process ended with "+p.exitStatus())
	}
	if tail := stderr.String(); tail != "" {
		parts = append(parts, "its stderr ends with:\n"+tail)
	}
	if len(parts) == 0 {
		return err
	}
	sep := "; "
	if strings.HasSuffix(err.Error(), "\n") { // go-plugin's notes on a binary that is no plugin
		sep = ""
	}
	return fmt.Errorf("%w%s%s", err, sep, strings.Join(parts, "; "))
}

// kill ends the process and removes its socket's directory.
func (p *process) kill() {
	p.client.Kill()
	_ = os.RemoveAll(p.dir)
}

// fileSHA256 returns the SHA-256 of the file at path.
func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// sha256Of returns the hex SHA-256 of the plugin binary at path, for the
// log: computed once per path (so a binary replaced since shows its first
// sum; the configured sha256, when set, is checked before every start).
func (h *Host) sha256Of(path string) string {
	h.sumsMu.Lock()
	defer h.sumsMu.Unlock()
	if sum, ok := h.sums[path]; ok {
		return sum
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return "unknown: " + err.Error()
	}
	if h.sums == nil {
		h.sums = make(map[string]string)
	}
	h.sums[path] = hex.EncodeToString(sum)
	return h.sums[path]
}

// exitExpected reports whether a plugin process that exited did so because
// the server stops: BeginStop was called, or, when bySignal (the process
// died of SIGTERM or SIGINT), is called within signalGrace.
func (h *Host) exitExpected(bySignal bool) bool {
	select {
	case <-h.stopping:
		return true
	default:
	}
	return bySignal && awaitClosed(h.stopping, signalGrace)
}
