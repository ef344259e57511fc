package remote

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
)

// TestUnknownRequestTypes: a request of an unknown type is counted under its
// type, the first maxUnknownTypes distinct ones, the rest and the types that
// are not class names as "other"; each is logged once, at warn.
func TestUnknownRequestTypes(t *testing.T) {
	var logs strings.Builder
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})
	metrics := prometheus.NewRegistry()
	s := New(Config{MaxMessageSize: 1 << 20, Logger: log, Metrics: metrics,
		Registry: naming.NewRegistry(naming.Config{Limits: naming.Limits{MaxNameLength: 100, MaxMetadataBytes: 100, MaxBatchSize: 10},
			Bus: notify.New(notify.Config{})})})
	s.SetReady(true)
	addConn(t, s, "c1")

	// count reads sextant_client_requests_total{type,code}; series counts its series.
	count := func(typ, code string) float64 {
		t.Helper()
		for _, l := range requestSeries(t, metrics) {
			if l.typ == typ && l.code == code {
				return l.value
			}
		}
		return 0
	}
	for range 3 {
		if typ, body := serve(s, "c1", "ConfigQueryRequest", `{}`); typ != "ErrorResponse" || body["errorCode"] != 302.0 {
			t.Fatalf("ConfigQueryRequest: %s %v", typ, body)
		}
	}
	if got := count("ConfigQueryRequest", "302"); got != 3 {
		t.Errorf("ConfigQueryRequest counted %v times", got)
	}
	if n := strings.Count(logs.String(), "ConfigQueryRequest"); n != 1 {
		t.Errorf("ConfigQueryRequest logged %d times:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "[WARN]") {
		t.Errorf("not logged at warn:\n%s", logs.String())
	}

	// Types that are not class names, and those beyond the bound, are "other".
	serve(s, "c1", "bad type\n{}", `{}`)
	serve(s, "c1", "", `{}`)
	serve(s, "c1", strings.Repeat("A", maxTypeLength+1), `{}`)
	for i := range maxUnknownTypes + 10 {
		serve(s, "c1", fmt.Sprintf("Type%dRequest", i), `{}`)
	}
	if got := count(otherUnknownType, "302"); got != 3+11 {
		t.Errorf("other: %v, want %d", got, 3+11)
	}
	if got := count("Type30Request", "302"); got != 1 {
		t.Errorf("Type30Request: %v", got)
	}
	if got := len(requestSeries(t, metrics)); got != maxUnknownTypes+1 {
		t.Errorf("%d series, want %d (the bound and other)", got, maxUnknownTypes+1)
	}
	if n := strings.Count(logs.String(), "counted as type"); n != 1 {
		t.Errorf("the overflow logged %d times:\n%s", n, logs.String())
	}
	// Known types keep their own label.
	serve(s, "c1", "HealthCheckRequest", `{"requestId":"1"}`)
	if got := count("HealthCheckRequest", "200"); got != 1 {
		t.Errorf("HealthCheckRequest: %v", got)
	}
}

type requestSample struct {
	typ, code string
	value     float64
}

// requestSeries returns the series of sextant_client_requests_total.
func requestSeries(t *testing.T, g prometheus.Gatherer) []requestSample {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []requestSample
	for _, f := range families {
		if f.GetName() != "sextant_client_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var smp requestSample
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "type":
					smp.typ = l.GetValue()
				case "code":
					smp.code = l.GetValue()
				}
			}
			smp.value = m.GetCounter().GetValue()
			out = append(out, smp)
		}
	}
	return out
}
