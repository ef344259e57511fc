package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// The v2 naming API (/nacos/v2/ns) answers in Nacos 2.x's Result envelope:
//
//	{"code":0,"message":"success","data":...}
//
// with the HTTP status 200. A refusal keeps its HTTP status (400, 404, 501,
// ...) and carries one of Nacos's v2 error codes, its message, and the
// detail naming the parameter as data, as Nacos's NacosApiException handler
// writes it:
//
//	{"code":10000,"message":"parameter missing","data":"serviceName: required parameter is missing"}
//
// The codes used: 10000 (parameter missing), 20002 (parameter validate error:
// a value of the wrong type or refused by the registry or the store, an
// oversized body, and persistent writes on a server without a store, with
// 501), 20004 (resource not found: no such instance, with 404) and 30000
// (server error, with 500, or 503 when the Raft store has no quorum or is
// not running, or a client's responsible node cannot be reached); the
// service endpoints add their own (service_api.go).

// writeV2 writes ans in the v2 envelope, with the HTTP status and code given.
// A raw answer (an encoded view) is spliced in without decoding it again.
func writeV2(w http.ResponseWriter, status, code int, ans answer) {
	var data []byte
	switch {
	case ans.raw != nil:
		data = ans.raw
	case ans.json != nil:
		var err error
		if data, err = json.Marshal(ans.json); err != nil { // the answers' types always encode
			status, code, data = http.StatusInternalServerError, codeServerError, []byte(`"answer not encodable"`)
		}
	default:
		data, _ = json.Marshal(ans.text)
	}
	msg, _ := json.Marshal(codeMessages[code])
	out := make([]byte, 0, len(data)+64)
	out = append(out, `{"code":`...)
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(append(out, `,"message":`...), msg...)
	out = append(append(out, `,"data":`...), data...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(out, '}'))
}
