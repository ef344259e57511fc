package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/push"
)

var orders = push.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "order-service"}

func TestPostsTheChangeOnceForAllTargets(t *testing.T) {
	type request struct{ method, contentType, body string }
	got := make(chan request, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- request{r.Method, r.Header.Get("Content-Type"), string(body)}
	}))
	defer srv.Close()

	errs := testWebhook(srv.URL, 2, time.Second).Push(context.Background(), push.Batch{
		Service:     orders,
		Clusters:    "DEFAULT",
		ServiceInfo: []byte(`{"name":"order-service","hosts":[]}`),
		Targets:     []push.Target{{ClientID: "observer:webhook"}, {ClientID: "c1", ConnectionID: "c1", App: "shop"}},
	})
	if len(errs) != 2 || errs[0] != nil || errs[1] != nil {
		t.Fatalf("Push = %v, want two nil errors", errs)
	}
	r := <-got
	const want = `{"namespace":"public","group":"DEFAULT_GROUP","service":"order-service","clusters":"DEFAULT",` +
		`"serviceInfo":{"name":"order-service","hosts":[]},"targets":["observer:webhook","c1"]}`
	if r.method != http.MethodPost || r.contentType != "application/json" || r.body != want {
		t.Errorf("got %s (%s) %s\nwant POST (application/json) %s", r.method, r.contentType, r.body, want)
	}
	if len(got) != 0 {
		t.Errorf("%d more requests, want one POST for the whole batch", len(got))
	}
}

func TestRetriesUntilAccepted(t *testing.T) {
	srv, posts := endpoint(t, http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusNoContent)
	errs := testWebhook(srv.URL, 2, time.Second).Push(context.Background(), batch(3))
	if !allNil(errs) || len(errs) != 3 {
		t.Errorf("Push = %v, want three nil errors after two retries", errs)
	}
	if n := posts.Load(); n != 3 {
		t.Errorf("%d POSTs, want 3", n)
	}
}

func TestReportsEveryTargetFailedOnceRetriesAreSpent(t *testing.T) {
	srv, posts := endpoint(t, http.StatusInternalServerError)
	errs := testWebhook(srv.URL, 2, time.Second).Push(context.Background(), batch(3))
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "500 Internal Server Error") {
			t.Errorf("target %d: error %v, want the 500 answer", i, err)
		}
	}
	if len(errs) != 3 {
		t.Errorf("%d results for 3 targets", len(errs))
	}
	if n := posts.Load(); n != 3 {
		t.Errorf("%d POSTs, want 3 (the first and 2 retries)", n)
	}
}

func TestReportsTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens at its URL any more
	errs := testWebhook(srv.URL, 1, time.Second).Push(context.Background(), batch(2))
	if len(errs) != 2 || errs[0] == nil || errs[1] == nil || !strings.Contains(errs[0].Error(), "connection refused") {
		t.Errorf("Push = %v, want connection refused for both targets", errs)
	}
}

