package distro

import (
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/sextantd/sextant/core/naming"
	clusterv1 "github.com/sextantd/sextant/proto/cluster/v1"
)

func TestClientsSurviveTheirEncoding(t *testing.T) {
	svc := naming.Service{Namespace: "dev", Group: "G", Name: "orders"}
	withMetadata := instance("10.0.0.1")
	withMetadata.Metadata = map[string]string{"version": "1.2", "zone": "", "": "empty key", "ünï": strings.Repeat("v", 300)}
	data := naming.ClientData{ID: "c1", Owner: "10.0.0.9:8848", Revision: 7, Services: map[naming.Service][]naming.Instance{
		svc:                {withMetadata, instance("10.0.0.2")},
		{Name: "payments"}: {instance("10.0.0.3")},
	}}
	got, err := new(decoder).client(clientToProto(data, "self:8848"))
	if err != nil || !reflect.DeepEqual(got, data) {
		t.Errorf("decoded %+v, %v\nwant    %+v", got, err, data)
	}
	// A client of this node is encoded with this node as its owner.
	data.Owner = ""
	if got := clientToProto(data, "self:8848").Owner; got != "self:8848" {
		t.Errorf("owner %q, want self:8848", got)
	}
}

func TestInstancesWithTheSameMetadataShareOneMap(t *testing.T) {
	var enc metadataEncoder
	var dec decoder
	a, err1 := dec.metadata(enc.encode(map[string]string{"version": "1.0", "zone": "eu"}))
	b, err2 := dec.metadata(enc.encode(map[string]string{"zone": "eu", "version": "1.0"}))
	if err1 != nil || err2 != nil || !maps.Equal(a, map[string]string{"version": "1.0", "zone": "eu"}) {
		t.Fatalf("decoded %v (%v, %v)", a, err1, err2)
	}
	if reflect.ValueOf(a).UnsafePointer() != reflect.ValueOf(b).UnsafePointer() {
		t.Errorf("the same metadata decoded to two maps")
	}
	c, _ := dec.metadata(enc.encode(map[string]string{"version": "1.1", "zone": "eu"}))
	if !maps.Equal(c, map[string]string{"version": "1.1", "zone": "eu"}) || maps.Equal(a, c) {
		t.Errorf("other metadata decoded to %v (and the first to %v)", c, a)
	}
}

func TestMalformedMetadataIsAnError(t *testing.T) {
	good := new(metadataEncoder).encode(map[string]string{"version": "1.0"})
	for _, b := range [][]byte{
		good[:len(good)-1],       // the value cut short
		good[:3],                 // the key cut short
		append(good, 3, 'a'),     // a key without a value
		{0xff, 0xff, 0xff, 0xff}, // a length that never ends
	} {
		if m, err := new(decoder).metadata(b); err == nil {
			t.Errorf("%q decoded to %v, want an error", b, m)
		}
	}
	in := &clusterv1.Client{Id: "c1", Services: []*clusterv1.ServiceInstances{{Name: "s", Instances: []*clusterv1.Instance{{Id: "i1", Metadata: good[:3]}}}}}
	if _, err := new(decoder).client(in); err == nil || !strings.Contains(err.Error(), `client "c1", instance "i1": malformed metadata`) {
		t.Errorf("decoding a client with malformed metadata: %v", err)
	}
}
