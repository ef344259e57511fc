// Package kittest is what the conformance kits' own tests share: a kit.T
// that records what a kit reports instead of failing the test, and a way to
// build a plugin binary.
package kittest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Failure is a failure a kit reported: in which check ("" for none: at the
// top), and what its message says.
type Failure struct{ Check, Says string }

// Report is what a kit reported: its failures, and the checks it skipped.
type Report struct {
	Failures []Failure
	Skipped  []Failure // the skip's message as Says
}

// Record runs a kit against a Recorder and returns what it reported: run
// calls the kit with its argument.
func Record(run func(r *Recorder)) Report {
	r := &Recorder{report: &report{}}
	r.run(func() { run(r) })
	return r.report.Report
}

// Recorder is a kit.T that records failures instead of failing a test. Like
// testing.T, it runs each test in its own goroutine, which Fatalf and Skipf
// end, and runs the test's cleanups when it is over.
type Recorder struct {
	check    string // the subtest's name; "" at the top
	report   *report
	failed   bool
	cleanups []func()
}

type report struct {
	mu sync.Mutex
	Report
}

// Helper does nothing.
func (r *Recorder) Helper() {}

// Errorf records a failure.
func (r *Recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.report.mu.Lock()
	defer r.report.mu.Unlock()
	r.report.Failures = append(r.report.Failures, Failure{r.check, fmt.Sprintf(format, args...)})
}

// Fatalf records a failure and ends the test.
func (r *Recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// Skipf records a skip and ends the test.
func (r *Recorder) Skipf(format string, args ...any) {
	r.report.mu.Lock()
	r.report.Skipped = append(r.report.Skipped, Failure{r.check, fmt.Sprintf(format, args...)})
	r.report.mu.Unlock()
	runtime.Goexit()
}

// Cleanup registers f to run when the test is over.
func (r *Recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// Run runs f as the subtest name and reports whether it passed.
func (r *Recorder) Run(name string, f func(*Recorder)) bool {
	sub := &Recorder{check: name, report: r.report}
	sub.run(func() { f(sub) })
	r.failed = r.failed || sub.failed
	return !sub.failed
}

func (r *Recorder) run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			for _, c := range slices.Backward(r.cleanups) {
				c()
			}
		}()
		f()
	}()
	<-done
}

// Expect fails t unless every wanted failure was reported — in its check,
// with a message containing its Says — and no failure in a check that no
// wanted one names.
func Expect(t *testing.T, got, want []Failure) {
	t.Helper()
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g Failure) bool { return g.Check == w.Check && strings.Contains(g.Says, w.Says) }) {
			t.Errorf("the kit did not report, in check %q, a failure saying %q; it reported:\n%s", w.Check, w.Says, show(got))
		}
	}
	for _, g := range got {
		if !slices.ContainsFunc(want, func(w Failure) bool { return w.Check == g.Check }) {
			t.Errorf("the kit reported an unexpected failure in check %q: %s", g.Check, g.Says)
		}
	}
}

func show(fs []Failure) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  [%s] %s\n", f.Check, f.Says)
	}
	return b.String()
}

// Build builds the plugin binary of a package (a path relative to the
// test's directory, such as "./testdata/crasher") and returns its path.
func Build(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}
