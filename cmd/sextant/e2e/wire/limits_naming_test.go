package wire_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Naming limits the limits test configures the server with.
const (
	testMaxServices      = 2
	testMaxSubscriptions = 2
	testMaxClusters      = 3
)

// TestNamingLimits sends what the registry must refuse — paging that would
// overflow, text that is not UTF-8 or holds control characters, oversized
// cluster filters, and one service or subscription more than a connection
// may have — and checks that each gets errorCode 400 naming the field and
// the limit, that the registry is left as it was, and that a page past the
// end is an empty page.
func TestNamingLimits(t *testing.T) {
	t.Parallel()
	srv := startServer(t,
		"SEXTANT_NAMING_MAX_SERVICES_PER_CLIENT="+strconv.Itoa(testMaxServices),
		"SEXTANT_NAMING_MAX_SUBSCRIPTIONS_PER_CLIENT="+strconv.Itoa(testMaxSubscriptions),
		"SEXTANT_NAMING_MAX_CLUSTERS_PER_FILTER="+strconv.Itoa(testMaxClusters),
	)
	guarded := svcRef{"", "DEFAULT_GROUP", "guarded"}
	s1 := svcRef{"", "DEFAULT_GROUP", "s1"}
	s2 := svcRef{"", "DEFAULT_GROUP", "s2"}
	s3 := svcRef{"", "DEFAULT_GROUP", "s3"}

	owner := setUp(t, srv)
	owner.register(t, guarded, instance("10.0.0.1", 8080))
	// c is at its limits: instances in two services, subscribed to two.
	c := setUp(t, srv, typeNotify)
	c.register(t, s1, instance("10.0.1.1", 1))
	c.register(t, s2, instance("10.0.1.2", 2))
	c.subscribe(t, s1)
	c.subscribe(t, s2)

	type state struct {
		views                            map[string]string // raw ServiceInfo of the services that exist
		s3                               []string          // addresses of s3, which has none
		services, instances, subscribers float64
	}
	stateNow := func(t *testing.T) state {
		t.Helper()
		st := state{views: map[string]string{}}
		for _, svc := range []svcRef{guarded, s1, s2} {
			st.views[svc.name] = string(owner.query(t, svc).raw)
		}
		st.s3 = owner.query(t, s3).addrs()
		st.services = srv.Metric(t, "sextant_services")
		st.instances = srv.Metric(t, "sextant_instances")
		st.subscribers = srv.Metric(t, "sextant_subscribers")
		return st
	}
	before := stateNow(t)
	if before.services != 3 || before.instances != 3 || before.subscribers != 2 || len(before.s3) != 0 {
		t.Fatalf("set-up state: %+v", before)
	}

	register := func(svc svcRef, edit func(inst map[string]any)) map[string]any {
		inst := instance("10.9.9.9", 9000)
		edit(inst)
		return svc.with(map[string]any{"type": "registerInstance", "instance": inst})
	}
	list := func(pageNo, pageSize int64) map[string]any {
		return map[string]any{"namespace": "", "groupName": "DEFAULT_GROUP", "pageNo": pageNo, "pageSize": pageSize}
	}
	clusters := func(n int) string { return strings.TrimSuffix(strings.Repeat("c,", n), ",") }

	cases := []struct {
		name    string
		typ     string
		body    map[string]any
		headers map[string]string
		msg     []string // the message starts with msg[0] + ": " and holds the rest
	}{
		{name: "pageNo 0", typ: "ServiceListRequest", body: list(0, 10), msg: []string{"pageNo"}},
		{name: "pageNo most negative", typ: "ServiceListRequest", body: list(math.MinInt64, 10), msg: []string{"pageNo"}},
		{name: "pageSize 0", typ: "ServiceListRequest", body: list(1, 0), msg: []string{"pageSize"}},
		{name: "pageSize over 10000", typ: "ServiceListRequest", body: list(1, 10001), msg: []string{"pageSize", "10000"}},
		{name: "pageNo and pageSize largest", typ: "ServiceListRequest", body: list(math.MaxInt64, math.MaxInt64), msg: []string{"pageSize"}},

		{name: "instanceId with NUL", typ: "InstanceRequest",
			body: register(s1, func(inst map[string]any) { inst["instanceId"] = "id\x00" }), msg: []string{"instance.instanceId", "control character"}},
		{name: "instanceId with ESC", typ: "InstanceRequest",
			body: register(s1, func(inst map[string]any) { inst["instanceId"] = "\x1b[31mred" }), msg: []string{"instance.instanceId", "control character"}},
		{name: "metadata key with NUL", typ: "InstanceRequest",
			body: register(s1, func(inst map[string]any) { inst["metadata"] = map[string]string{"k\x00": "v"} }), msg: []string{"instance.metadata", "key"}},
		{name: "metadata value with ESC", typ: "InstanceRequest",
			body: register(s1, func(inst map[string]any) { inst["metadata"] = map[string]string{"k": "\x1b[2J"} }), msg: []string{"instance.metadata", "value"}},
		{name: "batch whose 2nd instanceId has NUL", typ: "BatchInstanceRequest",
			body: s1.with(map[string]any{"type": "batchRegisterInstance", "instances": []map[string]any{
				instance("10.9.9.1", 1), {"ip": "10.9.9.2", "port": 2, "weight": 1, "enabled": true, "ephemeral": true, "instanceId": "\x00"},
			}}), msg: []string{"instances[1].instanceId"}},
		{name: "serviceName with ESC", typ: "InstanceRequest",
			body: register(svcRef{"", "DEFAULT_GROUP", "s\x1b"}, func(map[string]any) {}), msg: []string{"serviceName", "control character"}},

		{name: "subscription to too many clusters", typ: "SubscribeServiceRequest",
			body: s1.with(map[string]any{"subscribe": true, "clusters": clusters(testMaxClusters + 1)}),
			msg:  []string{"clusters", "naming.max_clusters_per_filter"}},
		{name: "4 MiB cluster filter", typ: "SubscribeServiceRequest",
			body: s1.with(map[string]any{"subscribe": true, "clusters": strings.Repeat("c", 4<<20)}),
			msg:  []string{"clusters", "naming.max_clusters_per_filter"}},
		{name: "query of too many clusters", typ: "ServiceQueryRequest",
			body: s1.with(map[string]any{"cluster": clusters(testMaxClusters + 1), "healthyOnly": false}),
			msg:  []string{"cluster", "naming.max_clusters_per_filter"}},
		{name: "subscription with an app header holding ESC", typ: "SubscribeServiceRequest",
			body:    s1.with(map[string]any{"subscribe": true, "clusters": ""}),
			headers: map[string]string{"app": "shop\x1b"}, msg: []string{"app", "control character"}},

		{name: "instances in one service too many", typ: "InstanceRequest",
			body: register(s3, func(map[string]any) {}), msg: []string{"serviceName", "naming.max_services_per_client"}},
		{name: "batch in one service too many", typ: "BatchInstanceRequest",
			body: s3.with(map[string]any{"type": "batchRegisterInstance", "instances": []map[string]any{instance("10.9.9.1", 1)}}),
			msg:  []string{"serviceName", "naming.max_services_per_client"}},
		{name: "one subscription too many", typ: "SubscribeServiceRequest",
			body: s3.with(map[string]any{"subscribe": true, "clusters": ""}),
			msg:  []string{"serviceName", "naming.max_subscriptions_per_client"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.call(t, tc.typ, tc.body, tc.headers)
			if r.Type != typeError || r.ResultCode != 500 || r.Success || r.ErrorCode != 400 {
				t.Errorf("want ErrorResponse with resultCode 500, errorCode 400; got %.300s", r)
			}
			if !strings.HasPrefix(r.Message, tc.msg[0]+": ") {
				t.Errorf("message %q does not start naming %s", r.Message, tc.msg[0])
			}
			for _, m := range tc.msg[1:] {
				if !strings.Contains(r.Message, m) {
					t.Errorf("message %q does not mention %q", r.Message, m)
				}
			}
			if r.RequestID != r.SentID {
				t.Errorf("requestId %q not echoed: %.300s", r.SentID, r)
			}
			if now := stateNow(t); !maps.Equal(now.views, before.views) || !slices.Equal(now.s3, before.s3) ||
				now.services != before.services || now.instances != before.instances || now.subscribers != before.subscribers {
				t.Errorf("the registry changed:\nbefore %+v\nafter  %+v", before, now)
			}
		})
	}

	t.Run("a page past the end is empty", func(t *testing.T) {
		for _, pageNo := range []int64{2, math.MaxInt64 / 10000, math.MaxInt64/10000 + 2, math.MaxInt64} {
			r := c.mustCall(t, "ServiceListRequest", list(pageNo, 10000), "ServiceListResponse")
			var page struct {
				Count        int             `json:"count"`
				ServiceNames json.RawMessage `json:"serviceNames"`
			}
			if err := json.Unmarshal(r.Body, &page); err != nil || page.Count != 3 || string(page.ServiceNames) != "[]" {
				t.Errorf("page %d: %s (%v); want count 3 and serviceNames []", pageNo, r.Body, err)
			}
		}
		r := c.mustCall(t, "ServiceListRequest", list(1, 10000), "ServiceListResponse")
		if !bytes.Contains(r.Body, []byte(`"serviceNames":["guarded","s1","s2"]`)) {
			t.Errorf("page 1: %s", r.Body)
		}
	})

	t.Run("replacing is not growing", func(t *testing.T) {
		c.register(t, s1, instance("10.0.1.1", 11))
		c.mustCall(t, "BatchInstanceRequest", s2.with(map[string]any{"type": "batchRegisterInstance",
			"instances": []map[string]any{instance("10.0.1.2", 21), instance("10.0.1.2", 22)}}), "BatchInstanceResponse")
		c.mustCall(t, "SubscribeServiceRequest", s1.with(map[string]any{"subscribe": true, "clusters": clusters(testMaxClusters)}), "SubscribeServiceResponse")
		// Limits are per connection: another one registers in s3.
		owner.register(t, s3, instance("10.0.0.3", 3))
		if got := owner.query(t, s2).addrs(); !slices.Equal(got, []string{"10.0.1.2:21", "10.0.1.2:22"}) {
			t.Errorf("s2 hosts = %v", got)
		}
		if got := srv.Metric(t, "sextant_subscribers"); got != 2 {
			t.Errorf("sextant_subscribers = %v, want 2", got)
		}
	})

	t.Run("refusals are counted", func(t *testing.T) {
		for limit, want := range map[string]float64{
			"naming.max_services_per_client":      2,
			"naming.max_subscriptions_per_client": 1,
			"naming.max_clusters_per_filter":      3,
			"naming.max_batch_size":               0,
		} {
			series := `sextant_naming_limit_refusals_total{limit="` + limit + `"}`
			if got := srv.Metric(t, series); got != want {
				t.Errorf("%s = %v, want %v", series, got, want)
			}
		}
	})
}
