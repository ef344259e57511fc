package transport

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/hashicorp/go-hclog"
)

// NewTransport builds p's transport from a configuration block as the
// server does: a panic in New becomes an error, a nil transport is refused,
// a nil Host.Logger is replaced by one that discards, and the transport's own
// panics are recovered, logged and returned as errors. Use it in a plugin's
// unit tests to get the transport the server would get; a server running a
// built-in plugin in its own process uses it too.
func NewTransport(p Plugin, config []byte, host Host) (t Transport, err error) {
	if host.Logger == nil {
		host.Logger = hclog.NewNullLogger()
	}
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("starting the transport panicked: %v", r)
		}
	}()
	if p.New == nil {
		return nil, errors.New("starting the transport: Plugin.New is nil")
	}
	if t, err = p.New(config, host); err != nil {
		return nil, fmt.Errorf("starting the transport: %w", err)
	}
	if t == nil {
		return nil, errors.New("starting the transport: New returned no transport")
	}
	return safeTransport{t: t, logger: host.Logger}, nil
}

// safeTransport turns a transport's panics into errors: a plugin process
// must not die of one bad call, nor a server of its built-in plugin.
type safeTransport struct {
	t      Transport
	logger hclog.Logger
}

// recovered turns a panic in method into *err.
func (s safeTransport) recovered(method string, err *error) {
	if r := recover(); r != nil {
		s.logger.Error("the transport panicked", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = fmt.Errorf("the transport panicked in %s: %v", method, r)
	}
}

func (s safeTransport) Listen(ctx context.Context, address, self string) (err error) {
	defer s.recovered("Listen", &err)
	return s.t.Listen(ctx, address, self)
}

func (s safeTransport) Call(ctx context.Context, target, kind string, payload []byte) (answer []byte, err error) {
	defer s.recovered("Call", &err)
	return s.t.Call(ctx, target, kind, payload)
}

func (s safeTransport) Snapshot(ctx context.Context, target string, fn func([]byte) error) (err error) {
	defer s.recovered("Snapshot", &err)
	return s.t.Snapshot(ctx, target, fn)
}

func (s safeTransport) Close() (err error) {
	defer s.recovered("Close", &err)
	return s.t.Close()
}
