// Package deploy_test checks the container image's recipe (the Dockerfile
// at the repository's root) without a Docker engine: what it declares
// agrees with the server's defaults and the Kubernetes manifests, and the
// binary it builds — static, with CGO_ENABLED=0 — builds and runs.
package deploy_test

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sextantd/sextant/core/config"
)

// root is the repository's root, from this directory.
const root = ".."

// instructions returns the Dockerfile's instructions, each with its
// continuation lines joined, comments left out.
func instructions(t *testing.T) [][2]string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][2]string
	var line string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") || (text == "" && line == "") {
			continue
		}
		if more, ok := strings.CutSuffix(text, "\\"); ok {
			line += more + " "
			continue
		}
		line += text
		op, args, _ := strings.Cut(line, " ")
		out = append(out, [2]string{strings.ToUpper(op), strings.TrimSpace(args)})
		line = ""
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	var froms, runs []string
	var user, cmd, volume string
	var exposed []int
	for _, in := range instructions(t) {
		switch op, args := in[0], in[1]; op {
		case "FROM":
			froms = append(froms, args)
		case "RUN":
			runs = append(runs, args)
		case "USER":
			user = args
		case "CMD":
			cmd = args
		case "VOLUME":
			volume = args
		case "EXPOSE":
			for p := range strings.FieldsSeq(args) {
				n, err := strconv.Atoi(p)
				if err != nil {
					t.Fatalf("EXPOSE %s", args)
				}
				exposed = append(exposed, n)
			}
		}
	}
	if len(froms) < 2 || !strings.HasPrefix(froms[0], "golang:") {
		t.Errorf("FROM %q: want a golang builder stage and a final stage", froms)
	}
	if final := froms[len(froms)-1]; !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("the final stage is FROM %s, want distroless static or scratch", final)
	}
	build := slices.IndexFunc(runs, func(r string) bool { return strings.Contains(r, "go build") })
	if build < 0 || !strings.Contains(runs[build], "CGO_ENABLED=0") || !strings.Contains(runs[build], "./cmd/sextant") {
		t.Errorf("no RUN builds ./cmd/sextant with CGO_ENABLED=0: %q", runs)
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %q: want a numeric non-root user (Kubernetes' runAsNonRoot checks it)", user)
	} else {
		sts, err := os.ReadFile(filepath.Join("kubernetes", "statefulset.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^\s*runAsUser: ` + uid + `$`).Match(sts) {
			t.Errorf("the StatefulSet does not run as the image's user %s", uid)
		}
	}
	cfg := config.Default()
	for _, port := range []int{cfg.Port, cfg.GRPCPort(), cfg.ClusterPort()} {
		if !slices.Contains(exposed, port) {
			t.Errorf("EXPOSE %v lacks the default port %d", exposed, port)
		}
	}
	if !strings.Contains(cmd, `"server"`) || !strings.Contains(cmd, `"--data-dir"`) || !strings.Contains(volume, "/data") ||
		!strings.Contains(cmd, `"/data"`) {
		t.Errorf("CMD %s with VOLUME %s: want server with its data_dir on the volume", cmd, volume)
	}
}

func TestDockerignoreKeepsTheSources(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	needed := []string{"go.mod", "go.sum", "cmd", "core", "sdk", "plugins", "proto"}
	for line := range strings.Lines(string(text)) {
		pattern := strings.TrimSpace(line)
		if pattern == "" || strings.HasPrefix(pattern, "#") {
			continue
		}
		for _, n := range needed {
			if ok, _ := filepath.Match(pattern, n); ok {
				t.Errorf(".dockerignore: %q leaves out %s, which the build needs", pattern, n)
			}
		}
	}
}

// TestStaticBinary builds the server as the Dockerfile does and checks that
// it is static and runs.
func TestStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the image is linux")
	}
	bin := filepath.Join(t.TempDir(), "sextant")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=image-test", "-o", bin, "./cmd/sextant")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./cmd/sextant: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader; distroless static has none")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "sextant image-test ") {
		t.Errorf("sextant version: %v: %s", err, out)
	}
	out, err = exec.Command(bin, "help").CombinedOutput()
	if err != nil || !regexp.MustCompile(`membership: [^;]*\bdns\b`).Match(out) {
		t.Errorf("sextant help does not list the dns membership plugin the manifests use: %v: %s", err, out)
	}
}