func TestTimeoutEndsEachPost(t *testing.T) {
	srv, posts := hangingEndpoint(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := testWebhook(srv.URL, 1, 50*time.Millisecond).Push(ctx, batch(1))
	if !errors.Is(errs[0], context.DeadlineExceeded) {
		t.Errorf("Push = %v, want the POST's deadline exceeded", errs)
	}
	if n := len(posts); n != 2 {
		t.Errorf("%d POSTs, want 2: each must end after the 50ms timeout, then be retried once", n)
	}
}

func TestContextEndsDeliveryAndRetries(t *testing.T) {
	srv, posts := hangingEndpoint(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-posts
		cancel()
	}()
	errs := testWebhook(srv.URL, 5, time.Hour).Push(ctx, batch(2))
	if len(errs) != 2 || !errors.Is(errs[0], context.Canceled) || !errors.Is(errs[1], context.Canceled) {
		t.Errorf("Push = %v, want both targets cancelled", errs)
	}
	if n := len(posts); n != 0 {
		t.Errorf("%d more POSTs: no retry once the push's context has ended", n)
	}
}

func TestEmptyBatchPostsNothing(t *testing.T) {
	srv, posts := endpoint(t, http.StatusOK)
	if errs := testWebhook(srv.URL, 2, time.Second).Push(context.Background(), batch(0)); len(errs) != 0 {
		t.Errorf("Push = %v, want no results", errs)
	}
	if n := posts.Load(); n != 0 {
		t.Errorf("%d POSTs for no target", n)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block map[string]any
		want  config
		err   string
	}{
		{name: "defaults", block: map[string]any{"url": "http://hooks.example.com/sextant"},
			want: config{URL: "http://hooks.example.com/sextant", Timeout: sdk.ConfigDuration(2 * time.Second), Retries: 2}},
		{name: "everything", block: map[string]any{"url": "https://h/x", "timeout": "500ms", "retries": 0,
			"namespaces": []any{"public"}, "groups": []any{"DEFAULT_GROUP"}, "services": []any{"order-*"}},
			want: config{URL: "https://h/x", Timeout: sdk.ConfigDuration(500 * time.Millisecond), Namespaces: []string{"public"},
				Groups: []string{"DEFAULT_GROUP"}, Services: []string{"order-*"}}},
		{name: "no url", block: map[string]any{}, err: "config.url: required"},
		{name: "not http", block: map[string]any{"url": "ftp://h/x"}, err: `config.url: "ftp://h/x" is not an http or https URL`},
		{name: "no host", block: map[string]any{"url": "http:///x"}, err: "config.url"},
		{name: "zero timeout", block: map[string]any{"url": "http://h", "timeout": "0s"}, err: "config.timeout: 0s is not positive"},
		{name: "negative retries", block: map[string]any{"url": "http://h", "retries": -1}, err: "config.retries: -1 is negative"},
		{name: "bad pattern", block: map[string]any{"url": "http://h", "services": []any{"order-["}}, err: `config.services: "order-["`},
		{name: "unknown key", block: map[string]any{"url": "http://h", "method": "PUT"}, err: "config.method: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// As the host does: check the block against the schema, then New.
			raw, err := Plugin.Config.Check(tc.block)
			if err == nil {
				_, err = Plugin.New(raw, push.Host{})
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg, _ := parseConfig(raw); !reflect.DeepEqual(cfg, tc.want) {
				t.Errorf("config %+v, want %+v", cfg, tc.want)
			}
		})
	}
}

func TestInterestObservesWithoutTakingSubscribers(t *testing.T) {
	raw, err := Plugin.Config.Check(map[string]any{"url": "http://h", "groups": []any{"DEFAULT_GROUP"}, "services": []any{"order-*"}})
	if err != nil {
		t.Fatal(err)
	}
	exec, err := Plugin.New(raw, push.Host{})
	if err != nil {
		t.Fatal(err)
	}
	in := exec.(push.Interested).Interest()
	if !in.Observe {
		t.Error("the interest does not observe")
	}
	if !in.MatchesService(orders) {
		t.Errorf("the interest does not cover %v", orders)
	}
	for _, s := range []push.Service{{Namespace: "public", Group: "DEFAULT_GROUP", Name: "user-service"}, {Namespace: "public", Group: "OTHER", Name: "order-service"}} {
		if in.MatchesService(s) {
			t.Errorf("the interest covers %v", s)
		}
	}
	if in.MatchesSubscriber(orders, "shop", map[string]string{"region": "eu"}) {
		t.Error("the interest takes subscribers from pushrpc: their Nacos clients would no longer be pushed")
	}
}

func testWebhook(url string, retries int, timeout time.Duration) *webhook {
	w := newWebhook(config{URL: url, Retries: retries, Timeout: sdk.ConfigDuration(timeout)})
	w.backoff = time.Millisecond
	return w
}

// endpoint answers its POSTs with statuses in turn, the last one from then
// on, and counts them.
func endpoint(t *testing.T, statuses ...int) (*httptest.Server, *atomic.Int32) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(posts.Add(1))
		w.WriteHeader(statuses[min(n, len(statuses))-1])
	}))
	t.Cleanup(srv.Close)
	return srv, &posts
}

// hangingEndpoint answers no POST: each waits until its client gives up. It
// sends on the channel as each arrives.
func hangingEndpoint(t *testing.T) (*httptest.Server, chan struct{}) {
	posts := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts <- struct{}{}
		_, _ = io.Copy(io.Discard, r.Body) // the server notices the client leave only once the body is read
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv, posts
}

func batch(n int) push.Batch {
	b := push.Batch{Service: orders, ServiceInfo: []byte(`{}`), Targets: make([]push.Target, n)}
	for i := range b.Targets {
		b.Targets[i] = push.Target{ClientID: fmt.Sprintf("client-%d", i)}
	}
	return b
}

func allNil(errs []error) bool {
	for _, err := range errs {
		if err != nil {
			return false
		}
	}
	return true
}
