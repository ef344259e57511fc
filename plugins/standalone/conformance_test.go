package standalone

import (
	"testing"

	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

func TestConformance(t *testing.T) {
	membershiptest.Run(t, membershiptest.Options{Plugin: &Plugin})
}
