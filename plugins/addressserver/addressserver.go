// Package addressserver is the membership provider that asks an address
// server, as Nacos's address-server lookup does: it GETs a URL (Nacos's
// convention: http://host:8080/nacos/serverlist) every interval, whose answer
// is the member list in the cluster.conf format — one ip[:port] per line.
// Whatever goes wrong (no answer in time, a non-2xx status, an empty list)
// keeps the last good list, and is logged. It is written against sdk alone,
// like any third party's plugin.
package addressserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/membership"
)

// The defaults of the configuration, as in Nacos.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 3 * time.Second
)

// MaxSize bounds an answer.
const MaxSize = 1 << 20

// Plugin is the provider as a membership plugin, named "address-server".
var Plugin = membership.Plugin{
	Info: sdk.Info{
		Name:    "address-server",
		Version: "1.0.0",
		Config: sdk.Schema{
			{Key: "url", Type: sdk.String, Required: true, Description: "the http(s) URL that answers a GET with the " +
				"member list, one ip[:port] per line (a bare ip means this node's port), e.g. " +
				"http://address-server:8080/nacos/serverlist"},
			{Key: "interval", Type: sdk.Duration, Description: "how often the list is fetched (default 5s)"},
			{Key: "timeout", Type: sdk.Duration, Description: "the longest one fetch may take (default 3s)"},
		},
	},
	New: func(raw []byte, host membership.Host) (membership.Provider, error) {
		cfg := Config{Interval: sdk.ConfigDuration(DefaultInterval), Timeout: sdk.ConfigDuration(DefaultTimeout)}
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
	URL      string             `json:"url"`
	Interval sdk.ConfigDuration `json:"interval"`
	Timeout  sdk.ConfigDuration `json:"timeout"`
}

// Provider polls an address server.
type Provider struct {
	poller    membership.Poller
	transport *http.Transport
}

// New returns the provider of the address server cfg names. It does not ask
// the server yet: the first Watch does.
func New(cfg Config, logger hclog.Logger) (*Provider, error) {
	var errs []error
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("config.url: %q is not an http or https URL", cfg.URL))
	}
	if cfg.Interval <= 0 {
		errs = append(errs, fmt.Errorf("config.interval: %v is not positive", time.Duration(cfg.Interval)))
	}
	if cfg.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("config.timeout: %v is not positive", time.Duration(cfg.Timeout)))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := &Provider{transport: http.DefaultTransport.(*http.Transport).Clone()}
	f := &fetcher{url: u.String(), shown: u.Redacted(), timeout: time.Duration(cfg.Timeout), client: &http.Client{Transport: p.transport}}
	p.poller = membership.Poller{Read: f.fetch, Interval: time.Duration(cfg.Interval), Source: f.shown, Logger: logger}
	return p, nil
}

// Watch implements membership.Provider (see membership.Poller).
func (p *Provider) Watch(ctx context.Context, self string, update func(members []string)) error {
	defer p.transport.CloseIdleConnections()
	return p.poller.Watch(ctx, self, update)
}

type fetcher struct {
	url     string
	shown   string // url without its password, for messages
	timeout time.Duration
	client  *http.Client
}

// fetch GETs the list: the body of a 2xx answer within the timeout.
func (f *fetcher) fetch(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, f.failure(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // so that the connection is reused
		return nil, fmt.Errorf("GET %s: %s", f.shown, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxSize+1))
	if err != nil {
		return nil, f.failure(ctx, err)
	}
	if len(body) > MaxSize {
		return nil, fmt.Errorf("GET %s: the answer is larger than %d bytes", f.shown, MaxSize)
	}
	return body, nil
}

func (f *fetcher) failure(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("GET %s: no answer within %v", f.shown, f.timeout)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // its message repeats the URL, with the password
	}
	return fmt.Errorf("GET %s: %w", f.shown, err)
}
