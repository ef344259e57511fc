// Package nacossdk_test drives the real sextant binary with the official Nacos
// Go SDK. It must not import Sextant's proto package: the SDK registers the
// same protobuf message names.
package nacossdk_test

import (
	"strings"
	"testing"

	"github.com/sextantd/sextant/cmd/internal/nacostest"
	"github.com/sextantd/sextant/cmd/internal/servertest"
)

func TestMain(m *testing.M) { nacostest.Main(m) }

// startServer runs a server whose pushes are fast (merge window 20 ms).
func startServer(t *testing.T) *servertest.Server {
	t.Helper()
	return servertest.Start(t, servertest.Options{Env: []string{"SEXTANT_PUSH_DELAY=20ms"}})
}

// serviceName returns a service name unique to the test.
func serviceName(t *testing.T) string {
	return strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
}
