package serveropts

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sextantd/sextant/proto/nacos"
)

// Answer is the answer to a Nacos unary request, a Payload of class Type
// whose body is the parts of Body one after the other. The codec Transport
// sets writes them as they are, without joining or copying them: a query's
// answer is mostly a service's cached ServiceInfo, which stays shared. The
// parts must not change afterwards.
type Answer struct {
	Type string
	Body [][]byte
}

// RegisterRequest makes serve the handler of /Request/request, the Nacos
// unary method, on a server built with Transport's options (which set no
// interceptor, and the codec that writes Answers).
func RegisterRequest(s *grpc.Server, serve func(context.Context, *nacos.Payload) *Answer) {
	desc := nacos.Request_ServiceDesc
	method := desc.Methods[0]
	method.Handler = func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		in := new(nacos.Payload)
		if err := dec(in); err != nil {
			return nil, err
		}
		return serve(ctx, in), nil
	}
	desc.Methods = []grpc.MethodDesc{method}
	s.RegisterService(&desc, nil)
}

// codec writes Answers itself and leaves every other message (a Payload
// on the stream, any message read) to the protobuf codec.
type codec struct{ proto encoding.CodecV2 }

func newCodec() codec { return codec{proto: encoding.GetCodecV2(proto.Name)} }

func (c codec) Name() string { return c.proto.Name() }

// Unmarshal reads a Payload with DecodePayload, anything else with the
// protobuf codec.
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	p, ok := v.(*nacos.Payload)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return DecodePayload(buf.ReadOnlyData(), p)
}

// Marshal writes an Answer by hand, a Message as it was encoded (the buffer
// is shared, never freed), anything else with the protobuf codec.
func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *Answer:
		return m.Encode(), nil
	case Message:
		return mem.BufferSlice{mem.SliceBuffer(m.Payload())}, nil
	}
	return c.proto.Marshal(v)
}

// Field numbers of nacos_grpc_service.proto.
const (
	payloadMetadata = 2 // Payload.metadata
	payloadBody     = 3 // Payload.body
	metadataType    = 3 // Metadata.type
	anyValue        = 2 // google.protobuf.Any.value
)

// Encode encodes a as the Payload{metadata: {type}, body: {value}} it
// stands for: a head with the tags and lengths, then the body's parts.
func (a *Answer) Encode() mem.BufferSlice {
	n := 0
	for _, p := range a.Body {
		n += len(p)
	}
	metaLen := 0
	if a.Type != "" {
		metaLen = protowire.SizeTag(metadataType) + protowire.SizeBytes(len(a.Type))
	}
	anyLen := 0
	if n > 0 {
		anyLen = protowire.SizeTag(anyValue) + protowire.SizeBytes(n)
	}
	head := make([]byte, 0, 24+len(a.Type))
	head = protowire.AppendTag(head, payloadMetadata, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(metaLen))
	if a.Type != "" {
		head = protowire.AppendTag(head, metadataType, protowire.BytesType)
		head = protowire.AppendString(head, a.Type)
	}
	head = protowire.AppendTag(head, payloadBody, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(anyLen))
	if n > 0 {
		head = protowire.AppendTag(head, anyValue, protowire.BytesType)
		head = protowire.AppendVarint(head, uint64(n))
	}
	out := make(mem.BufferSlice, 1, 1+len(a.Body))
	out[0] = mem.SliceBuffer(head)
	for _, p := range a.Body {
		if len(p) > 0 {
			out = append(out, mem.SliceBuffer(p))
		}
	}
	return out
}
