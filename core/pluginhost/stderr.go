package pluginhost

import (
	"bytes"
	"sync"
)

// What the error of a failed handshake shows of the plugin's stderr at
// most: its last lines, within its last bytes.
const (
	stderrTailLines = 20
	stderrTailBytes = 4 << 10
)

// stderrTail keeps the end of what a starting plugin process writes to its
// stderr — a wrong binary's usage, a crash's message — for the error of a
// failed handshake: go-plugin's own error does not say what the process
// said. It keeps stderrTailBytes at most, and nothing once the handshake
// is done (close).
type stderrTail struct {
	mu        sync.Mutex
	buf       []byte
	truncated bool // bytes were dropped from the front
	closed    bool
}

// Write keeps the end of p, and of what came before.
func (t *stderrTail) Write(p []byte) (int, error) {
	n := len(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return n, nil
	}
	if len(p) > stderrTailBytes {
		p, t.truncated = p[len(p)-stderrTailBytes:], true
	}
	if over := len(t.buf) + len(p) - stderrTailBytes; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.truncated = true
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// close stops keeping what comes, and drops what was kept.
func (t *stderrTail) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed, t.buf = true, nil
}

// String returns the last stderrTailLines lines kept, "" if none; "..."
// begins it when earlier output was left out.
func (t *stderrTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	text := bytes.TrimRight(t.buf, "\r\n\t ")
	truncated := t.truncated
	if n := bytes.Count(text, []byte("\n")); n >= stderrTailLines {
		cut := 0
		for range n - stderrTailLines + 1 {
			cut += bytes.IndexByte(text[cut:], '\n') + 1
		}
		text, truncated = text[cut:], true
	}
	if len(bytes.TrimSpace(text)) == 0 {
		return ""
	}
	if truncated {
		return "...\n" + string(text)
	}
	return string(text)
}
