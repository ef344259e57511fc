package wire_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestStartsWithKubernetesServiceLinks starts the server with the variables
// Kubernetes puts in every pod of a namespace that has a Service named
// sextant (HTTP 8848, gRPC 9848), SEXTANT_PORT=tcp://... among them, and a
// misspelt variable: it must start, serve, and log what it ignored.
func TestStartsWithKubernetesServiceLinks(t *testing.T) {
	links := []string{
		"SEXTANT_SERVICE_HOST=10.0.0.1",
		"SEXTANT_SERVICE_PORT=8848",
		"SEXTANT_SERVICE_PORT_HTTP=8848",
		"SEXTANT_SERVICE_PORT_GRPC=9848",
		"SEXTANT_PORT=tcp://10.0.0.1:8848",
		"SEXTANT_PORT_8848_TCP=tcp://10.0.0.1:8848",
		"SEXTANT_PORT_8848_TCP_PROTO=tcp",
		"SEXTANT_PORT_8848_TCP_PORT=8848",
		"SEXTANT_PORT_8848_TCP_ADDR=10.0.0.1",
		"SEXTANT_PORT_9848_TCP=tcp://10.0.0.1:9848",
		"SEXTANT_PORT_9848_TCP_PROTO=tcp",
		"SEXTANT_PORT_9848_TCP_PORT=9848",
		"SEXTANT_PORT_9848_TCP_ADDR=10.0.0.1",
	}
	srv := startServer(t, append(links, "SEXTANT_PUSH_DELAI=1s")...)

	resp, err := http.Get("http://" + srv.HTTPAddr() + "/nacos/v1/console/health/liveness")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "OK" {
		t.Fatalf("liveness: %d %q, %v", resp.StatusCode, body, err)
	}

	logs := srv.Logs()
	for _, want := range []string{
		"[INFO]  sextant: ignoring SEXTANT_PORT, SEXTANT_PORT_8848_TCP", "Kubernetes service-link variables",
		"[WARN]  sextant: ignoring environment variable SEXTANT_PUSH_DELAI", "did you mean SEXTANT_PUSH_DELAY (push.delay)?",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log does not contain %q:\n%s", want, logs)
		}
	}
}
