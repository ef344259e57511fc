package membership

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" for an error
	}{
		{"10.0.0.1:8848", "10.0.0.1:8848"},
		{"  10.0.0.1:9000\t", "10.0.0.1:9000"},
		{"10.0.0.1", "10.0.0.1:7777"}, // the default port
		{"Nacos-1.Example.COM:8848", "nacos-1.example.com:8848"},
		{"nacos-1.example.com.", "nacos-1.example.com:7777"},
		{"node_1", "node_1:7777"},
		{"localhost:1", "localhost:1"},
		{"[::1]:8848", "[::1]:8848"},
		{"[::1]", "[::1]:7777"},
		{"::1", "[::1]:7777"},
		{"2001:DB8::1", "[2001:db8::1]:7777"},
		{"[2001:db8:0:0::1]:65535", "[2001:db8::1]:65535"},
		{"", ""},
		{"   ", ""},
		{":8848", ""},
		{"10.0.0.1:", ""},
		{"10.0.0.1:0", ""},
		{"10.0.0.1:65536", ""},
		{"10.0.0.1:+80", ""},
		{"10.0.0.1:http", ""},
		{"10.0.0.256", ""},
		{"010.0.0.1", ""},
		{"10.1", ""},
		{"10.0.0.1 10.0.0.2", ""},
		{"http://10.0.0.1:8848", ""},
		{"10.0.0.1:8848/nacos", ""},
		{"[10.0.0.1]:8848", ""},
		{"[::1", ""},
		{"[::1]8848", ""},
		{"2001:db8::1:8848:x", ""},
		{"a..b", ""},
		{"-", ""},
		{"-node", ""},
		{strings.Repeat("a", 64) + ".com", ""},
		{"bad!host", ""},
	} {
		got, err := ParseAddress(tc.in, 7777)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseAddress(%q) = %q, want an error", tc.in, got)
		case tc.want != "" && err != nil:
			t.Errorf("ParseAddress(%q): %v, want %q", tc.in, err, tc.want)
		case got != tc.want:
			t.Errorf("ParseAddress(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if _, err := ParseAddress("10.0.0.1", 0); err == nil {
		t.Error("a bare ip with no valid default port was accepted")
	}
	if got, err := ParseAddress("10.0.0.1:80", 0); err != nil || got != "10.0.0.1:80" {
		t.Errorf("ParseAddress with an explicit port and no default = %q, %v", got, err)
	}
}

func TestParseClusterConf(t *testing.T) {
	for _, tc := range []struct {
		name      string
		text      string
		want      []string
		malformed []string // each error's start
	}{
		{name: "empty"},
		{name: "comments and blanks", text: "# the cluster\n\n   \n\t# another\n"},
		{
			name: "Nacos's example",
			text: "#it is ip\n#example\n192.168.16.101:8847\n192.168.16.102\n192.168.16.103:8849\n",
			want: []string{"192.168.16.101:8847", "192.168.16.102:8848", "192.168.16.103:8849"},
		},
		{
			name: "sorted and deduplicated",
			text: "10.0.0.3\n10.0.0.1:8848\n10.0.0.1\n10.0.0.2:8848\n10.0.0.3:8848\n",
			want: []string{"10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848"},
		},
		{
			name: "comments at the end of a line, CRLF, a byte-order mark",
			text: "\ufeff10.0.0.1:8848 # first\r\n10.0.0.2#second\r\n",
			want: []string{"10.0.0.1:8848", "10.0.0.2:8848"},
		},
		{
			name: "several on a line",
			text: "10.0.0.1:8848,10.0.0.2, 10.0.0.3:9000,\n",
			want: []string{"10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:9000"},
		},
		{
			name:      "malformed lines are skipped and named",
			text:      "10.0.0.1\nnot an address\n10.0.0.2:99999\n10.0.0.3\n",
			want:      []string{"10.0.0.1:8848", "10.0.0.3:8848"},
			malformed: []string{`line 2: "not an address"`, `line 3: "10.0.0.2:99999"`},
		},
		{
			name:      "only malformed",
			text:      "http://x\n",
			malformed: []string{`line 1: "http://x"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, malformed := ParseClusterConf([]byte(tc.text), DefaultPort)
			if !slices.Equal(got, tc.want) {
				t.Errorf("members %q, want %q", got, tc.want)
			}
			if len(malformed) != len(tc.malformed) {
				t.Fatalf("malformed %v, want %d", malformed, len(tc.malformed))
			}
			for i, err := range malformed {
				if !strings.HasPrefix(err.Error(), tc.malformed[i]) {
					t.Errorf("malformed[%d] = %v, want it to start %s", i, err, tc.malformed[i])
				}
			}
		})
	}
}

func TestWithSelf(t *testing.T) {
	for _, tc := range []struct {
		members []string
		want    []string
		added   bool
	}{
		{nil, []string{"b:1"}, true},
		{[]string{"c:1", "a:1"}, []string{"a:1", "b:1", "c:1"}, true},
		{[]string{"c:1", "b:1", "a:1", "c:1"}, []string{"a:1", "b:1", "c:1"}, false},
	} {
		in := slices.Clone(tc.members)
		got, added := WithSelf(in, "b:1")
		if !slices.Equal(got, tc.want) || added != tc.added {
			t.Errorf("WithSelf(%q) = %q, %v; want %q, %v", tc.members, got, added, tc.want, tc.added)
		}
		if !slices.Equal(in, tc.members) {
			t.Errorf("WithSelf changed its argument: %q", in)
		}
	}
}

func ExampleParseClusterConf() {
	members, malformed := ParseClusterConf([]byte("# cluster.conf\n10.0.0.2\n10.0.0.1:8848\nnode-3.example.com:9848\n10.0.0.1:88a\n"), DefaultPort)
	fmt.Println(members)
	fmt.Println(malformed)
	// Output:
	// [10.0.0.1:8848 10.0.0.2:8848 node-3.example.com:9848]
	// [line 5: "10.0.0.1:88a": port "88a" is not a number from 1 to 65535]
}
