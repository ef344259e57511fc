package wire

import (
	"reflect"
	"testing"

	"github.com/sextantd/sextant/sdk"
)

func TestDecodeReadsWhatEncodeWrote(t *testing.T) {
	info := sdk.Info{Name: "x", Version: "1.2.3", Config: sdk.Schema{
		{Key: "url", Type: sdk.String, Required: true, Description: "where"},
		{Key: "interval", Type: sdk.Duration},
	}}
	got, kind := DecodeInfo(EncodeInfo(info, KindMembership))
	if !reflect.DeepEqual(got, info) || kind != KindMembership {
		t.Errorf("Decode(Encode(info)) = %+v, %q; want %+v, %q", got, kind, info, KindMembership)
	}
}
