package pluginhost

import (
	"context"
	"fmt"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/sdk/host"
	"github.com/sextantd/sextant/sdk/membership"
)

// membershipPlugin runs the membership provider and publishes each member
// list on the host's bus; a provider process that dies is restarted and
// watched again.
type membershipPlugin struct {
	*supervisor[struct{}]
}

func newMembershipPlugin(h *Host, spec Spec) *membershipPlugin {
	p := &membershipPlugin{}
	p.supervisor = newSupervisor(h, spec, kind[struct{}]{
		name:      host.KindMembership,
		attach:    p.attach,
		inProcess: p.inProcess,
	})
	return p
}

func (p *membershipPlugin) attach(ctx context.Context, raw any) (instance[struct{}], error) {
	var none instance[struct{}]
	mc, ok := raw.(*host.Membership)
	if !ok {
		return none, fmt.Errorf("dispensed %T, not a membership plugin", raw)
	}
	desc, err := mc.Describe(ctx)
	if err != nil {
		return none, fmt.Errorf("describing itself: %w", err)
	}
	config, err := checkSchema(host.KindMembership, desc.Kind, desc.Config, p.spec.Config)
	if err != nil {
		return none, err
	}
	if err := mc.Configure(ctx, config); err != nil {
		return none, fmt.Errorf("configuring: %w", err)
	}
	p.log.Info("membership plugin", "plugin", desc.Name, "version", desc.Version)
	inst := p.watch(mc, mc.Exited())
	inst.done, inst.exited = either(mc.Exited(), inst.done), mc.Exited()
	return inst, nil
}

func (p *membershipPlugin) inProcess() (instance[struct{}], error) {
	builtin, ok := p.host.cfg.Builtins.Membership[p.spec.builtin()]
	if !ok {
		return instance[struct{}]{}, fmt.Errorf("in_process is only for built-in plugins, and %s is not a membership one", p.spec.builtin())
	}
	config, err := builtin.Config.Check(p.spec.Config)
	if err != nil {
		return instance[struct{}]{}, err
	}
	provider, err := membership.NewProvider(builtin, config, membership.Host{Logger: p.log})
	if err != nil {
		return instance[struct{}]{}, err
	}
	inst := p.watch(provider, nil)
	inst.done = nil // nothing to restart in process: a failed watch is logged
	return inst, nil
}

// watch runs provider.Watch until the instance is closed; done is closed
// when the watch ends. exited is closed when the provider's process exits
// (nil in process): a watch that ends because its process did is no error
// of its own, and the supervisor logs how the process ended.
func (p *membershipPlugin) watch(provider membership.Provider, exited <-chan struct{}) instance[struct{}] {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		report := func(addresses []string) {
			err := notify.Publish(ctx, p.host.cfg.Bus, cluster.MembersReported{Addresses: addresses})
			if err != nil && ctx.Err() == nil {
				p.log.Error("cannot hand on a member list", "error", err)
			}
		}
		err := provider.Watch(ctx, p.host.cfg.Self, report)
		switch {
		case err == nil || ctx.Err() != nil:
		case awaitClosed(exited, exitWait):
			p.log.Debug("the membership provider's process exited", "error", err)
		default:
			p.log.Error("the membership provider stopped", "error", err)
		}
	}()
	return instance[struct{}]{done: done, close: func() {
		cancel()
		<-done
	}}
}
