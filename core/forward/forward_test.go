package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/internal/metrictest"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
	"github.com/sextantd/sextant/sdk/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var svc = naming.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "s"}

// clock is a settable clock shared by every node of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// view is one node's member table: who it knows, in which state.
type view struct {
	self   string
	mu     sync.Mutex
	states map[string]cluster.State
}

func (v *view) Self() string { return v.self }

func (v *view) Owner(key string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	up := []string{v.self}
	for a, s := range v.states {
		if s == cluster.Up && a != v.self {
			up = append(up, a)
		}
	}
	return cluster.Rendezvous(key, up)
}

func (v *view) Members() []cluster.Member {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := []cluster.Member{{Address: v.self, State: cluster.Up, Self: true}}
	for a, s := range v.states {
		if a != v.self {
			out = append(out, cluster.Member{Address: a, State: s})
		}
	}
	return out
}

func (v *view) set(address string, s cluster.State) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s == "" {
		delete(v.states, address)
	} else {
		v.states[address] = s
	}
}

// network carries the calls between the nodes of a test: to each node's
// router, unless the node is cut off (ErrUnreachable).
type network struct {
	mu      sync.Mutex
	routers map[string]*cluster.Router // by cluster address
	cut     map[string]bool            // by HTTP address
	calls   map[string]int             // by op
}

type fakeTransport struct {
	net  *network
	self string
}

func (t fakeTransport) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	t.net.mu.Lock()
	r := t.net.routers[target]
	var cut bool
	for a := range t.net.cut {
		if ca, _ := cluster.Address(a); ca == target {
			cut = true
		}
	}
	if kind == Kind {
		op := strings.SplitN(strings.TrimPrefix(string(payload), `{"op":"`), `"`, 2)[0]
		t.net.calls[op]++
	}
	t.net.mu.Unlock()
	if r == nil || cut {
		return nil, fmt.Errorf("%w: dial %s: connection refused", transport.ErrUnreachable, target)
	}
	return r.Handle(ctx, t.self, kind, payload)
}

// node is one member of a test cluster.
type node struct {
	addr string
	reg  *naming.Registry
	view *view
	fwd  *Forwarder
}

type testCluster struct {
	t     *testing.T
	clock *clock
	net   *network
	nodes []*node
}

const grace = 6 * time.Second

func newTestCluster(t *testing.T, n int) *testCluster {
	c := &testCluster{t: t, clock: &clock{now: time.Unix(1_700_000_000, 0)},
		net: &network{routers: map[string]*cluster.Router{}, cut: map[string]bool{}, calls: map[string]int{}}}
	for range n {
		c.add()
	}
	c.everyoneSees()
	return c
}

// add starts a node (known to nobody yet).
func (c *testCluster) add() *node {
	t := c.t
	addr := fmt.Sprintf("10.0.0.%d:8848", len(c.nodes)+1)
	bus := notify.New(notify.Config{})
	if err := bus.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Stop(context.Background()) })
	reg := naming.NewRegistry(naming.Config{
		Limits: naming.Limits{MaxNameLength: 512, MaxMetadataBytes: 1024, MaxBatchSize: 10, MaxServicesPerClient: 5},
		Bus:    bus, Now: c.clock.Now,
	})
	router := cluster.NewRouter()
	v := &view{self: addr, states: map[string]cluster.State{}}
	f, err := New(Config{Registry: reg, Members: v, Transport: fakeTransport{net: c.net, self: addr}, Router: router,
		Grace: grace, Now: c.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := cluster.Address(addr)
	c.net.mu.Lock()
	c.net.routers[ca] = router
	c.net.mu.Unlock()
	nd := &node{addr: addr, reg: reg, view: v, fwd: f}
	c.nodes = append(c.nodes, nd)
	return nd
}

// everyoneSees makes every node see every other UP.
func (c *testCluster) everyoneSees() {
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if a != b {
				a.view.set(b.addr, cluster.Up)
			}
		}
	}
}

// owner is the node every (converged) view makes responsible for id.
func (c *testCluster) owner(id string) *node {
	addr := c.nodes[0].view.Owner(id)
	for _, n := range c.nodes {
		if n.addr == addr {
			return n
		}
	}
	c.t.Fatalf("no node %s", addr)
	return nil
}

