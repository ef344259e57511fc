package push

import (
	"errors"
	"fmt"
	"path"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/internal/wire"
)

// Role says which subscribers an executor serves.
type Role string

// The roles of executor, as in the Nacos design.
const (
	// RoleRPC serves subscribers on gRPC connections (Nacos 2.x clients).
	RoleRPC Role = "rpc"
	// RoleUDP serves 1.x HTTP subscribers that listen for UDP pushes.
	RoleUDP Role = "udp"
	// RoleSPI serves the subscribers its Interest selects; the host consults
	// spi executors before the built-in ones.
	RoleSPI Role = "spi"
)

// Interest is what an spi executor serves: the subscribers it takes over from
// the built-in executors, the services it observes, or both. The lists select
// services and subscribers; an empty list matches everything.
type Interest struct {
	Namespaces []string
	Groups     []string
	Services   []string // path.Match patterns, e.g. "order-*"
	Apps       []string // the subscriber's application name
	// Labels must all be on the subscriber's connection (ConnectionSetupRequest labels).
	Labels map[string]string
	// Subscribers: the executor serves the subscribers of the matching
	// services whose application and labels match, instead of the built-in
	// executors.
	Subscribers bool
	// Observe: the executor is pushed every change of the matching services,
	// as if it subscribed to each of them itself (the target has no
	// connection; its client id is "observer:" and the plugin's name).
	Observe bool
}

// Validate reports an interest that selects nothing or has a bad pattern.
func (in Interest) Validate() error {
	if !in.Subscribers && !in.Observe {
		return errors.New("the interest neither takes subscribers nor observes services")
	}
	for _, p := range in.Services {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("service pattern %q: %w", p, err)
		}
	}
	return nil
}

// MatchesService reports whether the interest covers a service.
func (in Interest) MatchesService(s Service) bool {
	return matchAny(in.Namespaces, s.Namespace) && matchAny(in.Groups, s.Group) && matchPattern(in.Services, s.Name)
}

// MatchesSubscriber reports whether the interest takes a subscriber of s
// with the given application and connection labels.
func (in Interest) MatchesSubscriber(s Service, app string, labels map[string]string) bool {
	if !in.Subscribers || !in.MatchesService(s) || !matchAny(in.Apps, app) {
		return false
	}
	for k, v := range in.Labels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func matchAny(list []string, v string) bool {
	if len(list) == 0 {
		return true
	}
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func matchPattern(patterns []string, v string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, err := path.Match(p, v); ok && err == nil {
			return true
		}
	}
	return false
}

// Host is what the server offers an executor.
type Host struct {
	// Connections reaches the server's gRPC client connections.
	Connections Connections
	// Logger writes to the server's log under the plugin's name.
	Logger hclog.Logger
}

// Plugin is a push plugin: what it is, and how to make its executor.
type Plugin struct {
	sdk.Info
	Role Role
	// New builds the executor from the plugin's configuration block — JSON,
	// already checked against Info.Config (decode it with sdk.DecodeConfig) —
	// and the host's services. An spi executor also implements Interested.
	New func(config []byte, host Host) (Executor, error)
}

// Interested is implemented by spi executors: what they serve, which may
// depend on their configuration.
type Interested interface {
	Interest() Interest
}

// Serve runs a push plugin process; call it from the plugin's main. It
// never returns: the process exits when the server stops it, or soon after
// the server dies.
func Serve(p Plugin) {
	wire.Serve(plugin.PluginSet{string(wire.KindPush): &grpcPlugin{impl: p}}, wire.Logger(p.Name))
}
