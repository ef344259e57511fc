package gossip

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

// memberlist's Shutdown stops its probe ticker but does not wait for a
// probe in flight, which ends by itself within the probe interval (its
// timeouts, then the indirect probes): only that goroutine is let outlive
// the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// freePorts returns n ports free on 127.0.0.1 for both TCP and UDP, as a
// gossip port must be.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if !slices.Contains(ports, port) {
			ports = append(ports, port)
		}
	}
	return ports
}

// testNode is a provider watching as 127.0.0.1:httpPort, gossiping on port.
type testNode struct {
	self  string
	gaddr string // its gossip address
	lists <-chan []string
	log   *membershiptest.Log
	stop  func()
}

// startNode watches a provider of cfg (its bind, port and profile set
// here) until stop or the test's end.
func startNode(t *testing.T, httpPort, port int, cfg Config) *testNode {
	t.Helper()
	cfg.Bind, cfg.Port, cfg.Profile = "127.0.0.1", &port, "local"
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = sdk.ConfigDuration(100 * time.Millisecond)
	}
	logger, log := membershiptest.NewLogger()
	p, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{self: "127.0.0.1:" + strconv.Itoa(httpPort), gaddr: "127.0.0.1:" + strconv.Itoa(port), log: log}
	ctx, cancel := context.WithCancel(context.Background())
	lists := make(chan []string, 100)
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, n.self, func(m []string) { lists <- m }) }()
	n.lists = lists
	stopped := false
	n.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: Watch returned %v, want context.Canceled", n.self, err)
			}
		case <-time.After(time.Second):
			t.Errorf("%s: Watch did not return within a second of its end", n.self)
		}
	}
	t.Cleanup(n.stop)
	return n
}

// await waits for n to report want, and returns how long it took.
func (n *testNode) await(t *testing.T, want ...string) time.Duration {
	t.Helper()
	slices.Sort(want)
	start := time.Now()
	deadline := time.After(30 * time.Second)
	var last []string
	for {
		select {
		case last = <-n.lists:
			if slices.Equal(last, want) {
				return time.Since(start)
			}
		case <-deadline:
			t.Fatalf("%s reports %q, want %q; its log:\n%s", n.self, last, want, n.log)
		}
	}
}

func TestNodesJoinThroughOneSeedAndLeave(t *testing.T) {
	ports := freePorts(t, 3)
	a := startNode(t, 8001, ports[0], Config{})
	a.await(t, a.self)
	seed := []string{a.gaddr}
	b := startNode(t, 8002, ports[1], Config{Seeds: seed})
	// A bare host means this node's gossip port: the seed's is not, so C
	// names it in full; its other seed is itself, which it skips.
	c := startNode(t, 8003, ports[2], Config{Seeds: append(seed, "127.0.0.1:"+strconv.Itoa(ports[2]))})
	all := []string{a.self, b.self, c.self}
	for _, n := range []*testNode{a, b, c} {
		n.await(t, all...)
	}
	a.log.Await(t, "no seed but this node", 1)
	if a.log.Count("the gossip is not encrypted") != 1 {
		t.Errorf("the node did not warn once that its gossip is plaintext:\n%s", a.log)
	}

	c.stop() // it leaves: the others drop it at once
	a.await(t, a.self, b.self)
	b.await(t, a.self, b.self)
	c.log.Await(t, "left the gossip", 1)
}

// peerDelegate is a raw memberlist node's, with the metadata it is given.
type peerDelegate struct{ meta []byte }

