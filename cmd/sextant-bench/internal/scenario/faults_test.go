package scenario

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/fakenacos"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/target"
)

// common returns small options against the gRPC address addr.
func common(addr string) *Common {
	return &Common{
		Targets:      []target.Target{{HTTP: "127.0.0.1:1", GRPC: addr}},
		Duration:     500 * time.Millisecond,
		Concurrency:  4,
		Seed:         1,
		Timeout:      300 * time.Millisecond,
		SetupTimeout: time.Second,
		Grace:        500 * time.Millisecond,
		Namespace:    "public",
		Group:        "DEFAULT_GROUP",
		Prefix:       "test",
	}
}

// bound is how long a run with options c may take at most.
func bound(c *Common) time.Duration {
	return c.SetupTimeout + c.Warmup + c.Duration + 2*c.Grace + c.Timeout
}

// scenarios runs each scenario, small, with options c.
var scenarios = map[string]func(c *Common) *report.Result{
	"register": func(c *Common) *report.Result {
		return Register(c, RegisterOptions{Connections: 3, Instances: 2, Services: 2}, "test")
	},
	"query": func(c *Common) *report.Result {
		return Query(c, QueryOptions{Connections: 2, Services: 2, Instances: 1, VerifyEvery: 1}, "test")
	},
	"push": func(c *Common) *report.Result {
		c.Count = 2
		return Push(c, PushOptions{Subscribers: 3, Services: 1}, "test")
	},
	"churn": func(c *Common) *report.Result {
		return Churn(c, ChurnOptions{Providers: 2, Subscribers: 2, Services: 1}, "test")
	},
	"visibility": func(c *Common) *report.Result {
		c.Count = 2
		return Visibility(c, VisibilityOptions{}, "test")
	},
}

func errorsOf(r *report.Result, prefix string) int64 {
	var n int64
	for k, v := range r.Errors {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

func TestUnreachableTargetIsReportedAndEndsInTime(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for name, run := range scenarios {
		c := common(addr)
		start := time.Now()
		res := run(c)
		if took := time.Since(start); took > bound(c) {
			t.Errorf("%s: took %s, beyond its bound %s", name, took, bound(c))
		}
		if n := res.Errors["connect: unreachable"]; n == 0 {
			t.Errorf("%s: errors %v, want connect: unreachable", name, res.Errors)
		}
		if !res.Failed() {
			t.Errorf("%s: an unreachable target did not fail the run", name)
		}
		if len(res.Notes) == 0 {
			t.Errorf("%s: no note that nothing was measured", name)
		}
	}
}

func TestSilentTargetTimesOutInTime(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, name := range []string{"register", "push"} {
		c := common(l.Addr().String())
		start := time.Now()
		res := scenarios[name](c)
		if took := time.Since(start); took > bound(c) {
			t.Errorf("%s: took %s, beyond its bound %s", name, took, bound(c))
		}
		if res.Errors["connect: timeout"] == 0 || !res.Failed() {
			t.Errorf("%s: errors %v, failed %v; want connect timeouts and a failed run", name, res.Errors, res.Failed())
		}
	}
}

func TestRefusedRequestsAreCounted(t *testing.T) {
	srv := fakenacos.Start(t, fakenacos.Options{Respond: func(typ string, _ []byte) (string, []byte, bool) {
		if typ == "InstanceRequest" {
			return "ErrorResponse", []byte(`{"resultCode":500,"errorCode":503,"message":"over the limit"}`), true
		}
		return "", nil, false
	}})
	c := common(srv.Addr)
	res := scenarios["register"](c)
	reg := res.SeriesNamed("register")
	if reg == nil || reg.OK != 0 || reg.Errors["refused (error 503)"] != 6 {
		t.Fatalf("register series %+v, want 6 refusals", reg)
	}
	if s := res.SeriesNamed("connect"); s.OK != 3 {
		t.Errorf("connect series %+v", s)
	}
	if !res.Failed() {
		t.Error("a run whose every registration was refused did not fail")
	}
}

func TestDroppedConnectionsEndTheRunEarly(t *testing.T) {
	var queries atomic.Int64
	var srv *fakenacos.Server
	srv = fakenacos.Start(t, fakenacos.Options{Respond: func(typ string, _ []byte) (string, []byte, bool) {
		if typ == "ServiceQueryRequest" && queries.Add(1) == 20 {
			go srv.Drop()
		}
		return "", nil, false
	}})
	c := common(srv.Addr)
	c.Duration = time.Minute // only the drop can end it soon
	start := time.Now()
	res := Query(c, QueryOptions{Connections: 2, Services: 2, Instances: 0, VerifyEvery: 1}, "test")
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the run went on for %s after its connections dropped", took)
	}
	if n := errorsOf(res, "connect: dropped during the run"); n != 2 {
		t.Errorf("errors %v, want 2 connections dropped during the run", res.Errors)
	}
	if q := res.SeriesNamed("query"); q.OK < 19 {
		t.Errorf("query series %+v, want the queries before the drop", q)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "stopped early") {
		t.Errorf("notes %v, want one that the phase stopped early", res.Notes)
	}
}

func TestMissingPushesAreCounted(t *testing.T) {
	// The fake keeps no registry and never pushes.
	srv := fakenacos.Start(t, fakenacos.Options{})
	c := common(srv.Addr)
	res := scenarios["push"](c)
	if got := res.Errors["push: missing"]; got != 6 {
		t.Errorf("errors %v, want 6 missing pushes (2 rounds, 3 subscribers)", res.Errors)
	}
	if res.Errors["first push: missing"] != 3 || res.Errors["last subscriber: incomplete round"] != 2 {
		t.Errorf("errors %v", res.Errors)
	}
	if !res.Failed() {
		t.Error("a push run without pushes did not fail")
	}
}

func TestPickIsRepeatableAndInRange(t *testing.T) {
	counts := make([]int, 10)
	for k := range int64(10000) {
		v := pick(7, k, 10)
		if v != pick(7, k, 10) {
			t.Fatal("pick is not repeatable")
		}
		counts[v]++
	}
	for i, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("value %d picked %d times of 10000", i, n)
		}
	}
	if pick(1, 5, 1000) == pick(2, 5, 1000) && pick(1, 6, 1000) == pick(2, 6, 1000) {
		t.Error("the seed changes nothing")
	}
}

func TestValidate(t *testing.T) {
	good := common("127.0.0.1:1")
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := *good
	bad.Targets, bad.Duration, bad.Concurrency, bad.Rate, bad.Timeout, bad.Prefix = nil, 0, 0, -1, 0, ""
	err := bad.Validate()
	for _, want := range []string{"no target", "--duration", "--concurrency", "--rate", "--timeout", "--prefix"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want it to name %s", err, want)
		}
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{RegisterOptions{Connections: 1, Instances: 3, Services: 2}.Validate(), "exceeds --services"},
		{RegisterOptions{Connections: 0, Instances: 1, Services: 1}.Validate(), "--connections"},
		{QueryOptions{Connections: 1, Services: 1, VerifyEvery: 0}.Validate(), "--verify-every"},
		{PushOptions{Subscribers: 1, Services: 1, MergeWindow: -1}.Validate(), "--merge-window"},
		{ChurnOptions{Providers: 1, Subscribers: 0, Services: 1}.Validate(), "--subscribers"},
		{VisibilityOptions{Interval: -1}.Validate(), "--interval"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("got %v, want an error naming %s", tc.err, tc.want)
		}
	}
	if err := (RegisterOptions{Connections: 1, Instances: 2, Services: 2}).Validate(); err != nil {
		t.Errorf("valid register options: %v", err)
	}
}
