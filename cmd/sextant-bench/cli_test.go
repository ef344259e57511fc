package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
)

func TestParseArgsDefaults(t *testing.T) {
	inv, err := parseArgs([]string{"register", "--target", "127.0.0.1:8848"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := inv.common
	if c.Duration != time.Minute || c.Concurrency != 64 || c.Timeout != 5*time.Second || c.Seed != 1 ||
		c.Namespace != "public" || c.Group != "DEFAULT_GROUP" || !strings.HasPrefix(c.Prefix, "bench-") {
		t.Errorf("common defaults %+v", c)
	}
	if c.Targets[0].GRPC != "127.0.0.1:9848" {
		t.Errorf("gRPC address %s", c.Targets[0].GRPC)
	}
	if r := inv.register; r.Connections != 100 || r.Instances != 10 || r.Services != 100 {
		t.Errorf("register defaults %+v", r)
	}
	other, _ := parseArgs([]string{"register", "--target", "127.0.0.1:8848"}, io.Discard)
	if other.common.Prefix == c.Prefix {
		t.Error("two runs share a service prefix")
	}
}

func TestParseArgsScenarioFlags(t *testing.T) {
	inv, err := parseArgs([]string{"push", "--target", "a:1,b:2", "--target", "c:3", "--grpc-port", "7000",
		"--subscribers", "1000", "--services", "4", "--merge-window", "0", "--count", "5", "--rate", "10.5",
		"--warmup", "1s", "--pid", "-1", "--json", "--quiet"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.common.Targets) != 3 || inv.common.Targets[2].GRPC != "c:7000" {
		t.Errorf("targets %v", inv.common.Targets)
	}
	if p := inv.push; p.Subscribers != 1000 || p.Services != 4 || p.MergeWindow != 0 {
		t.Errorf("push %+v", p)
	}
	if inv.common.Count != 5 || inv.common.Rate != 10.5 || inv.common.Warmup != time.Second || inv.pid != -1 || !inv.json || !inv.quiet {
		t.Errorf("invocation %+v", inv)
	}
	if pid, why := inv.serverPID(); pid != 0 || why != "" {
		t.Errorf("--pid -1 sampled %d (%s)", pid, why)
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no scenario"},
		{[]string{"nosuch"}, "unknown scenario"},
		{[]string{"query"}, "no target"},
		{[]string{"query", "--target", "x"}, "host:port"},
		{[]string{"query", "--target", "a:1", "--duration", "0s"}, "--duration"},
		{[]string{"query", "--target", "a:1", "--concurrency", "0"}, "--concurrency"},
		{[]string{"query", "--target", "a:1", "--subscribers", "3"}, "not defined"},
		{[]string{"register", "--target", "a:1", "--instances", "5", "--services", "2"}, "exceeds --services"},
		{[]string{"register", "--target", "a:1", "--hold", "-1s"}, "--hold must not be negative"},
		{[]string{"churn", "--target", "a:1", "extra"}, "unexpected argument"},
		{[]string{"http-register", "--target", "a:1", "--clients", "0"}, "--clients"},
		{[]string{"http-register", "--target", "a:1", "--instances", "3", "--services", "2"}, "exceeds --services"},
		{[]string{"beats", "--target", "a:1", "--interval", "0s"}, "--interval"},
		{[]string{"beats", "--target", "a:1", "--rate", "10"}, "--rate does not apply"},
		{[]string{"beats", "--target", "a:1", "--connections", "10"}, "not defined"},
		{[]string{"churn", "--target", "a:1", "--pid", "-2"}, "--pid"},
		{[]string{"udp-push", "--target", "a:1", "--writer", "udp"}, "--writer must be grpc or http"},
		{[]string{"udp-push", "--target", "a:1", "--repoll", "0s"}, "--repoll must be positive"},
		{[]string{"udp-push", "--target", "a:1", "--subscribers", "0"}, "--subscribers"},
		{[]string{"udp-push", "--target", "a:1", "--client-ip", "example.com"}, "--client-ip"},
		{[]string{"udp-push", "--target", "a:1", "--connections", "3"}, "not defined"},
		{[]string{"persistent-register", "--target", "a:1", "--connections", "0"}, "--connections must be at least 1"},
		{[]string{"persistent-register", "--target", "a:1", "--services", "0"}, "--services must be at least 1"},
		{[]string{"persistent-register", "--target", "a:1", "--instances", "3"}, "not defined"},
	} {
		_, err := parseArgs(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseArgs(%v) = %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func TestParseArgsPersistentRegister(t *testing.T) {
	inv, err := parseArgs([]string{"persistent-register", "--target", "127.0.0.1:8848"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// One registration in flight per connection unless --concurrency says otherwise.
	if o, c := inv.persistent, inv.common; o.Connections != 16 || o.Services != 100 || c.Concurrency != 16 || c.Duration != 10*time.Second || c.Count != 0 {
		t.Errorf("persistent-register defaults %+v, common %+v", o, c)
	}
	inv, err = parseArgs([]string{"persistent-register", "--target", "127.0.0.1:8848", "--connections", "64", "--services", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o := inv.persistent; o.Connections != 64 || o.Services != 3 || inv.common.Concurrency != 64 {
		t.Errorf("persistent-register %+v, concurrency %d", o, inv.common.Concurrency)
	}
	inv, err = parseArgs([]string{"persistent-register", "--target", "127.0.0.1:8848", "--connections", "8", "--concurrency", "32"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if inv.common.Concurrency != 32 {
		t.Errorf("--concurrency 32 became %d", inv.common.Concurrency)
	}
}

func TestParseArgsHTTPScenarios(t *testing.T) {
	inv, err := parseArgs([]string{"http-register", "--target", "127.0.0.1:8848"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o := inv.httpReg; o.Clients != 100 || o.Instances != 10 || o.Services != 100 || inv.common.Duration != time.Minute {
		t.Errorf("http-register defaults %+v, duration %s", o, inv.common.Duration)
	}
	inv, err = parseArgs([]string{"beats", "--target", "127.0.0.1:8848", "--clients", "50000", "--interval", "2s", "--full-beats"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o := inv.beats; o.Clients != 50000 || o.Services != 100 || o.Interval != 2*time.Second || !o.FullBeats {
		t.Errorf("beats %+v", o)
	}
	// The bound covers the two intervals of warm-up (registrations, first beats).
	if c := inv.common; inv.bound() != c.SetupTimeout+4*time.Second+c.Duration+2*c.Grace+c.Timeout {
		t.Errorf("bound %s", inv.bound())
	}
}

func TestParseArgsUDPPush(t *testing.T) {
	inv, err := parseArgs([]string{"udp-push", "--target", "127.0.0.1:8848"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o := inv.udpPush; o.Subscribers != 100 || o.MergeWindow != 500*time.Millisecond || o.Repoll != 5*time.Second ||
		o.Writer != "grpc" || o.ClientIP != "" || o.Interval != 0 || inv.common.Duration != time.Minute {
		t.Errorf("udp-push defaults %+v, duration %s", o, inv.common.Duration)
	}
	inv, err = parseArgs([]string{"udp-push", "--target", "127.0.0.1:8848", "--subscribers", "1000", "--merge-window", "0s",
		"--writer", "http", "--repoll", "2s", "--client-ip", "127.0.0.2", "--interval", "100ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o := inv.udpPush; o.Subscribers != 1000 || o.MergeWindow != 0 || o.Writer != "http" || o.Repoll != 2*time.Second ||
		o.ClientIP != "127.0.0.2" || o.Interval != 100*time.Millisecond {
		t.Errorf("udp-push %+v", o)
	}
}

func TestServerPIDIsNotSoughtForRemoteTargets(t *testing.T) {
	inv, err := parseArgs([]string{"query", "--target", "192.0.2.1:8848"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if pid, why := inv.serverPID(); pid != 0 || !strings.Contains(why, "not local") {
		t.Errorf("serverPID = %d, %q", pid, why)
	}
}

func TestRunExitCodes(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage") {
		t.Errorf("no arguments: %d %q", code, errOut.String())
	}
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "sextant-bench ") {
		t.Errorf("version: %d %q", code, out.String())
	}
	if code := run([]string{"query", "--bogus"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("bad flag: %d", code)
	}
	if code := run([]string{"suite"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("suite without --server: %d", code)
	}
}

// An unreachable target is a result with errors and exit code 1, in time.
func TestRunAgainstAnUnreachableTarget(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var out bytes.Buffer
	start := time.Now()
	code := run([]string{"register", "--target", "127.0.0.1:1", "--grpc-port", strconv.Itoa(port), "--connections", "5",
		"--instances", "1", "--services", "1", "--duration", "1s", "--setup-timeout", "2s", "--grace", "1s", "--json", "--quiet"}, &out, io.Discard)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	var res report.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not a JSON result: %v\n%s", err, out.String())
	}
	if res.Errors["connect: unreachable"] != 5 {
		t.Errorf("errors %v, want 5 unreachable connections", res.Errors)
	}
}
