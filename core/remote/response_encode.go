package remote

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The responses to the usual requests are written here byte for byte as
// encoding/json would write them, without reflection: the fields every
// response has, then the response's own (TestResponseEncoding compares).

// baseSize is room for the fields of responseBase but the two strings.
const baseSize = 80

// appendBase appends the object of b's fields, open for more.
func appendBase(out []byte, b *responseBase) []byte {
	out = append(out, `{"resultCode":`...)
	out = strconv.AppendInt(out, int64(b.ResultCode), 10)
	out = append(out, `,"errorCode":`...)
	out = strconv.AppendInt(out, int64(b.ErrorCode), 10)
	out = append(out, `,"success":`...)
	out = strconv.AppendBool(out, b.Success)
	if b.Message != "" {
		out = append(out, `,"message":`...)
		out = appendString(out, b.Message)
	}
	out = append(out, `,"requestId":`...)
	return appendString(out, b.RequestID)
}

// appendString appends s as a JSON string, escaped as encoding/json does.
func appendString(out []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(out, q...)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}

// encodeBase returns b's object, with a "type" field of typ if typed.
func encodeBase(b *responseBase, typed bool, typ string) []byte {
	out := appendBase(make([]byte, 0, baseSize+len(b.Message)+len(b.RequestID)+len(typ)), b)
	if typed {
		out = append(out, `,"type":`...)
		out = appendString(out, typ)
	}
	return append(out, '}')
}

func (r *healthCheckResponse) encode() ([]byte, error) {
	return encodeBase(&r.responseBase, false, ""), nil
}

func (r *errorResponse) encode() ([]byte, error) { return encodeBase(&r.responseBase, false, ""), nil }

func (r *instanceResponse) encode() ([]byte, error) {
	return encodeBase(&r.responseBase, true, r.Type), nil
}

func (r *batchInstanceResponse) encode() ([]byte, error) {
	return encodeBase(&r.responseBase, true, r.Type), nil
}
