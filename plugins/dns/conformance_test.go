package dns

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

// conformance is the kit's run against the test DNS server, whose records
// Change changes.
func conformance(t *testing.T, binary string) membershiptest.Options {
	srv := newDNSServer(t)
	srv.set("sextant.test.", "127.0.0.1", "198.51.100.2")
	opts := membershiptest.Options{
		Binary: binary,
		Config: map[string]any{"name": "sextant.test.", "resolver": srv.addr, "interval": "10ms", "timeout": "2s"},
		Change: func() []string {
			srv.set("sextant.test.", "198.51.100.3", "127.0.0.1")
			return []string{"127.0.0.1:8848", "198.51.100.3:8848"}
		},
	}
	if binary == "" {
		opts.Plugin = &Plugin
	}
	return opts
}

func TestConformance(t *testing.T) {
	membershiptest.Run(t, conformance(t, ""))
}

func TestConformanceBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "dns")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/dns").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	membershiptest.Run(t, conformance(t, bin))
}
