package addressserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sextantd/sextant/sdk/membership"
	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

func newProvider(t *testing.T, url, timeout string) (membership.Provider, *membershiptest.Log) {
	t.Helper()
	logger, logs := membershiptest.NewLogger()
	p, err := membership.NewProvider(Plugin, []byte(`{"url":"`+url+`","interval":"2ms","timeout":"`+timeout+`"}`), membership.Host{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return p, logs
}

func TestFollowsTheAddressServer(t *testing.T) {
	srv := newAddressServer(t, "10.0.0.1:8848\n10.0.0.2:8848\n")
	p, logs := newProvider(t, srv.URL+"/nacos/serverlist", "1s")
	lists := membershiptest.Watching(t, p, "10.0.0.1:8848")
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848")

	srv.answer(http.StatusOK, "# comment\n10.0.0.3\n10.0.0.1\n10.0.0.2\n", false)
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848")

	// A failing server keeps the last good list, and is logged once.
	srv.answer(http.StatusInternalServerError, "oops", false)
	logs.Await(t, "500 Internal Server Error", 3)
	membershiptest.ExpectNone(t, lists)
	if n := strings.Count(logs.String(), "cannot read the member list; keeping"); n != 1 {
		t.Errorf("the failing server was warned about %d times, want once:\n%s", n, logs)
	}

	// So does an empty answer.
	srv.answer(http.StatusOK, "", false)
	logs.Await(t, "the member list is empty; keeping the last good one", 1)
	membershiptest.ExpectNone(t, lists)

	srv.answer(http.StatusOK, "10.0.0.1:8848\n10.0.0.4:8848\n", false)
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848", "10.0.0.4:8848")
}

func TestHonoursTheTimeout(t *testing.T) {
	srv := newAddressServer(t, "")
	srv.answer(http.StatusOK, "", true)
	p, logs := newProvider(t, srv.URL+"/nacos/serverlist", "20ms")
	start := time.Now()
	lists := membershiptest.Watching(t, p, "10.0.0.1:8848")
	// No answer: the node starts alone, after one timeout.
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the first list came after %v, with a timeout of 20ms", d)
	}
	logs.Await(t, "no answer within 20ms", 1)

	srv.answer(http.StatusOK, "10.0.0.1:8848\n10.0.0.2:8848\n", false)
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848")
	srv.answer(http.StatusOK, "", true)
	logs.Await(t, "no answer within 20ms", 2)
	logs.Await(t, "still cannot read the member list", 2)
	membershiptest.ExpectNone(t, lists)
}

func TestKeepsPasswordsOutOfTheLog(t *testing.T) {
	srv := newAddressServer(t, "")
	srv.answer(http.StatusBadGateway, "", false)
	url := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1) + "/nacos/serverlist"
	p, logs := newProvider(t, url, "1s")
	membershiptest.Watching(t, p, "10.0.0.1:8848")
	logs.Await(t, "502 Bad Gateway", 1)
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
