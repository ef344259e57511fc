package pushudp_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sextantd/sextant/plugins/pushudp"
	"github.com/sextantd/sextant/sdk/push/pushtest"
)

// conformanceConfig binds the loopback address and gives up on a target
// after 1.7 s rather than the default 3.5 s, to keep the kit's failing
// checks short.
var conformanceConfig = map[string]any{"bind": "127.0.0.1:0", "retry_delays": []any{"100ms", "300ms", "1s"}, "max_pending": 4096}

// The conformance kit, against the plugin served in process, its receivers
// real UDP sockets...
func TestConformance(t *testing.T) {
	t.Parallel()
	pushtest.Run(t, pushtest.Options{Plugin: &pushudp.Plugin, Config: conformanceConfig})
}

// ...with the default configuration, which binds every address...
func TestConformanceDefaults(t *testing.T) {
	t.Parallel()
	pushtest.Run(t, pushtest.Options{Plugin: &pushudp.Plugin})
}

// ...and against a binary, as Sextant runs it.
func TestConformanceBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "pushudp")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/pushudp").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pushtest.Run(t, pushtest.Options{Binary: bin, Config: conformanceConfig})
}
