package transport_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/transport"
)

// echo answers every call with the payload; a call to "panic" panics.
type echo struct{}

func (echo) Listen(context.Context, string, string) error { return nil }

func (echo) Call(_ context.Context, target, _ string, payload []byte) ([]byte, error) {
	if target == "panic" {
		panic("echo out of luck")
	}
	return append([]byte("echo:"), payload...), nil
}

func (echo) Snapshot(context.Context, string, func([]byte) error) error {
	return errors.New("no snapshots here")
}

func (echo) Close() error { return nil }

// echoPlugin's New returns what its configuration's "mode" says.
var echoPlugin = transport.Plugin{
	Info: sdk.Info{Name: "echo", Config: sdk.Schema{{Key: "mode", Type: sdk.String}}},
	New: func(config []byte, _ transport.Host) (transport.Transport, error) {
		var cfg struct {
			Mode string `json:"mode"`
		}
		if err := sdk.DecodeConfig(config, &cfg); err != nil {
			return nil, err
		}
		switch cfg.Mode {
		case "nil":
			return nil, nil
		case "panic":
			panic("no mode")
		}
		return echo{}, nil
	},
}

func TestNewTransportContainsFailures(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		plugin       transport.Plugin
		want         string
	}{
		{"a panicking New", `{"mode":"panic"}`, echoPlugin, "starting the transport panicked: no mode"},
		{"a nil transport", `{"mode":"nil"}`, echoPlugin, "New returned no transport"},
		{"no New", `{}`, transport.Plugin{}, "Plugin.New is nil"},
		{"a bad configuration", `{"mood":"x"}`, echoPlugin, `starting the transport: json: unknown field "mood"`},
	} {
		if tr, err := transport.NewTransport(tc.plugin, []byte(tc.config), transport.Host{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewTransport = %v, %v; want an error saying %q", tc.name, tr, err, tc.want)
		}
	}
}

func TestNewTransportRecoversPanics(t *testing.T) {
	tr, err := transport.NewTransport(echoPlugin, []byte("{}"), transport.Host{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Call(context.Background(), "panic", "sync", nil); err == nil || !strings.Contains(err.Error(), "panicked in Call") {
		t.Errorf("a panicking Call returned %v", err)
	}
	if answer, err := tr.Call(context.Background(), "peer", "sync", []byte("x")); err != nil || string(answer) != "echo:x" {
		t.Errorf("Call = %q, %v", answer, err)
	}
}
