package persist

import (
	"errors"
	"testing"

	"github.com/sextantd/sextant/core/naming"
)

// TestResponseCrossesTheCluster: a forwarded write's Response decodes to
// errors that match Apply's under errors.Is and errors.As.
func TestResponseCrossesTheCluster(t *testing.T) {
	h := newHarness(t, Config{})
	a := inst("10.0.0.1", 80)
	bad := a
	bad.Port = -5
	resp := h.applyData(encode(t,
		PutInstance{Service: svcA, Instance: a},
		PutInstance{Service: svcA, Instance: a, Expect: ExpectAbsent},
		RemoveInstance{Service: svcA, IP: "10.9.9.9", Port: 1},
		PutInstance{Service: svcA, Instance: bad},
		RemoveService{Service: svcA},
	))
	b, err := EncodeResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Index != resp.Index || len(got.Results) != 5 || got.Err != nil {
		t.Fatalf("decoded %+v from %+v", got, resp)
	}
	if got.Results[0] != nil {
		t.Errorf("result 0: %v", got.Results[0])
	}
	for i, want := range []error{ErrExists, naming.ErrInstanceNotFound, nil, naming.ErrServiceNotEmpty} {
		if i == 2 {
			continue
		}
		if e := got.Results[i+1]; !errors.Is(e, want) || e.Error() != resp.Results[i+1].Error() {
			t.Errorf("result %d: %v, want one wrapping %v reading %q", i+1, e, want, resp.Results[i+1])
		}
	}
	inv, ok := errors.AsType[*naming.InvalidError](got.Results[3])
	if !ok || inv.Field != "port" || inv.Error() != resp.Results[3].Error() {
		t.Errorf("result 3: %#v, want the invalid port of %v", got.Results[3], resp.Results[3])
	}
	if _, err := EncodeResponse("not a response"); err == nil {
		t.Error("encoded a string as a response")
	}
	if _, err := DecodeResponse([]byte("{")); err == nil {
		t.Error("decoded a broken response")
	}
}
