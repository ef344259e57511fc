package serveropts

import (
	"errors"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sextantd/sextant/proto/nacos"
)

// Field numbers of Metadata's and Any's fields that DecodePayload reads
// (Payload's and Metadata.type are with Answer's encoding).
const (
	metadataClientIP = 8 // Metadata.clientIp
	metadataHeaders  = 7 // Metadata.headers, a map<string, string>
	mapKey           = 1
	mapValue         = 2
	anyTypeURL       = 1 // google.protobuf.Any.type_url
)

// errFieldNumber is what a field numbered past protobuf's largest fails
// with (ConsumeTag lets numbers up to 2^31 through).
var errFieldNumber = errors.New("proto: a field number is out of range")

// errInvalidUTF8 is what a string field that is not UTF-8 fails with, as
// proto3 strings must be.
var errInvalidUTF8 = errors.New("proto: a string field holds invalid UTF-8")

// DecodePayload decodes b into p (merging, as proto.Unmarshal does) without
// protobuf's reflection: every request is a Payload. It accepts and refuses
// what proto.Unmarshal does and reads the same values; unknown fields are
// skipped, not kept, and the bytes it keeps are copies of b's.
func DecodePayload(b []byte, p *nacos.Payload) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case payloadMetadata:
			if p.Metadata == nil {
				p.Metadata = new(nacos.Metadata)
			}
			return decodeMetadata(v, p.Metadata)
		case payloadBody:
			if p.Body == nil {
				p.Body = new(anypb.Any)
			}
			return decodeAny(v, p.Body)
		}
		return nil
	})
}

func decodeMetadata(b []byte, m *nacos.Metadata) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case metadataType:
			return setString(&m.Type, v)
		case metadataClientIP:
			return setString(&m.ClientIp, v)
		case metadataHeaders:
			var k, val string
			err := fields(v, func(num protowire.Number, v []byte) error {
				switch num {
				case mapKey:
					return setString(&k, v)
				case mapValue:
					return setString(&val, v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if m.Headers == nil {
				m.Headers = make(map[string]string)
			}
			m.Headers[k] = val
		}
		return nil
	})
}

func decodeAny(b []byte, a *anypb.Any) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case anyTypeURL:
			return setString(&a.TypeUrl, v)
		case anyValue:
			a.Value = append(make([]byte, 0, len(v)), v...)
		}
		return nil
	})
}

func setString(s *string, v []byte) error {
	if !utf8.Valid(v) {
		return errInvalidUTF8
	}
	*s = string(v)
	return nil
}

// fields calls each with the value of every length-delimited field of the
// message b, in order, and skips the others: of the messages read here,
// every known field is length-delimited, and one of another wire type is
// unknown, as protobuf treats it.
func fields(b []byte, each func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return errFieldNumber
		}
		b = b[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := each(num, v); err != nil {
			return err
		}
	}
	return nil
}
