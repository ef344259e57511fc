package gossip

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

// conformance is the kit's run of a node whose seed is a second node, which
// Change starts in the test process: it joins, and the list has both. The
// node leaves when the kit cancels its Watch, and joins again through the
// second node when the kit watches again.
func conformance(t *testing.T, binary string) membershiptest.Options {
	ports := freePorts(t, 2)
	opts := membershiptest.Options{
		Binary: binary,
		Config: map[string]any{
			"bind": "127.0.0.1", "port": ports[0], "profile": "local", "retry_interval": "200ms",
			"seeds": []any{"127.0.0.1:" + strconv.Itoa(ports[1])},
		},
		Change: func() []string {
			peer, err := New(Config{Bind: "127.0.0.1", Port: &ports[1], Profile: "local",
				Seeds: []string{"127.0.0.1:" + strconv.Itoa(ports[0])}, RetryInterval: sdk.ConfigDuration(200 * time.Millisecond)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			membershiptest.Watching(t, peer, "127.0.0.1:8849")
			return []string{membershiptest.DefaultSelf, "127.0.0.1:8849"}
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
	bin := filepath.Join(t.TempDir(), "gossip")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/gossip").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	membershiptest.Run(t, conformance(t, bin))
}
