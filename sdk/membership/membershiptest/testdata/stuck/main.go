// Command stuck is a membership plugin whose Watch ignores
// cancellation: the kit must say so, though it cannot see the plugin's Watch
// but through its log.
package main

import (
	"context"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
)

type stuck struct{}

func (stuck) Watch(_ context.Context, self string, update func([]string)) error {
	update([]string{self})
	select {} // never returns
}

func main() {
	membership.Serve(membership.Plugin{
		Info: sdk.Info{Name: "stuck", Version: "0.0.1"},
		New:  func([]byte, membership.Host) (membership.Provider, error) { return stuck{}, nil },
	})
}
