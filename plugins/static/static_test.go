package static

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/sextantd/sextant/sdk/membership"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// watchOnce returns the first list p reports as self, and ends the Watch.
func watchOnce(t *testing.T, p membership.Provider, self string) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lists := make(chan []string, 10)
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, self, func(m []string) { lists <- m }) }()
	var got []string
	select {
	case got = <-lists:
	case err := <-done:
		t.Fatalf("Watch returned %v before a list", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v, want context.Canceled", err)
	}
	if len(lists) != 0 {
		t.Errorf("a second list %q from a list that never changes", <-lists)
	}
	return got
}

func TestReportsTheConfiguredList(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []string
		self    string
		want    []string
		warned  bool
	}{{
		name:    "as given, sorted",
		members: []string{"10.0.0.3:8848", "10.0.0.1:8848", "10.0.0.2:8848"},
		self:    "10.0.0.1:8848",
		want:    []string{"10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848"},
	}, {
		name:    "a bare ip means this node's port; duplicates go",
		members: []string{"10.0.0.1", "10.0.0.2", "10.0.0.2:9000", "10.0.0.1:9000"},
		self:    "10.0.0.1:9000",
		want:    []string{"10.0.0.1:9000", "10.0.0.2:9000"},
	}, {
		name:    "several in an item, as --members gives them",
		members: []string{"10.0.0.1:8848,10.0.0.2:8848, Nacos-3:8848"},
		self:    "10.0.0.1:8848",
		want:    []string{"10.0.0.1:8848", "10.0.0.2:8848", "nacos-3:8848"},
	}, {
		name:    "this node counted in",
		members: []string{"10.0.0.2:8848", "10.0.0.3:8848"},
		self:    "10.0.0.1:8848",
		want:    []string{"10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848"},
		warned:  true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			p, err := New(tc.members, hclog.New(&hclog.LoggerOptions{Output: &log}))
			if err != nil {
				t.Fatal(err)
			}
			if got := watchOnce(t, p, tc.self); !slices.Equal(got, tc.want) {
				t.Errorf("members %q, want %q", got, tc.want)
			}
			if warned := strings.Contains(log.String(), "this node is not in the member list"); warned != tc.warned {
				t.Errorf("warned that the node is missing: %v, want %v; the log:\n%s", warned, tc.warned, &log)
			}
		})
	}
}

func TestRefusesAConfigurationThatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		want   []string
	}{
		{"no members", `{}`, []string{"config.members: no address"}},
		{"an empty list", `{"members":[" ", ","]}`, []string{"config.members: no address"}},
		{"malformed", `{"members":["10.0.0.1","http://10.0.0.2","10.0.0.3:0"]}`, []string{
			`config.members: item 1: "http://10.0.0.2"`, `config.members: item 2: "10.0.0.3:0"`}},
		{"an unknown key", `{"members":["10.0.0.1"],"colour":"blue"}`, []string{`unknown field "colour"`}},
	} {
		_, err := membership.NewProvider(Plugin, []byte(tc.config), membership.Host{})
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: NewProvider = %v, want an error saying %q", tc.name, err, w)
			}
		}
	}
	if _, err := membership.NewProvider(Plugin, []byte(`{"members":["10.0.0.1"]}`), membership.Host{}); err != nil {
		t.Errorf("a good configuration was refused: %v", err)
	}
}
