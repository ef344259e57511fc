package pluginhost

import "github.com/sextantd/sextant/core/push"

// Routes returns the running push executors as the Pusher's routes, in
// configuration order; with it the Host is the Pusher's push.Executors.
func (h *Host) Routes() []push.Route {
	executors := h.Executors()
	routes := make([]push.Route, len(executors))
	for i, e := range executors {
		routes[i] = push.Route{Name: e.Name, Role: e.Role, Interest: e.Interest, Executor: e.Executor}
	}
	return routes
}
