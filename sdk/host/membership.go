package host

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
)

// Membership is a running membership plugin process; it is a
// membership.Provider.
type Membership struct {
	Process
	membership pluginv1.MembershipClient
}

func newMembership(p Process, conn *grpc.ClientConn) *Membership {
	return &Membership{Process: p, membership: pluginv1.NewMembershipClient(conn)}
}

// Configure hands the plugin its checked configuration. A provider is
// offered no host service (host_broker_id 0); it logs through go-plugin.
func (c *Membership) Configure(ctx context.Context, config []byte) error {
	_, err := c.info.Configure(ctx, &pluginv1.ConfigureRequest{ConfigJson: config})
	return pluginError(err)
}

// Watch implements membership.Provider over the plugin's Membership.Watch
// stream: update gets every list the plugin sends, in order, on one
// goroutine. It returns ctx's error once ctx is done, and any other error
// when the stream ends before — the plugin exited, or its provider failed —
// after which the host may Watch again (a restarted plugin, Configured
// again, first).
func (c *Membership) Watch(ctx context.Context, self string, update func(members []string)) error {
	stream, err := c.membership.Watch(ctx, &pluginv1.WatchRequest{Self: self})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("membership plugin: %w", err)
	}
	for {
		m, err := stream.Recv()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, io.EOF):
			return errors.New("membership plugin: the plugin ended the watch")
		case err != nil:
			return fmt.Errorf("membership plugin: %w", err)
		}
		update(m.GetAddresses())
	}
}
