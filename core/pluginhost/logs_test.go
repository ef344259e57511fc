package pluginhost_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/core/pluginhost"
)

// TestPluginLogsUnderItsName: what a plugin logs is in the host's log, under
// the host's logger named after the plugin's key in the configuration.
func TestPluginLogsUnderItsName(t *testing.T) {
	t.Parallel()
	const line = "the fake is warming up"
	h := start(t, pluginhost.Config{Push: []pluginhost.Spec{
		{Name: "courier", Path: newFake(t, "rpc").path, Config: map[string]any{"log": line}},
	}})
	eventually(t, "the plugin's log line", func() bool { return strings.Contains(h.logs.String(), line) })
	if want := "[INFO]  host.courier: " + line; !strings.Contains(h.logs.String(), want) {
		t.Errorf("no %q in the host's log:\n%s", want, h.logs)
	}
}

// TestPluginJSONLogsKeepTheHostsName: with a JSON host log, a plugin's line
// is under the host's name for the plugin, not the "@module" the plugin's
// own logger wrote.
func TestPluginJSONLogsKeepTheHostsName(t *testing.T) {
	t.Parallel()
	const line = "the fake is warming up in JSON"
	logs := &logBuffer{}
	start(t, pluginhost.Config{
		Push:   []pluginhost.Spec{{Name: "courier", Path: newFake(t, "rpc").path, Config: map[string]any{"log": line}}},
		Logger: hclog.New(&hclog.LoggerOptions{Name: "host", Output: logs, Level: hclog.Debug, JSONFormat: true}),
	})
	eventually(t, "the plugin's log line", func() bool { return strings.Contains(logs.String(), line) })
	for _, l := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(l, line) {
			continue
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(l), &entry); err != nil {
			t.Fatalf("%q is not JSON: %v", l, err)
		}
		if entry["@module"] != "host.courier" {
			t.Errorf("the plugin's line has @module %v, want host.courier: %s", entry["@module"], l)
		}
	}
}
