package remote

import (
	"bytes"
	"encoding/json"
	"testing"
)

// marshalled is what encoding/json makes of a response: what its answer's
// body must be, the serviceInfo spliced in as is.
func marshalled(t *testing.T, resp any) []byte {
	t.Helper()
	if r, ok := resp.(*serviceInfoResponse); ok {
		b, err := json.Marshal(struct {
			responseBase
			ServiceInfo json.RawMessage `json:"serviceInfo"`
		}{r.responseBase, r.ServiceInfo})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResponseEncoding(t *testing.T) {
	for _, s := range []string{"", "7", "plain text", `"quoted"`, `back\slash`, "<html> & more", "tab\tnew\nline\x01",
		"é ü 服务", "\xff invalid", "line\u2028separator", "\u007f"} {
		base := responseBase{ResultCode: 500, ErrorCode: 400, Success: false, Message: s, RequestID: s}
		ok := responseBase{ResultCode: 200, Success: true, RequestID: s}
		for _, resp := range []any{
			&healthCheckResponse{ok},
			&errorResponse{base},
			&instanceResponse{ok, s},
			&instanceResponse{base, opRegister},
			&batchInstanceResponse{ok, s},
			&serviceInfoResponse{ok, []byte(`{"name":"s","hosts":[]}`)},
			&serviceListResponse{ok, 2, []string{s}}, // by encoding/json
		} {
			a, err := newAnswer("SomeResponse", resp)
			if err != nil || a.Type != "SomeResponse" {
				t.Fatalf("%T: answer %+v, %v", resp, a, err)
			}
			if got, want := bytes.Join(a.Body, nil), marshalled(t, resp); !bytes.Equal(got, want) {
				t.Errorf("%T with %q:\n got %s\nwant %s", resp, s, got, want)
			}
		}
	}
}
