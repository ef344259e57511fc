package serveropts

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/proto/nacos"
)

// An Answer is written as the protobuf codec writes the Payload it stands
// for, byte for byte.
func TestAnswerIsItsPayload(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 300) // lengths of two bytes
	for _, a := range []*Answer{
		{Type: "QueryServiceResponse", Body: [][]byte{[]byte(`{"resultCode":200,"serviceInfo":`), big, []byte("}")}},
		{Type: "HealthCheckResponse", Body: [][]byte{[]byte(`{"resultCode":200}`)}},
		{Type: "X", Body: [][]byte{nil, []byte("{}"), {}}},
		{Type: "EmptyBody"},
		{Body: [][]byte{[]byte("{}")}},
		{},
	} {
		got, err := newCodec().Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		want, err := proto.Marshal(&nacos.Payload{Metadata: &nacos.Metadata{Type: a.Type}, Body: &anypb.Any{Value: bytes.Join(a.Body, nil)}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Materialize(), want) {
			t.Errorf("%s: %x, want %x", a.Type, got.Materialize(), want)
		}
		var back nacos.Payload
		if err := newCodec().Unmarshal(got, &back); err != nil || back.GetMetadata().GetType() != a.Type || !bytes.Equal(back.GetBody().GetValue(), bytes.Join(a.Body, nil)) {
			t.Errorf("%s: read back %v (%v)", a.Type, &back, err)
		}
	}
}