// replicate does what Distro does: every node's clients, as replicas on
// every other node.
func (c *testCluster) replicate() {
	for _, from := range c.nodes {
		var data []naming.ClientData
		from.reg.EachClient(func(d naming.ClientData) bool {
			if d.Owner == "" {
				d.Owner = from.addr
				data = append(data, d)
			}
			return true
		})
		for _, to := range c.nodes {
			if to != from && !c.isCut(to.addr) {
				if _, err := to.reg.Apply(context.Background(), slices.Clone(data)); err != nil {
					c.t.Fatal(err)
				}
			}
		}
	}
}

func (c *testCluster) isCut(addr string) bool {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	return c.net.cut[addr]
}

// holders returns the nodes that hold id as their own client.
func (c *testCluster) holders(id string) []string {
	var out []string
	for _, n := range c.nodes {
		if d, ok := n.reg.Client(id); ok && d.Owner == "" {
			out = append(out, n.addr)
		}
	}
	return out
}

// checkNeverTwice fails if a client is its own on two nodes.
func (c *testCluster) checkNeverTwice(ids []string) {
	c.t.Helper()
	for _, id := range ids {
		if h := c.holders(id); len(h) > 1 {
			c.t.Fatalf("%s is held as their own by %v", id, h)
		}
	}
}

// flushNotices sends every node's queued moves now.
func (c *testCluster) flushNotices() {
	for _, n := range c.nodes {
		n.fwd.sendMoves(context.Background(), n.fwd.queuedMoves())
	}
}

func instanceAt(ip string) naming.Instance {
	return naming.Instance{IP: ip, Port: 80, Weight: 1, Healthy: true, Enabled: true, Metadata: map[string]string{"ip": ip}}
}

func register(t *testing.T, n *node, ip string) {
	t.Helper()
	if _, err := n.fwd.Apply(context.Background(), Write{Op: Register, Service: svc, Instance: instanceAt(ip)}); err != nil {
		t.Fatalf("registering %s through %s: %v", ip, n.addr, err)
	}
}

func beat(t *testing.T, n *node, ip string) Result {
	t.Helper()
	body := instanceAt(ip)
	res, err := n.fwd.Apply(context.Background(), Write{Op: Beat, Service: svc, Instance: naming.Instance{IP: ip, Port: 80}, Body: &body})
	if err != nil {
		t.Fatalf("beat of %s through %s: %v", ip, n.addr, err)
	}
	return res
}

func ips(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.9.%d.%d", i/256, i%256)
	}
	return out
}

func ids(ips []string) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = naming.HTTPClientID(ip, 80)
	}
	return out
}

