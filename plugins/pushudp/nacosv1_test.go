package pushudp

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/nacos-group/nacos-sdk-go/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/util"
)

// The official Nacos Go SDK v1 (1.1.4) reads the datagrams: its own
// decoder, TryDecompressData, then its PushData, then the ServiceInfo as its
// HostReactor takes it.
func TestTheNacosGoSDKv1DecodesThePushes(t *testing.T) {
	e := newExecutor(t, Config{})
	sub := newSubscriber(t, ackString)
	for _, tc := range []struct {
		name    string
		hosts   int
		gzipped bool
	}{{"small", 1, false}, {"gzipped", 10, true}} {
		data := info(tc.hosts)
		allNil(t, e.Push(context.Background(), batch(data, sub.addr)), 1)
		got := sub.received()
		d := got[len(got)-1]
		if d.gzipped != tc.gzipped || len(d.raw) > GoV1ReadSize {
			t.Fatalf("%s: gzipped %v, %d bytes; want gzipped %v, within the SDK's %d", tc.name, d.gzipped, len(d.raw), tc.gzipped, GoV1ReadSize)
		}
		var p naming_client.PushData
		if err := json.Unmarshal([]byte(naming_client.TryDecompressData(d.raw)), &p); err != nil {
			t.Fatalf("%s: the SDK's PushData does not decode: %v", tc.name, err)
		}
		if p.PushType != "dom" || p.Data != string(data) || p.LastRefTime != d.Ref {
			t.Errorf("%s: the SDK reads type %q, lastRefTime %d, data %s", tc.name, p.PushType, p.LastRefTime, p.Data)
		}
		service := util.JsonToService(p.Data)
		if service == nil || service.Name != "DEFAULT_GROUP@@orders" || len(service.Hosts) != tc.hosts {
			t.Errorf("%s: the SDK's HostReactor reads the service %+v", tc.name, service)
		}
	}
}

// A push over the 4024 bytes the SDK reads reaches it truncated: it decodes
// nothing, and acknowledges nothing (the caveat the README states).
func TestTheNacosGoSDKv1CannotReadPushesOver4024Bytes(t *testing.T) {
	raw := encode(incompressible(6000), 1)
	if len(raw) <= GoV1ReadSize {
		t.Fatalf("the push is %d bytes, want over %d", len(raw), GoV1ReadSize)
	}
	var p naming_client.PushData
	if err := json.Unmarshal([]byte(naming_client.TryDecompressData(raw[:GoV1ReadSize])), &p); err == nil {
		t.Errorf("the SDK read a truncated push: %+v", p)
	}
}
