package sdktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc"

	"github.com/sextantd/sextant/sdk"
)

// process is a plugin under test as a host reaches it: a binary go-plugin
// launched, or a plugin set served in the test process in go-plugin's test
// mode. Every kit runs its plugins through one.
type process struct {
	client *plugin.Client
	rpc    plugin.ClientProtocol
	stop   func() error // stops serving an in-process plugin
}

// launch starts cmd with its standard error going to stderr or, with no cmd,
// serves served in process, and connects to it with hostSet, the host side's
// plugin set.
func (p *process) launch(cmd *exec.Cmd, stderr io.Writer, served, hostSet plugin.PluginSet) error {
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{sdk.ProtocolVersion: hostSet},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     resultWait,
		Logger:           hclog.New(&hclog.LoggerOptions{Level: hclog.Off}),
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(sdk.MaxMessageSize), grpc.MaxCallSendMsgSize(sdk.MaxMessageSize))},
	}
	if cmd != nil {
		cfg.Cmd, cfg.AutoMTLS, cfg.Stderr = cmd, true, stderr
	} else {
		reattach, err := p.serve(served)
		if err != nil {
			return err
		}
		// A reattached client takes the version the server chose, and
		// dispenses from Plugins.
		cfg.Reattach, cfg.Plugins = reattach, hostSet
	}
	p.client = plugin.NewClient(cfg)
	rpc, err := p.client.Client()
	p.rpc = rpc
	return err
}

// serve serves set as sdk.Serve would, in go-plugin's test mode, and
// returns how to reach it.
func (p *process) serve(set plugin.PluginSet) (*plugin.ReattachConfig, error) {
	ctx, cancel := context.WithCancel(context.Background())
	reattach := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	cfg := sdk.ServeConfig(set, hclog.NewNullLogger())
	cfg.Test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattach, CloseCh: closed}
	go plugin.Serve(cfg)
	// The client's Close stops the server (go-plugin's Shutdown call); the
	// context only frees it after, since stopping it both ways at once races.
	p.stop = func() error {
		defer cancel()
		if p.rpc != nil {
			_ = p.rpc.Close()
		}
		select {
		case <-closed:
			return nil
		case <-time.After(resultWait):
			return fmt.Errorf("the in-process plugin did not stop within %v", resultWait)
		}
	}
	select {
	case r := <-reattach:
		r.ReattachFunc = func() (runner.AttachedRunner, error) { return inProcess{closed}, nil }
		return r, nil
	case <-closed:
		cancel()
		return nil, errors.New("go-plugin could not serve the plugin in process")
	}
}

// shutdown kills the plugin's process, or stops serving it in process.
func (p *process) shutdown() error {
	if p.stop != nil {
		return p.stop()
	}
	if p.client != nil {
		p.client.Kill()
	}
	return nil
}

// exited reports whether the plugin's process has exited.
func (p *process) exited() bool { return p.client != nil && p.client.Exited() }

// inProcess is the go-plugin runner of a plugin served in the test process:
// it runs until serving stops. (go-plugin's own would wait for the test
// process itself to exit.)
type inProcess struct{ closed <-chan struct{} }

func (r inProcess) Wait(ctx context.Context) error {
	select {
	case <-r.closed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (inProcess) Kill(context.Context) error { return nil }
func (inProcess) ID() string                 { return "in-process" }

func (inProcess) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (inProcess) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
