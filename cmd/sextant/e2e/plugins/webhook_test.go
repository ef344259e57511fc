package plugins_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// buildWebhook builds examples/push-webhook, a third party's plugin, and
// returns its path and SHA-256.
func buildWebhook(t *testing.T) (string, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "push-webhook")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/sextantd/sextant/examples/push-webhook").CombinedOutput(); err != nil {
		t.Fatalf("building the webhook plugin: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return bin, hex.EncodeToString(sum[:])
}

// hookEvent is the part of the webhook's POST the test reads.
type hookEvent struct {
	Service     string          `json:"service"`
	ServiceInfo json.RawMessage `json:"serviceInfo"`
	Targets     []string        `json:"targets"`
}

func TestWebhookPluginLoadedByPathGetsChanges(t *testing.T) {
	bin, sum := buildWebhook(t)
	events := make(chan hookEvent, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e hookEvent
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("the webhook posted %s: %v", body, err)
		}
		events <- e
	}))
	defer hook.Close()

	config := writeConfig(t, `plugins {
  webhook {
    path   = "`+bin+`"
    sha256 = "`+sum+`"
    config {
      url      = "`+hook.URL+`"
      services = ["order-*"]
    }
  }
}
`)
	srv := servertest.Start(t, servertest.Options{Args: []string{"--config", config}, Env: []string{"SEXTANT_PUSH_DELAY=20ms"}})
	subscriber := nacostest.Subscribe(t, nacostest.NewClient(t, srv, ""), vo.SubscribeParam{ServiceName: "order-api"})
	provider := nacostest.NewClient(t, srv, "")
	nacostest.Register(t, provider, vo.RegisterInstanceParam{Ip: "10.0.0.7", Port: 8080, ServiceName: "user-api"}) // not watched
	nacostest.Register(t, provider, vo.RegisterInstanceParam{Ip: "10.0.0.7", Port: 8080, ServiceName: "order-api"})

	deadline := time.After(nacostest.AwaitTimeout)
	for {
		select {
		case e := <-events:
			if e.Service != "order-api" {
				t.Fatalf("the webhook was told of %s, which its configuration does not watch", e.Service)
			}
			if !strings.Contains(string(e.ServiceInfo), `"ip":"10.0.0.7"`) {
				continue // the empty service, before the registration
			}
			if len(e.Targets) != 1 || e.Targets[0] != "observer:webhook" {
				t.Fatalf("targets %v", e.Targets)
			}
			// The webhook only observes: the Nacos subscriber is still pushed by pushrpc.
			subscriber.AwaitCount(t, 1)
			return
		case <-deadline:
			t.Fatalf("the webhook received no change of order-api within %v\n%s", nacostest.AwaitTimeout, srv.Logs())
		}
	}
}

func TestWebhookWithAnInvalidConfigStopsStartup(t *testing.T) {
	bin, _ := buildWebhook(t)
	port := servertest.FreePorts(t, 1)[0]
	config := writeConfig(t, "plugins {\n  webhook {\n    path = \""+bin+"\"\n    config {\n      timeout = \"soon\"\n    }\n  }\n}\n")
	code, out := servertest.Run(t, nil, "server", "--port", strconv.Itoa(port), "--data-dir", t.TempDir(), "--config", config)
	if code == 0 {
		t.Fatalf("the server started:\n%s", out)
	}
	for _, want := range []string{"plugin webhook", "config.timeout", `invalid duration "soon"`, "config.url: required"} {
		if !strings.Contains(out, want) {
			t.Errorf("the error does not mention %q:\n%s", want, out)
		}
	}
}
