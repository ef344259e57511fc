package distro

import (
	"maps"
	"reflect"
	"testing"

	"github.com/sextantd/sextant/core/naming"
)

func TestClientsSurviveTheirEncoding(t *testing.T) {
	svc := naming.Service{Namespace: "dev", Group: "G", Name: "orders"}
	withMetadata := instance("10.0.0.1")
	withMetadata.Metadata = map[string]string{"version": "1.2", "zone": "", "": "empty key"}
	data := naming.ClientData{ID: "c1", Owner: "10.0.0.9:8848", Revision: 7, Services: map[naming.Service][]naming.Instance{
		svc:                {withMetadata, instance("10.0.0.2")},
		{Name: "payments"}: {instance("10.0.0.3")},
	}}
	if got := new(decoder).client(clientToProto(data, "self:8848")); !reflect.DeepEqual(got, data) {
		t.Errorf("decoded %+v\nwant    %+v", got, data)
	}
	// A client of this node is encoded with this node as its owner.
	data.Owner = ""
	if got := clientToProto(data, "self:8848").Owner; got != "self:8848" {
		t.Errorf("owner %q, want self:8848", got)
	}
}

func TestMetadataFromKeysAndValues(t *testing.T) {
	for _, tc := range []struct {
		kv   []string
		want map[string]string
	}{
		{nil, nil},
		{[]string{"a", "1", "b", "2"}, map[string]string{"a": "1", "b": "2"}},
		{[]string{"a", "1", "dangling"}, map[string]string{"a": "1", "dangling": ""}},
	} {
		if got := metadataFromProto(tc.kv); !maps.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("metadataFromProto(%q) = %v, want %v", tc.kv, got, tc.want)
		}
	}
}

func TestInstancesWithTheSameMetadataShareOneMap(t *testing.T) {
	var dec decoder
	a := dec.metadata([]string{"version", "1.0", "zone", "eu"})
	b := dec.metadata([]string{"version", "1.0", "zone", "eu"})
	if !maps.Equal(a, map[string]string{"version": "1.0", "zone": "eu"}) {
		t.Fatalf("decoded %v", a)
	}
	if reflect.ValueOf(a).UnsafePointer() != reflect.ValueOf(b).UnsafePointer() {
		t.Errorf("the same metadata decoded to two maps")
	}
	// Lists that a plain separator would confuse stay apart.
	c := dec.metadata([]string{"a\x00b", "c"})
	d := dec.metadata([]string{"a", "b\x00c"})
	if !maps.Equal(c, map[string]string{"a\x00b": "c"}) || !maps.Equal(d, map[string]string{"a": "b\x00c"}) {
		t.Errorf("decoded %q and %q", c, d)
	}
}
