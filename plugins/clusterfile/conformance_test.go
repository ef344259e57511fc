package clusterfile

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

// conformance is the kit's run against a cluster.conf in a temporary
// directory, which Change rewrites.
func conformance(t *testing.T, binary string) membershiptest.Options {
	path := filepath.Join(t.TempDir(), "cluster.conf")
	write(t, path, "# three nodes, one with the default port\n127.0.0.1:8848\n10.0.0.2:8848\n10.0.0.3\n")
	opts := membershiptest.Options{
		Binary: binary,
		Config: map[string]any{"path": path, "interval": "10ms"},
		Change: func() []string {
			write(t, path, "127.0.0.1:8848\n10.0.0.4:8848\n")
			return []string{"127.0.0.1:8848", "10.0.0.4:8848"}
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
	bin := filepath.Join(t.TempDir(), "clusterfile")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/clusterfile").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	membershiptest.Run(t, conformance(t, bin))
}
