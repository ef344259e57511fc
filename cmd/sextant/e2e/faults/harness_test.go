package faults_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sextantd/sextant/cmd/internal/servertest"
	"github.com/sextantd/sextant/cmd/internal/sextantproc"
)

// The services every scenario runs with: big is 300 instances of three
// clients of node 1; own-2 and own-3 are a client's of node 2 and node 3;
// shared has a client on every node.
var services = []string{"big", "own-2", "own-3", "shared"}

// cluster is three sextant nodes on the faulty transport, with a witness on
// every node and the clients (providers) the scenario registered.
type cluster struct {
	t        *testing.T
	scenario string
	dir      string
	ports    []int
	nodes    []*servertest.Server
	former   [][]*servertest.Server // each node's processes before the running one
	services []string

	mu        sync.Mutex
	began     time.Time // the witnesses subscribed: (c) is judged from here
	running   []bool    // started and not killed (a paused node runs)
	paused    []bool
	providers []*provider
	outages   []outageWindow
	records   []record
	witnesses []*witness
	seq       int // providers made, for their addresses
	churn     *churn

	readers  sync.WaitGroup
	finished sync.Once
}

// provider is one client's registration of some instances: alive from
// registered until died (zero: still alive).
type provider struct {
	node       int
	svc        string
	addrs      []endpoint
	conn       *conn
	registered time.Time
	died       time.Time
}

func (p *provider) aliveAt(at time.Time) bool {
	return !p.registered.After(at) && (p.died.IsZero() || p.died.After(at))
}

// outageWindow is a time in which the providers of owners do not count as
// alive for observers (nil: every node): their owner is frozen, or cut off
// from the observers, so the observers may rightly drop them, and lack them
// until the cluster has converged again after the fault.
type outageWindow struct {
	owners, observers []int
	from              time.Time
	healed            time.Time // the fault ended
	to                time.Time // the cluster converged again (zero: not yet)
}

func (o outageWindow) covers(owner, observer int, at time.Time) bool {
	if !slices.Contains(o.owners, owner) || (o.observers != nil && !slices.Contains(o.observers, observer)) {
		return false
	}
	return !at.Before(o.from) && (o.to.IsZero() || at.Before(o.to.Add(settle)))
}

// record is what a node pushed a witness (how = "pushed") or answered its
// query (how = "served") for a service.
type record struct {
	at   time.Time
	node int
	svc  string
	how  string
	n    int
	ref  time.Time // the list's lastRefTime
}

