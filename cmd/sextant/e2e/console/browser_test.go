// Package console_test drives Sextant's web console in a real browser:
// Debian's chromium, headless, through chromedp, against the real sextant
// binary with registrations of the official Nacos Go SDK. It must not import
// Sextant's proto package: the SDK registers the same protobuf message names.
package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
)

func TestMain(m *testing.M) { nacostest.Main(m) }

// chromiumPath is Debian's chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// awaitTimeout bounds every wait for the page to show something. The page
// refreshes every 3 s; the machine may be slow and shared.
const awaitTimeout = 30 * time.Second

// browser is one headless chromium tab, and what its page wrote to the
// console that a test must not accept (uncaught exceptions, CSP refusals).
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

// newBrowser starts chromium with a fresh profile, closed when the test
// ends. The test fails, never skips, when chromium is missing.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the console's tests need Debian's chromium at %s (apt-get install -y chromium; .ci/run installs it): %v", chromiumPath, err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	b := &browser{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Source == "security" || m.Type == "error" && m.Source == "" {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-done
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			t.Errorf("the page's console: %s", p)
		}
	})
	return b
}

// do runs actions in the tab.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, awaitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.describe())
	}
}

// click clicks the element selector names in a table the page renders
// anew as it updates live: should the page replace the element between
// chromedp finding and clicking it, the click is tried again on the new one.
func (b *browser) click(what, selector string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, awaitTimeout)
	defer cancel()
	for {
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(selector)))
		if err == nil {
			return
		}
		if ctx.Err() != nil || !strings.Contains(err.Error(), "node with given id") {
			b.t.Fatalf("%s: %v\n%s", what, err, b.describe())
		}
	}
}

// await waits until the JavaScript expression is true in the page.
func (b *browser) await(what, expression string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, awaitTimeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expression,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(awaitTimeout)))
	if err != nil {
		b.t.Fatalf("the page does not show %s within %v: %v\n%s", what, awaitTimeout, err, b.describe())
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, expression string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, awaitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expression, err)
	}
	return v
}

// clear empties an input field as a user does: its input event fires.
func (b *browser) clear(id string) {
	b.t.Helper()
	eval[bool](b, `(e => { e.value = ''; return e.dispatchEvent(new Event('input')); })(document.getElementById(`+jsString(id)+`))`)
}

// rowsJS is the text of a table's cells, row by row, as JavaScript.
func rowsJS(table string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll('#%s tbody tr')).filter(tr => !tr.querySelector('td.empty')).map(tr => Array.from(tr.cells).map(td => td.textContent.trim()))`, table)
}

// rows reads a table's cells.
func (b *browser) rows(table string) [][]string {
	b.t.Helper()
	return eval[[][]string](b, rowsJS(table))
}

// awaitRows waits until a table's rows satisfy a JavaScript predicate of
// rows (a list of lists of cell texts), and returns them.
func (b *browser) awaitRows(table, what, predicate string) [][]string {
	b.t.Helper()
	b.await(what, fmt.Sprintf(`((rows) => %s)(%s)`, predicate, rowsJS(table)))
	return b.rows(table)
}

// describe is what a failure shows of the page: its location, its error
// box and the start of its text.
func (b *browser) describe() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + '\nerror: ' + (document.getElementById('error') || {}).textContent + '\n' + (document.body ? document.body.innerText.slice(0, 1500) : '')`))
	if err != nil {
		return "(the page cannot be read: " + err.Error() + ")"
	}
	return "page: " + s
}

// artifacts is the directory screenshots go to: $SEXTANT_ARTIFACTS, or the
// test's temporary directory.
func artifacts(t *testing.T) string {
	if dir := os.Getenv("SEXTANT_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// screenshot saves the viewport as dir/name.png, and returns it.
func (b *browser) screenshot(dir, name string) []byte {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, awaitTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot of %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
	return png
}

// sessionToken reads the token the page keeps.
func (b *browser) sessionToken() string {
	b.t.Helper()
	return eval[string](b, `sessionStorage.getItem('sextant.console.token') || ''`)
}

// jsString quotes s as a JavaScript string.
func jsString(s string) string {
	q, _ := json.Marshal(s) // a string always encodes
	return string(q)
}

// cell is a row's cell text, or "" when the row is shorter.
func cell(row []string, i int) string {
	if i < len(row) {
		return row[i]
	}
	return ""
}

// firstCells is the first cell of each row, for failure messages.
func firstCells(rows [][]string) string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = cell(r, 0)
	}
	return strings.Join(out, ", ")
}
