package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sextantd/sextant/sdk/host"
	sdkpush "github.com/sextantd/sextant/sdk/push"
)

var errRestarting = errors.New("the push plugin is restarting")

// pushPlugin is a supervised push plugin; it is an sdkpush.Executor.
type pushPlugin struct {
	*supervisor[sdkpush.Executor]
	// role and interest are what the plugin declared when it first started.
	role     sdkpush.Role
	interest sdkpush.Interest
}

func newPushPlugin(h *Host, spec Spec) *pushPlugin {
	p := &pushPlugin{}
	p.supervisor = newSupervisor(h, spec, kind[sdkpush.Executor]{
		name:      host.KindPush,
		attach:    p.attach,
		inProcess: p.inProcess,
	})
	return p
}

func (p *pushPlugin) attach(ctx context.Context, raw any) (instance[sdkpush.Executor], error) {
	var none instance[sdkpush.Executor]
	pc, ok := raw.(*host.Push)
	if !ok {
		return none, fmt.Errorf("dispensed %T, not a push plugin", raw)
	}
	desc, err := pc.Describe(ctx)
	if err != nil {
		return none, fmt.Errorf("describing itself: %w", err)
	}
	config, err := checkSchema(host.KindPush, desc.Kind, desc.Config, p.spec.Config)
	if err != nil {
		return none, err
	}
	if err := checkRole(desc.Role); err != nil {
		return none, err
	}
	interest, err := pc.Configure(ctx, config, p.host.cfg.Connections)
	if err != nil {
		return none, fmt.Errorf("configuring: %w", err)
	}
	if desc.Role == sdkpush.RoleSPI {
		if err := interest.Validate(); err != nil {
			return none, fmt.Errorf("an spi plugin must declare what it serves: %w", err)
		}
	}
	streamCtx, cancel := context.WithCancel(context.Background())
	exec, err := pc.Executor(streamCtx)
	if err != nil {
		cancel()
		return none, fmt.Errorf("opening the push stream: %w", err)
	}
	if p.role == "" {
		p.role, p.interest = desc.Role, interest
	}
	p.log.Info("push plugin", "plugin", desc.Name, "version", desc.Version, "role", desc.Role)
	return instance[sdkpush.Executor]{value: exec, done: either(pc.Exited(), exec.Done()), exited: pc.Exited(), close: cancel}, nil
}

func (p *pushPlugin) inProcess() (instance[sdkpush.Executor], error) {
	var none instance[sdkpush.Executor]
	builtin, ok := p.host.cfg.Builtins.Push[p.spec.builtin()]
	if !ok {
		return none, fmt.Errorf("in_process is only for built-in plugins, and %s is not a push one", p.spec.builtin())
	}
	if err := checkRole(builtin.Role); err != nil {
		return none, err
	}
	config, err := builtin.Config.Check(p.spec.Config)
	if err != nil {
		return none, err
	}
	exec, interest, err := sdkpush.NewExecutor(builtin, config, sdkpush.Host{Connections: p.host.cfg.Connections, Logger: p.log})
	if err != nil {
		return none, err
	}
	p.role, p.interest = builtin.Role, interest
	inst := instance[sdkpush.Executor]{value: exec}
	if c, ok := exec.(io.Closer); ok { // its socket, say: released when the host stops
		inst.close = func() {
			if err := c.Close(); err != nil {
				p.log.Warn("closing the in-process executor", "error", err)
			}
		}
	}
	return inst, nil
}

func checkRole(r sdkpush.Role) error {
	switch r {
	case sdkpush.RoleRPC, sdkpush.RoleUDP, sdkpush.RoleSPI:
		return nil
	}
	return fmt.Errorf("declares the unknown push role %q (want rpc, udp or spi)", r)
}

// Push sends b through the plugin's current executor. While the plugin
// restarts, Push waits for it (within ctx) rather than failing at once: the
// batch then goes out as soon as the new process is up, instead of after the
// push engine's retry delay.
func (p *pushPlugin) Push(ctx context.Context, b sdkpush.Batch) []error {
	start := time.Now()
	var errs []error
	if exec, ok := p.await(ctx); ok {
		errs = exec.Push(ctx, b)
	} else {
		errs = make([]error, len(b.Targets))
		for i := range errs {
			errs[i] = errRestarting
		}
	}
	p.host.metrics.observe(p.spec.Name, errs, time.Since(start))
	return errs
}

// either returns a channel closed once a or b is.
func either(a, b <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-a:
		case <-b:
		}
	}()
	return done
}
