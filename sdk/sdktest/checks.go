package sdktest

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
	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/push"
)

const (
	// resultWait is the longest the kit waits for what should come.
	resultWait = 10 * time.Second
	// shortDeadline is the deadline of a batch that is bound to time out.
	shortDeadline = 200 * time.Millisecond
	// grace is how long past a deadline or a cancellation a plugin may take
	// to answer.
	grace = time.Second
)

// unknownKey is added to the configuration to see it refused.
const unknownKey = "sdktest_unknown_key"

func (k *kit) handshake(t reporter) {
	t.Helper()
	k.process.handshake(t, "the plugin", k.start, k.stderrTail)
}

func (k *kit) describe(t reporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), resultWait)
	defer cancel()
	d, err := k.remote.Describe(ctx)
	if err != nil {
		t.Fatalf("Describe (the Info call) failed: %v%s", err, k.stderrTail())
	}
	k.config = checkInfo(t, d.Info, d.Kind, sdk.KindPush, k.opts.Config, "PushOptions")
	switch d.Role {
	case push.RoleRPC, push.RoleUDP, push.RoleSPI:
	default:
		t.Errorf("the plugin's role is %q, want push.RoleRPC, RoleUDP or RoleSPI: set Plugin.Role", d.Role)
	}
	k.role = d.Role
}

func (k *kit) configure(t reporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), resultWait)
	defer cancel()
	id := k.remote.broker.NextId()
	go k.remote.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(sdk.MaxMessageSize), grpc.MaxSendMsgSize(sdk.MaxMessageSize))...)
		pluginv1.RegisterConnectionsServer(s, connectionsServer{conns: k.host})
		k.hostServer <- s
		return s
	})
	resp, err := k.remote.pluginRPC.Configure(ctx, &pluginv1.ConfigureRequest{ConfigJson: k.config, HostBrokerId: id})
	if err != nil {
		t.Fatalf("Configure failed (New returned an error, or the plugin could not reach the host): %v%s", err, k.stderrTail())
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
	streamCtx, closeStream := context.WithCancel(context.Background())
	s, err := k.remote.pushRPC.Push(streamCtx, grpc.MaxCallRecvMsgSize(sdk.MaxMessageSize), grpc.MaxCallSendMsgSize(sdk.MaxMessageSize))
	if err != nil {
		closeStream()
		t.Fatalf("opening the push stream failed: %v", err)
	}
	k.stream, k.closeStream = newStream(s), closeStream
}

func (k *kit) results(t reporter) {
	t.Helper()
	k.deliveries.Succeed()
	for _, n := range []int{0, 1, 500} {
		k.expect(t, fmt.Sprintf("a batch of %s, deliveries succeeding", plural(n, "target")), batch(n), nil)
	}
}

