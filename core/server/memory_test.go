package server

import (
	"bytes"
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestApplyMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	for _, tt := range []struct {
		name           string
		limit          int64
		setting, env   string
		want           int64 // the runtime's limit after
		logs, warnings string
	}{
		{name: "unset", want: math.MaxInt64, logs: "no memory limit"},
		{name: "memory_limit", limit: 512 << 20, setting: "512MiB", want: 512 << 20, logs: "from=memory_limit=512MiB"},
		// The runtime read GOMEMLIMIT at start: here, the limit it left.
		{name: "GOMEMLIMIT wins", limit: 512 << 20, setting: "512MiB", env: "1GiB", want: math.MaxInt64,
			logs: "from=GOMEMLIMIT=1GiB", warnings: "memory_limit is ignored"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			var out bytes.Buffer
			applyMemoryLimit(tt.limit, tt.setting, tt.env, hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Info}))
			if got := debug.SetMemoryLimit(-1); got != tt.want {
				t.Errorf("limit %d, want %d", got, tt.want)
			}
			log := out.String()
			if !strings.Contains(log, tt.logs) || (tt.warnings != "") != strings.Contains(log, "[WARN]") || !strings.Contains(log, tt.warnings) {
				t.Errorf("log %q, want %q and warning %q", log, tt.logs, tt.warnings)
			}
		})
	}
}
