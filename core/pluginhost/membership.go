package pluginhost

import (
	"context"
	"fmt"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
)

// membershipPlugin runs the membership provider and hands each member list
// to the host's OnMembers; a provider process that dies is restarted and
// watched again.
type membershipPlugin struct {
	*supervisor[struct{}]
}

func newMembershipPlugin(h *Host, spec Spec) *membershipPlugin {
	p := &membershipPlugin{}
	p.supervisor = newSupervisor(h, spec, kind[struct{}]{
		name:      sdk.KindMembership,
		dispense:  membership.DispenseName,
		attach:    p.attach,
		inProcess: p.inProcess,
	})
	return p
}

func (p *membershipPlugin) attach(ctx context.Context, raw any) (instance[struct{}], error) {
	var none instance[struct{}]
	mc, ok := raw.(*membership.Client)
	if !ok {
		return none, fmt.Errorf("dispensed %T, not a membership plugin", raw)
	}
	desc, err := mc.Describe(ctx)
	if err != nil {
		return none, fmt.Errorf("describing itself: %w", err)
	}
	config, err := checkSchema(sdk.KindMembership, desc.Kind, desc.Config, p.spec.Config)
	if err != nil {
		return none, err
	}
	if err := mc.Configure(ctx, config); err != nil {
		return none, fmt.Errorf("configuring: %w", err)
	}
	p.log.Info("membership plugin", "plugin", desc.Name, "version", desc.Version)
	inst := p.watch(mc)
	inst.done = either(mc.Exited(), inst.done)
	return inst, nil
}

func (p *membershipPlugin) inProcess() (instance[struct{}], error) {
	builtin, ok := p.host.cfg.Builtins.Membership[p.spec.Name]
	if !ok {
		return instance[struct{}]{}, fmt.Errorf("in_process is only for built-in plugins, and %s is not a membership one", p.spec.Name)
	}
	config, err := builtin.Config.Check(p.spec.Config)
	if err != nil {
		return instance[struct{}]{}, err
	}
	provider, err := membership.NewProvider(builtin, config, membership.Host{Logger: p.log})
	if err != nil {
		return instance[struct{}]{}, err
	}
	inst := p.watch(provider)
	inst.done = nil // nothing to restart in process: a failed watch is logged
	return inst, nil
}

// watch runs provider.Watch until the instance is closed; done is closed
// when the watch ends.
func (p *membershipPlugin) watch(provider membership.Provider) instance[struct{}] {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := provider.Watch(ctx, p.host.cfg.Self, p.host.cfg.OnMembers); err != nil && ctx.Err() == nil {
			p.log.Error("the membership provider stopped", "error", err)
		}
	}()
	return instance[struct{}]{done: done, close: func() {
		cancel()
		<-done
	}}
}
