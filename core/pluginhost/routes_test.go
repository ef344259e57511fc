package pluginhost_test

import (
	"reflect"
	"testing"

	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/sdk/push"
)

func TestRoutes(t *testing.T) {
	t.Parallel()
	h := start(t, pluginhost.Config{
		Builtins: pluginhost.Builtins{Push: map[string]push.Plugin{"inproc": pushFake("inproc", push.RoleSPI)}},
		Push: []pluginhost.Spec{
			{Name: "observer", Path: newFake(t, "spi").path, Config: map[string]any{"services": []any{"order-*", "pay"}}},
			rpcSpec(t),
			{Name: "udp", Path: newFake(t, "udp").path},
			{Name: "inproc", InProcess: true},
		},
	})
	type route struct {
		Name     string
		Role     push.Role
		Interest push.Interest
	}
	want := []route{
		{"observer", push.RoleSPI, push.Interest{Services: []string{"order-*", "pay"}, Subscribers: true}},
		{"rpc", push.RoleRPC, push.Interest{}},
		{"udp", push.RoleUDP, push.Interest{}},
		{"inproc", push.RoleSPI, push.Interest{Subscribers: true}},
	}
	var got []route
	for _, r := range h.Routes() {
		if r.Executor == nil {
			t.Errorf("route %s has no executor", r.Name)
		}
		got = append(got, route{r.Name, r.Role, normal(r.Interest)})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("routes\n%+v\nwant\n%+v", got, want)
	}
	// Every route pushes through its own plugin.
	for _, r := range h.Routes() {
		if errs := r.Executor.Push(t.Context(), batch("a", "bad")); errs[0] != nil || errs[1] == nil {
			t.Errorf("route %s: results %v, want [nil, an error]", r.Name, errs)
		}
	}
}

// normal is in with empty lists and maps as nil, as they cross the wire.
func normal(in push.Interest) push.Interest {
	for _, l := range []*[]string{&in.Namespaces, &in.Groups, &in.Services, &in.Apps} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	if len(in.Labels) == 0 {
		in.Labels = nil
	}
	return in
}
