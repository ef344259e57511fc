package udppush_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestBadSubscriberInput: instance/list with a clientIP or udpPort that
// cannot be a UDP subscriber's address is answered 400 naming the
// parameter (v1), or in the v2 envelope naming ip or port, and records no
// subscriber.
func TestBadSubscriberInput(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	svc := serviceName(t)
	for _, tc := range []struct {
		path, ip, port string
		want           []string // in the answer
	}{
		{"/nacos/v1/ns/instance/list", "not an ip", "55000", []string{"clientIP", "neither an IP address nor a host name"}},
		{"/nacos/v1/ns/instance/list", "10.0.0.1/24", "55000", []string{"clientIP"}},
		{"/nacos/v1/ns/instance/list", "10.0.0.1\x01", "55000", []string{"clientIP", "control character"}},
		{"/nacos/v1/ns/instance/list", strings.Repeat("a", 200), "55000", []string{"clientIP", "longer than"}},
		{"/nacos/v1/ns/instance/list", "127.0.0.1", "70000", []string{"udpPort", "out of range"}},
		{"/nacos/v1/ns/instance/list", "127.0.0.1", "-1", []string{"udpPort", "out of range"}},
		{"/nacos/v1/ns/instance/list", "127.0.0.1", "x", []string{"udpPort", "not an integer"}},
		{"/nacos/v2/ns/instance/list", "not an ip", "55000", []string{`"code":20002`, "ip:", "neither an IP address nor a host name"}},
		{"/nacos/v2/ns/instance/list", "127.0.0.1", "70000", []string{`"code":20002`, "port:", "out of range"}},
	} {
		t.Run(fmt.Sprintf("%s %q %q", tc.path[:9], tc.ip, tc.port), func(t *testing.T) {
			params := url.Values{"serviceName": {svc}, "clientIP": {tc.ip}, "udpPort": {tc.port}}
			if strings.HasPrefix(tc.path, "/nacos/v2/") {
				params = url.Values{"serviceName": {svc}, "ip": {tc.ip}, "port": {tc.port}}
			}
			code, body := call(t, srv, http.MethodGet, tc.path, params)
			if code != http.StatusBadRequest {
				t.Errorf("%d %s, want 400", code, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("the answer %q does not name %q", body, w)
				}
			}
		})
	}
	if subs := subscribers(t, srv, svc); len(subs) != 0 {
		t.Errorf("bad polls recorded subscribers: %+v", subs)
	}

	// A clientIP shaped like a host name ("not-an-ip", or 999.1.1.1, which
	// is no IPv4 address) is refused, or recorded as a subscriber the plugin
	// cannot push to: either way the service's other subscribers are
	// pushed as ever.
	good := newRawSubscriber(t, srv, svc, true)
	good.poll(t)
	for _, ip := range []string{"not-an-ip", "999.1.1.1"} {
		code, body := call(t, srv, http.MethodGet, "/nacos/v1/ns/instance/list", url.Values{"serviceName": {svc}, "clientIP": {ip}, "udpPort": {"55000"}})
		switch {
		case code == http.StatusBadRequest && strings.Contains(body, "clientIP"):
		case code == http.StatusOK:
			t.Logf("clientIP %q: answered 200, recorded as a subscriber: %v", ip, subscribed(t, srv, svc, ip+":55000#true"))
		default:
			t.Errorf("clientIP %q: %d %s; want 400 naming clientIP, or the service", ip, code, body)
		}
	}
	register(t, srv, svc, "10.0.0.1", 8080, 1)
	good.await(t, "the change", currentIs("10.0.0.1:8080 w=1"))
	register(t, srv, svc, "10.0.0.1", 8080, 2)
	good.await(t, "the next change", currentIs("10.0.0.1:8080 w=2"))
	t.Logf("pushudp reported %v targets not delivered", srv.Metric(t, `sextant_plugin_errors_total{plugin="pushudp"}`))
}
