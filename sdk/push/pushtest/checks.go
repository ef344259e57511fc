package pushtest

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"

	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk/host"
	"github.com/sextantd/sextant/sdk/internal/kit"
	"github.com/sextantd/sextant/sdk/internal/wire"
	"github.com/sextantd/sextant/sdk/push"
)

func (k *pushKit) describe(t kit.Reporter) {
	t.Helper()
	var d host.Description
	d, k.config = k.Describe(t, k.opts.Config)
	switch d.Role {
	case push.RoleRPC, push.RoleUDP, push.RoleSPI:
	default:
		t.Errorf("the plugin's role is %q, want push.RoleRPC, RoleUDP or RoleSPI: set Plugin.Role", d.Role)
	}
	k.role = d.Role
}

func (k *pushKit) configure(t kit.Reporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kit.ResultWait)
	defer cancel()
	id, err := k.ServeHost(ctx, func(s *grpc.Server) { pluginv1.RegisterConnectionsServer(s, connectionsServer{conns: k.host}) })
	if err != nil {
		t.Fatalf("serving the host's connections to the plugin: %v", err)
	}
	resp, err := pluginv1.NewPluginClient(k.Conn).Configure(ctx, &pluginv1.ConfigureRequest{ConfigJson: k.config, HostBrokerId: id})
	if err != nil {
		t.Fatalf("Configure failed (New returned an error, or the plugin could not reach the host): %v%s", err, k.StderrTail())
	}
	if k.role == push.RoleSPI {
		if resp.GetInterest() == nil {
			t.Errorf("the plugin serves the spi role but declared no Interest: its executor must implement push.Interested")
		}
		for _, p := range resp.GetInterest().GetServices() {
			if _, err := path.Match(p, ""); err != nil {
				t.Errorf("its Interest has the service pattern %q, which is malformed and matches nothing: %v", p, err)
			}
		}
	}
	switch {
	case k.role == push.RoleUDP:
		// Its targets are UDP subscribers at an Address: the kit's
		// receivers, which steer deliveries unless the author does.
		udp, err := newReceivers(maxTargets, k.opts.Deliveries != nil, udpServiceInfo, udpServiceInfoLarge)
		if err != nil {
			t.Fatalf("the kit could not start its UDP receivers: %v", err)
		}
		k.udp, k.deliveries = udp, udp
		if k.opts.Deliveries != nil {
			k.deliveries = k.opts.Deliveries
		}
	case k.opts.Deliveries != nil:
		k.deliveries = k.opts.Deliveries
	default:
		k.deliveries = k.host
	}
	streamCtx, endStream := context.WithCancel(context.Background())
	s, err := pluginv1.NewPushExecutorClient(k.Conn).Push(streamCtx, wire.CallOptions...)
	if err != nil {
		endStream()
		t.Fatalf("opening the push stream failed: %v", err)
	}
	k.stream, k.endStream = newStream(s), endStream
}

func (k *pushKit) results(t kit.Reporter) {
	t.Helper()
	k.deliveries.Succeed()
	requests := k.host.received()
	delivered := true // every batch got nil for every target
	for _, n := range []int{0, 1, maxTargets} {
		what := fmt.Sprintf("a batch of %s, deliveries succeeding", kit.Plural(n, "target"))
		acks := k.acks()
		ok := k.expect(t, what, k.batch(n), nil)
		if acked := k.acks() - acks; ok && k.steersUDP() && acked < n && k.panics.Count() == 0 {
			t.Errorf("%s: the plugin reported every target delivered, but the kit's receivers at their addresses "+
				"(Target.Address) sent %s: a target is delivered once its subscriber acknowledged the push",
				what, kit.Plural(acked, "ack"))
		}
		delivered = ok && delivered
	}
	if k.deliveries == Deliveries(k.host) && delivered && k.panics.Count() == 0 && k.host.received() == requests {
		k.elsewhere = true
		t.Errorf("the plugin reported batches of 1 and 500 targets delivered without sending a request through the host's " +
			"Connections (push.Host.Connections), which is all the kit sees and steers unless told otherwise. A plugin that " +
			"delivers elsewhere (to a URL, a queue, over UDP) must set Options.Deliveries: a Deliveries that makes those " +
			"deliveries succeed, fail or hang when the kit asks (see examples/push-webhook). Until then, the failures, " +
			"deadline and cancel checks, which make deliveries fail or hang, are skipped. (A plugin meant to deliver " +
			"through Connections delivers nothing.)")
	}
}

