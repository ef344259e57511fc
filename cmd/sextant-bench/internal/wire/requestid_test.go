package wire

import "testing"

func TestRequestID(t *testing.T) {
	for _, tc := range []struct {
		body, want string
		fails      bool
	}{
		{`{"requestId":"17","serviceInfo":{}}`, "17", false},
		{`{"module":"naming","requestId":"18"}`, "18", false}, // not first: parsed
		{`{"requestId":"a\"b","x":1}`, `a"b`, false},          // escaped: parsed
		{`{"x":1}`, "", false},                                // none
		{`{"requestId":`, "", true},
	} {
		got, err := requestID([]byte(tc.body))
		if (err != nil) != tc.fails || got != tc.want {
			t.Errorf("requestID(%s) = %q, %v; want %q, fails %v", tc.body, got, err, tc.want, tc.fails)
		}
	}
}
