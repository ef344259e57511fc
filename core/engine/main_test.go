package engine

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for something that should happen promptly.
const waitTimeout = 5 * time.Second

// recv returns the next value of ch, failing the test if none comes in time.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %T", *new(T))
		panic("unreachable")
	}
}

// eventually polls cond until it holds, failing the test if it does not in time.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		runtime.Gosched()
	}
}

// logLines is a log output that hands each line to the test.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	l <- string(p)
	return len(p), nil
}

func newLogger() (hclog.Logger, logLines) {
	lines := make(logLines, 64)
	return hclog.New(&hclog.LoggerOptions{Output: lines, Level: hclog.Info}), lines
}

// waitFor returns the first line containing substr.
func (l logLines) waitFor(t *testing.T, substr string) string {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case line := <-l:
			if strings.Contains(line, substr) {
				return line
			}
		case <-timeout:
			t.Fatalf("no log line containing %q", substr)
		}
	}
}
