package static

import (
	"testing"

	"github.com/sextantd/sextant/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	sdktest.Membership(t, sdktest.MembershipOptions{
		Plugin: &Plugin,
		Config: map[string]any{"members": []any{"10.0.0.2:8848", "10.0.0.3"}},
	})
}
