// Package faults_test is the fault suite: scenarios on clusters of real
// sextant processes — nodes paused with SIGSTOP, links cut one way or both,
// nodes killed with SIGKILL and restarted under load, plugin processes killed
// again and again — each checking, over the Nacos client wire of every node,
// the invariants a registry owes its clients:
//
//	(a) every live client's instances are on every node, once the fault is over;
//	(b) no instance of a dead client survives its expiry;
//	(c) no subscriber is ever pushed, and no node ever serves, an empty list for
//	    a service whose owner is alive (and reachable).
//
// Every node has a subscriber of every test service for the whole scenario,
// speaking the client wire by hand so that it records every push it gets,
// empty ones included, and a reader querying every service five times a
// second; (c) is judged from both records at the end.
//
// Faults on links are injected at the transport plugin, not with a TCP proxy:
// members address each other by HTTP address and dial HTTP port + 1001, so a
// proxy cannot sit on one link without renumbering the node. The nodes run
// testdata/faulty — the built-in grpctransport, wrapped — which sees whom each
// message is for and from, and reads its faults from a control file the test
// rewrites (see its doc).
//
// Each scenario logs its measurements in lines starting with FAULT:
//
//	go test -race -v -run . ./cmd/sextant/e2e/faults/ | grep FAULT
package faults_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/servertest"
)

func TestMain(m *testing.M) {
	servertest.Main(m, func() {
		if pluginDir != "" {
			os.RemoveAll(pluginDir)
		}
	})
}

// The clusters' timings: the client expiry is 2 s (10 s by default), the
// verifications and reports come every 500 ms (5 s and 2 s), and syncs and
// pushes go out within tens of milliseconds.
const (
	expiry         = 2 * time.Second
	verifyInterval = 500 * time.Millisecond
	// outage is how long a pause or a partition lasts: well beyond the
	// expiry, as the 20 s is beyond 10 s.
	outage = 5 * time.Second
	// goneWithin bounds how long the instances of a dead (or frozen) owner
	// may outlive it on the other nodes: the expiry, plus the last
	// verification before the death, plus the once-a-second expiry sweep,
	// plus the push.
	goneWithin = expiry + 4*verifyInterval
	// convergeWithin bounds how long after a fault ends every node must
	// serve every live client's instances again.
	convergeWithin = 10 * time.Second
	// propagation is how long a new registration may take to reach every
	// node: until then an empty answer elsewhere is no violation of (c).
	propagation = time.Second
	// settle is how long after an outage ends a push of what happened
	// during it may still arrive.
	settle = time.Second
)

var fast = []string{
	"SEXTANT_PUSH_DELAY=20ms",
	"SEXTANT_PUSH_RETRY_DELAY=200ms",
	"SEXTANT_CLUSTER_SYNC_DELAY=50ms",
	"SEXTANT_CLUSTER_SYNC_RETRY_DELAY=200ms",
	"SEXTANT_CLUSTER_VERIFY_INTERVAL=" + verifyInterval.String(),
	"SEXTANT_CLUSTER_REPORT_INTERVAL=500ms",
	"SEXTANT_CLUSTER_CLIENT_EXPIRY=" + expiry.String(),
}

var (
	pluginOnce sync.Once
	pluginDir  string
	pluginBin  string
	pluginErr  error
)

// faultyPlugin returns the path of testdata/faulty, built once per run.
func faultyPlugin(t *testing.T) string {
	t.Helper()
	pluginOnce.Do(func() {
		if pluginDir, pluginErr = os.MkdirTemp("", "sextant-faulty"); pluginErr != nil {
			return
		}
		pluginBin = filepath.Join(pluginDir, "faulty")
		if out, err := exec.Command("go", "build", "-o", pluginBin, "./testdata/faulty").CombinedOutput(); err != nil {
			pluginErr = fmt.Errorf("building the faulty transport: %v\n%s", err, out)
		}
	})
	if pluginErr != nil {
		t.Fatal(pluginErr)
	}
	return pluginBin
}