func (d peerDelegate) NodeMeta(int) []byte                 { return d.meta }
func (d peerDelegate) NotifyMsg([]byte)                    {}
func (d peerDelegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (d peerDelegate) LocalState(bool) []byte              { return nil }
func (d peerDelegate) MergeRemoteState(buf []byte, _ bool) {}

// rawPeer starts a memberlist node that is not the plugin's, named name,
// with meta, and joins it to seed; it is shut down when the test ends.
func rawPeer(t *testing.T, name string, meta []byte, key []byte, seed string) *memberlist.Memberlist {
	t.Helper()
	conf := memberlist.DefaultLocalConfig()
	conf.Name, conf.BindAddr, conf.BindPort, conf.AdvertisePort = name, "127.0.0.1", 0, 0
	conf.Label, conf.SecretKey, conf.Delegate, conf.LogOutput = label, key, peerDelegate{meta}, io.Discard
	m, err := memberlist.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	if _, err := m.Join([]string{seed}); err != nil {
		t.Fatalf("%s joining %s: %v", name, seed, err)
	}
	return m
}

// metaOf is a Sextant node's metadata.
func metaOf(addr string) []byte { return []byte(`{"member":"` + addr + `"}`) }

func TestAFailedPeerIsDroppedAfterSuspicion(t *testing.T) {
	a := startNode(t, 8001, freePorts(t, 1)[0], Config{})
	a.await(t, a.self)
	peer := rawPeer(t, "crashing", metaOf("127.0.0.1:9001"), nil, a.gaddr)
	a.await(t, a.self, "127.0.0.1:9001")
	_ = peer.Shutdown() // no goodbye: the gossip finds out by itself
	took := a.await(t, a.self)
	t.Logf("a crashed peer left the list after %v", took.Round(time.Millisecond))
}

func TestPeersThatAreNoMembersAreRefusedAndLoggedOnce(t *testing.T) {
	a := startNode(t, 8001, freePorts(t, 1)[0], Config{})
	a.await(t, a.self)
	rawPeer(t, "good", metaOf("127.0.0.1:9001"), nil, a.gaddr)
	a.await(t, a.self, "127.0.0.1:9001")
	for _, p := range []struct{ name, meta string }{
		{"no-meta", ""},
		{"not-json", "127.0.0.1:9002"},
		{"no-member", `{"member":""}`},
		{"not-canonical", `{"member":"LOCALHOST:9003"}`},
		{"impostor", string(metaOf(a.self))},
	} {
		// Each is announced many times (a join, gossip, push-pull): it is
		// logged once.
		m := rawPeer(t, p.name, []byte(p.meta), nil, a.gaddr)
		for range 3 {
			if _, err := m.Join([]string{a.gaddr}); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.log.Await(t, "refused a peer of the gossip", 5)
	if n := a.log.Count("refused a peer of the gossip"); n != 5 {
		t.Errorf("refusals logged %d times, want once for each of the 5 peers:\n%s", n, a.log)
	}
	if !strings.Contains(a.log.String(), "claims this node's address") {
		t.Errorf("the impostor's refusal does not say why:\n%s", a.log)
	}
	membershiptest.ExpectNone(t, a.lists)
}

func TestTheMemberCountIsBounded(t *testing.T) {
	maxMembers = 2
	t.Cleanup(func() { maxMembers = MaxMembers })
	a := startNode(t, 8001, freePorts(t, 1)[0], Config{})
	a.await(t, a.self)
	rawPeer(t, "second", metaOf("127.0.0.1:9001"), nil, a.gaddr)
	a.await(t, a.self, "127.0.0.1:9001")
	third := rawPeer(t, "third", metaOf("127.0.0.1:9002"), nil, a.gaddr)
	for range 3 {
		if _, err := third.Join([]string{a.gaddr}); err != nil {
			t.Fatal(err)
		}
	}
	a.log.Await(t, "the most members there may be", 1)
	if n := a.log.Count("the most members there may be"); n != 1 {
		t.Errorf("the limit was logged %d times, want once:\n%s", n, a.log)
	}
	membershiptest.ExpectNone(t, a.lists)
}

func TestTheGossipIsEncryptedWithTheKey(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	other := slices.Clone(key)
	other[0] = 0xff
	ports := freePorts(t, 3)
	a := startNode(t, 8001, ports[0], Config{EncryptKey: base64.StdEncoding.EncodeToString(key)})
	a.await(t, a.self)
	b := startNode(t, 8002, ports[1], Config{Seeds: []string{a.gaddr}, EncryptKey: base64.StdEncoding.EncodeToString(key)})
	b.await(t, a.self, b.self)
	a.await(t, a.self, b.self)
	// Another key, or none: no joining.
	c := startNode(t, 8003, ports[2], Config{Seeds: []string{a.gaddr}, EncryptKey: base64.StdEncoding.EncodeToString(other)})
	c.await(t, c.self)
	c.log.Await(t, "cannot join through the seeds", 1)
	rawConf := memberlist.DefaultLocalConfig()
	rawConf.Name, rawConf.BindAddr, rawConf.BindPort, rawConf.Label, rawConf.LogOutput = "plain", "127.0.0.1", 0, label, io.Discard
	plain, err := memberlist.Create(rawConf)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Shutdown()
	if _, err := plain.Join([]string{a.gaddr}); err == nil {
		t.Error("a node without the key joined")
	}
	if a.log.Count("the gossip is not encrypted") != 0 {
		t.Errorf("an encrypted node says it is not:\n%s", a.log)
	}
	membershiptest.ExpectNone(t, a.lists)
}

func TestMember(t *testing.T) {
	for _, tc := range []struct {
		meta, want, err string
	}{
		{`{"member":"127.0.0.1:8848"}`, "127.0.0.1:8848", ""},
		{`{"member":"[::1]:8848","zone":"b"}`, "[::1]:8848", ""}, // fields to come are allowed
		{`{"member":"nacos-1.example:8848"}`, "nacos-1.example:8848", ""},
		{``, "", "no metadata"},
		{`{"member":"127.0.0.1:8848"}` + strings.Repeat(" ", 512), "", "over the 512"},
		{`127.0.0.1:8848`, "", "not a Sextant node's"},
		{`{"member":8848}`, "", "not a Sextant node's"},
		{`{"member":"127.0.0.1"}`, "", "no member address"},
		{`{"member":"127.0.0.1:0"}`, "", "no member address"},
		{`{"member":"Nacos-1:8848"}`, "", "not in its canonical form"},
	} {
		got, err := member([]byte(tc.meta))
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("member(%q) = %q, %v; want %q, an error saying %q", tc.meta, got, err, tc.want, tc.err)
		}
	}
}

func TestRefusesAConfigurationThatCannotWork(t *testing.T) {
	const secret = "c2VjcmV0LWtleQ==" // "secret-key", 10 bytes
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"an unknown key", `{"colour":"blue"}`, []string{`unknown field "colour"`}},
		{"a malformed seed", `{"seeds":["10.0.0.1:7946","http://10.0.0.2","10.0.0.3:0"]}`,
			[]string{`config.seeds: item 1: "http://10.0.0.2"`, `config.seeds: item 2: "10.0.0.3:0"`}},
		{"bind", `{"bind":"eth0"}`, []string{"config.bind:"}},
		{"port", `{"port":65536}`, []string{"config.port: 65536"}},
		{"advertise", `{"advertise":"host:7946"}`, []string{"config.advertise:"}},
		{"advertise unspecified", `{"advertise":"0.0.0.0"}`, []string{"config.advertise:"}},
		{"advertise port 0", `{"advertise":"10.0.0.1:0"}`, []string{"config.advertise:"}},
		{"a key too short", `{"encrypt_key":"` + secret + `"}`, []string{"config.encrypt_key: is 10 bytes"}},
		{"a key not base64", `{"encrypt_key":"not base64!"}`, []string{"config.encrypt_key: is not base64"}},
		{"profile", `{"profile":"fast"}`, []string{`config.profile: "fast"`}},
		{"name", `{"name":" a\n"}`, []string{"config.name:"}},
		{"retry_interval", `{"retry_interval":"0s"}`, []string{"config.retry_interval: 0s is not positive"}},
	} {
		_, err := membership.NewProvider(Plugin, []byte(tc.config), membership.Host{})
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: NewProvider = %v, want an error saying %q", tc.name, err, w)
			}
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error repeats the key: %v", tc.name, err)
		}
	}
	good := `{"seeds":["10.0.0.1","nacos-1:7946","[::1]:7946"],"bind":"10.0.0.9","port":0,"advertise":"[2001:db8::1]:7000",` +
		`"encrypt_key":"` + base64.StdEncoding.EncodeToString(make([]byte, 16)) + `","profile":"wan","name":"node-9","retry_interval":"1s"}`
	if _, err := membership.NewProvider(Plugin, []byte(good), membership.Host{}); err != nil {
		t.Errorf("a good configuration was refused: %v", err)
	}
	if _, err := membership.NewProvider(Plugin, nil, membership.Host{}); err != nil {
		t.Errorf("no configuration at all (the defaults) was refused: %v", err)
	}
}

