package remote

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/internal/metrictest"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/core/remote/serveropts"
)

// newLoggingServer is newTestServer logging to the returned buffer.
func newLoggingServer(t *testing.T) (*Server, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	registry := naming.NewRegistry(naming.Config{
		Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10,
			MaxServicesPerClient: 10, MaxInstancesPerClient: 10, MaxSubscriptionsPerClient: 10, MaxClustersPerFilter: 8},
		Bus: notify.New(notify.Config{}),
	})
	s := New(Config{MaxMessageSize: 1 << 20, Registry: registry, Metrics: prometheus.NewRegistry(),
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})})
	s.baseCtx = context.Background()
	s.SetReady(true)
	return s, logs
}

// TestConnectionsAreLogged: a connection's setup and its end are logged at
// info with the client's address, application and SDK, and at its end what
// went with it and how long it lived.
func TestConnectionsAreLogged(t *testing.T) {
	s, logs := newLoggingServer(t)
	const id = "1700000000000_10.0.0.7_50000"
	c := newConn(id, "10.0.0.7:50000", time.Now().Add(-90*time.Second), func(serveropts.Message) error { return nil }, func(error) {})
	setup := `{"clientVersion":"Nacos-Go-Client:v2.3.2","labels":{"AppName":"orders","module":"naming"}}`
	if err := s.register(c, []byte(setup)); err != nil {
		t.Fatal(err)
	}
	want := `[INFO]  connection set up: connection=1700000000000_10.0.0.7_50000 client_ip=10.0.0.7 app=orders client_version=Nacos-Go-Client:v2.3.2`
	if !strings.Contains(logs.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, logs)
	}
	for _, r := range []struct{ typ, body string }{
		{"InstanceRequest", `{"serviceName":"a","type":"registerInstance","instance":{"ip":"10.0.0.7","port":80,"enabled":true,"ephemeral":true}}`},
		{"InstanceRequest", `{"serviceName":"b","type":"registerInstance","instance":{"ip":"10.0.0.7","port":81,"enabled":true,"ephemeral":true}}`},
		{"SubscribeServiceRequest", `{"serviceName":"c","subscribe":true}`},
	} {
		if typ, body := serve(s, id, r.typ, r.body); typ == "ErrorResponse" {
			t.Fatalf("%s: %v", r.typ, body)
		}
	}
	c.close()
	s.unregister(c)
	for _, want := range []string{
		`[INFO]  connection closed: connection=1700000000000_10.0.0.7_50000 client_ip=10.0.0.7 app=orders ` +
			`client_version=Nacos-Go-Client:v2.3.2 instances_removed=2 subscriptions_removed=1 age=1m30`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q in the log:\n%s", want, logs)
		}
	}

	// Without an application label.
	other := newConn("c2", "", time.Now(), func(serveropts.Message) error { return nil }, func(error) {})
	if err := s.register(other, []byte(`{"clientVersion":"test"}`)); err != nil {
		t.Fatal(err)
	}
	defer other.close()
	if want := "connection set up: connection=c2 client_ip=c2 app=- client_version=test"; !strings.Contains(logs.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, logs)
	}
}

// TestFailedRequestsAreLoggedOnce: a client repeating a bad request is
// logged once, at warn, and its repeats are counted, not logged.
func TestFailedRequestsAreLoggedOnce(t *testing.T) {
	s, logs := newLoggingServer(t)
	addConn(t, s, "1700000000000_10.0.0.8_50000")
	bad := `{"serviceName":"a@@b","type":"registerInstance","instance":{"ip":"10.0.0.8","port":80,"enabled":true,"ephemeral":true}}`
	for range 10 {
		if typ, _ := serve(s, "1700000000000_10.0.0.8_50000", "InstanceRequest", bad); typ != "ErrorResponse" {
			t.Fatalf("a bad request answered %s", typ)
		}
	}
	serve(s, "1700000000000_10.0.0.9_50000", "InstanceRequest", bad) // not set up: clients race their setup
	serve(s, "1700000000000_10.0.0.8_50000", "NoSuchRequest", `{}`)  // logged by its own bound
	lines := strings.Count(logs.String(), "client request failed")
	if lines != 1 {
		t.Fatalf("%d lines about failed requests, want 1:\n%s", lines, logs)
	}
	want := `[WARN]  client request failed: client=10.0.0.8 connection=1700000000000_10.0.0.8_50000 type=InstanceRequest code=400 error="serviceName:`
	if !strings.Contains(logs.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, logs)
	}
	if got := metrictest.CounterValue(t, s.metrics.clientErrorsSuppressed); got != 9 {
		t.Errorf("%v suppressed, want 9", got)
	}
}
