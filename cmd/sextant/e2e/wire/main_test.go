// Package wire_test drives the real sextant binary over the raw Nacos 2.x gRPC
// wire: hand-built payloads on the generated proto client, no Nacos SDK (its
// protobuf registration conflicts with Sextant's proto package).
package wire_test

import (
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/servertest"
)

// awaitTimeout bounds every wait for a reply, a push or a state.
const awaitTimeout = 15 * time.Second

func TestMain(m *testing.M) { servertest.Main(m) }

// startServer runs a server with a 20 ms push merge window and env added.
func startServer(t *testing.T, env ...string) *servertest.Server {
	t.Helper()
	return servertest.Start(t, servertest.Options{Env: append([]string{"SEXTANT_PUSH_DELAY=20ms"}, env...)})
}
