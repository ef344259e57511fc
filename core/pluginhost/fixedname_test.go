package pluginhost

import (
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestFixedNameLevels: go-plugin's line about an exit, yamux's complaint of a
// peer gone, and the complaints of a connection's teardown while the plugin
// is stopped, are no errors; other
// errors stay errors, from hclog and from a standard library logger alike.
func TestFixedNameLevels(t *testing.T) {
	var out strings.Builder
	stopping := false
	f := fixedName{Logger: hclog.New(&hclog.LoggerOptions{Name: "p", Output: &out, Level: hclog.Trace}),
		stopping: func() bool { return stopping }}
	const teardown = "yamux: Failed to write body: write unix @: use of closed network connection"
	// A plugin's process killed while the host writes to it.
	const peerGone = "yamux: Failed to write header: write unix @->/tmp/plugin: write: broken pipe"
	for _, tc := range []struct {
		log      func()
		stopping bool
		want     string
	}{
		{func() { f.Error("plugin process exited", "error", "signal: terminated") }, false, "[DEBUG] p: plugin process exited"},
		{func() { f.Error(teardown) }, false, "[ERROR] p: " + teardown},
		{func() { f.Error(teardown) }, true, "[DEBUG] p: " + teardown},
		{func() { f.Error("the provider failed") }, true, "[ERROR] p: the provider failed"},
		{func() { f.Named("x").Warn("careful", "@module", "plugin") }, false, "[WARN]  p: careful"},
		{func() { f.StandardLogger(nil).Print("[ERR] " + teardown) }, false, "[ERROR] p: " + teardown},
		{func() { f.StandardLogger(nil).Print("[ERR] " + teardown) }, true, "[DEBUG] p: " + teardown},
		{func() { f.StandardLogger(nil).Print("[WARN] yamux: keepalive failed") }, false, "[WARN]  p: yamux: keepalive failed"},
		{func() { f.Error(peerGone) }, false, "[DEBUG] p: " + peerGone},
		{func() { f.StandardLogger(nil).Print("[ERR] " + peerGone) }, false, "[DEBUG] p: " + peerGone},
		{func() { f.Error("write: broken pipe") }, false, "[ERROR] p: write: broken pipe"},
		{func() { f.StandardLogger(nil).Print("no prefix") }, false, "[INFO]  p: no prefix"},
	} {
		out.Reset()
		stopping = tc.stopping
		tc.log()
		if !strings.Contains(out.String(), tc.want) || strings.Contains(out.String(), "@module") {
			t.Errorf("stopping %v: logged %q, want %q", tc.stopping, out.String(), tc.want)
		}
	}
}
