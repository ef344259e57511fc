package server

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/config"
	"github.com/sextantd/sextant/core/pluginhost"
	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
	sdkpush "github.com/sextantd/sextant/sdk/push"
	"github.com/sextantd/sextant/sdk/transport"
)

func TestDetectSelf(t *testing.T) {
	machine := []string{"127.0.0.1", "::1", "10.0.0.5", "fe80::1"}
	for _, tc := range []struct {
		name    string
		members []string
		own     []string
		want    string
	}{
		{"the member on this machine", []string{"10.0.0.4:8848", "10.0.0.5:8848"}, machine, "10.0.0.5:8848"},
		{"a bare IP means this port", []string{"10.0.0.4", "10.0.0.5"}, machine, "10.0.0.5:8848"},
		{"one host, ports apart", []string{"127.0.0.1:8847", "127.0.0.1:8848", "127.0.0.1:8849"}, machine, "127.0.0.1:8848"},
		{"not listed: the first non-loopback IPv4", []string{"10.0.0.4:8848"}, machine, "10.0.0.5:8848"},
		{"bound to loopback: not the interface", []string{"10.0.0.5:8848", "127.0.0.1:8848"}, []string{"127.0.0.1"}, "127.0.0.1:8848"},
		{"bound, no list", nil, []string{"::1"}, "[::1]:8848"},
		{"only loopback", nil, []string{"127.0.0.1", "::1"}, "127.0.0.1:8848"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := detectSelf(tc.members, 8848, tc.own); got != tc.want {
				t.Errorf("detectSelf(%v, 8848, %v) = %s, want %s", tc.members, tc.own, got, tc.want)
			}
		})
	}
}

func TestListeningIPs(t *testing.T) {
	for bind, want := range map[string][]string{"10.0.0.5": {"10.0.0.5"}, "::1": {"::1"}} {
		if got := listeningIPs(bind)(); !slices.Equal(got, want) {
			t.Errorf("listeningIPs(%q) = %v, want %v", bind, got, want)
		}
	}
	for _, bind := range []string{"", "0.0.0.0", "::"} {
		if got, all := listeningIPs(bind)(), cluster.LocalIPs(); !slices.Equal(got, all) {
			t.Errorf("listeningIPs(%q) = %v, want this machine's %v", bind, got, all)
		}
	}
}

// TestRunFailsWhenTheMembersKnowThisNodeTwice: a membership plugin that
// lists this node under an address other than its own (here 127.0.0.1 with
// its port, where it listens, besides its name) makes Run stop with an
// error naming the address to set as cluster.self.
func TestRunFailsWhenTheMembersKnowThisNodeTwice(t *testing.T) {
	cfg := config.Default()
	cfg.Port = freePort(t)
	cfg.Remote.GRPCPort = freePort(t)
	cfg.Cluster.Port = freePort(t)
	cfg.DataDir = t.TempDir()
	cfg.Bind = "127.0.0.1"
	self := net.JoinHostPort("node-0.example", strconv.Itoa(cfg.Port))
	alias := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port))
	cfg.Cluster.Self, cfg.Cluster.Membership, cfg.Cluster.Transport = self, "lister", "wire"
	cfg.Plugins = map[string]config.Plugin{
		"fakepush": {InProcess: true},
		"lister":   {InProcess: true},
		"wire":     {InProcess: true},
	}
	srv, err := New(cfg, Options{
		Logger: hclog.NewNullLogger(),
		Builtins: pluginhost.Builtins{
			Push: map[string]sdkpush.Plugin{"fakepush": fakePush(make(chan sdkpush.Batch, 1))},
			Membership: map[string]membership.Plugin{"lister": {Info: sdk.Info{Name: "lister", Version: "0.0.1"},
				New: func([]byte, membership.Host) (membership.Provider, error) { return fixedList{self, alias}, nil }}},
			Transport: map[string]transport.Plugin{"wire": {Info: sdk.Info{Name: "wire", Version: "0.0.1"},
				New: func([]byte, transport.Host) (transport.Transport, error) { return nowhere{}, nil }}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = srv.Run(ctx)
	if ctx.Err() != nil {
		t.Fatal("Run went on with this node listed twice")
	}
	if err == nil || !strings.Contains(err.Error(), "holds this node as "+alias+" as well as "+self) ||
		!strings.Contains(err.Error(), fmt.Sprintf("set cluster.self = %q", alias)) {
		t.Fatalf("Run = %v, want the error naming both addresses", err)
	}
}

// fixedList is a membership provider reporting one list.
type fixedList []string

func (l fixedList) Watch(ctx context.Context, _ string, update func([]string)) error {
	update(l)
	<-ctx.Done()
	return ctx.Err()
}

// nowhere is a transport that reaches no peer.
type nowhere struct{}

func (nowhere) Listen(context.Context, string, string) error { return nil }

func (nowhere) Call(context.Context, string, string, []byte) ([]byte, error) {
	return nil, transport.ErrUnreachable
}

func (nowhere) Snapshot(context.Context, string, func([]byte) error) error {
	return transport.ErrUnreachable
}

func (nowhere) Close() error { return nil }
