// Package clusterfile is the membership provider that reads a Nacos
// cluster.conf: one ip[:port] per line (or several, separated by commas),
// '#' comments, blank lines ignored. It reads the file every interval while
// the node runs and reports the list whenever it changes; a file that goes
// missing or cannot be read keeps the last good list. It is written against
// sdk alone, like any third party's plugin.
package clusterfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
)

// DefaultInterval is how often the file is read when the configuration does
// not say.
const DefaultInterval = time.Second

// MaxSize bounds the file: a cluster.conf is a few lines; a path to
// something else must not eat the node's memory.
const MaxSize = 1 << 20

// Plugin is the provider as a membership plugin, named "file".
var Plugin = membership.Plugin{
	Info: sdk.Info{
		Name:    "file",
		Version: "1.0.0",
		Config: sdk.Schema{
			{Key: "path", Type: sdk.String, Required: true, Description: "the cluster.conf file: one ip[:port] per line " +
				"(a bare ip means this node's port), # comments; it must be readable at start, and is read again " +
				"every interval; a relative path is relative to the server's working directory"},
			{Key: "interval", Type: sdk.Duration, Description: "how often the file is read for changes (default 1s)"},
		},
	},
	New: func(raw []byte, host membership.Host) (membership.Provider, error) {
		cfg := Config{Interval: sdk.ConfigDuration(DefaultInterval)}
		if len(bytes.TrimSpace(raw)) == 0 {
			raw = []byte("{}")
		}
		if err := sdk.DecodeConfig(raw, &cfg); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		return New(cfg, host.Logger)
	},
}

// Config is the plugin's configuration block.
type Config struct {
	Path     string             `json:"path"`
	Interval sdk.ConfigDuration `json:"interval"`
}

// New returns the provider of the file cfg names, which must be readable
// now: a typo in the path is better found at start than as a cluster of one.
func New(cfg Config, logger hclog.Logger) (*membership.Poller, error) {
	if cfg.Path == "" {
		return nil, errors.New("config.path: required: the path of the cluster.conf file")
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("config.path: %w", err)
	}
	if _, err := readFile(path); err != nil {
		return nil, fmt.Errorf("config.path: %w", err)
	}
	if cfg.Interval <= 0 {
		return nil, fmt.Errorf("config.interval: %v is not positive", time.Duration(cfg.Interval))
	}
	return &membership.Poller{
		Read:     func(context.Context) ([]byte, error) { return readFile(path) },
		Interval: time.Duration(cfg.Interval),
		Source:   path,
		Logger:   logger,
	}, nil
}

// readFile reads the file at path, up to MaxSize.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a cluster.conf", path, MaxSize)
	}
	return b, nil
}
