// Package static is the membership provider of a cluster whose members are
// listed in the configuration (or on the command line: sextant server
// --members h:p,h:p). The list never changes while the node runs. It is
// written against sdk alone, like any third party's plugin.
package static

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
)

// Plugin is the provider as a membership plugin.
var Plugin = membership.Plugin{
	Info: sdk.Info{
		Name:    "static",
		Version: "1.0.0",
		Config: sdk.Schema{
			{Key: "members", Type: sdk.StringList, Required: true, Description: "the members' HTTP addresses, " +
				"ip[:port] or host[:port], an item possibly holding several separated by commas; a bare ip means " +
				"this node's port; this node is counted in if left out"},
		},
	},
	New: func(raw []byte, host membership.Host) (membership.Provider, error) {
		var cfg struct {
			Members []string `json:"members"`
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			raw = []byte("{}")
		}
		if err := sdk.DecodeConfig(raw, &cfg); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		return New(cfg.Members, host.Logger)
	},
}

// Provider reports a fixed list.
type Provider struct {
	entries []string // as configured, one address each
	logger  hclog.Logger
}

// New returns the provider of members, each item one address or several
// separated by commas. Unlike a file's, a malformed entry here is an error:
// the configuration is checked before the node starts.
func New(members []string, logger hclog.Logger) (*Provider, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	p := &Provider{logger: logger}
	var errs []error
	for i, item := range members {
		for entry := range strings.SplitSeq(item, ",") {
			if entry = strings.TrimSpace(entry); entry == "" {
				continue
			}
			if _, err := membership.ParseAddress(entry, membership.DefaultPort); err != nil {
				errs = append(errs, fmt.Errorf("config.members: item %d: %w", i, err))
				continue
			}
			p.entries = append(p.entries, entry)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(p.entries) == 0 {
		return nil, errors.New("config.members: no address (for a node alone, use the standalone provider)")
	}
	return p, nil
}

// Watch reports the list, with self, once, and waits for ctx.
func (p *Provider) Watch(ctx context.Context, self string, update func(members []string)) error {
	me, err := membership.ParseAddress(self, membership.DefaultPort)
	if err != nil {
		return fmt.Errorf("this node's address: %w", err)
	}
	_, port, _ := net.SplitHostPort(me)
	defaultPort, _ := strconv.Atoi(port) // a bare ip means this node's port
	members := make([]string, 0, len(p.entries)+1)
	for _, e := range p.entries {
		addr, err := membership.ParseAddress(e, defaultPort)
		if err != nil { // checked by New
			return fmt.Errorf("config.members: %w", err)
		}
		members = append(members, addr)
	}
	list, added := membership.WithSelf(members, me)
	if added {
		p.logger.Warn("this node is not in the member list; counting it in, as Nacos does", "self", me, "members", list)
	}
	update(list)
	<-ctx.Done()
	return ctx.Err()
}