func TestMemberlistsLogIsRateLimited(t *testing.T) {
	logger, log := membershiptest.NewLogger()
	w := newLogWriter(logger)
	for range 50 {
		_, _ = w.Write([]byte("[ERR] memberlist: Failed to decode a packet from a peer\n"))
	}
	_, _ = w.Write([]byte("[DEBUG] memberlist: a debug line\n"))
	if n := log.Count("[ERROR] Failed to decode a packet"); n != logBurst {
		t.Errorf("%d lines of a flood logged as errors, want the burst of %d:\n%s", n, logBurst, log)
	}
	w.mu.Lock()
	w.last = w.last.Add(-logEvery) // a second later
	w.mu.Unlock()
	_, _ = w.Write([]byte("[WARN] memberlist: and then\n"))
	if !strings.Contains(log.String(), "over the rate limit: dropped=31") || log.Count("[WARN]  and then") != 1 {
		t.Errorf("the lines dropped (30 errors and a debug line) are not counted, or the next line is missing:\n%s", log)
	}
	w.quiet.Store(true)
	w.mu.Lock()
	w.last = w.last.Add(-logEvery)
	w.mu.Unlock()
	_, _ = w.Write([]byte("[ERR] memberlist: Failed to send gossip: use of closed network connection\n"))
	if log.Count("[DEBUG] Failed to send gossip") != 1 {
		t.Errorf("once the node stops, memberlist's errors are not logged at debug level:\n%s", log)
	}
}

func TestAHostNameSelfNeedsAnAdvertisedAddressWithIPv6(t *testing.T) {
	p, err := New(Config{Bind: "::", RetryInterval: sdk.ConfigDuration(time.Second)}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	port := 0
	p.cfg.Port = &port
	err = p.Watch(context.Background(), "nacos-1:8848", func([]string) { t.Error("a list") })
	if err == nil || !strings.Contains(err.Error(), "set config.advertise") {
		t.Errorf("Watch = %v, want an error asking for advertise", err)
	}
}