func address(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func (c *cluster) addr(i int) string { return address(c.ports[i]) }

func (c *cluster) control(i int) string {
	return filepath.Join(c.dir, "control-"+strconv.Itoa(i+1))
}

// newCluster starts three nodes, registers the standard providers, waits
// until every node serves them, and subscribes a witness on every node to
// every service (extra ones included).
func newCluster(t *testing.T, scenario string, extra ...string) *cluster {
	t.Helper()
	c := &cluster{
		t: t, scenario: scenario, dir: t.TempDir(), ports: servertest.FreePorts(t, 3),
		nodes: make([]*servertest.Server, 3), former: make([][]*servertest.Server, 3), running: make([]bool, 3), paused: make([]bool, 3),
		witnesses: make([]*witness, 3), services: append(slices.Clone(services), extra...),
	}
	bin := faultyPlugin(t)
	for i := range 3 {
		hcl := fmt.Sprintf("cluster {\n  transport = \"faulty\"\n}\nplugins {\n  faulty {\n    path = %q\n    config {\n      control = %q\n    }\n  }\n}\n", bin, c.control(i))
		if err := os.WriteFile(c.config(i), []byte(hcl), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	servertest.Binary(t) // built before the clock starts
	started := time.Now()
	for i := range 3 {
		c.start(i)
	}
	c.awaitMembersUp()
	for i := range 3 {
		c.connectWitness(i, false)
	}
	for range 3 {
		c.addProvider(0, "big", 100)
	}
	c.addProvider(1, "own-2", 20)
	c.addProvider(2, "own-3", 20)
	for i := range 3 {
		c.addProvider(i, "shared", 5)
	}
	if _, err := c.awaitConverged(convergeWithin); err != nil {
		t.Fatalf("the cluster did not converge after the first registrations: %v", err)
	}
	c.mu.Lock()
	c.began = time.Now()
	c.mu.Unlock()
	for i := range 3 {
		c.witnesses[i].subscribeAll()
	}
	t.Logf("cluster %v up with %d instances in %v; the scenario begins at %s", c.addresses(), c.instanceCount(),
		time.Since(started).Round(time.Millisecond), c.began.UTC().Format("15:04:05.000"))
	return c
}

// awaitLog waits up to within until node i's log holds text, and returns
// the log.
func (c *cluster) awaitLog(i int, text string, within time.Duration) (string, bool) {
	deadline := time.Now().Add(within)
	for {
		logs := c.nodes[i].Logs()
		if strings.Contains(logs, text) {
			return logs, true
		}
		if time.Now().After(deadline) {
			return logs, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) config(i int) string {
	return filepath.Join(c.dir, "node-"+strconv.Itoa(i+1)+".hcl")
}

func (c *cluster) addresses() []string {
	out := make([]string, len(c.ports))
	for i := range c.ports {
		out[i] = c.addr(i)
	}
	return out
}

func (c *cluster) instanceCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range c.providers {
		if p.died.IsZero() {
			n += len(p.addrs)
		}
	}
	return n
}

// start starts node i (again) and returns once it reports ready.
func (c *cluster) start(i int) {
	c.t.Helper()
	if c.nodes[i] != nil {
		c.former[i] = append(c.former[i], c.nodes[i])
	}
	c.nodes[i] = servertest.Start(c.t, servertest.Options{
		Port: c.ports[i],
		Args: []string{"--config", c.config(i), "--members", strings.Join(c.addresses(), ",")},
		Env:  append(slices.Clone(fast), "SEXTANT_CLUSTER_SELF="+c.addr(i)),
	})
	c.mu.Lock()
	c.running[i] = true
	c.mu.Unlock()
	// Cleanups run last first: the latest node's runs before any node stops.
	c.t.Cleanup(c.finish)
}

// member is a node as /nacos/v1/core/cluster/nodes lists it.
type member struct {
	Address string
	State   string
}

func (c *cluster) members(i int) ([]member, error) {
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + c.nodes[i].HTTPAddr() + "/nacos/v1/core/cluster/nodes")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct{ Data []member }
	err = json.NewDecoder(resp.Body).Decode(&body)
	return body.Data, err
}

// awaitMembersUp waits until every running node lists every node UP.
func (c *cluster) awaitMembersUp() time.Duration {
	c.t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < convergeWithin {
		all := true
		for i := range 3 {
			if !c.isRunning(i) {
				continue
			}
			list, err := c.members(i)
			up := 0
			for _, m := range list {
				if m.State == "UP" {
					up++
				}
			}
			if err != nil || up != 3 {
				all, last = false, fmt.Sprintf("node %d lists %v (%v)", i+1, list, err)
				break
			}
		}
		if all {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("the members are not all UP after %v: %s", convergeWithin, last)
	return 0
}

func (c *cluster) isRunning(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running[i]
}

// addProvider registers n new instances of svc through a new client of node
// i.
func (c *cluster) addProvider(i int, svc string, n int) *provider {
	c.t.Helper()
	c.mu.Lock()
	c.seq++
	seq := c.seq
	c.mu.Unlock()
	addrs := make([]endpoint, n)
	for k := range addrs {
		addrs[k] = endpoint{fmt.Sprintf("10.%d.%d.%d", i+1, seq, k), 8080}
	}
	return c.register(i, svc, addrs)
}

// register registers addrs in svc through a new client of node i.
func (c *cluster) register(i int, svc string, addrs []endpoint) *provider {
	c.t.Helper()
	conn, err := dial(c.nodes[i].GRPCAddr(), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := conn.register(svc, addrs); err != nil {
		conn.Close()
		c.t.Fatal(err)
	}
	p := &provider{node: i, svc: svc, addrs: addrs, conn: conn, registered: time.Now()}
	c.mu.Lock()
	c.providers = append(c.providers, p)
	c.mu.Unlock()
	return p
}

// move makes addrs p's client's instances instead of p's: p dies and the
// returned provider is born.
func (c *cluster) move(p *provider, addrs []endpoint) *provider {
	c.t.Helper()
	sent := time.Now()
	if err := p.conn.register(p.svc, addrs); err != nil {
		c.t.Fatal(err)
	}
	next := &provider{node: p.node, svc: p.svc, addrs: addrs, conn: p.conn, registered: time.Now()}
	c.mu.Lock()
	p.died, p.conn = sent, nil
	c.providers = append(c.providers, next)
	c.mu.Unlock()
	return next
}

// expected returns what every node should serve for svc: the instances of
// the live providers, sorted.
func (c *cluster) expected(svc string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, p := range c.providers {
		if p.svc == svc && p.died.IsZero() {
			for _, a := range p.addrs {
				out = append(out, a.String())
			}
		}
	}
	slices.Sort(out)
	return out
}

// ownerAlive reports whether, at at, svc had a provider that had been
// registered long enough to have reached observer, and whose owner was
// neither dead nor frozen nor cut off from observer: (c) forbids an empty
// list then. c.mu is held.
func (c *cluster) ownerAlive(svc string, observer int, at time.Time) *provider {
	for _, p := range c.providers {
		if p.svc != svc || !p.aliveAt(at) || at.Sub(p.registered) < propagation {
			continue
		}
		if !slices.ContainsFunc(c.outages, func(o outageWindow) bool { return o.covers(p.node, observer, at) }) {
			return p
		}
	}
	return nil
}

// outage records that from now on the providers of owners may be dropped
// by observers (nil: all): call heal when the fault ends, and over once the
// cluster has converged again.
func (c *cluster) outage(owners, observers []int) (heal, over func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outages = append(c.outages, outageWindow{owners: owners, observers: observers, from: time.Now()})
	k := len(c.outages) - 1
	set := func(field func(*outageWindow) *time.Time) func() {
		return func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			*field(&c.outages[k]) = time.Now()
		}
	}
	return set(func(o *outageWindow) *time.Time { return &o.healed }), set(func(o *outageWindow) *time.Time { return &o.to })
}

// awaitConverged waits until every running node serves exactly every live
// provider's instances — invariants (a) and (b) — and returns how long it
// took. The churn, if any, is held meanwhile.
func (c *cluster) awaitConverged(within time.Duration) (time.Duration, error) {
	if c.churn != nil {
		c.churn.mu.Lock()
		defer c.churn.mu.Unlock()
	}
	start := time.Now()
	for {
		diff := c.divergence()
		if diff == "" {
			return time.Since(start), nil
		}
		if time.Since(start) > within {
			return time.Since(start), fmt.Errorf("not converged after %v: %s", within, diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// divergence describes how the running nodes' answers differ from what is
// expected ("" if they do not).
func (c *cluster) divergence() string {
	for _, svc := range c.services {
		want := c.expected(svc)
		for i := range 3 {
			w := c.witness(i)
			if w == nil || !c.isRunning(i) {
				continue
			}
			hosts, err := w.conn.query(time.Second, svc)
			if err != nil {
				return fmt.Sprintf("node %d: %v", i+1, err)
			}
			got := make([]string, len(hosts))
			for k, h := range hosts {
				got[k] = h.String()
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				return fmt.Sprintf("node %d serves %d instances of %s, want %d (missing %s; extra %s)",
					i+1, len(got), svc, len(want), sample(minus(want, got)), sample(minus(got, want)))
			}
		}
	}
	return ""
}

// minus returns the elements of a not in b (both sorted).
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	return out
}

func sample(s []string) string {
	if len(s) > 3 {
		return fmt.Sprintf("%v and %d more", s[:3], len(s)-3)
	}
	return fmt.Sprint(s)
}

// awaitGone waits until no running node among observers serves any of
// addrs, and returns how long after since that was.
func (c *cluster) awaitGone(observers []int, addrs map[string]bool, since time.Time, within time.Duration) (time.Duration, error) {
	for {
		left := ""
		for _, i := range observers {
			if left != "" {
				break
			}
			w := c.witness(i)
			if w == nil || !c.isRunning(i) {
				continue
			}
			for _, svc := range c.services {
				hosts, err := w.conn.query(time.Second, svc)
				if err != nil {
					left = err.Error()
					break
				}
				n := 0
				for _, h := range hosts {
					if addrs[h.String()] {
						n++
					}
				}
				if n > 0 {
					left = fmt.Sprintf("node %d still serves %d of them in %s", i+1, n, svc)
					break
				}
			}
		}
		if left == "" {
			return time.Since(since), nil
		}
		if time.Since(since) > within {
			return time.Since(since), fmt.Errorf("after %v: %s", within, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// others returns the nodes but i.
func others(i int) []int {
	var out []int
	for k := range 3 {
		if k != i {
			out = append(out, k)
		}
	}
	return out
}

// addrsOf returns the instances of the live providers of node i.
func (c *cluster) addrsOf(i int) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]bool{}
	for _, p := range c.providers {
		if p.node == i && p.died.IsZero() {
			for _, a := range p.addrs {
				out[a.String()] = true
			}
		}
	}
	return out
}

// pause freezes node i and its plugin processes with SIGSTOP, as a frozen
// VM or container would be; resume thaws them.
func (c *cluster) pause(i int) {
	c.t.Helper()
	pids := append([]int{c.nodes[i].PID()}, pluginPIDs(c.nodes[i].PID())...)
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			c.t.Fatalf("SIGSTOP %d: %v", pid, err)
		}
	}
	c.mu.Lock()
	c.paused[i] = true
	c.mu.Unlock()
	c.t.Cleanup(func() { c.resume(i) }) // else it could not be stopped
}

func (c *cluster) resume(i int) {
	c.mu.Lock()
	was := c.paused[i]
	c.paused[i] = false
	c.mu.Unlock()
	if !was {
		return
	}
	pids := append(pluginPIDs(c.nodes[i].PID()), c.nodes[i].PID())
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			c.t.Errorf("SIGCONT %d: %v", pid, err)
		}
	}
}

// kill ends node i with SIGKILL: its clients die with it (their instances
// must leave the others), and its witness goes.
func (c *cluster) kill(i int) (dead []*provider) {
	c.t.Helper()
	if c.churn != nil {
		c.churn.mu.Lock()
		defer c.churn.mu.Unlock()
	}
	now := time.Now()
	c.mu.Lock()
	c.running[i] = false
	for _, p := range c.providers {
		if p.node == i && p.died.IsZero() {
			p.died = now
			dead = append(dead, p)
		}
	}
	w := c.witnesses[i]
	c.witnesses[i] = nil
	c.mu.Unlock()
	c.nodes[i].Kill()
	if w != nil {
		w.close()
	}
	for _, p := range dead {
		if p.svc != churnService {
			p.conn.Close()
		}
	}
	if c.churn != nil {
		c.churn.dropNode(i)
	}
	return dead
}

// setFaults replaces node i's fault rules (see testdata/faulty).
func (c *cluster) setFaults(i int, rules ...string) {
	c.t.Helper()
	body := strings.Join(rules, "\n") + "\n"
	tmp := c.control(i) + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, c.control(i)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) witness(i int) *witness {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.witnesses[i]
}

func (c *cluster) addRecord(r record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, r)
}

// logf logs a measurement in the suite's parseable form.
func (c *cluster) logf(format string, args ...any) {
	c.t.Helper()
	c.t.Logf("FAULT scenario=%s "+format, append([]any{c.scenario}, args...)...)
}

// finish stops the witnesses, judges invariant (c) over everything they
// recorded, and shows the nodes' logs of a failed scenario.
func (c *cluster) finish() { c.finished.Do(c.wrapUp) }

func (c *cluster) wrapUp() {
	if c.churn != nil {
		c.churn.halt()
	}
	c.mu.Lock()
	ws := slices.Clone(c.witnesses)
	c.mu.Unlock()
	for _, w := range ws {
		if w != nil {
			w.close()
		}
	}
	c.readers.Wait()
	c.judge()
	// The providers leave only now: what they leave behind is no violation.
	c.mu.Lock()
	ps := slices.Clone(c.providers)
	c.mu.Unlock()
	for _, p := range ps {
		if p.conn != nil && p.svc != churnService {
			p.conn.Close()
		}
	}
	// Stop the nodes at once rather than one after the other (their
	// cleanups then find them stopped, and check how they exited).
	var stopping sync.WaitGroup
	for _, n := range c.nodes {
		if n != nil {
			stopping.Go(func() { _ = n.Stop() })
		}
	}
	stopping.Wait()
	// FAULTS_LOG_DIR keeps every node's whole log, and those of the
	// processes it ran before (-lifeN).
	if d := os.Getenv("FAULTS_LOG_DIR"); d != "" {
		for i, n := range c.nodes {
			if n == nil { // not started: newCluster failed
				continue
			}
			name := strings.ReplaceAll(c.scenario, "/", "_") + "-node" + strconv.Itoa(i+1)
			logs := map[string]*servertest.Server{name + ".log": n}
			for life, f := range c.former[i] {
				logs[name+"-life"+strconv.Itoa(life+1)+".log"] = f
			}
			for file, p := range logs {
				if err := os.WriteFile(filepath.Join(d, file), []byte(p.Logs()), 0o644); err != nil {
					c.t.Error(err)
				}
			}
		}
	}
	if c.t.Failed() {
		for i, n := range c.nodes {
			if n != nil {
				c.t.Logf("node %d (%s) log, lines of note:\n%s", i+1, c.addr(i), notable(n.Logs()))
			}
		}
	}
}

// judge fails the test for every (node, service, kind of record) that shows
// an empty list while the service's owner was alive, after the node had
// shown its instances: invariant (c).
func (c *cluster) judge() {
	var ops []churnOp
	if c.churn != nil {
		ops = c.churn.history()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	type key struct {
		node int
		svc  string
		how  string
	}
	type finding struct {
		first, last time.Time
		ref         time.Time // the first list's lastRefTime
		count       int
		owner       *provider
	}
	found := map[key]*finding{}
	var keys []key
	pushes, empty := 0, 0
	// seen is when node k last answered or pushed svc with instances.
	type seenKey struct {
		node int
		svc  string
	}
	seen := map[seenKey]time.Time{}
	// newest is the newest lastRefTime node k gave for svc. The official
	// client drops a list no newer than the one it holds ("out of date data
	// received"), so a push that arrives after a newer one, as a retry or a
	// push slow to deliver can, changes nothing for it: it is not judged.
	newest := map[seenKey]time.Time{}
	emptyBy := map[string]int{}
	records := slices.SortedStableFunc(slices.Values(c.records), func(a, b record) int { return a.at.Compare(b.at) })
	for _, r := range records {
		if r.how == "pushed" {
			pushes++
		}
		if sk := (seenKey{r.node, r.svc}); !r.ref.IsZero() {
			if !r.ref.After(newest[sk]) {
				continue
			}
			newest[sk] = r.ref
		}
		if r.n != 0 {
			seen[seenKey{r.node, r.svc}] = r.at
			continue
		}
		if r.how == "pushed" {
			empty++
			emptyBy[fmt.Sprintf("node%d:%s", r.node+1, r.svc)]++
		}
		// An empty list is a drop if the node had shown instances since
		// the live owner registered them (else they had not reached it yet).
		p := c.ownerAlive(r.svc, r.node, r.at)
		if p == nil || seen[seenKey{r.node, r.svc}].Before(p.registered) {
			continue
		}
		k := key{r.node, r.svc, r.how}
		f := found[k]
		if f == nil {
			f = &finding{first: r.at, ref: r.ref, owner: p}
			found[k] = f
			keys = append(keys, k)
		}
		f.last = r.at
		f.count++
	}
	var by []string
	for _, k := range slices.Sorted(maps.Keys(emptyBy)) {
		by = append(by, fmt.Sprintf("%s*%d", k, emptyBy[k]))
	}
	c.t.Logf("FAULT scenario=%s pushes=%d empty_pushes=%d empty_by=%s violations_c=%d", c.scenario, pushes, empty, strings.Join(by, ","), len(keys))
	for _, k := range keys {
		f := found[k]
		why := fmt.Sprintf("the first list is of the node's data as of %v (its lastRefTime); %s",
			f.ref.Sub(c.began).Round(time.Millisecond), c.diagnose(k.node, f.owner.node, f.first))
		if f.owner.svc == churnService {
			why += "; " + clientOps(ops, f.owner.conn, c.began, f.first)
		}
		c.t.Errorf("invariant (c): node %d %s an empty %s %d times, from %v to %v into the scenario, while its owner was alive (%d instances of a client of node %d, registered %v in); %s",
			k.node+1, k.how, k.svc, f.count, f.first.Sub(c.began).Round(time.Millisecond), f.last.Sub(c.began).Round(time.Millisecond),
			len(f.owner.addrs), f.owner.node+1, f.owner.registered.Sub(c.began).Round(time.Millisecond), why)
	}
}

// diagnose says what the faults injected suggest about an empty list node
// observer gave at at for a service of owner's; c.mu is held.
func (c *cluster) diagnose(observer, owner int, at time.Time) string {
	for _, o := range c.outages {
		if slices.Contains(o.owners, observer) && !o.healed.IsZero() && !at.Before(o.healed) && at.Sub(o.healed) < expiry+2*time.Second {
			return fmt.Sprintf("node %d had itself been frozen or cut off until %v before: it dropped live replicas when it came back",
				observer+1, at.Sub(o.healed).Round(time.Millisecond))
		}
	}
	for _, o := range c.outages {
		if !at.Before(o.from) && (o.to.IsZero() || at.Before(o.to.Add(settle))) &&
			!slices.Contains(o.owners, observer) && !slices.Contains(o.owners, owner) {
			return fmt.Sprintf("neither node %d nor the owner was faulty, but another node was: the owner's verifications did not reach node %d within the expiry", observer+1, observer+1)
		}
	}
	return "no fault explains it"
}

// notable keeps the log lines that tell what the cluster did.
func notable(logs string) string {
	var out []string
	for line := range strings.Lines(logs) {
		for _, word := range []string{"expired", "member state", "snapshot", "plugin", "fault", "ERROR", "WARN"} {
			if strings.Contains(line, word) {
				out = append(out, strings.TrimRight(line, "\n"))
				break
			}
		}
	}
	if len(out) > 80 {
		out = append([]string{fmt.Sprintf("... %d lines before", len(out)-80)}, out[len(out)-80:]...)
	}
	return strings.Join(out, "\n")
}

// pluginPIDs lists the live children of the process pid: its plugins.
func pluginPIDs(pid int) []int {
	var out []int
	for _, p := range children(pid) {
		if p.state != "Z" {
			out = append(out, p.pid)
		}
	}
	return out
}

// process is a process as /proc shows it.
type process struct {
	pid     int
	state   string
	cmdline []string
}

// children lists the processes whose parent is pid.
func children(pid int) []process {
	var out []process
	for _, c := range sextantproc.Children(pid) {
		out = append(out, process{pid: c.PID, state: c.State, cmdline: c.Cmdline})
	}
	return out
}
