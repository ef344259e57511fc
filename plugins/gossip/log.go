package gossip

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// memberlist logs through a standard logger, with a level in brackets, and
// logs many lines on what peers send (a packet it cannot decode, a conflict
// of names): a peer could flood the log. logWriter takes its lines to the
// plugin's logger at their level, at most logBurst at once and one every
// logEvery after that; the lines dropped are counted in the next one.
const (
	logBurst = 20
	logEvery = time.Second
)

// logWriter is memberlist's log output.
type logWriter struct {
	logger hclog.Logger
	// quiet, once the node stops, logs what memberlist's goroutines say
	// as they finish (a send on a closed socket) at debug level.
	quiet atomic.Bool

	mu      sync.Mutex
	tokens  float64
	last    time.Time // when tokens was counted
	dropped int
}

func newLogWriter(logger hclog.Logger) *logWriter {
	return &logWriter{logger: logger, tokens: logBurst, last: time.Now()}
}

// levels are memberlist's level tags.
var levels = map[string]hclog.Level{
	"[TRACE]": hclog.Trace,
	"[DEBUG]": hclog.Debug,
	"[INFO]":  hclog.Info,
	"[WARN]":  hclog.Warn,
	"[ERR]":   hclog.Error,
	"[ERROR]": hclog.Error,
}

// Write logs one line of memberlist's.
func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := hclog.Info
	if tag, rest, ok := strings.Cut(line, " "); ok {
		if l, known := levels[tag]; known {
			level, line = l, strings.TrimPrefix(rest, "memberlist: ")
		}
	}
	if w.quiet.Load() {
		level = min(level, hclog.Debug)
	}
	if level < w.logger.GetLevel() {
		return len(p), nil
	}
	w.mu.Lock()
	now := time.Now()
	w.tokens = min(logBurst, w.tokens+float64(now.Sub(w.last))/float64(logEvery))
	w.last = now
	if w.tokens < 1 {
		w.dropped++
		w.mu.Unlock()
		return len(p), nil
	}
	w.tokens--
	dropped := w.dropped
	w.dropped = 0
	w.mu.Unlock()
	if dropped > 0 {
		w.logger.Warn("dropped lines of memberlist's log, over the rate limit", "dropped", dropped)
	}
	w.logger.Log(level, line)
	return len(p), nil
}
