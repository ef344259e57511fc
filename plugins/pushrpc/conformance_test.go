package pushrpc

import (
	"testing"

	"github.com/sextantd/sextant/sdk/push/pushtest"
)

func TestConformance(t *testing.T) {
	pushtest.Run(t, pushtest.Options{Plugin: &Plugin})
}
