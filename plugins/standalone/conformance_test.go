package standalone

import (
	"testing"

	"github.com/sextantd/sextant/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	sdktest.Membership(t, sdktest.MembershipOptions{Plugin: &Plugin})
}
