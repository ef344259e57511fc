package grpctransport_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sextantd/sextant/plugins/grpctransport"
	"github.com/sextantd/sextant/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	sdktest.Transport(t, sdktest.TransportOptions{
		Plugin: &grpctransport.Plugin,
		Config: map[string]any{"dial_timeout": "1s", "max_message_size": 64 << 20},
	})
}

func TestConformanceOfTheBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "grpctransport")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/grpctransport").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sdktest.Transport(t, sdktest.TransportOptions{Binary: bin})
}
