package cluster_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// A clusterTransport is a transport the three-node tests run the cluster
// over: only the nodes' configuration differs.
type clusterTransport struct {
	name string
	// config returns the configuration file (HCL) that selects the
	// transport, starting what it needs for the test; nil for none.
	config func(t *testing.T) string
}

// transports are the transports the three-node tests run over.
var transports = []clusterTransport{
	{name: "grpctransport"}, // the default
	{name: "natstransport", config: natsConfig},
}

// overEachTransport runs test once over each transport, as parallel
// subtests named after them.
func overEachTransport(t *testing.T, test func(t *testing.T, tr clusterTransport)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			test(t, tr)
		})
	}
}

// args returns the arguments that give a node tr's configuration.
func (tr clusterTransport) args(t *testing.T) []string {
	if tr.config == nil {
		return nil
	}
	path := filepath.Join(t.TempDir(), "transport.hcl")
	if err := os.WriteFile(path, []byte(tr.config(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", path}
}

// natsConfig starts a NATS server in the test process, on a free loopback
// port until the test ends, and returns the configuration of nodes that
// talk through it.
func natsConfig(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatal("the NATS server is not ready after 10s")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return fmt.Sprintf(`cluster {
  transport = "natstransport"
}
plugins {
  natstransport {
    config {
      servers = [%q]
    }
  }
}
`, srv.ClientURL())
}