// steered skips a check that steers deliveries when the kit cannot.
func (k *pushKit) steered(t kit.Reporter) {
	t.Helper()
	if k.elsewhere {
		t.Skipf("the plugin delivers elsewhere than through the host's Connections, and Options.Deliveries is not set (see the results check)")
	}
}

func (k *pushKit) failures(t kit.Reporter) {
	t.Helper()
	k.steered(t)
	k.deliveries.Fail()
	k.expect(t, "a batch of 5 targets, deliveries failing", k.batch(5), everyTarget)
	if k.steersUDP() {
		k.udpFailures(t)
	}
	if k.deliveries == Deliveries(k.host) {
		b := k.batch(6)
		odd := func(i int) bool { return i%2 == 1 }
		failing := map[string]bool{}
		for i, target := range b.Targets {
			if odd(i) {
				failing[target.ConnectionID] = true
			}
		}
		k.host.failOnly(failing)
		k.expect(t, "a batch of 6 targets whose connections 1, 3 and 5 fail", b, odd)
	}
	k.deliveries.Succeed()
	k.expect(t, "a batch of 3 targets after failures, deliveries succeeding again", k.batch(3), nil)
}

// udpFailures checks that a udp plugin takes a target as delivered on its
// ack alone — from the address pushed, with the push's lastRefTime — and
// resends a push whose datagram was lost.
func (k *pushKit) udpFailures(t kit.Reporter) {
	t.Helper()
	odd := func(i int) bool { return i%2 == 1 }
	k.udp.steer(ackNone, odd)
	k.expect(t, "a batch of 6 targets whose subscribers 1, 3 and 5 never acknowledge", k.batch(6), odd)
	k.udp.steer(wrongRef, nil)
	k.expect(t, "a batch of 3 targets whose subscribers acknowledge another lastRefTime than the push's "+
		"(an ack counts only with the push's own)", k.batch(3), everyTarget)
	k.udp.steer(impostor, nil)
	k.expect(t, "a batch of 3 targets whose acks come from another address than the one pushed "+
		"(an ack counts only from the target's Address)", k.batch(3), everyTarget)
	k.udp.steer(dropFirst, nil)
	k.expect(t, "a batch of 4 targets whose subscribers lose the first datagram of each push "+
		"(UDP loses datagrams: send an unacknowledged push again, within the kit's wait)", k.batch(4), nil)
}

func (k *pushKit) deadline(t kit.Reporter) {
	t.Helper()
	k.steered(t)
	k.deliveries.Hang()
	deadline := time.Now().Add(kit.ShortDeadline)
	if err := k.run(k.batch(3), deadline, kit.ShortDeadline+kit.Grace,
		fmt.Sprintf("%v past its deadline; Push must return by its context's deadline", kit.Grace), everyTarget); err != nil {
		t.Errorf("a batch with a %v deadline, deliveries never completing: %v", kit.ShortDeadline, err)
	}
}

