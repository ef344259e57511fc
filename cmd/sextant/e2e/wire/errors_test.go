package wire_test

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Limits the error test configures the server with.
const (
	testMaxBatch    = 3
	testMaxMetadata = 256
)

// TestBadRequestsAreRejected sends every kind of bad input and checks that
// each gets an ErrorResponse with the right code and a message naming the
// problem, that the registry is left as it was, and that the server keeps
// serving.
func TestBadRequestsAreRejected(t *testing.T) {
	t.Parallel()
	srv := startServer(t,
		"SEXTANT_NAMING_MAX_BATCH_SIZE="+strconv.Itoa(testMaxBatch),
		"SEXTANT_NAMING_MAX_METADATA_BYTES="+strconv.Itoa(testMaxMetadata),
	)
	guarded := svcRef{"", "DEFAULT_GROUP", "guarded"}
	owner := setUp(t, srv) // holds the good instance of guarded
	owner.register(t, guarded, instance("10.0.0.1", 8080))
	before := owner.query(t, guarded)
	if len(before.Hosts) != 1 {
		t.Fatalf("guarded service: want the 1 good instance, got %s", describe(before.Hosts))
	}

	bad := setUp(t, srv) // sends the bad requests
	noStream := dial(t, srv)
	noSetup := dial(t, srv)
	noSetup.openStream(t, false)

	// instanceReq is a register of a good instance to guarded, edited.
	instanceReq := func(edit func(req, inst map[string]any)) map[string]any {
		inst := instance("10.9.9.9", 9000)
		req := guarded.with(map[string]any{"type": "registerInstance", "instance": inst})
		edit(req, inst)
		return req
	}
	// batchReq is a batch register of n good instances to guarded, edited.
	batchReq := func(n int, edit func(req map[string]any, insts []map[string]any)) map[string]any {
		insts := make([]map[string]any, n)
		for i := range insts {
			insts[i] = instance("10.9.9."+string(rune('1'+i)), 9000)
		}
		req := guarded.with(map[string]any{"type": "batchRegisterInstance", "instances": insts})
		edit(req, insts)
		return req
	}
	noEdit := func(map[string]any, []map[string]any) {}
	bigMetadata := map[string]string{"big": strings.Repeat("x", testMaxMetadata)}

	cases := []struct {
		name string
		on   *rawConn // the connection to send on; bad when nil
		typ  string
		body any // map[string]any (gets a requestId) or raw []byte
		code int // errorCode
		msg  []string
	}{
		{name: "body not JSON", typ: "InstanceRequest", body: []byte(`{"type": registerInstance`),
			code: 502, msg: []string{"could not be parsed"}},
		{name: "body a JSON array", typ: "InstanceRequest", body: []byte(`[1,2,3]`),
			code: 502, msg: []string{"could not be parsed"}},
		{name: "unknown request type", typ: "NoSuchRequest", body: instanceReq(func(_, _ map[string]any) {}),
			code: 302, msg: []string{"NoSuchRequest"}},
		{name: "no stream opened", on: noStream, typ: "InstanceRequest", body: instanceReq(func(_, _ map[string]any) {}),
			code: 301, msg: []string{"not registered"}},
		{name: "stream without ConnectionSetupRequest", on: noSetup, typ: "InstanceRequest", body: instanceReq(func(_, _ map[string]any) {}),
			code: 301, msg: []string{"not registered"}},

		{name: "missing serviceName", typ: "InstanceRequest",
			body: instanceReq(func(req, _ map[string]any) { delete(req, "serviceName") }),
			code: 400, msg: []string{"serviceName"}},
		{name: "serviceName with @@", typ: "InstanceRequest",
			body: instanceReq(func(req, _ map[string]any) { req["serviceName"] = "DEFAULT_GROUP@@guarded" }),
			code: 400, msg: []string{"serviceName", "@@"}},
		{name: "groupName with @@", typ: "InstanceRequest",
			body: instanceReq(func(req, _ map[string]any) { req["groupName"] = "a@@b" }),
			code: 400, msg: []string{"groupName", "@@"}},
		{name: "bad namespace characters", typ: "InstanceRequest",
			body: instanceReq(func(req, _ map[string]any) { req["namespace"] = "bad ns/!" }),
			code: 400, msg: []string{"namespace"}},
		{name: "no instance", typ: "InstanceRequest",
			body: instanceReq(func(req, _ map[string]any) { delete(req, "instance") }),
			code: 400, msg: []string{"instance"}},
		{name: "empty ip", typ: "InstanceRequest",
			body: instanceReq(func(_, inst map[string]any) { inst["ip"] = "" }),
			code: 400, msg: []string{"instance.ip"}},
		{name: "port 70000", typ: "InstanceRequest",
			body: instanceReq(func(_, inst map[string]any) { inst["port"] = 70000 }),
			code: 400, msg: []string{"instance.port", "70000"}},
		{name: "port -1", typ: "InstanceRequest",
			body: instanceReq(func(_, inst map[string]any) { inst["port"] = -1 }),
			code: 400, msg: []string{"instance.port", "-1"}},
		{name: "weight -1", typ: "InstanceRequest",
			body: instanceReq(func(_, inst map[string]any) { inst["weight"] = -1 }),
			code: 400, msg: []string{"instance.weight"}},
		{name: "weight 20000", typ: "InstanceRequest",
			body: instanceReq(func(_, inst map[string]any) { inst["weight"] = 20000 }),
			code: 400, msg: []string{"instance.weight"}},
		{name: "bad cluster name", typ: "InstanceRequest",
			body: instanceReq(func(_, inst map[string]any) { inst["clusterName"] = "bad_cluster!" }),
			code: 400, msg: []string{"instance.clusterName", "bad_cluster!"}},
		{name: "metadata over the limit", typ: "InstanceRequest",
			body: instanceReq(func(_, inst map[string]any) { inst["metadata"] = bigMetadata }),
			code: 400, msg: []string{"instance.metadata", strconv.Itoa(testMaxMetadata)}},
		{name: "heartbeat interval not below timeout", typ: "InstanceRequest",
			body: instanceReq(func(_, inst map[string]any) {
				inst["metadata"] = map[string]string{
					"preserved.heart.beat.interval": "20000",
					"preserved.heart.beat.timeout":  "15000",
				}
			}),
			code: 400, msg: []string{"instance.metadata", "heartbeat"}},
		{name: "persistent with a bad port", typ: "InstanceRequest",
			body: instanceReq(func(_, inst map[string]any) { inst["ephemeral"], inst["port"] = false, -1 }),
			code: 400, msg: []string{"port"}},
		{name: "type updateInstance", typ: "InstanceRequest",
			body: instanceReq(func(req, _ map[string]any) { req["type"] = "updateInstance" }),
			code: 400, msg: []string{"type", "updateInstance"}},
		{name: "port of the wrong JSON type", typ: "InstanceRequest",
			body: instanceReq(func(_, inst map[string]any) { inst["port"] = "80" }),
			code: 400, msg: []string{"instance.port"}},

		{name: "batch empty", typ: "BatchInstanceRequest",
			body: batchReq(0, noEdit),
			code: 400, msg: []string{"instances"}},
		{name: "batch with a duplicate address", typ: "BatchInstanceRequest",
			body: batchReq(3, func(_ map[string]any, insts []map[string]any) { insts[2]["ip"] = insts[0]["ip"] }),
			code: 400, msg: []string{"instances[0]", "instances[2]"}},
		{name: "batch over max_batch_size", typ: "BatchInstanceRequest",
			body: batchReq(testMaxBatch+1, noEdit),
			code: 400, msg: []string{"instances", "batch limit"}},
		{name: "batch of the wrong type", typ: "BatchInstanceRequest",
			body: batchReq(2, func(req map[string]any, _ []map[string]any) { req["type"] = "registerInstance" }),
			code: 400, msg: []string{"type", "registerInstance"}},
		{name: "batch whose 3rd instance is bad", typ: "BatchInstanceRequest",
			body: batchReq(3, func(_ map[string]any, insts []map[string]any) { insts[2]["port"] = 70000 }),
			code: 400, msg: []string{"instances[2].port"}},

		{name: "subscribe with an empty cluster in the list", typ: "SubscribeServiceRequest",
			body: guarded.with(map[string]any{"subscribe": true, "clusters": "a,,b"}),
			code: 400, msg: []string{"clusters"}},
		{name: "service list pageNo 0", typ: "ServiceListRequest",
			body: guarded.with(map[string]any{"pageNo": 0, "pageSize": 10}),
			code: 400, msg: []string{"pageNo"}},
		{name: "service list pageSize 0", typ: "ServiceListRequest",
			body: guarded.with(map[string]any{"pageNo": 1, "pageSize": 0}),
			code: 400, msg: []string{"pageSize"}},
	}
	after := svcRef{"", "DEFAULT_GROUP", "after-bad-requests"}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			on := tc.on
			if on == nil {
				on = bad
			}
			r := on.call(t, tc.typ, tc.body, nil)
			if r.Type != typeError || r.ResultCode != 500 || r.Success || r.ErrorCode != tc.code {
				t.Errorf("want ErrorResponse with resultCode 500, errorCode %d; got %s", tc.code, r)
			}
			for _, m := range tc.msg {
				if !strings.Contains(r.Message, m) {
					t.Errorf("message %q does not mention %q", r.Message, m)
				}
			}
			// The server reads no body before it knows it will serve the
			// request (as Nacos), so 301 and 302 need not echo an id.
			if r.SentID != "" && tc.code != 301 && tc.code != 302 && r.RequestID != r.SentID {
				t.Errorf("requestId %q not echoed: %s", r.SentID, r)
			}

			now := owner.query(t, guarded)
			if !bytes.Equal(now.raw, before.raw) {
				t.Errorf("guarded service changed:\nbefore %s\nafter  %s", before.raw, now.raw)
			}
			// A good request on the set-up connection succeeds.
			bad.register(t, after, instance("10.1.1.1", 1000+i))
		})
	}

	t.Run("no instance of a rejected batch registered", func(t *testing.T) {
		got := owner.query(t, guarded)
		for _, a := range got.addrs() {
			if strings.HasPrefix(a, "10.9.9.") {
				t.Errorf("instance %s of a rejected request is registered: %s", a, describe(got.Hosts))
			}
		}
		if want := []string{"10.0.0.1:8080"}; !slices.Equal(got.addrs(), want) {
			t.Errorf("guarded hosts = %v, want %v", got.addrs(), want)
		}
		// The good requests after each case were served.
		if got := owner.query(t, after); !slices.Equal(got.addrs(), []string{"10.1.1.1:" + strconv.Itoa(1000+len(cases)-1)}) {
			t.Errorf("%s hosts = %v, want the last good register only", after.name, got.addrs())
		}
	})
}