func (k *kit) failures(t reporter) {
	t.Helper()
	k.deliveries.Fail()
	k.expect(t, "a batch of 5 targets, deliveries failing", batch(5), everyTarget)
	if k.deliveries == Deliveries(k.host) {
		b := batch(6)
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
	k.expect(t, "a batch of 3 targets after failures, deliveries succeeding again", batch(3), nil)
}

func (k *kit) deadline(t reporter) {
	t.Helper()
	k.deliveries.Hang()
	deadline := time.Now().Add(shortDeadline)
	if err := k.run(batch(3), deadline, shortDeadline+grace,
		fmt.Sprintf("%v past its deadline; Push must return by its context's deadline", grace), everyTarget); err != nil {
		t.Errorf("a batch with a %v deadline, deliveries never completing: %v", shortDeadline, err)
	}
}

func (k *kit) cancel(t reporter) {
	t.Helper()
	hung := k.deliveries.Hang()
	const what = "a batch withdrawn by the host while its delivery hangs"
	b := batch(3)
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
		t.Fatalf("%s: %v%s", what, k.stream.err, k.stderrTail())
	case <-time.After(resultWait):
		t.Fatalf("%s: in %v the plugin neither started a delivery nor answered", what, resultWait)
	}
	if err := k.stream.cancel(id); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	res, err := k.await(results, grace,
		fmt.Sprintf("%v after the host withdrew it; Push must return soon after its context is cancelled", grace))
	if err == nil {
		err = check(b, res, everyTarget)
	}
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func (k *kit) concurrency(t reporter) {
	t.Helper()
	k.deliveries.Succeed()
	const n = 16
	results := make([]<-chan []string, n)
	for i := range results {
		var err error
		if _, results[i], err = k.stream.push(batch(i+1), time.Now().Add(resultWait)); err != nil {
			t.Fatalf("sending batch %d of %d: %v", i+1, n, err)
		}
	}
	var wrong []error
	for i, ch := range results {
		res, err := k.await(ch, resultWait, fmt.Sprintf("within %v", resultWait))
		if err == nil {
			err = check(batch(i+1), res, nil)
		}
		if err != nil {
			wrong = append(wrong, fmt.Errorf("batch %d (%s): %w", i+1, plural(i+1, "target"), err))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d batches sent at once, deliveries succeeding, got wrong results; the first, %v", len(wrong), n, wrong[0])
	}
}

// expect pushes b and checks its results: an error for target i if fails(i),
// nil otherwise (fails nil: for none).
func (k *kit) expect(t reporter, what string, b push.Batch, fails func(int) bool) {
	t.Helper()
	if err := k.run(b, time.Now().Add(resultWait), resultWait+grace, fmt.Sprintf("within %v", resultWait+grace), fails); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// run pushes b with a deadline and checks the results that come within wait;
// late says what it means when none do.
func (k *kit) run(b push.Batch, deadline time.Time, wait time.Duration, late string, fails func(int) bool) error {
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
func (k *kit) await(ch <-chan []string, wait time.Duration, late string) ([]string, error) {
	select {
	case res := <-ch:
		return res, nil
	case <-k.stream.done:
		return nil, fmt.Errorf("no result: %w (did the plugin crash?)%s", k.stream.err, k.stderrTail())
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
			plural(len(res), "result"), plural(len(b.Targets), "target"))
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
	return fmt.Errorf("%d of %s got the wrong result:\n%w", n, plural(len(b.Targets), "target"), errors.Join(wrong...))
}

// reportPanics reports the panics of an in-process plugin's Push since the
// last report.
func (k *kit) reportPanics(t reporter) {
	t.Helper()
	if n, first := k.panics.take(); n > 0 {
		t.Errorf("Push panicked %s (in its own process, a panic kills the process and every batch in flight: report failures as errors instead); the first time: %s", plural(n, "time"), first)
	}
}

var testService = push.Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "sdktest-service"}

// serviceInfo is the Nacos ServiceInfo JSON of testService's batches.
const serviceInfo = `{"name":"sdktest-service","groupName":"DEFAULT_GROUP","clusters":"","cacheMillis":10000,` +
	`"hosts":[{"instanceId":"10.0.0.1#8080#DEFAULT#DEFAULT_GROUP@@sdktest-service","ip":"10.0.0.1","port":8080,` +
	`"weight":1,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"DEFAULT",` +
	`"serviceName":"DEFAULT_GROUP@@sdktest-service","metadata":{}}],` +
	`"lastRefTime":1700000000000,"checksum":"","allIPs":false,"reachProtectionThreshold":false,"valid":true}`

// plural says "1 thing", "2 things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// batch returns a batch of testService for n targets.
func batch(n int) push.Batch {
	b := push.Batch{Service: testService, ServiceInfo: []byte(serviceInfo), Targets: make([]push.Target, n)}
	for i := range b.Targets {
		b.Targets[i] = push.Target{ClientID: fmt.Sprintf("client-%d", i), ConnectionID: fmt.Sprintf("conn-%d", i), App: "sdktest"}
	}
	return b
}
