package progress

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLine(t *testing.T) {
	if got := Line(false, 1500*time.Millisecond, "register ok 10"); got != "[    1.5s] register ok 10\n" {
		t.Errorf("plain line %q", got)
	}
	if got := Line(true, time.Second, "x"); got != "\r\033[Kx" {
		t.Errorf("terminal line %q", got)
	}
}

func TestStartWritesUntilStopped(t *testing.T) {
	for _, tty := range []bool{false, true} {
		var out lockedBuffer
		shown := make(chan struct{}, 1)
		stop := Start(&out, tty, time.Millisecond, func() string {
			select {
			case shown <- struct{}{}:
			default:
			}
			return "status"
		})
		select {
		case <-shown:
		case <-time.After(5 * time.Second):
			t.Fatal("no progress shown")
		}
		stop()
		stop() // twice is fine
		written := out.String()
		if !strings.Contains(written, "status") {
			t.Errorf("tty %v: wrote %q", tty, written)
		}
		if tty && !strings.HasSuffix(written, clearLine) {
			t.Errorf("the terminal line was not cleared: %q", written)
		}
		if after := out.String(); after != written {
			t.Errorf("tty %v: wrote after stop", tty)
		}
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file is a terminal")
	}
}
