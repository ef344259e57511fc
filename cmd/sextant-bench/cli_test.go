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
		{[]string{"churn", "--target", "a:1", "--pid", "-2"}, "--pid"},
	} {
		_, err := parseArgs(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseArgs(%v) = %v, want an error with %q", tc.args, err, tc.want)
		}
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
