package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestViolation(t *testing.T) {
	const p = module + "/"
	tests := []struct {
		file, imp string
		want      string // in the violation; "" for none
	}{
		{"core/server/server.go", "fmt", ""},
		{"core/server/server.go", p + "core/registry", ""},
		{"core/server/server.go", p + "sdk/push", ""},
		{"core/server/server.go", p + "proto/nacos", ""},
		{"core/server/server_test.go", p + "plugins/pushrpc", "but core/ may not import plugins/"},
		{"core/server/server.go", p + "cmd/internal/servertest", "but core/ may not import cmd/"},
		{"core/server/server.go", p + "examples/client", "but core/ may not import examples/"},
		{"sdk/push/push.go", p + "proto/nacos", ""},
		{"sdk/push/push.go", p + "core/registry", "but sdk/ may not import core/"},
		{"sdk/sdktest/testdata/main.go", p + "plugins/pushrpc", "but sdk/ may not import plugins/"},
		{"sdk/push/push.go", p + "cmd/sextant", "but sdk/ may not import cmd/"},
		{"plugins/pushrpc/pushrpc.go", p + "sdk/push", ""},
		{"plugins/pushrpc/pushrpc.go", p + "plugins/pushrpc/internal/wire", ""},
		{"plugins/pushrpc/internal/wire/wire.go", p + "plugins/pushrpc", ""},
		{"plugins/pushrpc/pushrpc.go", p + "plugins/static", "but plugins/pushrpc/ may not import another plugin"},
		{"plugins/pushrpc/pushrpc.go", p + "plugins", "but plugins/pushrpc/ may not import another plugin"},
		{"plugins/pushrpc/pushrpc.go", p + "core/registry", "but plugins/ may not import core/"},
		{"plugins/grpctransport/testdata/main.go", p + "cmd/internal/servertest", "but plugins/ may not import cmd/"},
		{"examples/client/main.go", p + "sdk/push", ""},
		{"examples/client/main.go", p + "examples/client/internal/x", ""},
		{"examples/client/main.go", p + "examples/other", "but examples/client/ may not import another example"},
		{"examples/client/main.go", p + "plugins/pushrpc", "but examples/ may not import plugins/"},
		{"proto/nacos/nacos.pb.go", p + "proto/other", ""},
		{"proto/nacos/nacos.pb.go", p + "sdk/push", "but proto/ may not import sdk/"},
		{"cmd/sextant/main.go", p + "plugins/pushrpc", ""},
		{"cmd/sextant/main.go", p + "core/server", ""},
		{"tool.go", p + "plugins/pushrpc", ""},
		{"sdk/push/push.go", "github.com/sextantd/sextant-other/plugins", ""},
	}
	for _, tc := range tests {
		got := violation(tc.file, tc.imp)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("%s importing %s: got %q, want %q", tc.file, tc.imp, got, tc.want)
		}
		if got != "" && !strings.HasPrefix(got, tc.file+": imports "+tc.imp+", ") {
			t.Errorf("%s importing %s: %q does not name the file and the import", tc.file, tc.imp, got)
		}
	}
}

// TestCheck walks a small tree: test files and testdata are checked; skipped
// directories and nested modules are not.
func TestCheck(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"go.mod":                               "module " + module + "\n",
		"core/a/a.go":                          imports(m("sdk/x"), "fmt"),
		"core/a/a_test.go":                     imports(m("plugins/p")),
		"sdk/s/testdata/main.go":               imports(m("plugins/p"), m("core/a")),
		"plugins/p/p.go":                       imports(m("plugins/p/internal/q"), m("plugins/r")),
		"cmd/c/main.go":                        imports(m("plugins/p"), m("core/a")),
		"bin/sdk/x.go":                         imports(m("core/a")),
		".git/sdk/x.go":                        imports(m("core/a")),
		"sdk/nested/go.mod":                    "module example.com/nested\n",
		"sdk/nested/x.go":                      imports(m("core/a")),
		"sdk/node_modules/x.go":                imports(m("core/a")),
		"sdk/s/README.md":                      "not Go",
		"examples/client/reports/x/x.go":       imports(m("core/a")),
		"examples/client/internal/x/x_test.go": imports(m("examples/client"), m("sdk/x")),
	}
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := check(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"core/a/a_test.go: imports " + m("plugins/p") + ", but core/ may not import plugins/",
		"plugins/p/p.go: imports " + m("plugins/r") + ", but plugins/p/ may not import another plugin",
		"sdk/s/testdata/main.go: imports " + m("core/a") + ", but sdk/ may not import core/",
		"sdk/s/testdata/main.go: imports " + m("plugins/p") + ", but sdk/ may not import plugins/",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCheckReportsUnparsableFiles(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "bad.go"), []byte("package"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := check(root); err == nil || !strings.Contains(err.Error(), "bad.go") {
		t.Fatalf("want an error naming bad.go, got %v", err)
	}
}

// m returns the import path of a package of the module.
func m(pkg string) string { return module + "/" + pkg }

// imports returns a Go file importing paths.
func imports(paths ...string) string {
	var b strings.Builder
	b.WriteString("package x\n\nimport (\n")
	for _, p := range paths {
		b.WriteString("\t_ \"" + p + "\"\n")
	}
	b.WriteString(")\n")
	return b.String()
}
