package dns

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/sextantd/sextant/sdk/membership"
	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newProvider returns the provider of cfg (resolver, interval and timeout
// added when missing) asking srv, and its log.
func newProvider(t *testing.T, srv *dnsServer, cfg map[string]any) (*Provider, *membershiptest.Log) {
	t.Helper()
	for k, v := range map[string]any{"resolver": srv.addr, "interval": "5ms", "timeout": "2s"} {
		if _, ok := cfg[k]; !ok {
			cfg[k] = v
		}
	}
	block, err := Plugin.Config.Check(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := membershiptest.NewLogger()
	p, err := Plugin.New(block, membership.Host{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Provider), logs
}

// awaitQueries waits until srv has got n more questions than it had.
func awaitQueries(t *testing.T, srv *dnsServer, n int) {
	t.Helper()
	want := srv.count() + n
	deadline := time.Now().Add(10 * time.Second)
	for srv.count() < want {
		if time.Now().After(deadline) {
			t.Fatalf("the DNS server got %d questions in 10s, want %d", srv.count(), want)
		}
		time.Sleep(time.Millisecond) // polling the count: the server has no event to wait on
	}
}

func TestFollowsTheName(t *testing.T) {
	srv := newDNSServer(t)
	srv.set("sextant.test.", "198.51.100.2", "198.51.100.1")
	p, logs := newProvider(t, srv, map[string]any{"name": "sextant.test."})
	lists := membershiptest.Watching(t, p, "198.51.100.1:9000")
	// The members' port is this node's.
	membershiptest.ExpectList(t, lists, "198.51.100.1:9000", "198.51.100.2:9000")

	srv.set("sextant.test.", "198.51.100.3", "198.51.100.1", "198.51.100.2")
	membershiptest.ExpectList(t, lists, "198.51.100.1:9000", "198.51.100.2:9000", "198.51.100.3:9000")

	// A failing server keeps the last good list, and is logged once per streak.
	for i, rcode := range []dnsmessage.RCode{dnsmessage.RCodeServerFailure, dnsmessage.RCodeNameError} {
		still := logs.Count("still cannot resolve the member list")
		srv.fail(rcode)
		logs.Await(t, "still cannot resolve the member list", still+3)
		if n := logs.Count("cannot resolve the member list; keeping the last good one"); n != i+1 {
			t.Fatalf("%v: the failing lookups were warned about %d times, want once:\n%s", rcode, n-i, logs)
		}
		membershiptest.ExpectNone(t, lists)
		srv.fail(dnsmessage.RCodeSuccess)
		logs.Await(t, "the member list resolves again", i+1)
		membershiptest.ExpectNone(t, lists)
		srv.set("sextant.test.", "198.51.100.1", "198.51.100.2")
		membershiptest.ExpectList(t, lists, "198.51.100.1:9000", "198.51.100.2:9000")
		srv.set("sextant.test.", "198.51.100.1", "198.51.100.2", "198.51.100.3")
		membershiptest.ExpectList(t, lists, "198.51.100.1:9000", "198.51.100.2:9000", "198.51.100.3:9000")
	}
	// A name gone is a failed lookup too: the list stays.
	still := logs.Count("still cannot resolve the member list")
	srv.set("sextant.test.")
	logs.Await(t, "still cannot resolve the member list", still+2)
	membershiptest.ExpectNone(t, lists)
	if n := p.counts.failures.Load(); n < 8 {
		t.Errorf("failed lookups counted: %d, want 8 or more", n)
	}
}

func TestPortAndNetwork(t *testing.T) {
	srv := newDNSServer(t)
	srv.set("sextant.test.", "198.51.100.1", "198.51.100.2", "2001:db8::1", "2001:db8::2")
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		self string
		want []string
	}{{
		name: "an IPv4 self takes the A records",
		cfg:  map[string]any{},
		self: "198.51.100.1:8848",
		want: []string{"198.51.100.1:8848", "198.51.100.2:8848"},
	}, {
		name: "an IPv6 self takes the AAAA records",
		cfg:  map[string]any{},
		self: "[2001:db8::1]:8848",
		want: []string{"[2001:db8::1]:8848", "[2001:db8::2]:8848"},
	}, {
		name: "a host name takes both",
		cfg:  map[string]any{},
		self: "sextant-0.test:8848",
		want: []string{"198.51.100.1:8848", "198.51.100.2:8848", "[2001:db8::1]:8848", "[2001:db8::2]:8848", "sextant-0.test:8848"},
	}, {
		name: "network ip takes both",
		cfg:  map[string]any{"network": "ip", "port": 7000},
		self: "198.51.100.1:7000",
		want: []string{"198.51.100.1:7000", "198.51.100.2:7000", "[2001:db8::1]:7000", "[2001:db8::2]:7000"},
	}, {
		name: "network ip6 with an IPv4 self",
		cfg:  map[string]any{"network": "ip6"},
		self: "198.51.100.1:8848",
		want: []string{"198.51.100.1:8848", "[2001:db8::1]:8848", "[2001:db8::2]:8848"},
	}, {
		name: "port",
		cfg:  map[string]any{"port": 7000},
		self: "198.51.100.2:7000",
		want: []string{"198.51.100.1:7000", "198.51.100.2:7000"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg["name"] = "sextant.test."
			p, _ := newProvider(t, srv, tc.cfg)
			membershiptest.ExpectList(t, membershiptest.Watching(t, p, tc.self), tc.want...)
		})
	}
}

func TestSRV(t *testing.T) {
	srv := newDNSServer(t)
	srv.setSRV("_http._tcp.sextant.test.", "sextant-1.sextant.test.:8848", "Sextant-0.sextant.test.:8848",
		"sextant-2.sextant.test.:9000", "sextant-1.sextant.test.:8848", ".:8848", "sextant-3.sextant.test.:0")
	p, logs := newProvider(t, srv, map[string]any{"name": "_http._tcp.sextant.test.", "srv": true})
	lists := membershiptest.Watching(t, p, "sextant-0.sextant.test:8848")
	membershiptest.ExpectList(t, lists, "sextant-0.sextant.test:8848", "sextant-1.sextant.test:8848", "sextant-2.sextant.test:9000")
	logs.Await(t, "dropped duplicate records", 1)
	logs.Await(t, "dropped records that are no member's address", 1)
	awaitQueries(t, srv, 3)
	for _, line := range []string{"dropped duplicate records", "dropped records that are no member's address"} {
		if n := logs.Count(line); n != 1 {
			t.Errorf("%q was logged %d times, want once for one answer:\n%s", line, n, logs)
		}
	}
	if d, u := p.counts.duplicates.Load(), p.counts.unusable.Load(); d < 3 || u < 6 {
		t.Errorf("counted %d duplicates and %d unusable records over 3 lookups or more, want 1 and 2 each", d, u)
	}

	srv.setSRV("_http._tcp.sextant.test.", "sextant-0.sextant.test.:8848", "sextant-3.sextant.test.:8848")
	membershiptest.ExpectList(t, lists, "sextant-0.sextant.test:8848", "sextant-3.sextant.test:8848")
}

func TestDropsUnusableRecords(t *testing.T) {
	srv := newDNSServer(t)
	srv.set("sextant.test.", "0.0.0.0", "224.0.0.1", "255.255.255.255", "198.51.100.2", "198.51.100.2", "::", "ff02::1",
		"2001:db8::2", "::ffff:198.51.100.3")
	p, logs := newProvider(t, srv, map[string]any{"name": "sextant.test.", "network": "ip"})
	lists := membershiptest.Watching(t, p, "198.51.100.1:8848")
	membershiptest.ExpectList(t, lists, "198.51.100.1:8848", "198.51.100.2:8848", "198.51.100.3:8848", "[2001:db8::2]:8848")
	logs.Await(t, "this node is not in the member list; counting it in", 1)
	logs.Await(t, "dropped duplicate records", 1)
	logs.Await(t, "dropped records that are no member's address", 1)
	for _, why := range []string{"the unspecified address", "a multicast address", "the broadcast address"} {
		if !strings.Contains(logs.String(), why) {
			t.Errorf("the log does not say %q:\n%s", why, logs)
		}
	}
	if u := p.counts.unusable.Load(); u < 5 || u%5 != 0 {
		t.Errorf("counted %d unusable records, want 5 a lookup", u)
	}

	// Nothing usable is a failed lookup.
	srv.set("sextant.test.", "0.0.0.0")
	logs.Await(t, "none of the 1 records is a usable member", 1)
	membershiptest.ExpectNone(t, lists)
}

func TestTruncatesAnAnswerOverTheLimit(t *testing.T) {
	srv := newDNSServer(t)
	var ips []string
	for i := range MaxMembers + 44 {
		ips = append(ips, fmt.Sprintf("10.1.%d.%d", i/200, i%200+1))
	}
	srv.set("sextant.test.", ips...) // too large for UDP: the resolver asks again over TCP
	p, logs := newProvider(t, srv, map[string]any{"name": "sextant.test."})
	lists := membershiptest.Watching(t, p, "10.1.0.1:8848")
	list := membershiptest.Next(t, lists)
	members := make([]string, len(ips))
	for i, ip := range ips {
		members[i] = ip + ":8848"
	}
	slices.Sort(members)
	if !slices.Equal(list, members[:MaxMembers]) {
		t.Errorf("got %d members (%q...), want the first %d in sorted order", len(list), list[:min(3, len(list))], MaxMembers)
	}
	logs.Await(t, "the answer has more members than the limit", 1)
	if n := p.counts.overLimit.Load(); n < 44 {
		t.Errorf("counted %d records over the limit, want 44 a lookup", n)
	}
	awaitQueries(t, srv, 4)
	if n := logs.Count("the answer has more members than the limit"); n != 1 {
		t.Errorf("the truncation was logged %d times, want once for one answer", n)
	}
	membershiptest.ExpectNone(t, lists)
}

func TestFirstListWhenTheServerIsSilent(t *testing.T) {
	srv := newDNSServer(t)
	srv.mute(true)
	p, logs := newProvider(t, srv, map[string]any{"name": "sextant.test.", "timeout": "100ms"})
	lists := membershiptest.Watching(t, p, "198.51.100.1:8848")
	membershiptest.ExpectList(t, lists, "198.51.100.1:8848") // the node alone, until an answer
	logs.Await(t, "cannot resolve the member list; keeping the last good one", 1)
	srv.set("sextant.test.", "198.51.100.1", "198.51.100.2")
	srv.mute(false)
	membershiptest.ExpectList(t, lists, "198.51.100.1:8848", "198.51.100.2:8848")
	logs.Await(t, "the member list resolves again", 1)
}

// watchErr runs p.Watch as self and returns its error, failing the test if
// it reports a list first or does not return.
func watchErr(t *testing.T, p *Provider, self string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.Watch(ctx, self, func(m []string) { t.Errorf("a list %q, want an error", m) })
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Watch returned %v (context: %v), want an error at once", err, ctx.Err())
	}
	return err
}

func TestThisNodeUnderAnotherAddress(t *testing.T) {
	srv := newDNSServer(t)
	srv.set("sextant.test.", "127.0.0.1", "198.51.100.2")
	srv.setSRV("_http._tcp.sextant.test.", "sextant-0.sextant.test.:8848", "sextant-1.sextant.test.:8848")
	srv.set("sextant-0.sextant.test.", "127.0.0.1")
	srv.set("sextant-1.sextant.test.", "198.51.100.2")
	for _, tc := range []struct {
		name, self, want string
		srv              bool
	}{
		{name: "by address", self: "198.51.100.9:8848", want: "this node is 127.0.0.1:8848 in the answer for sextant.test."},
		{name: "by host name", self: "sextant-0.test:8848", want: "this node is 127.0.0.1:8848"},
		{name: "an SRV target", self: "127.0.0.1:8848", srv: true, want: "this node is sextant-0.sextant.test:8848 in the answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := map[string]any{"name": "sextant.test."}
			if tc.srv {
				cfg = map[string]any{"name": "_http._tcp.sextant.test.", "srv": true}
			}
			p, _ := newProvider(t, srv, cfg)
			err := watchErr(t, p, tc.self)
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "set cluster.self") {
				t.Errorf("Watch returned %q, want it to say %q and what to set", err, tc.want)
			}
		})
	}
	// With another port, 127.0.0.1 is another node on this machine.
	p, _ := newProvider(t, srv, map[string]any{"name": "sextant.test.", "port": 9000})
	membershiptest.ExpectList(t, membershiptest.Watching(t, p, "198.51.100.9:8848"), "127.0.0.1:9000", "198.51.100.2:9000", "198.51.100.9:8848")
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{"name": ""}, "config.name: required"},
		{map[string]any{"name": "a..b"}, "config.name: \"a..b\" is not a DNS name"},
		{map[string]any{"name": "a b"}, "config.name"},
		{map[string]any{"name": strings.Repeat("a.", 127) + "b"}, "longer than a DNS name"},
		{map[string]any{"name": "x.test", "port": 70000}, "config.port: 70000 is not a port number"},
		{map[string]any{"name": "x.test", "port": 8848, "srv": true}, "config.port: is not for srv"},
		{map[string]any{"name": "x.test", "network": "tcp"}, "config.network: \"tcp\" is not ip4, ip6 or ip"},
		{map[string]any{"name": "x.test", "network": "ip4", "srv": true}, "config.network: is not for srv"},
		{map[string]any{"name": "x.test", "interval": "0s"}, "config.interval: 0s is not positive"},
		{map[string]any{"name": "x.test", "timeout": "-1s"}, "config.timeout: -1s is not positive"},
		{map[string]any{"name": "x.test", "resolver": "dns.example:53"}, "config.resolver: \"dns.example:53\" is not ip[:port]"},
		{map[string]any{"name": "x.test", "resolver": "10.0.0.1:0"}, "config.resolver"},
	} {
		block, err := Plugin.Config.Check(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Plugin.New(block, membership.Host{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: New returned %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := Plugin.New([]byte(`{"name":"x.test","members":[]}`), membership.Host{}); err == nil {
		t.Error("an unknown key was accepted")
	}
}

func TestDefaults(t *testing.T) {
	p, err := Plugin.New([]byte(`{"name":"sextant-headless"}`), membership.Host{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.(*Provider).cfg
	if time.Duration(cfg.Interval) != DefaultInterval || time.Duration(cfg.Timeout) != DefaultTimeout || cfg.SRV || cfg.Port != 0 {
		t.Errorf("defaults: %+v", cfg)
	}
	if err := Plugin.Config.Validate(); err != nil {
		t.Error(err)
	}
}

func TestResolverAddress(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":        "10.0.0.1:53",
		"10.0.0.1:5353":   "10.0.0.1:5353",
		"::1":             "[::1]:53",
		"[::1]":           "[::1]:53",
		"[2001:db8::1]:5": "[2001:db8::1]:5",
	} {
		if got, err := resolverAddress(in); got != want || err != nil {
			t.Errorf("resolverAddress(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
}

func TestMalformedSelf(t *testing.T) {
	srv := newDNSServer(t)
	p, _ := newProvider(t, srv, map[string]any{"name": "sextant.test."})
	if err := watchErr(t, p, "not an address"); !strings.Contains(err.Error(), "this node's address") {
		t.Errorf("Watch returned %v", err)
	}
}
