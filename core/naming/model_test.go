package naming

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestNormalizeService(t *testing.T) {
	long := strings.Repeat("x", testLimits.MaxNameLength+1)
	tests := []struct {
		in        Service
		want      Service
		wantField string // "" when valid
	}{
		{Service{Name: "orders"}, Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "orders"}, ""},
		{Service{Namespace: "ns-1_a", Group: "g", Name: "providers:com.foo.Bar:1.0"}, Service{Namespace: "ns-1_a", Group: "g", Name: "providers:com.foo.Bar:1.0"}, ""},
		{Service{}, Service{}, "serviceName"},
		{Service{Name: "a@@b"}, Service{}, "serviceName"},
		{Service{Name: long}, Service{}, "serviceName"},
		{Service{Name: "tab\there"}, Service{}, "serviceName"},
		{Service{Name: "a\xffb"}, Service{}, "serviceName"},
		{Service{Name: "c1\u009b"}, Service{}, "serviceName"},
		{Service{Name: "a", Group: "\xc3"}, Service{}, "groupName"},
		{Service{Name: "服务"}, Service{Namespace: "public", Group: "DEFAULT_GROUP", Name: "服务"}, ""},
		{Service{Name: "a", Group: "g@@h"}, Service{}, "groupName"},
		{Service{Name: "a", Group: long}, Service{}, "groupName"},
		{Service{Name: "a", Namespace: "bad ns"}, Service{}, "namespace"},
		{Service{Name: "a", Namespace: strings.Repeat("n", 129)}, Service{}, "namespace"},
	}
	for _, tc := range tests {
		got, err := testLimits.NormalizeService(tc.in)
		checkInvalid(t, tc.in, err, tc.wantField)
		if tc.wantField == "" && got != tc.want {
			t.Errorf("NormalizeService(%+v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestNormalizeInstance(t *testing.T) {
	svc := Service{Namespace: "public", Group: "g", Name: "s"}
	good := Instance{IP: "10.0.0.1", Port: 80, Weight: 1}
	with := func(f func(*Instance)) Instance {
		in := good
		f(&in)
		return in
	}
	tests := []struct {
		name      string
		in        Instance
		wantField string
	}{
		{"defaults", good, ""},
		{"ipv6", with(func(i *Instance) { i.IP = "fe80::1" }), ""},
		{"host name", with(func(i *Instance) { i.IP = "node-1.example.com" }), ""},
		{"port 0", with(func(i *Instance) { i.Port = 0 }), ""},
		{"weight 0", with(func(i *Instance) { i.Weight = 0 }), ""},
		{"heartbeat settings", with(func(i *Instance) {
			i.Metadata = map[string]string{MetaHeartbeatInterval: "1000", MetaHeartbeatTimeout: "3000", MetaIPDeleteTimeout: "5000"}
		}), ""},
		{"no ip", with(func(i *Instance) { i.IP = "" }), "instance.ip"},
		{"bad ip", with(func(i *Instance) { i.IP = "10.0.0.1; rm" }), "instance.ip"},
		{"port too big", with(func(i *Instance) { i.Port = 65536 }), "instance.port"},
		{"negative port", with(func(i *Instance) { i.Port = -1 }), "instance.port"},
		{"negative weight", with(func(i *Instance) { i.Weight = -0.5 }), "instance.weight"},
		{"huge weight", with(func(i *Instance) { i.Weight = 10001 }), "instance.weight"},
		{"NaN weight", with(func(i *Instance) { i.Weight = math.NaN() }), "instance.weight"},
		{"bad cluster", with(func(i *Instance) { i.Cluster = "a_b" }), "instance.clusterName"},
		{"metadata too big", with(func(i *Instance) {
			i.Metadata = map[string]string{"k": strings.Repeat("v", testLimits.MaxMetadataBytes)}
		}), "instance.metadata"},
		{"empty metadata key", with(func(i *Instance) { i.Metadata = map[string]string{"": "v"} }), "instance.metadata"},
		{"heartbeat not a number", with(func(i *Instance) { i.Metadata = map[string]string{MetaHeartbeatTimeout: "soon"} }),
			"instance.metadata." + MetaHeartbeatTimeout},
		{"interval above timeout", with(func(i *Instance) { i.Metadata = map[string]string{MetaHeartbeatInterval: "20000"} }),
			"instance.metadata"},
		{"long instance id", with(func(i *Instance) { i.ID = strings.Repeat("i", maxInstanceIDBytes+1) }), "instance.instanceId"},
		{"instance id with NUL", with(func(i *Instance) { i.ID = "a\x00b" }), "instance.instanceId"},
		{"instance id with ESC", with(func(i *Instance) { i.ID = "a\x1b[31m" }), "instance.instanceId"},
		{"instance id not UTF-8", with(func(i *Instance) { i.ID = "a\xffb" }), "instance.instanceId"},
		{"metadata key with NUL", with(func(i *Instance) { i.Metadata = map[string]string{"k\x00": "v"} }), "instance.metadata"},
		{"metadata value with ESC", with(func(i *Instance) { i.Metadata = map[string]string{"k": "\x1b[2J"} }), "instance.metadata"},
		{"metadata value with a C1 control", with(func(i *Instance) { i.Metadata = map[string]string{"k": "a\u0085"} }), "instance.metadata"},
		{"metadata key not UTF-8", with(func(i *Instance) { i.Metadata = map[string]string{"\xc3": "v"} }), "instance.metadata"},
		{"metadata value not UTF-8", with(func(i *Instance) { i.Metadata = map[string]string{"k": "\xed\xa0\x80"} }), "instance.metadata"},
		{"metadata key with a newline", with(func(i *Instance) { i.Metadata = map[string]string{"a\nb": "v"} }), "instance.metadata"},
		{"metadata value with text whitespace", with(func(i *Instance) { i.Metadata = map[string]string{"json": "{\n\t\"a\": 1\r\n}"} }), ""},
		{"metadata in UTF-8", with(func(i *Instance) { i.Metadata = map[string]string{"région": "zürich-東京"} }), ""},
		{"instance id in UTF-8", with(func(i *Instance) { i.ID = "節点-1" }), ""},
	}
	for _, tc := range tests {
		got, err := testLimits.NormalizeInstance(svc, "instance", tc.in)
		checkInvalid(t, tc.name, err, tc.wantField)
		if tc.wantField != "" {
			continue
		}
		if got.Cluster != DefaultCluster {
			t.Errorf("%s: cluster %q, want the default", tc.name, got.Cluster)
		}
		if tc.in.ID != "" {
			if got.ID != tc.in.ID {
				t.Errorf("%s: id %q, want %q as given", tc.name, got.ID, tc.in.ID)
			}
			continue
		}
		if want := got.IP + "#" + strconv.Itoa(got.Port) + "#DEFAULT#g@@s"; got.ID != want {
			t.Errorf("%s: id %q, want %q", tc.name, got.ID, want)
		}
	}
}

func TestCheckClusters(t *testing.T) {
	l := testLimits
	l.MaxClustersPerFilter = 3
	longest := strings.Repeat("a", maxClusterLength)
	tests := []struct {
		clusters  string
		wantLimit string // the limit named; "-" for an error that is not a limit, "" for none
	}{
		{"", ""},
		{"a", ""},
		{"a,b-1,c.2", ""},
		{longest + "," + longest + "," + longest, ""}, // the longest filter allowed
		{"a,,b", "-"},
		{"a b", "-"},
		{",", "-"},
		{"a\x00", "-"},
		{longest + "x", "-"},
		{"a,b,c,d", LimitClustersPerFilter},
		{",,,", LimitClustersPerFilter},
		{longest + "," + longest + "," + longest + "x", LimitClustersPerFilter},
		{strings.Repeat("a", 4<<20), LimitClustersPerFilter},
		{strings.Repeat("a,", 2<<20), LimitClustersPerFilter},
	}
	for _, tc := range tests {
		name := quoteShort(tc.clusters)
		err := l.CheckClusters("clusters", tc.clusters)
		switch tc.wantLimit {
		case "":
			checkInvalid(t, name, err, "")
		case "-":
			checkInvalid(t, name, err, "clusters")
			checkLimit(t, name, err, "")
		default:
			checkInvalid(t, name, err, "clusters")
			checkLimit(t, name, err, tc.wantLimit)
		}
	}
	if err := testLimits.CheckClusters("clusters", strings.Repeat("a,", 1000)+"a"); err != nil {
		t.Errorf("no limit on the cluster count: %v", err)
	}
}

// TestLimitsAreNamed checks that an error over a configurable limit names
// its key, and that other errors name none.
func TestLimitsAreNamed(t *testing.T) {
	svc := Service{Namespace: "public", Group: "g", Name: "s"}
	_, err := testLimits.NormalizeService(Service{Name: strings.Repeat("n", testLimits.MaxNameLength+1)})
	checkLimit(t, "long name", err, LimitNameLength)
	_, err = testLimits.NormalizeInstance(svc, "instance", Instance{IP: "10.0.0.1", Metadata: map[string]string{"k": strings.Repeat("v", testLimits.MaxMetadataBytes)}})
	checkLimit(t, "big metadata", err, LimitMetadataBytes)
	_, err = testLimits.NormalizeInstance(svc, "instance", Instance{IP: "10.0.0.1", Port: -1})
	checkLimit(t, "bad port", err, "")
}

func TestTextProblem(t *testing.T) {
	tests := []struct {
		s         string
		multiline bool
		ok        bool
	}{
		{"", false, true},
		{"plain ascii ~!", false, true},
		{"zürich 東京 😀", false, true},
		{"\ufffd is a character", false, true},
		{"tab\there", false, false},
		{"tab\there", true, true},
		{"lines\r\n", true, true},
		{"nul\x00", true, false},
		{"esc\x1b", true, false},
		{"del\x7f", true, false},
		{"c1\u0080", true, false},
		{"c1\u009f", true, false},
		{"after c1\u00a0", true, true},
		{"bad\xff", true, false},
		{"truncated\xe6\x9d", true, false},
		{"surrogate\xed\xa0\x80", true, false},
		{"overlong\xc0\xaf", true, false},
	}
	for _, tc := range tests {
		if got := textProblem(tc.s, tc.multiline); (got == "") != tc.ok {
			t.Errorf("textProblem(%q, %v) = %q, want ok %v", tc.s, tc.multiline, got, tc.ok)
		}
	}
}

// checkLimit checks that err names the limit wantLimit ("" for none).
func checkLimit(t *testing.T, what any, err error, wantLimit string) {
	t.Helper()
	var invalid *InvalidError
	if !errors.As(err, &invalid) {
		t.Errorf("%v: got %v, want an *InvalidError", what, err)
		return
	}
	if invalid.Limit != wantLimit {
		t.Errorf("%v: limit %q, want %q (%v)", what, invalid.Limit, wantLimit, err)
	}
	if wantLimit != "" && !strings.Contains(err.Error(), wantLimit) {
		t.Errorf("%v: message %q does not name %s", what, err, wantLimit)
	}
}

func checkInvalid(t *testing.T, what any, err error, wantField string) {
	t.Helper()
	if wantField == "" {
		if err != nil {
			t.Errorf("%v: unexpected error %v", what, err)
		}
		return
	}
	var invalid *InvalidError
	if !errors.As(err, &invalid) || invalid.Field != wantField {
		t.Errorf("%v: got %v, want an error naming %s", what, err, wantField)
		return
	}
	if !strings.HasPrefix(err.Error(), wantField+": ") || len(err.Error()) <= len(wantField)+2 {
		t.Errorf("%v: message %q does not name the field and the problem", what, err)
	}
}
