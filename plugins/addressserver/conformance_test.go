package addressserver

import (
	"net/http"
	"testing"

	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

func TestConformance(t *testing.T) {
	srv := newAddressServer(t, "127.0.0.1:8848\n10.0.0.2:8848\n")
	membershiptest.Run(t, membershiptest.Options{
		Plugin: &Plugin,
		Config: map[string]any{"url": srv.URL + "/nacos/serverlist", "interval": "10ms", "timeout": "1s"},
		Change: func() []string {
			srv.answer(http.StatusOK, "127.0.0.1:8848\n10.0.0.2:8848\n10.0.0.3:8848\n", false)
			return []string{"10.0.0.3:8848", "10.0.0.2:8848", "127.0.0.1:8848"}
		},
	})
}
