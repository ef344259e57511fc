package transporttest_test

import (
	"testing"

	"github.com/sextantd/sextant/sdk/transport/transporttest"
)

// A transport plugin's conformance test, in its own package, is one call:
// the kit serves two instances of the plugin in the test process, as nodes
// A and B, and runs each check as a subtest. (httpPlugin, a transport over
// HTTP, is the plugin under test here.)
func Example() {
	var t *testing.T // TestConformance's
	transporttest.Run(t, transporttest.Options{
		Plugin: &httpPlugin, // or Binary: the path of the built plugin
		Config: map[string]any{"dial_timeout": "1s"},
	})
}
