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
		if want := got.IP + "#" + strconv.Itoa(got.Port) + "#DEFAULT#g@@s"; got.ID != want {
			t.Errorf("%s: id %q, want %q", tc.name, got.ID, want)
		}
	}
}

func TestNormalizeClusters(t *testing.T) {
	for clusters, wantErr := range map[string]bool{"": false, "a": false, "a,b-1,c.2": false, "a,,b": true, "a b": true, ",": true} {
		err := NormalizeClusters("clusters", clusters)
		if (err != nil) != wantErr {
			t.Errorf("NormalizeClusters(%q) = %v, want error %v", clusters, err, wantErr)
		}
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
