package serveropts

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/sextantd/sextant/proto/nacos"
)

// prefixSize is the length of gRPC's message prefix: a compression flag
// and the message's length.
const prefixSize = 5

// Message is a Payload encoded once for the wire, with gRPC's message prefix
// in front, so that a server request sent to many streams (a push to every
// subscriber of a service) is not encoded again for each. It must not
// change once made.
type Message []byte

// EncodeMessage encodes p as a Message.
func EncodeMessage(p *nacos.Payload) (Message, error) {
	m := make([]byte, prefixSize, prefixSize+proto.Size(p))
	m, err := proto.MarshalOptions{}.MarshalAppend(m, p)
	if err != nil {
		return nil, fmt.Errorf("encoding a payload: %w", err)
	}
	binary.BigEndian.PutUint32(m[1:prefixSize], uint32(len(m)-prefixSize))
	return m, nil
}

// Framed is the message as HTTP/2 carries it: the prefix, then the Payload.
func (m Message) Framed() []byte { return m }

// Payload is the encoded Payload alone, without the prefix.
func (m Message) Payload() []byte { return m[prefixSize:] }
