package serveropts

import (
	"bytes"
	"encoding/binary"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/proto/nacos"
)

// A Message is the Payload's protobuf encoding behind gRPC's prefix (no
// compression, the length), and the codec writes that encoding as it is.
func TestMessageIsItsPayloadPrefixed(t *testing.T) {
	for _, p := range []*nacos.Payload{
		{Metadata: &nacos.Metadata{Type: "NotifySubscriberRequest"}, Body: &anypb.Any{Value: bytes.Repeat([]byte("x"), 300)}},
		{Metadata: &nacos.Metadata{Type: "ClientDetectionRequest"}, Body: &anypb.Any{Value: []byte(`{"requestId":"1"}`)}},
		{},
	} {
		m, err := EncodeMessage(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		framed := m.Framed()
		if framed[0] != 0 || binary.BigEndian.Uint32(framed[1:5]) != uint32(len(want)) || !bytes.Equal(framed[5:], want) {
			t.Errorf("%s: framed %x, want 00 %08x %x", p.GetMetadata().GetType(), framed, len(want), want)
		}
		got, err := newCodec().Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Materialize(), want) {
			t.Errorf("%s: the codec wrote %x, want %x", p.GetMetadata().GetType(), got.Materialize(), want)
		}
	}
}

// Encoding a Payload is what a push to a thousand subscribers did a
// thousand times before a Message was shared.
func BenchmarkEncodeMessage(b *testing.B) {
	p := &nacos.Payload{Metadata: &nacos.Metadata{Type: "NotifySubscriberRequest"}, Body: &anypb.Any{Value: bytes.Repeat([]byte("x"), 600)}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeMessage(p); err != nil {
			b.Fatal(err)
		}
	}
}
