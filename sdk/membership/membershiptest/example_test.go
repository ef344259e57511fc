package membershiptest_test

import (
	"context"
	"testing"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

// Plugin is a membership plugin, as its own package defines it: the
// smallest, whose cluster is the members its configuration lists, and this
// node. (The kit's own tests check it too.)
var Plugin = membership.Plugin{
	Info: sdk.Info{Name: "members", Version: "1.0.0", Config: sdk.Schema{
		{Key: "members", Type: sdk.StringList, Description: "the cluster's members, host[:port]"},
	}},
	New: func(config []byte, _ membership.Host) (membership.Provider, error) {
		var c struct{ Members []string }
		if err := sdk.DecodeConfig(config, &c); err != nil {
			return nil, err
		}
		var p members
		for _, m := range c.Members {
			addr, err := membership.ParseAddress(m, membership.DefaultPort)
			if err != nil {
				return nil, err
			}
			p = append(p, addr)
		}
		return p, nil
	},
}

// members is Plugin's provider: a list that never changes.
type members []string

// Watch reports the list, this node counted in, and waits for ctx.
func (m members) Watch(ctx context.Context, self string, update func([]string)) error {
	list, _ := membership.WithSelf(m, self)
	update(list)
	<-ctx.Done()
	return ctx.Err()
}

// The plugin's conformance test, in its own package, is one call: the kit
// serves Plugin in the test process and runs each check as a subtest. A
// plugin whose source can change passes Options.Change too.
func Example() {
	var t *testing.T // TestConformance's
	membershiptest.Run(t, membershiptest.Options{
		Plugin: &Plugin, // or Binary: the path of the built plugin
		Config: map[string]any{"members": []any{"10.0.0.2:8848", "10.0.0.3"}},
	})
}
