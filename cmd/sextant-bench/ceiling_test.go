package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/sextantproc"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/report"
)

// The register and query scenarios run against the ceiling as against a
// server, on either transport: every answer of the right class, a query's
// of the hosts asked for.
func TestScenariosAgainstTheCeiling(t *testing.T) {
	for _, transport := range []string{"grpc", "h2"} {
		t.Run(transport, func(t *testing.T) { scenariosAgainstTheCeiling(t, transport) })
	}
}

func scenariosAgainstTheCeiling(t *testing.T, transport string) {
	ports, err := sextantproc.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	exited := make(chan int, 1)
	go func() {
		exited <- runCeiling(ctx, []string{"--port", strconv.Itoa(ports[0]), "--hosts", "3", "--transport", transport}, &out, io.Discard)
	}()
	defer func() {
		cancel()
		if code := <-exited; code != 0 || !bytes.Contains(out.Bytes(), []byte("ceiling serving")) {
			t.Errorf("serve-ceiling exited with %d, having written %q", code, out.String())
		}
	}()
	awaitReady(t, "http://"+addr+"/nacos/v1/console/health/readiness")

	for _, args := range [][]string{
		{"register", "--connections", "5", "--instances", "2", "--services", "4", "--skip-check"},
		{"query", "--connections", "2", "--services", "4", "--instances", "3", "--verify-every", "1", "--count", "50"},
	} {
		var res bytes.Buffer
		code := run(append(args, "--target", addr, "--pid", "-1", "--json", "--quiet", "--setup-timeout", "20s"), &res, io.Discard)
		var r report.Result
		if err := json.Unmarshal(res.Bytes(), &r); err != nil {
			t.Fatalf("%s: exit %d, %v\n%s", args[0], code, err, res.String())
		}
		s := r.SeriesNamed(r.Primary)
		if code != 0 || s == nil || s.OK == 0 || len(r.Errors) > 0 || r.Targets[0].Version != ceilingVersion {
			t.Errorf("%s: exit %d, series %+v, errors %v, version %q", args[0], code, s, r.Errors, r.Targets[0].Version)
		}
	}
}

func awaitReady(t *testing.T, url string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v", url, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
