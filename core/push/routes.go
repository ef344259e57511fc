package push

import (
	"errors"
	"fmt"

	"github.com/sextantd/sextant/core/naming"
	sdkpush "github.com/sextantd/sextant/sdk/push"
)

// observerPrefix marks the client id of an observing executor's target.
const observerPrefix = "observer:"

func observerID(route string) string { return observerPrefix + route }

// routes picks the executor of each target, as Nacos's
// PushExecutorDelegate does: an spi executor whose interest covers the
// subscriber first, then the built-in role of the subscriber's kind — rpc for
// a gRPC connection, udp for a subscriber of the HTTP API with a UDP port.
type routes struct {
	rpc *Route
	udp *Route // nil: no executor pushes over UDP, and its subscribers only poll
	spi []*Route
}

func newRoutes(all []Route) (routes, error) {
	var r routes
	for i := range all {
		route := &all[i]
		switch route.Role {
		case sdkpush.RoleRPC:
			if r.rpc != nil {
				return r, fmt.Errorf("push: %s and %s both serve the rpc role", r.rpc.Name, route.Name)
			}
			r.rpc = route
		case sdkpush.RoleSPI:
			r.spi = append(r.spi, route)
		case sdkpush.RoleUDP:
			if r.udp != nil {
				return r, fmt.Errorf("push: %s and %s both serve the udp role", r.udp.Name, route.Name)
			}
			r.udp = route
		default:
			return r, fmt.Errorf("push: %s serves the unknown role %q", route.Name, route.Role)
		}
	}
	if r.rpc == nil {
		return r, errors.New("push: no executor serves the rpc role")
	}
	return r, nil
}

// forSubscriber returns the executor that serves a subscriber of svc; nil
// for a UDP subscriber when no executor serves the udp role.
func (r routes) forSubscriber(svc naming.Service, s naming.Subscriber) *Route {
	service := sdkService(svc)
	for _, route := range r.spi {
		if route.Interest.MatchesSubscriber(service, s.App, s.Labels) {
			return route
		}
	}
	if s.Addr != "" {
		return r.udp
	}
	return r.rpc
}

// pushesUDP reports whether any executor may serve UDP subscribers.
func (r routes) pushesUDP() bool { return r.udp != nil || len(r.spi) > 0 }

// observers returns the observing executors a task pushes to: for a change,
// every one interested in the service; for a retry, those named in it.
func (r routes) observers(svc naming.Service, t task) []*Route {
	var out []*Route
	for _, route := range r.spi {
		if !route.Interest.Observe || !route.Interest.MatchesService(sdkService(svc)) {
			continue
		}
		if _, named := t.clients[observerID(route.Name)]; t.all || named {
			out = append(out, route)
		}
	}
	return out
}

func sdkService(svc naming.Service) sdkpush.Service {
	return sdkpush.Service{Namespace: svc.Namespace, Group: svc.Group, Name: svc.Name}
}
