// Package standalone is the membership provider of a node that runs alone:
// its member list is the node itself, always. It takes no configuration. It
// is written against sdk alone, like any third party's plugin.
package standalone

import (
	"context"
	"fmt"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
)

// Plugin is the provider as a membership plugin.
var Plugin = membership.Plugin{
	Info: sdk.Info{Name: "standalone", Version: "1.0.0"},
	New: func([]byte, membership.Host) (membership.Provider, error) {
		return Provider{}, nil
	},
}

// Provider reports the node alone.
type Provider struct{}

// Watch reports self, canonical, once, and waits for ctx.
func (Provider) Watch(ctx context.Context, self string, update func(members []string)) error {
	me, err := membership.ParseAddress(self, membership.DefaultPort)
	if err != nil {
		return fmt.Errorf("this node's address: %w", err)
	}
	update([]string{me})
	<-ctx.Done()
	return ctx.Err()
}
