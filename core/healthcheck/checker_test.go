package healthcheck

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/sextantd/sextant/core/naming"
)

func TestParseChecker(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		want       Checker
		field      string // the field a refusal names; "" for success
		reason     string // a part of its reason
	}{
		{name: "tcp", json: `{"type":"TCP"}`, want: Checker{Type: TypeTCP}},
		{name: "none", json: `{"type":"NONE"}`, want: Checker{Type: TypeNone}},
		{name: "lower case", json: ` {"type":"tcp"} `, want: Checker{Type: TypeTCP}},
		{name: "tcp ignores http fields", json: `{"type":"TCP","path":"/x","expectedResponseCode":"abc","headers":7}`,
			want: Checker{Type: TypeTCP}},
		{name: "unknown fields", json: `{"type":"NONE","whatever":[1,2]}`, want: Checker{Type: TypeNone}},
		{name: "nacos http", json: `{"type":"HTTP","path":"/health","headers":"k:v|k2:v2","expectedResponseCode":200}`,
			want: Checker{Type: TypeHTTP, Path: "/health", ExpectedCode: 200, Headers: map[string]string{"k": "v", "k2": "v2"}}},
		{name: "http defaults", json: `{"type":"HTTP"}`, want: Checker{Type: TypeHTTP}},
		{name: "http nulls", json: `{"type":"HTTP","path":null,"headers":null,"expectedResponseCode":null}`,
			want: Checker{Type: TypeHTTP}},
		{name: "code as a string", json: `{"type":"HTTP","expectedResponseCode":"204"}`,
			want: Checker{Type: TypeHTTP, ExpectedCode: 204}},
		{name: "headers trimmed, colons in values, empty entries",
			json: `{"type":"HTTP","headers":" Authorization : Basic a:b || X-Y:1|"}`,
			want: Checker{Type: TypeHTTP, Headers: map[string]string{"Authorization": "Basic a:b", "X-Y": "1"}}},
		{name: "headers as an object", json: `{"type":"HTTP","headers":{"X-A":"1"}}`,
			want: Checker{Type: TypeHTTP, Headers: map[string]string{"X-A": "1"}}},
		{name: "empty headers", json: `{"type":"HTTP","headers":""}`, want: Checker{Type: TypeHTTP}},
		{name: "path with a query", json: `{"type":"HTTP","path":" /health?deep=1 "}`,
			want: Checker{Type: TypeHTTP, Path: "/health?deep=1"}},

		{name: "empty", json: ``, field: "healthChecker", reason: "empty"},
		{name: "not json", json: `type=TCP`, field: "healthChecker", reason: "not a JSON object"},
		{name: "array", json: `[{"type":"TCP"}]`, field: "healthChecker", reason: "not a JSON object"},
		{name: "null", json: `null`, field: "healthChecker", reason: "not a JSON object"},
		{name: "trailing", json: `{"type":"TCP"} {}`, field: "healthChecker", reason: "more after it"},
		{name: "too long", json: `{"type":"TCP","x":"` + strings.Repeat("a", MaxCheckerJSONBytes) + `"}`,
			field: "healthChecker", reason: "longer than"},
		{name: "no type", json: `{"path":"/health"}`, field: "healthChecker.type", reason: "missing"},
		{name: "type not a string", json: `{"type":1}`, field: "healthChecker.type", reason: "not a string"},
		{name: "unknown type", json: `{"type":"UDP"}`, field: "healthChecker.type", reason: `"UDP" is not a checker type`},
		{name: "mysql", json: `{"type":"MYSQL","user":"a","pwd":"b","cmd":"select 1"}`, field: "healthChecker.type",
			reason: "MYSQL checks are not supported"},
		{name: "path not a string", json: `{"type":"HTTP","path":1}`, field: "healthChecker.path", reason: "not a string"},
		{name: "absolute url", json: `{"type":"HTTP","path":"http://evil/x"}`, field: "healthChecker.path",
			reason: "not a path"},
		{name: "network path", json: `{"type":"HTTP","path":"//evil/x"}`, field: "healthChecker.path", reason: "not a path"},
		{name: "space in path", json: `{"type":"HTTP","path":"/a b"}`, field: "healthChecker.path", reason: "space"},
		{name: "fragment", json: `{"type":"HTTP","path":"/a#b"}`, field: "healthChecker.path", reason: "fragment"},
		{name: "relative path", json: `{"type":"HTTP","path":"health"}`, field: "healthChecker.path",
			reason: `"health" does not start with "/"`},
		{name: "path not ascii", json: `{"type":"HTTP","path":"/santé"}`, field: "healthChecker.path", reason: "not ASCII at byte 5"},
		{name: "long path", json: `{"type":"HTTP","path":"/` + strings.Repeat("a", MaxPathBytes) + `"}`,
			field: "healthChecker.path", reason: "longer than 2048 bytes"},
		{name: "code not a number", json: `{"type":"HTTP","expectedResponseCode":"ok"}`,
			field: "healthChecker.expectedResponseCode", reason: "not a number"},
		{name: "code fractional", json: `{"type":"HTTP","expectedResponseCode":200.5}`,
			field: "healthChecker.expectedResponseCode", reason: "not a whole number"},
		{name: "code zero", json: `{"type":"HTTP","expectedResponseCode":0}`,
			field: "healthChecker.expectedResponseCode", reason: "0 is not an HTTP status"},
		{name: "code out of range", json: `{"type":"HTTP","expectedResponseCode":700}`,
			field: "healthChecker.expectedResponseCode", reason: "700 is not an HTTP status (100 to 599)"},
		{name: "header without colon", json: `{"type":"HTTP","headers":"k:v|oops"}`, field: "healthChecker.headers",
			reason: `"oops" is not name:value`},
		{name: "header twice", json: `{"type":"HTTP","headers":"k:v|k:w"}`, field: "healthChecker.headers",
			reason: "k given twice"},
		{name: "header twice by case", json: `{"type":"HTTP","headers":"X-A:1|x-a:2"}`, field: "healthChecker.headers",
			reason: "the same header"},
		{name: "bad header name", json: `{"type":"HTTP","headers":"a b:1"}`, field: "healthChecker.headers",
			reason: `"a b" is not a header name`},
		{name: "empty header name", json: `{"type":"HTTP","headers":":1"}`, field: "healthChecker.headers",
			reason: `"" is not a header name`},
		{name: "hop header", json: `{"type":"HTTP","headers":"connection:keep-alive"}`, field: "healthChecker.headers",
			reason: "Connection is set by the checker"},
		{name: "control in value", json: `{"type":"HTTP","headers":{"X-A":"1\r\nX-B: 2"}}`,
			field: "healthChecker.headers", reason: "control character"},
		{name: "bar in value", json: `{"type":"HTTP","headers":{"X-A":"1|2"}}`, field: "healthChecker.headers",
			reason: "holds |"},
		{name: "headers neither", json: `{"type":"HTTP","headers":[1]}`, field: "healthChecker.headers",
			reason: "neither a string"},
		{name: "too many headers", json: `{"type":"HTTP","headers":"` + manyHeaders(MaxHeaders+1) + `"}`,
			field: "healthChecker.headers", reason: "33 headers, more than 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseChecker(tc.json)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got.Type != tc.want.Type || got.Path != tc.want.Path || got.ExpectedCode != tc.want.ExpectedCode ||
					got.CheckPort != 0 || !maps.Equal(got.Headers, tc.want.Headers) {
					t.Errorf("got %+v, want %+v", got, tc.want)
				}
				return
			}
			checkInvalid(t, err, tc.field, tc.reason)
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name          string
		c             Checker
		field, reason string
	}{
		{name: "zero is tcp", c: Checker{}},
		{name: "default", c: DefaultChecker()},
		{name: "check port", c: Checker{Type: TypeTCP, CheckPort: 8080}},
		{name: "http full", c: Checker{Type: TypeHTTP, Path: "/h?x=1", ExpectedCode: 204, CheckPort: 1,
			Headers: map[string]string{"Host": "a.example", "X-A": "1\t2"}}},
		{name: "negative port", c: Checker{CheckPort: -1}, field: "checkPort", reason: "-1 is not a port"},
		{name: "port too big", c: Checker{Type: TypeHTTP, CheckPort: 65536}, field: "checkPort", reason: "65536 is not a port"},
		{name: "bad type", c: Checker{Type: "tcp"}, field: "healthChecker.type", reason: `"tcp" is not a checker type`},
		{name: "path on tcp", c: Checker{Type: TypeTCP, Path: "/x"}, field: "healthChecker.path",
			reason: "is for an HTTP checker, not TCP"},
		{name: "code on none", c: Checker{Type: TypeNone, ExpectedCode: 200}, field: "healthChecker.expectedResponseCode",
			reason: "not NONE"},
		{name: "headers on tcp", c: Checker{Headers: map[string]string{"a": "b"}}, field: "healthChecker.headers",
			reason: "not TCP"},
		{name: "code out of range", c: Checker{Type: TypeHTTP, ExpectedCode: 99}, field: "healthChecker.expectedResponseCode",
			reason: "99 is not an HTTP status"},
		{name: "header not UTF-8", c: Checker{Type: TypeHTTP, Headers: map[string]string{"X-A": "\xff"}},
			field: "healthChecker.headers", reason: "not UTF-8"},
		{name: "headers too long", c: Checker{Type: TypeHTTP, Headers: map[string]string{"X-A": strings.Repeat("a", MaxHeaderBytes)}},
			field: "healthChecker.headers", reason: "longer than 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			checkInvalid(t, err, tc.field, tc.reason)
		})
	}
}

