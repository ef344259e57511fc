// Command importcheck enforces the layout's import rules over every .go file
// of the repository, test files and testdata plugin mains included. By the
// top-level folder of the importing file, the module's packages it may import
// (libraries are always allowed) are:
//
//	core/      core/, sdk/, proto/           (core never imports plugins)
//	sdk/       sdk/, proto/                  (sdk never imports core)
//	plugins/   sdk/, proto/, its own plugin  (written only against sdk, like a third party's)
//	examples/  sdk/, proto/, its own example
//	proto/     proto/
//	cmd/       anything
//
// "Its own plugin" means plugins/X/... may import plugins/X/... but no other
// plugins/Y; the same holds for examples/X. Nested modules (a directory with
// its own go.mod) and the .git, bin, reports and node_modules directories are
// skipped.
//
//	go run ./cmd/internal/importcheck [-root DIR]
//
// It prints one line per violation, sorted, and exits 1 if there are any.
package main

import (
	"flag"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const module = "github.com/sextantd/sextant"

// allowed maps a top-level folder to the top-level folders of the module its
// files may import. Folders not listed (cmd/) may import anything.
var allowed = map[string][]string{
	"core":     {"core", "sdk", "proto"},
	"sdk":      {"sdk", "proto"},
	"plugins":  {"plugins", "sdk", "proto"},
	"examples": {"examples", "sdk", "proto"},
	"proto":    {"proto"},
}

// units are the folders whose subfolders are independent of one another:
// a plugin or an example may import only its own packages there.
var units = map[string]string{"plugins": "plugin", "examples": "example"}

// skipped are directories never searched.
var skipped = map[string]bool{".git": true, "bin": true, "reports": true, "node_modules": true}

func main() {
	root := flag.String("root", ".", "the repository's root directory")
	flag.Parse()
	violations, err := check(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "importcheck:", err)
		os.Exit(2)
	}
	for _, v := range violations {
		fmt.Println(v)
	}
	if len(violations) > 0 {
		os.Exit(1)
	}
}

// check returns the violations of every .go file under root, sorted.
func check(root string) ([]string, error) {
	var violations []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == root {
				return nil
			}
			if skipped[d.Name()] {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		for _, spec := range f.Imports {
			imp, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: %v", p, err)
			}
			if v := violation(filepath.ToSlash(rel), imp); v != "" {
				violations = append(violations, v)
			}
		}
		return nil
	})
	slices.Sort(violations)
	return violations, err
}

// violation describes how file (slash-separated, relative to the root)
// breaks the rules by importing imp, or returns "" if it does not.
func violation(file, imp string) string {
	target, ok := strings.CutPrefix(imp, module+"/")
	if !ok {
		return "" // a library
	}
	from, to := strings.Split(path.Dir(file), "/"), strings.Split(target, "/")
	rules, ok := allowed[from[0]]
	switch {
	case !ok:
		return ""
	case !slices.Contains(rules, to[0]):
		return fmt.Sprintf("%s: imports %s, but %s/ may not import %s/", file, imp, from[0], to[0])
	case units[from[0]] != "" && from[0] == to[0] && (len(from) < 2 || len(to) < 2 || from[1] != to[1]):
		own := strings.Join(from[:min(len(from), 2)], "/")
		return fmt.Sprintf("%s: imports %s, but %s/ may not import another %s", file, imp, own, units[from[0]])
	}
	return ""
}
