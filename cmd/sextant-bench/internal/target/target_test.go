package target

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		addrs    []string
		grpcPort int
		want     []Target
		err      string
	}{
		{[]string{"127.0.0.1:8848"}, 0, []Target{{"127.0.0.1:8848", "127.0.0.1:9848"}}, ""},
		{[]string{"a:8848", "b:8850"}, 0, []Target{{"a:8848", "a:9848"}, {"b:8850", "b:9850"}}, ""},
		{[]string{"a:80"}, 9000, []Target{{"a:80", "a:9000"}}, ""},
		{[]string{":8848"}, 0, []Target{{"127.0.0.1:8848", "127.0.0.1:9848"}}, ""},
		{[]string{"[::1]:8848"}, 0, []Target{{"[::1]:8848", "[::1]:9848"}}, ""},
		{nil, 0, nil, "no target"},
		{[]string{"localhost"}, 0, nil, "want host:port"},
		{[]string{"a:http"}, 0, nil, "not a port number"},
		{[]string{"a:0"}, 0, nil, "not a port number"},
		{[]string{"a:65000"}, 0, nil, "give --grpc-port"},
		{[]string{"a:1"}, 70000, nil, "--grpc-port 70000"},
	} {
		got, err := Parse(tc.addrs, tc.grpcPort)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%v, %d) error %v, want %q", tc.addrs, tc.grpcPort, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("Parse(%v, %d) = %v, %v", tc.addrs, tc.grpcPort, got, err)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("Parse(%v, %d)[%d] = %v, want %v", tc.addrs, tc.grpcPort, i, got[i], tc.want[i])
			}
		}
	}
}

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		name   string
		routes map[string]string
		want   string
	}{
		{"nacos state", map[string]string{"/nacos/v1/console/server/state": `{"standalone_mode":"standalone","version":"2.3.2"}`}, "2.3.2"},
		{"metrics fallback", map[string]string{"/nacos/v1/ns/operator/metrics": `{"status":"UP","version":"9.9"}`}, "9.9"},
		{"nothing", nil, Unknown},
		{"no version field", map[string]string{"/nacos/v1/console/server/state": `{"standalone_mode":"standalone"}`}, Unknown},
		{"not json", map[string]string{"/nacos/v1/console/server/state": `<html>`}, Unknown},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, ok := tc.routes[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write([]byte(body))
		}))
		got := Version(context.Background(), strings.TrimPrefix(srv.URL, "http://"))
		srv.Close()
		if got != tc.want {
			t.Errorf("%s: Version = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPortAndLocalIP(t *testing.T) {
	if Port("h:8848") != 8848 || Port("nonsense") != 0 {
		t.Error("Port is wrong")
	}
	if ip := LocalIP("127.0.0.1:9848"); ip != "127.0.0.1" {
		t.Errorf("LocalIP of a loopback address = %q", ip)
	}
}