// TestNacosJSON: NacosJSON writes what Nacos does, and ParseChecker reads
// it back.
func TestNacosJSON(t *testing.T) {
	for _, tc := range []struct {
		c    Checker
		want string
	}{
		{Checker{}, `{"type":"TCP"}`},
		{Checker{Type: TypeNone, CheckPort: 9}, `{"type":"NONE"}`},
		{Checker{Type: TypeHTTP}, `{"type":"HTTP","path":"","headers":"","expectedResponseCode":200}`},
		{Checker{Type: TypeHTTP, Path: "/h", ExpectedCode: 204, Headers: map[string]string{"b": "2", "a": "1:x"}},
			`{"type":"HTTP","path":"/h","headers":"a:1:x|b:2","expectedResponseCode":204}`},
	} {
		got := tc.c.NacosJSON()
		if got != tc.want {
			t.Errorf("NacosJSON(%+v) = %s, want %s", tc.c, got, tc.want)
		}
		back, err := ParseChecker(got)
		if err != nil {
			t.Fatalf("ParseChecker(%s): %v", got, err)
		}
		if back.NacosJSON() != got {
			t.Errorf("round trip of %s gave %+v", got, back)
		}
	}
}

func checkInvalid(t *testing.T, err error, field, reason string) {
	t.Helper()
	var inv *naming.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("error %v (%T), want a *naming.InvalidError", err, err)
	}
	if inv.Field != field || !strings.Contains(inv.Reason, reason) {
		t.Errorf("error %q, want field %s with a reason containing %q", err, field, reason)
	}
}

func manyHeaders(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, "X-H"+string(rune('a'+i%26))+strings.Repeat("z", i/26)+":1")
	}
	return strings.Join(parts, "|")
}
