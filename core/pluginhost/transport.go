package pluginhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/sextantd/sextant/sdk/host"
	"github.com/sextantd/sextant/sdk/transport"
)

var errTransportDown = errors.New("the transport plugin is restarting")

// TransportPlugin is the supervised transport: calls and snapshots go to the
// current instance, waiting (within their context) across a restart.
type TransportPlugin struct {
	*supervisor[transport.Transport]
}

func newTransportPlugin(h *Host, spec Spec) *TransportPlugin {
	p := &TransportPlugin{}
	p.supervisor = newSupervisor(h, spec, kind[transport.Transport]{
		name:      host.KindTransport,
		attach:    p.attach,
		inProcess: p.inProcess,
	})
	return p
}

func (p *TransportPlugin) attach(ctx context.Context, raw any) (instance[transport.Transport], error) {
	var none instance[transport.Transport]
	tc, ok := raw.(*host.Transport)
	if !ok {
		return none, fmt.Errorf("dispensed %T, not a transport plugin", raw)
	}
	desc, err := tc.Describe(ctx)
	if err != nil {
		return none, fmt.Errorf("describing itself: %w", err)
	}
	config, err := checkSchema(host.KindTransport, desc.Kind, desc.Config, p.spec.Config)
	if err != nil {
		return none, err
	}
	if err := tc.Configure(ctx, config, p.host.cfg.Inbound); err != nil {
		return none, fmt.Errorf("configuring: %w", err)
	}
	streamCtx, cancel := context.WithCancel(context.Background())
	rt, err := tc.Transport(streamCtx)
	if err != nil {
		cancel()
		return none, fmt.Errorf("opening the call stream: %w", err)
	}
	if err := rt.Listen(ctx, p.host.cfg.ClusterListen, p.host.cfg.Self); err != nil {
		cancel()
		return none, fmt.Errorf("listening on %s: %w", p.host.cfg.ClusterListen, err)
	}
	p.log.Info("transport plugin", "plugin", desc.Name, "version", desc.Version, "listen", p.host.cfg.ClusterListen)
	return instance[transport.Transport]{value: rt, done: either(tc.Exited(), rt.Done()), exited: tc.Exited(), close: func() {
		_ = rt.Close()
		cancel()
	}}, nil
}

func (p *TransportPlugin) inProcess() (instance[transport.Transport], error) {
	var none instance[transport.Transport]
	builtin, ok := p.host.cfg.Builtins.Transport[p.spec.builtin()]
	if !ok {
		return none, fmt.Errorf("in_process is only for built-in plugins, and %s is not a transport one", p.spec.builtin())
	}
	config, err := builtin.Config.Check(p.spec.Config)
	if err != nil {
		return none, err
	}
	t, err := transport.NewTransport(builtin, config, transport.Host{Inbound: p.host.cfg.Inbound, Logger: p.log})
	if err != nil {
		return none, err
	}
	if err := t.Listen(context.Background(), p.host.cfg.ClusterListen, p.host.cfg.Self); err != nil {
		_ = t.Close()
		return none, fmt.Errorf("listening on %s: %w", p.host.cfg.ClusterListen, err)
	}
	return instance[transport.Transport]{value: t, close: func() { _ = t.Close() }}, nil
}

// Call sends a payload to the peer at target through the current transport.
func (p *TransportPlugin) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	t, ok := p.await(ctx)
	if !ok {
		return nil, errTransportDown
	}
	return t.Call(ctx, target, kind, payload)
}

// Snapshot streams a peer's snapshot through the current transport.
func (p *TransportPlugin) Snapshot(ctx context.Context, target string, fn func([]byte) error) error {
	t, ok := p.await(ctx)
	if !ok {
		return errTransportDown
	}
	return t.Snapshot(ctx, target, fn)
}