func (k *pushKit) cancel(t kit.Reporter) {
	t.Helper()
	k.steered(t)
	hung := k.deliveries.Hang()
	const what = "a batch withdrawn by the host while its delivery hangs"
	b := k.batch(3)
	id, results, err := k.stream.push(b, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	select {
	case <-hung:
	case res := <-results: // answered without waiting for a delivery
		if err := check(b, res, everyTarget); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		return
	case <-k.stream.done:
		t.Fatalf("%s: %v%s", what, k.stream.err, k.StderrTail())
	case <-time.After(kit.ResultWait):
		t.Fatalf("%s: in %v the plugin neither started a delivery nor answered", what, kit.ResultWait)
	}
	if err := k.stream.cancel(id); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	res, err := k.await(results, kit.Grace,
		fmt.Sprintf("%v after the host withdrew it; Push must return soon after its context is cancelled", kit.Grace))
	if err == nil {
		err = check(b, res, everyTarget)
	}
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func (k *pushKit) concurrency(t kit.Reporter) {
	t.Helper()
	k.deliveries.Succeed()
	const n = 16
	results := make([]<-chan []string, n)
	for i := range results {
		var err error
		if _, results[i], err = k.stream.push(k.batch(i+1), time.Now().Add(kit.ResultWait)); err != nil {
			t.Fatalf("sending batch %d of %d: %v", i+1, n, err)
		}
	}
	var wrong []error
	for i, ch := range results {
		res, err := k.await(ch, kit.ResultWait, fmt.Sprintf("within %v", kit.ResultWait))
		if err == nil {
			err = check(k.batch(i+1), res, nil)
		}
		if err != nil {
			wrong = append(wrong, fmt.Errorf("batch %d (%s): %w", i+1, kit.Plural(i+1, "target"), err))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d batches sent at once, deliveries succeeding, got wrong results; the first, %v", len(wrong), n, wrong[0])
	}
}

// expect pushes b and checks its results: an error for target i if fails(i),
// nil otherwise (fails nil: for none). It reports whether they were right.
func (k *pushKit) expect(t kit.Reporter, what string, b push.Batch, fails func(int) bool) bool {
	t.Helper()
	if err := k.run(b, time.Now().Add(kit.ResultWait), kit.ResultWait+kit.Grace, fmt.Sprintf("within %v", kit.ResultWait+kit.Grace), fails); err != nil {
		t.Errorf("%s: %v", what, err)
		return false
	}
	return true
}

// run pushes b with a deadline and checks the results that come within wait;
// late says what it means when none do.
func (k *pushKit) run(b push.Batch, deadline time.Time, wait time.Duration, late string, fails func(int) bool) error {
	_, results, err := k.stream.push(b, deadline)
	if err != nil {
		return err
	}
	res, err := k.await(results, wait, late)
	if err != nil {
		return err
	}
	return check(b, res, fails)
}

func everyTarget(int) bool { return true }

// await returns the results that come on ch within wait, or why none came:
// "no result " and late when time ran out.
func (k *pushKit) await(ch <-chan []string, wait time.Duration, late string) ([]string, error) {
	select {
	case res := <-ch:
		return res, nil
	case <-k.stream.done:
		return nil, fmt.Errorf("no result: %w (did the plugin crash?)%s", k.stream.err, k.StderrTail())
	case <-time.After(wait):
		return nil, errors.New("no result " + late)
	}
}

// check returns what is wrong with b's results: not one per target, or an
// error where fails says none (fails nil: for every target), or none where it
// says one.
func check(b push.Batch, res []string, fails func(int) bool) error {
	if slices.ContainsFunc(res, func(msg string) bool { return strings.HasPrefix(msg, panicked) }) {
		return nil // reported once for the check
	}
	if len(res) != len(b.Targets) {
		return fmt.Errorf("%s for %s; Push must return exactly one error (nil for a success) per target, in the order of Batch.Targets",
			kit.Plural(len(res), "result"), kit.Plural(len(b.Targets), "target"))
	}
	var wrong []error
	for i, msg := range res {
		want := fails != nil && fails(i)
		switch {
		case want && msg == "":
			wrong = append(wrong, fmt.Errorf("target %d (%s) got no error, but its delivery failed", i, b.Targets[i].ClientID))
		case !want && msg != "":
			wrong = append(wrong, fmt.Errorf("target %d (%s) got the error %q, but its delivery succeeded", i, b.Targets[i].ClientID, msg))
		}
	}
	if len(wrong) == 0 {
		return nil
	}
	n := len(wrong)
	if n > 3 {
		wrong = append(wrong[:3], fmt.Errorf("and %d more", n-3))
	}
	return fmt.Errorf("%d of %s got the wrong result:\n%w", n, kit.Plural(len(b.Targets), "target"), errors.Join(wrong...))
}

var testService = push.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "pushtest-service"}

// serviceInfo is the Nacos ServiceInfo JSON of testService's batches.
const serviceInfo = `{"name":"pushtest-service","groupName":"DEFAULT_GROUP","clusters":"","cacheMillis":10000,` +
	`"hosts":[{"instanceId":"10.0.0.1#8080#DEFAULT#DEFAULT_GROUP@@pushtest-service","ip":"10.0.0.1","port":8080,` +
	`"weight":1,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"DEFAULT",` +
	`"serviceName":"DEFAULT_GROUP@@pushtest-service","metadata":{}}],` +
	`"lastRefTime":1700000000000,"checksum":"","allIPs":false,"reachProtectionThreshold":false,"valid":true}`

// maxTargets is the most targets a batch of the kit has.
const maxTargets = 500

// udpServiceInfo is the ServiceInfo of testService's batches for a udp
// plugin, as 1.x clients read it (named group@@name); batches of an even
// number of targets carry udpServiceInfoLarge, over 1 KiB, which a Nacos
// server would gzip.
var udpServiceInfo, udpServiceInfoLarge = udpInfo(1), udpInfo(6)

// udpInfo returns testService's ServiceInfo with n instances, for udp plugins.
func udpInfo(n int) string {
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = fmt.Sprintf(`{"instanceId":"10.0.0.%d#8080#DEFAULT#DEFAULT_GROUP@@pushtest-service","ip":"10.0.0.%d","port":8080,`+
			`"weight":1.0,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"DEFAULT",`+
			`"serviceName":"DEFAULT_GROUP@@pushtest-service","metadata":{"zone":"<eu> & \"west\""}}`, i+1, i+1)
	}
	return `{"name":"DEFAULT_GROUP@@pushtest-service","groupName":"DEFAULT_GROUP","clusters":"","cacheMillis":10000,` +
		`"hosts":[` + strings.Join(hosts, ",") + `],"lastRefTime":1700000000000,"checksum":"","allIPs":false,` +
		`"reachProtectionThreshold":false,"valid":true}`
}

// batch returns a batch of testService for n targets (at most maxTargets):
// for a udp plugin, subscribers at the kit's receivers' addresses; for the
// others, on connections conn-0, conn-1...
func (k *pushKit) batch(n int) push.Batch {
	b := push.Batch{Service: testService, ServiceInfo: []byte(serviceInfo), Targets: make([]push.Target, n)}
	if k.udp != nil {
		b.ServiceInfo = []byte(udpServiceInfo)
		if n%2 == 0 {
			b.ServiceInfo = []byte(udpServiceInfoLarge)
		}
	}
	for i := range b.Targets {
		b.Targets[i] = push.Target{ClientID: fmt.Sprintf("client-%d", i), ConnectionID: fmt.Sprintf("conn-%d", i), App: "pushtest"}
		if k.udp != nil {
			b.Targets[i].ConnectionID, b.Targets[i].Address = "", k.udp.addrs[i]
		}
	}
	return b
}

// steersUDP says whether the kit's UDP receivers steer deliveries.
func (k *pushKit) steersUDP() bool { return k.udp != nil && k.deliveries == Deliveries(k.udp) }

// acks returns how many acks the kit's UDP receivers sent so far (0 when
// there are none).
func (k *pushKit) acks() int {
	if k.udp == nil {
		return 0
	}
	return k.udp.acked()
}
