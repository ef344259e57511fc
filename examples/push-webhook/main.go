// Command push-webhook is a Sextant push plugin: it POSTs every change of the
// services it watches to a URL, as JSON. It is an example of a third party's
// plugin, importing nothing of Sextant but its SDK; see README.md.
package main

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"time"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/push"
)

func main() { push.Serve(Plugin) }

// Plugin is the webhook as a push plugin of the spi role.
var Plugin = push.Plugin{
	Info: sdk.Info{
		Name:    "push-webhook",
		Version: "1.0.0",
		Config: sdk.Schema{
			{Key: "url", Type: sdk.String, Required: true, Description: "the http(s) URL each change is POSTed to"},
			{Key: "timeout", Type: sdk.Duration, Description: "the longest one POST may take (default 2s)"},
			{Key: "retries", Type: sdk.Int, Description: "how many times a failed POST is tried again (default 2)"},
			{Key: "namespaces", Type: sdk.StringList, Description: "the namespaces watched (default: all)"},
			{Key: "groups", Type: sdk.StringList, Description: "the groups watched (default: all)"},
			{Key: "services", Type: sdk.StringList, Description: "patterns of the services watched, e.g. order-* (path.Match; default: all)"},
		},
	},
	Role: push.RoleSPI,
	New: func(raw []byte, _ push.Host) (push.Executor, error) {
		cfg, err := parseConfig(raw)
		if err != nil {
			return nil, err
		}
		return newWebhook(cfg), nil
	},
}

// config is the plugin's configuration block.
type config struct {
	URL        string             `json:"url"`
	Timeout    sdk.ConfigDuration `json:"timeout"`
	Retries    int                `json:"retries"`
	Namespaces []string           `json:"namespaces"`
	Groups     []string           `json:"groups"`
	Services   []string           `json:"services"`
}

// parseConfig decodes the block the host checked against the schema, fills
// in the defaults and checks what the schema cannot.
func parseConfig(raw []byte) (config, error) {
	cfg := config{Timeout: sdk.ConfigDuration(2 * time.Second), Retries: 2}
	if err := sdk.DecodeConfig(raw, &cfg); err != nil {
		return cfg, err
	}
	var errs []error
	if u, err := url.Parse(cfg.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("config.url: %q is not an http or https URL", cfg.URL))
	}
	if cfg.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("config.timeout: %v is not positive", time.Duration(cfg.Timeout)))
	}
	if cfg.Retries < 0 {
		errs = append(errs, fmt.Errorf("config.retries: %d is negative", cfg.Retries))
	}
	for _, p := range cfg.Services {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("config.services: %q: %w", p, err))
		}
	}
	return cfg, errors.Join(errs...)
}
