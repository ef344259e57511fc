package remote

import (
	"encoding/json"
	"reflect"
	"testing"
)

// fastRequests makes one fresh value of each request the fast path decodes.
var fastRequests = []func() fastDecoder{
	func() fastDecoder { return new(instanceRequest) },
	func() fastDecoder { return new(serviceQueryRequest) },
	func() fastDecoder { return new(subscribeServiceRequest) },
	func() fastDecoder { return new(healthCheckRequest) },
	func() fastDecoder { return new(clientAnswer) },
}

// checkFastDecode fails t when the fast path takes body and decodes it other
// than encoding/json does; it returns whether the fast path took it.
func checkFastDecode(t *testing.T, newReq func() fastDecoder, body []byte) bool {
	t.Helper()
	fast := newReq()
	if !fast.decodeFast(body) {
		return false
	}
	slow := newReq()
	if err := json.Unmarshal(body, slow); err != nil {
		t.Fatalf("%T: the fast path took %q, which encoding/json refuses: %v", fast, body, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%T from %q:\nfast path     %+v\nencoding/json %+v", fast, body, fast, slow)
	}
	return true
}

func TestFastDecode(t *testing.T) {
	register := string(registerBody(3, 4, 8080))
	tests := []struct {
		name string
		body string
		fast bool // the fast path takes it
	}{
		{"nacos-sdk-go registration", register, true},
		{"query", string(queryBody(7)), true},
		{"subscribe", `{"requestId":"1","namespace":"","serviceName":"s","groupName":"g","subscribe":true,"clusters":"a,b"}`, true},
		{"query fields of the wrong type", `{"cluster":1,"healthyOnly":"x","subscribe":0,"clusters":true}`, true},
		{"health check", `{"requestId":"1","module":"internal"}`, true},
		{"Java client's empty headers, white space", ` { "headers" : { } , "requestId" : "9" , "instance" : { "ip" : "::1" , "port" : 80 , "metadata" : { "k" : "v" } } } `, true},
		{"unknown values of every kind", `{"a":[1,-2.5e+3,"x\"y\u00e9",{"b":null}],"c":true,"d":false,"e":null,"requestId":"1"}`, true},
		{"null fields", `{"requestId":null,"instance":null}`, true},
		{"null instance fields", `{"instance":{"ip":null,"port":null,"weight":null,"healthy":null,"metadata":null}}`, true},
		{"UTF-8 values", `{"serviceName":"服务","instance":{"metadata":{"é":"ü"}}}`, true},
		{"float weights", `{"instance":{"weight":0.5}}`, true},
		{"large weight", `{"instance":{"weight":123456789012345678901234567890}}`, true},
		{"negative port", `{"instance":{"port":-1}}`, true},
		{"empty object", `{}`, true},

		{"case-insensitive key", `{"ServiceName":"s"}`, false},
		// ſ (U+017F) folds to s: encoding/json would take it for "subscribe";
		// requests without that field ignore it.
		{"long s folds to s", `{"ſubscribe":true,"KelvinK":1}`, true},
		{"escaped string", `{"serviceName":"a\nb"}`, false},
		{"escaped key", `{"service\u004eame":"s"}`, false},
		{"invalid UTF-8", "{\"serviceName\":\"\xff\"}", false},
		{"repeated key", `{"serviceName":"a","serviceName":"b"}`, false},
		{"repeated instance", `{"instance":{"ip":"a"},"instance":{"port":1}}`, false},
		{"fractional port", `{"instance":{"port":80.0}}`, false},
		{"exponent port", `{"instance":{"port":8e1}}`, false},
		{"port as a string", `{"instance":{"port":"80"}}`, false},
		{"huge port", `{"instance":{"port":12345678901234567890}}`, false},
		{"weight out of range", `{"instance":{"weight":1e400}}`, false},
		{"null metadata value", `{"instance":{"metadata":{"k":null}}}`, false},
		{"number metadata value", `{"instance":{"metadata":{"k":1}}}`, false},
		{"syntax error", `{"requestId":`, false},
		{"trailing data", `{"requestId":"1"} x`, false},
		{"leading zero", `{"x":01}`, false},
		{"not an object", `null`, false},
		{"bad escape in an unknown value", `{"x":"\q"}`, false},
		{"deep unknown value", `{"x":` + deep(40) + `}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every request decodes it alike; an InstanceRequest takes it
			// (or not) as the case says.
			for i, newReq := range fastRequests {
				if took := checkFastDecode(t, newReq, []byte(tc.body)); i == 0 && took != tc.fast {
					t.Errorf("the fast path of InstanceRequest took it: %v, want %v", took, tc.fast)
				}
			}
		})
	}
}

func deep(n int) string {
	s := "1"
	for range n {
		s = "[" + s + "]"
	}
	return s
}

// FuzzFastDecode checks that whatever the fast path decodes, it decodes as
// encoding/json does.
func FuzzFastDecode(f *testing.F) {
	for _, seed := range []string{
		string(registerBody(1, 2, 8080)), string(queryBody(3)),
		`{"requestId":"1","subscribe":true,"clusters":"a,b","healthyOnly":true,"cluster":"c"}`,
		`{"instance":{"ip":"a","port":-0,"weight":1.5e2,"metadata":{"a":"b","a":"c"}}}`,
		`{"SERVICENAME":"s","x":[{"y":"\u00e9\\"}],"requestId":null}`,
		`{"resultCode":200,"errorCode":0,"success":true,"requestId":"17","message":"ok"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, newReq := range fastRequests {
			checkFastDecode(t, newReq, []byte(body))
		}
	})
}

// An acknowledgement as the Nacos clients write it takes the fast path.
func TestAnAcknowledgementTakesTheFastPath(t *testing.T) {
	ack := []byte(`{"resultCode":200,"errorCode":0,"success":true,"requestId":"17"}`)
	if !checkFastDecode(t, func() fastDecoder { return new(clientAnswer) }, ack) {
		t.Fatalf("the fast path left %s to encoding/json", ack)
	}
}

func BenchmarkDecodeAnswer(b *testing.B) {
	ack := []byte(`{"resultCode":200,"errorCode":0,"success":true,"requestId":"17"}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var a clientAnswer
			if !a.decodeFast(ack) {
				b.Fatal("not taken")
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var a clientAnswer
			if err := json.Unmarshal(ack, &a); err != nil {
				b.Fatal(err)
			}
		}
	})
}
