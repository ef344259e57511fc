package clusterfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sextantd/sextant/sdk/membership"
	"github.com/sextantd/sextant/sdk/membership/membershiptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// write replaces the file at path with text at once, as an operator's tools
// should (the provider may read the file at any moment).
func write(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newProvider(t *testing.T, path string) (membership.Provider, *membershiptest.Log) {
	t.Helper()
	logger, logs := membershiptest.NewLogger()
	p, err := membership.NewProvider(Plugin, []byte(`{"path":`+quote(path)+`,"interval":"2ms"}`), membership.Host{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return p, logs
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `\`, `\\`) + `"` }

func TestFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.conf")
	write(t, path, "# the cluster\n10.0.0.1:8848\n\n10.0.0.2 # bare: port 8848\n")
	p, logs := newProvider(t, path)
	lists := membershiptest.Watching(t, p, "10.0.0.1:8848")
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848")

	// The same list, written otherwise, with a malformed line: logged with
	// its line number, skipped, and no update.
	write(t, path, "10.0.0.2:8848\n10.0.0.1\nnot/an/address\n")
	logs.Await(t, `line 3: \"not/an/address\"`, 1)
	membershiptest.ExpectNone(t, lists)

	write(t, path, "10.0.0.1:8848\n10.0.0.2:8848\n10.0.0.3:8848\n")
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848")

	// A file that disappears keeps the last good list, and is logged once.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	logs.Await(t, "cannot read the member list; keeping the last good one", 1)
	logs.Await(t, "still cannot read the member list", 3)
	membershiptest.ExpectNone(t, lists)
	if n := strings.Count(logs.String(), "cannot read the member list; keeping"); n != 1 {
		t.Errorf("the missing file was warned about %d times, want once", n)
	}

	// An empty file too.
	write(t, path, "# nobody\n")
	logs.Await(t, "the member list is empty; keeping the last good one", 1)
	membershiptest.ExpectNone(t, lists)

	write(t, path, "10.0.0.4:8848\n")
	membershiptest.ExpectList(t, lists, "10.0.0.1:8848", "10.0.0.4:8848") // the node counted in
	logs.Await(t, "this node is not in the member list; counting it in", 1)
}

func TestAWatchStartsFromTheCurrentFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.conf")
	write(t, path, "10.0.0.1\n10.0.0.2\n")
	p, _ := newProvider(t, path)
	first := membershiptest.Watching(t, p, "10.0.0.1:9000") // bare ips take this node's port
	membershiptest.ExpectList(t, first, "10.0.0.1:9000", "10.0.0.2:9000")
	write(t, path, "10.0.0.1\n10.0.0.3\n")
	membershiptest.ExpectList(t, first, "10.0.0.1:9000", "10.0.0.3:9000")
	second := membershiptest.Watching(t, p, "10.0.0.1:9000")
	membershiptest.ExpectList(t, second, "10.0.0.1:9000", "10.0.0.3:9000")
}

func TestRefusesAConfigurationThatCannotWork(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "cluster.conf")
	write(t, good, "10.0.0.1\n")
	for _, tc := range []struct {
		name, config, want string
	}{
		{"no path", `{}`, "config.path: required"},
		{"a missing file", `{"path":` + quote(filepath.Join(dir, "nope.conf")) + `}`, "config.path: open "},
		{"a directory", `{"path":` + quote(dir) + `}`, "config.path: " + dir + " is a directory"},
		{"a zero interval", `{"path":` + quote(good) + `,"interval":"0s"}`, "config.interval: 0s is not positive"},
		{"an unknown key", `{"path":` + quote(good) + `,"colour":"blue"}`, `unknown field "colour"`},
	} {
		_, err := membership.NewProvider(Plugin, []byte(tc.config), membership.Host{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewProvider = %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := membership.NewProvider(Plugin, []byte(`{"path":`+quote(good)+`}`), membership.Host{}); err != nil {
		t.Errorf("a good configuration was refused: %v", err)
	}
}

func TestRefusesAHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	write(t, path, strings.Repeat("#", MaxSize+1))
	_, err := New(Config{Path: path, Interval: 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "is larger than") {
		t.Errorf("New = %v, want an error about the size", err)
	}
}
