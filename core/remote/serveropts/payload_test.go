package serveropts

import (
	"bytes"
	"maps"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/proto/nacos"
)

// registration is a Payload as the Nacos Go SDK sends an InstanceRequest.
var registration = &nacos.Payload{
	Metadata: &nacos.Metadata{Type: "InstanceRequest", ClientIp: "10.0.0.7", Headers: map[string]string{"app": "orders", "accessToken": ""}},
	Body: &anypb.Any{Value: []byte(`{"headers":{},"requestId":"42","namespace":"public","serviceName":"orders","groupName":"DEFAULT_GROUP",` +
		`"module":"naming","type":"registerInstance","instance":{"ip":"10.0.0.7","port":8080,"weight":1,"enabled":true,"healthy":true,` +
		`"clusterName":"DEFAULT","ephemeral":true,"metadata":{"version":"1.0"}}}`)},
}

// FuzzDecodePayload: DecodePayload accepts and refuses what proto.Unmarshal
// does, and reads the same values.
func FuzzDecodePayload(f *testing.F) {
	for _, p := range []*nacos.Payload{registration, {}, {Metadata: &nacos.Metadata{}}, {Body: &anypb.Any{TypeUrl: "t", Value: []byte{}}}} {
		b, err := proto.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, b...)) // the fields again: merged
	}
	f.Add([]byte{0x12, 0x02, 0x1a, 0x01})             // a truncated type
	f.Add([]byte{0x12, 0x03, 0x1a, 0x01, 0xff})       // a type that is not UTF-8
	f.Add([]byte{0x12, 0x04, 0x3a, 0x02, 0x08, 0x01}) // a header entry with a varint key
	f.Add([]byte{0x10, 0x01, 0x1b, 0x1c})             // unknown varint, a group
	f.Fuzz(func(t *testing.T, b []byte) {
		var want, got nacos.Payload
		wantErr := proto.Unmarshal(b, &want)
		gotErr := DecodePayload(b, &got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("%x: DecodePayload: %v; proto.Unmarshal: %v", b, gotErr, wantErr)
		}
		if wantErr != nil {
			return
		}
		if (want.Metadata == nil) != (got.Metadata == nil) || (want.Body == nil) != (got.Body == nil) {
			t.Fatalf("%x: decoded %v, want %v", b, &got, &want)
		}
		wm, gm := want.GetMetadata(), got.GetMetadata()
		if wm.GetType() != gm.GetType() || wm.GetClientIp() != gm.GetClientIp() || !maps.Equal(wm.GetHeaders(), gm.GetHeaders()) {
			t.Fatalf("%x: metadata %v, want %v", b, gm, wm)
		}
		wb, gb := want.GetBody(), got.GetBody()
		if wb.GetTypeUrl() != gb.GetTypeUrl() || !bytes.Equal(wb.GetValue(), gb.GetValue()) {
			t.Fatalf("%x: body %v, want %v", b, gb, wb)
		}
	})
}

// TestDecodePayloadCopies: what DecodePayload keeps does not change with b.
func TestDecodePayloadCopies(t *testing.T) {
	b, err := proto.Marshal(registration)
	if err != nil {
		t.Fatal(err)
	}
	var p nacos.Payload
	if err := DecodePayload(b, &p); err != nil {
		t.Fatal(err)
	}
	clear(b)
	if !proto.Equal(&p, registration) {
		t.Fatalf("after b was cleared: %v, want %v", &p, registration)
	}
}

func BenchmarkDecodePayload(b *testing.B) {
	raw, err := proto.Marshal(registration)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("DecodePayload", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var p nacos.Payload
			if err := DecodePayload(raw, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var p nacos.Payload
			if err := proto.Unmarshal(raw, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
