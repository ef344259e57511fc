package h2serve

import (
	"bytes"
	"errors"
	"strconv"

	"golang.org/x/net/http2/hpack"
)

// errStreamEnded is what a Send to a stream that ended fails with.
var errStreamEnded = errors.New("h2serve: stream ended")

// headerBlock encodes name, value pairs without touching a dynamic table.
func headerBlock(pairs ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i < len(pairs); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: pairs[i], Value: pairs[i+1], Sensitive: true})
	}
	return buf.Bytes()
}

// trailers is the header block that ends a stream with a gRPC status:
// with the response's own headers first when none were sent (a
// trailers-only answer).
func (s *Server) trailers(code int, message string, only bool) []byte {
	if code == codeOK && message == "" && !only {
		return s.okTrailers
	}
	var pairs []string
	if only {
		pairs = append(pairs, ":status", "200", "content-type", "application/grpc")
	}
	pairs = append(pairs, "grpc-status", strconv.Itoa(code))
	if message != "" {
		if len(message) > maxStatusMessage {
			message = message[:maxStatusMessage] + "..."
		}
		pairs = append(pairs, "grpc-message", percentEncode(message))
	}
	return headerBlock(pairs...)
}

// maxStatusMessage bounds a grpc-message before it is encoded (which may
// triple it): a status must fit in one frame of the client's.
const maxStatusMessage = 1 << 10

// percentEncode encodes a grpc-message as gRPC's HTTP/2 mapping asks.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b []byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 0x20 && ch <= 0x7e && ch != '%' {
			b = append(b, ch)
			continue
		}
		b = append(b, '%', hex[ch>>4], hex[ch&15])
	}
	return string(b)
}
