package sdktest

import (
	"maps"
	"strings"

	"github.com/sextantd/sextant/sdk"
)

// kitCheck is one of a kit's checks, run as a subtest; a required one that
// fails ends the run.
type kitCheck struct {
	name     string
	run      func(reporter)
	required bool
}

// kitState is what runChecks asks a kit between checks.
type kitState interface {
	gone() error        // why the plugin can no longer be reached, if so
	stderrTail() string // what a plugin binary wrote lately, for a message
}

// panicReporter is a kit that reports the panics of an in-process plugin
// after each check.
type panicReporter interface{ reportPanics(reporter) }

// runChecks runs checks in order as subtests of t. It stops after a
// required check fails, and once the plugin is gone.
func runChecks[Sub T[Sub]](t Sub, k kitState, checks []kitCheck) {
	t.Helper()
	for _, c := range checks {
		passed := t.Run(c.name, func(t Sub) {
			if p, ok := k.(panicReporter); ok {
				defer p.reportPanics(t)
			}
			c.run(t)
		})
		if !passed && c.required {
			return
		}
		if err := k.gone(); err != nil {
			t.Errorf("the plugin is gone after %s (%v); the remaining checks were skipped%s", c.name, err, k.stderrTail())
			return
		}
	}
}

// The checks every kit runs alike.

// checkInfo checks what every plugin says of itself — its kind, name,
// version and configuration schema — and returns config, from the options
// named optsName, as the schema encodes it.
func checkInfo(t reporter, info sdk.Info, kind, want sdk.Kind, config map[string]any, optsName string) []byte {
	t.Helper()
	if kind != want {
		t.Errorf("the plugin says it is a %q plugin, want %q: serve a %s.Plugin with %s.Serve", kind, want, want, want)
	}
	if info.Name == "" {
		t.Errorf("the plugin has no name: set Plugin.Info.Name")
	}
	if info.Version == "" {
		t.Errorf("the plugin has no version: set Plugin.Info.Version")
	}
	if err := info.Config.Validate(); err != nil {
		t.Errorf("the plugin's configuration schema (Plugin.Info.Config) is invalid, so the server would refuse to start it: %v", err)
	}
	checked, err := info.Config.Check(config)
	if err != nil {
		t.Fatalf("%s.Config does not pass the plugin's configuration schema: %v", optsName, err)
	}
	bad := maps.Clone(config)
	if bad == nil {
		bad = map[string]any{}
	}
	bad[unknownKey] = "x"
	if _, err := info.Config.Check(bad); err == nil || !strings.Contains(err.Error(), unknownKey) {
		t.Errorf("a configuration block with the unknown key %q was not refused naming the key (error: %v)", unknownKey, err)
	}
	return checked
}

// handshake starts the plugin and checks that it speaks Sextant's protocol
// version; who names the plugin in a failure.
func (p *process) handshake(t reporter, who string, start func() error, stderrTail func() string) {
	t.Helper()
	if err := start(); err != nil {
		t.Fatalf("%s did not start and accept Sextant's handshake: %v%s", who, err, stderrTail())
	}
	if v := p.client.NegotiatedVersion(); v != sdk.ProtocolVersion {
		t.Fatalf("%s speaks protocol version %d, want %d", who, v, sdk.ProtocolVersion)
	}
}
