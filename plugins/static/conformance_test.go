package static

import (
	"testing"

	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

func TestConformance(t *testing.T) {
	membershiptest.Run(t, membershiptest.Options{
		Plugin: &Plugin,
		Config: map[string]any{"members": []any{"10.0.0.2:8848", "10.0.0.3"}},
	})
}
