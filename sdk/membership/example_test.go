package membership_test

import (
	"context"
	"fmt"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
)

// fixed is a provider whose members never change.
type fixed []string

func (f fixed) Watch(ctx context.Context, self string, update func([]string)) error {
	list, _ := membership.WithSelf(f, self)
	update(list)
	<-ctx.Done()
	return ctx.Err()
}

// A membership plugin is a Plugin value; its main calls
// membership.Serve(Plugin). Here the provider is built as the server builds
// it, and watched until its first list.
func Example() {
	plugin := membership.Plugin{
		Info: sdk.Info{Name: "fixed", Version: "1.0.0", Config: sdk.Schema{{Key: "members", Type: sdk.StringList, Required: true}}},
		New: func(config []byte, _ membership.Host) (membership.Provider, error) {
			var cfg struct {
				Members []string `json:"members"`
			}
			if err := sdk.DecodeConfig(config, &cfg); err != nil {
				return nil, err
			}
			return fixed(cfg.Members), nil
		},
	}
	// In the plugin's main: membership.Serve(plugin)

	provider, err := membership.NewProvider(plugin, []byte(`{"members":["10.0.0.2:8848"]}`), membership.Host{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = provider.Watch(ctx, "10.0.0.1:8848", func(members []string) {
		fmt.Println("members:", members)
		cancel()
	})
	fmt.Println("watch ended:", err)
	// Output:
	// members: [10.0.0.1:8848 10.0.0.2:8848]
	// watch ended: context canceled
}
