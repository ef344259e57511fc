// Package kit is what the conformance kits of the three plugin kinds —
// sdk/push/pushtest, sdk/membership/membershiptest and
// sdk/transport/transporttest — share: the plugin under test as a host
// reaches it (Process), the check runner (Run), the checks every kind runs
// alike (Process.Handshake, Process.Describe), and the guards that turn a
// panic of an in-process plugin into a report (Panics). Nothing here is for
// plugin authors; the kits are.
package kit

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/sextantd/sextant/sdk"
)

// T is what a kit reports to: *testing.T satisfies T[*testing.T]. Each check
// is a subtest, run with Run.
type T[Sub any] interface {
	Reporter
	Cleanup(func())
	Run(name string, f func(Sub)) bool
}

// Reporter is the part of T a check uses.
type Reporter interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

const (
	// ResultWait is the longest a kit waits for what should come.
	ResultWait = 10 * time.Second
	// ShortDeadline is the deadline of a call that is bound to time out.
	ShortDeadline = 200 * time.Millisecond
	// Grace is how long past a deadline or a cancellation a plugin may take
	// to answer.
	Grace = time.Second
)

// UnknownKey is added to a plugin's configuration to see it refused.
const UnknownKey = "conformance_unknown_key"

// Check is one of a kit's checks, run as a subtest.
type Check struct {
	// Name is the subtest's name.
	Name string
	// Run is the check; it reports to the subtest.
	Run func(Reporter)
	// Required: when the check fails, the checks after it are skipped.
	Required bool
}

// State is what Run asks a kit between checks.
type State interface {
	// Gone says why the plugin can no longer be reached, if it cannot.
	Gone() error
	// StderrTail returns what a plugin binary wrote lately, for a message
	// ("" or a paragraph of its own).
	StderrTail() string
}

// PanicReporter is a State that reports the panics of an in-process plugin
// after each check.
type PanicReporter interface {
	ReportPanics(Reporter)
}

// Run runs checks in order as subtests of t. It stops after a required
// check fails, and once the plugin is gone.
func Run[Sub T[Sub]](t Sub, s State, checks []Check) {
	t.Helper()
	for _, c := range checks {
		passed := t.Run(c.Name, func(t Sub) {
			if p, ok := s.(PanicReporter); ok {
				defer p.ReportPanics(t)
			}
			c.Run(t)
		})
		if !passed && c.Required {
			return
		}
		if err := s.Gone(); err != nil {
			t.Errorf("the plugin is gone after %s (%v); the remaining checks were skipped%s", c.Name, err, s.StderrTail())
			return
		}
	}
}

// OnePlugin fails t unless exactly one of the kit's Options.Binary and
// Options.Plugin is set; pkg names the kit.
func OnePlugin(t Reporter, pkg string, binary, plugin bool) {
	t.Helper()
	if binary == plugin {
		t.Fatalf("%s: set exactly one of Options.Binary and Options.Plugin", pkg)
	}
}

// checkInfo checks what every plugin says of itself — its kind, name,
// version and configuration schema — and returns config as the schema
// encodes it.
func checkInfo(t Reporter, info sdk.Info, kind, want string, config map[string]any) []byte {
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
		t.Fatalf("Options.Config does not pass the plugin's configuration schema: %v", err)
	}
	bad := maps.Clone(config)
	if bad == nil {
		bad = map[string]any{}
	}
	bad[UnknownKey] = "x"
	if _, err := info.Config.Check(bad); err == nil || !strings.Contains(err.Error(), UnknownKey) {
		t.Errorf("a configuration block with the unknown key %q was not refused naming the key (error: %v)", UnknownKey, err)
	}
	return checked
}

// Plural says "1 thing", "2 things".
func Plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
