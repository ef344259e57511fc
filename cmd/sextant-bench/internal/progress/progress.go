// Package progress shows a running benchmark's state: one line rewritten in
// place on a terminal, or a plain line now and then when the output is a
// file or a pipe.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// IsTerminal reports whether f is a character device, such as a terminal.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// clearLine returns the cursor to the start of the line and erases it.
const clearLine = "\r\033[K"

// Start writes status() to w every interval, in place when tty is set, until
// the returned stop is called; stop erases the line on a terminal and
// returns once nothing more will be written.
func Start(w io.Writer, tty bool, interval time.Duration, status func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprint(w, clearLine)
				}
				return
			case now := <-t.C:
				fmt.Fprint(w, Line(tty, now.Sub(start), status()))
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// Line renders one progress line: in place on a terminal, otherwise as a
// line of its own that starts with the time since the run began.
func Line(tty bool, elapsed time.Duration, status string) string {
	if tty {
		return clearLine + status
	}
	return fmt.Sprintf("[%7.1fs] %s\n", elapsed.Seconds(), status)
}
