package suite

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sextantd/sextant/cmd/internal/sextantproc"
)

// server is a sextant process the suite started, with a data directory of
// its own.
type server struct {
	*sextantproc.Process
	dataDir string
}

// startServer runs "bin server" on free ports with env added to this
// process's environment and, when config is set, that YAML as its
// configuration file; it waits until the server reports ready.
func startServer(bin string, env []string, config string) (*server, error) {
	dataDir, err := os.MkdirTemp("", "sextant-bench-data")
	if err != nil {
		return nil, err
	}
	opts := sextantproc.Options{DataDir: dataDir, Env: env}
	if config != "" {
		path := filepath.Join(dataDir, "sextant.yaml")
		if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
			os.RemoveAll(dataDir)
			return nil, err
		}
		opts.Args = []string{"--config", path}
	}
	p, err := sextantproc.Start(bin, opts)
	if err != nil {
		os.RemoveAll(dataDir)
		return nil, err
	}
	return &server{Process: p, dataDir: dataDir}, nil
}

// stop stops the server and removes its data; it returns how the server
// ended.
func (s *server) stop() error {
	defer os.RemoveAll(s.dataDir)
	return s.Stop()
}

// serverVersion runs "bin version".
func serverVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
