package addressserver

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/sextantd/sextant/sdk/membership"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuffer is a logger's output, which a test can wait on.
type logBuffer struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func newLogger() (hclog.Logger, *logBuffer) {
	lb := &logBuffer{changed: make(chan struct{})}
	return hclog.New(&hclog.LoggerOptions{Output: lb, Level: hclog.Debug}), lb
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// await waits for the log to hold s n times in all.
func (l *logBuffer) await(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		l.mu.Lock()
		count, changed := strings.Count(l.b.String(), s), l.changed
		l.mu.Unlock()
		if count >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("the log holds %q %d times, want %d; the log:\n%s", s, count, n, l)
		}
	}
}

// watching runs p.Watch as self until the test ends.
func watching(t *testing.T, p membership.Provider, self string) <-chan []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lists := make(chan []string, 100)
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, self, func(m []string) { lists <- m }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	})
	return lists
}

func expectList(t *testing.T, lists <-chan []string, want ...string) {
	t.Helper()
	select {
	case got := <-lists:
		if !slices.Equal(got, want) {
			t.Fatalf("members %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no list within 5s, want %q", want)
	}
}

func expectNone(t *testing.T, lists <-chan []string) {
	t.Helper()
	select {
	case l := <-lists:
		t.Fatalf("an unexpected update %q", l)
	default:
	}
}

// addressServer answers GET /nacos/serverlist as the test says.
type addressServer struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	body   string
	hang   bool
}

func newAddressServer(t *testing.T, body string) *addressServer {
	t.Helper()
	s := &addressServer{status: http.StatusOK, body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/nacos/serverlist" {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		status, body, hang := s.status, s.body, s.hang
		s.mu.Unlock()
		if hang {
			<-r.Context().Done() // until the client gives up
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *addressServer) answer(status int, body string, hang bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body, s.hang = status, body, hang
}

func newProvider(t *testing.T, url, timeout string) (membership.Provider, *logBuffer) {
	t.Helper()
	logger, logs := newLogger()
	p, err := membership.NewProvider(Plugin, []byte(`{"url":"`+url+`","interval":"2ms","timeout":"`+timeout+`"}`), membership.Host{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return p, logs
}

func TestFollowsTheAddressServer(t *testing.T) {
	srv := newAddressServer(t, "10.0.0.1:8848\n10.0.0.2:8848\n")
	p, logs := newProvider(t, srv.URL+"/nacos/serverlist", "1s")
	lists := watching(t, p, "10.0.0.1:8848")
	expectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848")

	srv.answer(http.StatusOK, "# comment\n10.0.0.3\n10.0.0.1\n10.0.0.2\n", false)
	expectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848")

	// A failing server keeps the last good list, and is logged once.
	srv.answer(http.StatusInternalServerError, "oops", false)
	logs.await(t, "500 Internal Server Error", 3)
	expectNone(t, lists)
	if n := strings.Count(logs.String(), "cannot read the member list; keeping"); n != 1 {
		t.Errorf("the failing server was warned about %d times, want once:\n%s", n, logs)
	}

	// So does an empty answer.
	srv.answer(http.StatusOK, "", false)
	logs.await(t, "the member list is empty; keeping the last good one", 1)
	expectNone(t, lists)

	srv.answer(http.StatusOK, "10.0.0.1:8848\n10.0.0.4:8848\n", false)
	expectList(t, lists, "10.0.0.1:8848", "10.0.0.4:8848")
}

func TestHonoursTheTimeout(t *testing.T) {
	srv := newAddressServer(t, "")
	srv.answer(http.StatusOK, "", true)
	p, logs := newProvider(t, srv.URL+"/nacos/serverlist", "20ms")
	start := time.Now()
	lists := watching(t, p, "10.0.0.1:8848")
	// No answer: the node starts alone, after one timeout.
	expectList(t, lists, "10.0.0.1:8848")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the first list came after %v, with a timeout of 20ms", d)
	}
	logs.await(t, "no answer within 20ms", 1)

	srv.answer(http.StatusOK, "10.0.0.1:8848\n10.0.0.2:8848\n", false)
	expectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848")
	srv.answer(http.StatusOK, "", true)
	logs.await(t, "no answer within 20ms", 2)
	logs.await(t, "still cannot read the member list", 2)
	expectNone(t, lists)
}

func TestKeepsPasswordsOutOfTheLog(t *testing.T) {
	srv := newAddressServer(t, "")
	srv.answer(http.StatusBadGateway, "", false)
	url := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1) + "/nacos/serverlist"
	p, logs := newProvider(t, url, "1s")
	watching(t, p, "10.0.0.1:8848")
	logs.await(t, "502 Bad Gateway", 1)
	if strings.Contains(logs.String(), "hunter2") {
		t.Errorf("the log shows the URL's password:\n%s", logs)
	}
}

func TestRefusesAConfigurationThatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"no url", `{}`, []string{`config.url: "" is not an http or https URL`}},
		{"not http", `{"url":"ftp://example.com/list"}`, []string{`config.url: "ftp://example.com/list"`}},
		{"no host", `{"url":"http:///list"}`, []string{`config.url: "http:///list"`}},
		{"not a URL", `{"url":"::"}`, []string{`config.url: "::"`}},
		{"bad durations", `{"url":"http://x/","interval":"0s","timeout":"-1s"}`, []string{
			"config.interval: 0s is not positive", "config.timeout: -1s is not positive"}},
		{"an unknown key", `{"url":"http://x/","colour":"blue"}`, []string{`unknown field "colour"`}},
	} {
		_, err := membership.NewProvider(Plugin, []byte(tc.config), membership.Host{})
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: NewProvider = %v, want an error saying %q", tc.name, err, w)
			}
		}
	}
	if _, err := membership.NewProvider(Plugin, []byte(`{"url":"https://address-server:8080/nacos/serverlist"}`), membership.Host{}); err != nil {
		t.Errorf("a good configuration was refused: %v", err)
	}
}
