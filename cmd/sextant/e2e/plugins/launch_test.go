package plugins_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// TestBuiltinsUnderOtherNames swaps a cluster's membership and transport by
// configuration alone: each node runs the built-ins static and
// grpctransport under names of its own ("roster", "wire"), and an instance
// registered on one node reaches a subscriber of the other.
func TestBuiltinsUnderOtherNames(t *testing.T) {
	ports := servertest.FreePorts(t, 2)
	var members []string
	for _, p := range ports {
		members = append(members, fmt.Sprintf("%q", "127.0.0.1:"+strconv.Itoa(p)))
	}
	config := writeConfig(t, fmt.Sprintf(`
cluster {
  membership = "roster"
  transport  = "wire"
  members    = [%s]
}
plugins {
  roster {
    builtin = "static"
  }
  wire {
    builtin = "grpctransport"
  }
}
`, strings.Join(members, ", ")))
	env := []string{"SEXTANT_PUSH_DELAY=20ms", "SEXTANT_CLUSTER_SYNC_DELAY=50ms", "SEXTANT_CLUSTER_REPORT_INTERVAL=500ms"}
	var nodes []*servertest.Server
	for _, p := range ports {
		nodes = append(nodes, servertest.Start(t, servertest.Options{Port: p, Args: []string{"--config", config}, Env: env}))
	}
	for _, n := range nodes {
		var builtins []string
		for _, c := range children(t, n.PID()) {
			if len(c.cmdline) == 3 && c.cmdline[1] == "plugin" && c.state != "Z" {
				builtins = append(builtins, c.cmdline[2])
			}
		}
		slices.Sort(builtins)
		if want := []string{"grpctransport", "pushrpc", "pushudp", "static"}; !slices.Equal(builtins, want) {
			t.Errorf("plugin processes %v, want %v", builtins, want)
		}
		for _, want := range []string{"sextant.plugins.roster: plugin started: kind=membership", "builtin=static",
			"sextant.plugins.wire: plugin started: kind=transport", "builtin=grpctransport"} {
			if !strings.Contains(n.Logs(), want) {
				t.Errorf("no %q in the log:\n%s", want, n.Logs())
			}
		}
	}
	w := nacostest.Subscribe(t, nacostest.NewClient(t, nodes[1], ""), vo.SubscribeParam{ServiceName: "across"})
	nacostest.Register(t, nacostest.NewClient(t, nodes[0], ""), vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 80, ServiceName: "across"})
	w.Await(t, "the instance registered on the other node", awaitPort(80))
}

// TestFailedHandshakeShowsStderr: a plugin binary given by path, with its
// arguments, that fails its handshake stops the server with an error
// showing what the binary wrote to its stderr.
func TestFailedHandshakeShowsStderr(t *testing.T) {
	port := servertest.FreePorts(t, 1)[0]
	config := writeConfig(t, `
plugins {
  hook {
    path = "/bin/sh"
    args = ["-c", "echo \"boom: $0\" >&2; exit 1", "from-args"]
  }
}
`)
	code, out := servertest.Run(t, nil, "server", "--port", strconv.Itoa(port), "--data-dir", t.TempDir(), "--config", config)
	if code == 0 {
		t.Fatalf("the server started:\n%s", out)
	}
	for _, want := range []string{"plugin hook", "starting /bin/sh", "exit status 1", "boom: from-args"} {
		if !strings.Contains(out, want) {
			t.Errorf("the error does not say %q:\n%s", want, out)
		}
	}
}
