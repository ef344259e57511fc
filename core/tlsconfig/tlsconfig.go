// Package tlsconfig loads a server's TLS certificate, its key and, for
// mutual TLS, the CA certificates client certificates must chain to, and
// keeps them current. The files are read again when they change (polled) or
// when Reload is called (on SIGHUP). Every new handshake uses the set loaded
// last; connections already open keep the one they were made with. A new set
// that does not load is logged and the previous one kept.
package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultPollInterval is how often the files are checked for changes when
// Config.PollInterval is 0.
const DefaultPollInterval = 2 * time.Second

// Files names the PEM files of a set.
type Files struct {
	CertFile string // the certificate chain, leaf first
	KeyFile  string // the leaf's private key
	// ClientCAFile holds the CA certificates a client's certificate must
	// chain to; set, clients must present one. "" asks for none.
	ClientCAFile string
}

// Config configures a Reloader.
type Config struct {
	Files
	// PollInterval is how often the files' modification times and sizes are
	// checked; a change loads the set again. 0 means DefaultPollInterval,
	// negative no polling (Reload only).
	PollInterval time.Duration
	Logger       hclog.Logger
	Metrics      prometheus.Registerer // nil: none
}

// Reloader holds the current set and serves it to TLS handshakes.
type Reloader struct {
	cfg     Config
	log     hclog.Logger
	current atomic.Pointer[loaded]

	mu     sync.Mutex // one load at a time
	stamps []stamp    // the files as the last load found them; under mu

	reloads *prometheus.CounterVec // nil without Config.Metrics

	stop chan struct{}
	done chan struct{}
}

// loaded is one set, as handshakes use it.
type loaded struct {
	config *tls.Config // Certificates, ClientCAs and ClientAuth; never modified
	leaf   *x509.Certificate
}

// stamp is what polling compares to notice that a file changed.
type stamp struct {
	modTime time.Time
	size    int64
	err     string
}

// New loads the set and returns a Reloader serving it. It fails if a file
// cannot be read or does not hold what it should; the error names the file.
func New(cfg Config) (*Reloader, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("a certificate file and a key file are both required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	r := &Reloader{cfg: cfg, log: cfg.Logger}
	r.stamps = r.stat()
	l, err := r.load()
	if err != nil {
		return nil, err
	}
	r.current.Store(l)
	r.logLoaded("TLS certificate loaded", l)
	if cfg.Metrics != nil {
		r.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_tls_reloads_total",
			Help: "Loads of the TLS certificate, key and client CA after start-up (file changes, SIGHUP), by result (ok, failed: the previous set is kept).",
		}, []string{"result"})
		r.reloads.WithLabelValues("ok")
		r.reloads.WithLabelValues("failed")
		cfg.Metrics.MustRegister(r.reloads, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_tls_certificate_expiry_timestamp_seconds",
			Help: "When the TLS certificate in use expires (its NotAfter), in Unix seconds.",
		}, func() float64 { return float64(r.current.Load().leaf.NotAfter.Unix()) }))
	}
	return r, nil
}

// ServerConfig returns a server configuration whose every handshake uses the
// set current then, offering nextProtos by ALPN (such as "h2" and
// "http/1.1"; grpc-go adds "h2" itself).
func (r *Reloader) ServerConfig(nextProtos ...string) *tls.Config {
	nextProtos = slices.Clone(nextProtos)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := r.current.Load().config.Clone()
			c.NextProtos = nextProtos
			return c, nil
		},
	}
}

// Leaf returns the certificate in use.
func (r *Reloader) Leaf() *x509.Certificate { return r.current.Load().leaf }

// Reload reads the files again now, whether they changed or not. If the new
// set does not load, the error is logged and returned, and the current set
// stays in use.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stamps = r.stat()
	return r.reload()
}

// reload loads the set and makes it current, or logs why not. Under mu.
func (r *Reloader) reload() error {
	l, err := r.load()
	if err != nil {
		r.count("failed")
		r.log.Error("TLS certificate reload failed; keeping the one in use", "error", err,
			"serial", r.Leaf().SerialNumber.String(), "not_after", r.Leaf().NotAfter)
		return err
	}
	r.current.Store(l)
	r.count("ok")
	r.logLoaded("TLS certificate reloaded", l)
	return nil
}

func (r *Reloader) count(result string) {
	if r.reloads != nil {
		r.reloads.WithLabelValues(result).Inc()
	}
}

// Start polls the files for changes until Stop.
func (r *Reloader) Start(context.Context) error {
	if r.cfg.PollInterval < 0 {
		return nil
	}
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.poll()
	return nil
}

// Stop ends polling.
func (r *Reloader) Stop(ctx context.Context) error {
	if r.stop == nil {
		return nil
	}
	close(r.stop)
	select {
	case <-r.done:
		r.stop = nil
		return nil
	case <-ctx.Done():
		return fmt.Errorf("TLS certificate polling: %w", ctx.Err())
	}
}

func (r *Reloader) poll() {
	defer close(r.done)
	ticker := time.NewTicker(r.cfg.PollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-ticker.C:
			r.checkFiles()
		}
	}
}

// checkFiles loads the set again if a file changed since the last load. A
// set that fails is tried again only when a file changes again (a rotation
// that writes the certificate and the key one after the other succeeds once
// both are written).
func (r *Reloader) checkFiles() {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps := r.stat()
	if slices.Equal(stamps, r.stamps) {
		return
	}
	r.stamps = stamps
	_ = r.reload()
}

// paths are the files of the set, in a fixed order.
func (r *Reloader) paths() []string {
	paths := []string{r.cfg.CertFile, r.cfg.KeyFile}
	if r.cfg.ClientCAFile != "" {
		paths = append(paths, r.cfg.ClientCAFile)
	}
	return paths
}

// stat stamps each file. It runs before the files are read, so a change made
// while they are read is noticed by the next poll.
func (r *Reloader) stat() []stamp {
	var stamps []stamp
	for _, p := range r.paths() {
		fi, err := os.Stat(p) // follows symbolic links, as Kubernetes mounts rotate them
		if err != nil {
			stamps = append(stamps, stamp{err: err.Error()})
			continue
		}
		stamps = append(stamps, stamp{modTime: fi.ModTime(), size: fi.Size()})
	}
	return stamps
}

// load reads and checks the files.
func (r *Reloader) load() (*loaded, error) {
	certPEM, err := os.ReadFile(r.cfg.CertFile)
	if err != nil {
		return nil, fmt.Errorf("reading the certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(r.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("reading the key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate %s with key %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", r.cfg.CertFile, err)
		}
	}
	config := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if r.cfg.ClientCAFile != "" {
		caPEM, err := os.ReadFile(r.cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading the client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("client CA %s: no PEM certificate in it", r.cfg.ClientCAFile)
		}
		config.ClientCAs, config.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return &loaded{config: config, leaf: leaf}, nil
}

func (r *Reloader) logLoaded(msg string, l *loaded) {
	now := time.Now()
	args := []any{"file", r.cfg.CertFile, "subject", l.leaf.Subject.String(), "serial", l.leaf.SerialNumber.String(),
		"not_after", l.leaf.NotAfter, "client_certificates", l.config.ClientAuth == tls.RequireAndVerifyClientCert}
	switch {
	case now.After(l.leaf.NotAfter):
		r.log.Warn(msg+", but it has expired", args...)
	case now.Before(l.leaf.NotBefore):
		r.log.Warn(msg+", but it is not valid yet", args...)
	default:
		r.log.Info(msg, args...)
	}
}