// TestForwardingRoundTrip: writes sent to any node are applied on the node
// responsible for the client, and answered with its answer.
func TestForwardingRoundTrip(t *testing.T) {
	c := newTestCluster(t, 3)
	addrs := ips(60)
	for i, ip := range addrs {
		register(t, c.nodes[i%3], ip)
	}
	forwarded := 0
	for i, id := range ids(addrs) {
		want := c.owner(id)
		if got := c.holders(id); !slices.Equal(got, []string{want.addr}) {
			t.Fatalf("%s registered through %s is held by %v, want %s alone", id, c.nodes[i%3].addr, got, want.addr)
		}
		if want != c.nodes[i%3] {
			forwarded++
		}
	}
	if c.net.calls[opWrite] != forwarded {
		t.Fatalf("%d writes forwarded, want %d", c.net.calls[opWrite], forwarded)
	}
	// A beat through any node finds the instance on its owner.
	for i, ip := range addrs {
		if res := beat(t, c.nodes[(i+1)%3], ip); !res.Found || res.Instance.IP != ip || res.Instance.Metadata["ip"] != ip {
			t.Fatalf("beat of %s: %+v", ip, res)
		}
	}
	// An update, then a deregistration, through another node.
	w := 7.5
	u := Write{Op: Update, Service: svc, Instance: naming.Instance{IP: addrs[0], Port: 80}, Update: naming.InstanceUpdate{Weight: &w}}
	if _, err := c.nodes[2].fwd.Apply(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	if in, err := c.owner(ids(addrs)[0]).reg.Instance(svc, addrs[0], 80, ""); err != nil || in.Weight != 7.5 {
		t.Fatalf("after the update: %+v %v", in, err)
	}
	for i, ip := range addrs {
		d := Write{Op: Deregister, Service: svc, Instance: naming.Instance{IP: ip, Port: 80}}
		if _, err := c.nodes[(i+2)%3].fwd.Apply(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.nodes {
		if st := n.reg.Stats(); st.Instances != 0 {
			t.Fatalf("%s still has %d instances", n.addr, st.Instances)
		}
	}
	// A light beat of a gone instance: not found, through any node.
	res, err := c.nodes[1].fwd.Apply(context.Background(), Write{Op: Beat, Service: svc, Instance: naming.Instance{IP: addrs[0], Port: 80}})
	if err != nil || res.Found {
		t.Fatalf("light beat of a gone instance: %+v %v", res, err)
	}
}

// TestForwardedErrorsAreTheOwners: the client gets the responsible node's
// refusal as it would have had it there; an unreachable one is a 503.
func TestForwardedErrorsAreTheOwners(t *testing.T) {
	c := newTestCluster(t, 3)
	// An address whose owner is not node 1.
	var ip string
	for _, cand := range ips(50) {
		if c.owner(naming.HTTPClientID(cand, 80)) != c.nodes[0] {
			ip = cand
			break
		}
	}
	owner := c.owner(naming.HTTPClientID(ip, 80))
	bad := instanceAt(ip)
	bad.Weight = -1
	_, err := c.nodes[0].fwd.Apply(context.Background(), Write{Op: Register, Service: svc, Instance: bad})
	_, local := owner.fwd.Apply(context.Background(), Write{Op: Register, Service: svc, Instance: bad})
	var got, want *naming.InvalidError
	if !errors.As(err, &got) || !errors.As(local, &want) || *got != *want {
		t.Fatalf("forwarded refusal %v, want the owner's %v", err, local)
	}
	w := 2.0
	_, err = c.nodes[0].fwd.Apply(context.Background(), Write{Op: Update, Service: svc, Instance: naming.Instance{IP: ip, Port: 80},
		Update: naming.InstanceUpdate{Weight: &w}})
	if !errors.Is(err, naming.ErrInstanceNotFound) {
		t.Fatalf("update of nothing: %v", err)
	}

	c.net.mu.Lock()
	c.net.cut[owner.addr] = true
	c.net.mu.Unlock()
	_, err = c.nodes[0].fwd.Apply(context.Background(), Write{Op: Register, Service: svc, Instance: instanceAt(ip)})
	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) || unavailable.Node != owner.addr {
		t.Fatalf("owner unreachable: %v", err)
	}
	t.Logf("the client is told: %v", err)
	if h := c.holders(naming.HTTPClientID(ip, 80)); len(h) != 0 {
		t.Fatalf("held by %v after the owner could not be reached", h)
	}
}

// TestAWriteWaitsOutADisagreementOfViews: a write forwarded to a node
// that sees another node responsible is sent again while the views
// converge, and answered unavailable only when they do not within
// CallTimeout.
func TestAWriteWaitsOutADisagreementOfViews(t *testing.T) {
	c := newTestCluster(t, 3)
	const stranger = "10.0.0.9:8848" // a member only the responsible node sees
	var ip string
	var owner *node
	for _, cand := range ips(500) {
		id := naming.HTTPClientID(cand, 80)
		o := c.owner(id)
		if o != c.nodes[0] && cluster.Rendezvous(id, []string{o.addr, stranger}) == stranger {
			ip, owner = cand, o
			break
		}
	}
	if ip == "" {
		t.Fatal("no address that the stranger would win")
	}
	owner.view.set(stranger, cluster.Up)

	start := time.Now()
	_, err := c.nodes[0].fwd.Apply(context.Background(), Write{Op: Register, Service: svc, Instance: instanceAt(ip)})
	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) || !unavailable.disagreed {
		t.Fatalf("views that never agree: %v, want unavailable", err)
	}
	if took := time.Since(start); took < DefaultCallTimeout/2 {
		t.Fatalf("refused after %v: the write was not sent again while the views could converge", took)
	}
	t.Logf("the client is told: %v", err)

	// The views agree once the first send was refused and a resend is due
	// (agreeing as soon as the first send left could let the owner take it).
	before := metrictest.CounterValue(t, c.nodes[0].fwd.metrics.resent)
	resent := make(chan struct{})
	go func() {
		defer close(resent)
		for metrictest.CounterValue(t, c.nodes[0].fwd.metrics.resent) <= before {
			time.Sleep(time.Millisecond)
		}
		owner.view.set(stranger, "")
	}()
	if _, err := c.nodes[0].fwd.Apply(context.Background(), Write{Op: Register, Service: svc, Instance: instanceAt(ip)}); err != nil {
		t.Fatalf("views that agree after the first send: %v", err)
	}
	<-resent
	if after := metrictest.CounterValue(t, c.nodes[0].fwd.metrics.resent); after <= before {
		t.Fatalf("resent %v times, want more than %v", after, before)
	}
	if h := c.holders(naming.HTTPClientID(ip, 80)); !slices.Equal(h, []string{owner.addr}) {
		t.Fatalf("held by %v, want %s", h, owner.addr)
	}
}

// send hands n a raw message from the member from.
func send(t *testing.T, n *node, from, payload string) (answer, error) {
	t.Helper()
	raw, err := n.fwd.handle(context.Background(), from, []byte(payload))
	var ans answer
	if err == nil {
		if jerr := json.Unmarshal(raw, &ans); jerr != nil {
			t.Fatal(jerr)
		}
	}
	return ans, err
}

// TestForwardedInputIsValidated: what a member sends is input: checked as
// a request is, and acted on only as this node's own view says.
func TestForwardedInputIsValidated(t *testing.T) {
	c := newTestCluster(t, 3)
	n := c.nodes[0]
	var mine []string // addresses n is responsible for
	var theirs string // and one it is not
	for _, ip := range ips(100) {
		if c.owner(naming.HTTPClientID(ip, 80)) == n {
			mine = append(mine, ip)
		} else if theirs == "" {
			theirs = ip
		}
	}
	other := c.nodes[1].addr
	write := func(op, ip, extra string) string {
		return fmt.Sprintf(`{"op":"write","write":{"op":%q,"service":{"namespace":"public","group":"DEFAULT_GROUP","name":"s"},"instance":{"ip":%q,"port":80,"weight":1,"healthy":true,"enabled":true}%s}}`, op, ip, extra)
	}
	for _, tc := range []struct {
		name, payload string
		wantErr       bool   // the call fails
		wantKind      string // else the answer's error kind
	}{
		{"not JSON", `{"op":`, true, ""},
		{"unknown op", `{"op":"drop-everything"}`, true, ""},
		{"no write", `{"op":"write"}`, false, errInvalid},
		{"unknown write", write("wipe", mine[0], ""), false, errInvalid},
		{"invalid ip", write("register", "not an ip!", ""), false, ""}, // hashed anywhere: refused either way
		{"negative weight", strings.Replace(write("register", mine[0], ""), `"weight":1`, `"weight":-1`, 1), false, errInvalid},
		{"service name", strings.Replace(write("register", mine[0], ""), `"name":"s"`, `"name":"a@@b"`, 1), false, errInvalid},
		{"metadata too large", strings.Replace(write("register", mine[0], ""), `"enabled":true}`, `"enabled":true,"metadata":{"k":"`+strings.Repeat("x", 2000)+`"}}`, 1), false, errInvalid},
		{"body elsewhere", write("beat", mine[0], `,"body":{"ip":"10.1.1.1","port":80,"weight":1}`), false, errInvalid},
		{"body on a register", write("register", mine[0], `,"body":{"ip":"`+mine[0]+`","port":80,"weight":1}`), false, errInvalid},
		{"not responsible", write("register", theirs, ""), false, errNotResponsible},
		{"too many ids", `{"op":"release","ids":[` + strings.TrimSuffix(strings.Repeat(`"x",`, maxBatch+1), ",") + `]}`, true, ""},
	} {
		ans, err := send(t, n, other, tc.payload)
		switch {
		case tc.wantErr && err == nil:
			t.Errorf("%s: taken: %+v", tc.name, ans)
		case !tc.wantErr && err != nil:
			t.Errorf("%s: the call failed: %v", tc.name, err)
		case !tc.wantErr && (ans.Error == nil || tc.wantKind != "" && ans.Error.Kind != tc.wantKind):
			t.Errorf("%s: answered %+v, want a %q error", tc.name, ans, tc.wantKind)
		}
	}
	if st := n.reg.Stats(); st.Instances != 0 || st.Clients != 0 {
		t.Fatalf("refused input left %+v", st)
	}

	// A release asked by a node this one does not see responsible.
	register(t, n, mine[0])
	ans, err := send(t, n, other, `{"op":"release","ids":["`+naming.HTTPClientID(mine[0], 80)+`","junk"]}`)
	if err != nil || ans.Status[naming.HTTPClientID(mine[0], 80)] != statusRefused || ans.Status["junk"] != statusRefused || len(ans.Released) != 0 {
		t.Fatalf("release to a node not responsible: %+v %v", ans, err)
	}
	if h := c.holders(naming.HTTPClientID(mine[0], 80)); !slices.Equal(h, []string{n.addr}) {
		t.Fatalf("held by %v after a refused release", h)
	}
	// A handover of clients this node is not responsible for, or of
	// instances at another address than the client's.
	elsewhere := mine[1] // n's, handed over with an instance at another address
	entry := func(id, ip string) string {
		return `{"id":"` + id + `","revision":3,"instances":[{"service":{"namespace":"public","group":"DEFAULT_GROUP","name":"s"},"instance":{"ip":"` + ip + `","port":80,"weight":1}}]}`
	}
	adopt := `{"op":"adopt","clients":[` + entry(naming.HTTPClientID(theirs, 80), theirs) + `,` +
		entry(naming.HTTPClientID(elsewhere, 80), "10.250.0.1") + `,` + entry("junk", "10.250.0.1") + `]}`
	ans, err = send(t, n, other, adopt)
	if err != nil || ans.Status[naming.HTTPClientID(theirs, 80)] != statusRefused || ans.Status[naming.HTTPClientID(elsewhere, 80)] != statusRefused ||
		ans.Status["junk"] != statusRefused {
		t.Fatalf("adopting what is not this node's, or at another address: %+v %v", ans, err)
	}
	if st := n.reg.Stats(); st.Clients != 1 {
		t.Fatalf("a refused handover was taken: %+v", st)
	}
	// A move claimed by a node this one does not see responsible.
	c.replicate()
	theirsID := naming.HTTPClientID(theirs, 80)
	register(t, c.owner(theirsID), theirs)
	c.replicate()
	before, _ := c.nodes[0].reg.Client(theirsID)
	liar := c.nodes[1].addr
	if c.owner(theirsID).addr == liar {
		liar = c.nodes[2].addr
	}
	if _, err := send(t, n, liar, `{"op":"moved","moved":[{"id":"`+theirsID+`","from":"`+before.Owner+`"}]}`); err != nil {
		t.Fatal(err)
	}
	if after, _ := n.reg.Client(theirsID); after.Owner != before.Owner {
		t.Fatalf("a replica re-homed to %s on the word of a node not responsible for it", after.Owner)
	}
	// The owner's own word moves its replica, to a member only; an address
	// no member could have is not even held for.
	for _, junk := range []string{"", "10.99.0.1", "10.99.0.1:0", "10.99.0.1:65000", ":8848", "a\\u0000b:8848", "10.99.0.1:x"} {
		if _, err := send(t, n, before.Owner, `{"op":"moved","moved":[{"id":"`+theirsID+`","from":"`+before.Owner+`","to":"`+junk+`"}]}`); err != nil {
			t.Fatal(err)
		}
		if after, _ := n.reg.Client(theirsID); after.Owner != before.Owner {
			t.Fatalf("a replica re-homed to %q", after.Owner)
		}
	}
	if _, err := send(t, n, before.Owner, `{"op":"moved","moved":[{"id":"`+theirsID+`","from":"`+before.Owner+`","to":"10.99.0.1:8848"}]}`); err != nil {
		t.Fatal(err)
	}
	if after, _ := n.reg.Client(theirsID); after.Owner != before.Owner {
		t.Fatalf("a replica re-homed to %s, not a member", after.Owner)
	}
	if _, err := send(t, n, before.Owner, `{"op":"moved","moved":[{"id":"`+theirsID+`","from":"`+before.Owner+`","to":"`+liar+`"}]}`); err != nil {
		t.Fatal(err)
	}
	if after, _ := n.reg.Client(theirsID); after.Owner != liar {
		t.Fatalf("the owner gave its replica to %s, but it is %s's", liar, after.Owner)
	}
}
