// Package natstransport is a cluster transport through a NATS server: the
// members of a cluster do not dial each other, they each connect to NATS
// (github.com/nats-io/nats.go) and exchange their calls and snapshots there,
// which serves members that cannot reach each other directly (separate
// networks, NAT, Kubernetes clusters joined by NATS leaf nodes or a
// supercluster).
//
// Calls are NATS requests on per-member subjects (see subject.go): a member
// subscribes only to what is addressed to it. A call, an answer or a
// snapshot chunk larger than the server's max_payload travels in pieces:
// the pieces of a call are published ahead of its last one, those of an
// answer or a snapshot are pulled by the caller one request at a time, so
// the member that sends a snapshot never runs ahead of the one that loads it.
//
// A member's identity is what NATS authenticated: the sender of a message is
// the token of its subject that the NATS server's permissions let only that
// member's user publish (the README has the recipe), never what the message
// says. It is written against sdk alone, like any third party's plugin.
package natstransport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/transport"
)

// Plugin is the transport as a plugin.
var Plugin = transport.Plugin{
	Info: sdk.Info{Name: "natstransport", Version: "1.0.0", Config: sdk.Schema{
		{Key: "servers", Type: sdk.StringList, Required: true,
			Description: "the NATS servers' URLs (nats://host:4222, tls://host:4222); the node connects to one and fails over to the others"},
		{Key: "subject_prefix", Type: sdk.String,
			Description: "the first tokens of every subject the cluster uses (default sextant); the same on every node"},
		{Key: "user", Type: sdk.String, Description: "the NATS user this node connects as (with password)"},
		{Key: "password", Type: sdk.String, Description: "the NATS user's password"},
		{Key: "token", Type: sdk.String, Description: "a NATS authentication token"},
		{Key: "nkey_seed_file", Type: sdk.String, Description: "a file holding this node's NKey seed (SU...)"},
		{Key: "creds_file", Type: sdk.String, Description: "a NATS credentials file (a user JWT and its NKey seed)"},
		{Key: "tls_ca_file", Type: sdk.String,
			Description: "PEM file of the CA certificates the NATS server's certificate must chain to (the server sets it from cluster.tls.ca_file)"},
		{Key: "tls_cert_file", Type: sdk.String,
			Description: "PEM file of this node's client certificate for NATS, with tls_key_file (from cluster.tls.cert_file)"},
		{Key: "tls_key_file", Type: sdk.String, Description: "PEM file of the client certificate's key (from cluster.tls.key_file)"},
		{Key: "request_timeout", Type: sdk.Duration,
			Description: "how long a call without a deadline, or one piece of a snapshot, waits for its answer (default 10s)"},
		{Key: "max_message_size", Type: sdk.Int,
			Description: "the largest call, answer or snapshot chunk, in bytes, whatever the NATS max_payload (default 64 MiB)"},
		{Key: "max_snapshot_size", Type: sdk.Int, Description: "the largest snapshot this node loads, in bytes (default 1 GiB)"},
		{Key: "max_in_flight", Type: sdk.Int,
			Description: "how many calls and snapshots of its peers this node serves at once; more are refused (default 1024)"},
		{Key: "secret", Type: sdk.String,
			Description: "not used: members authenticate to NATS; set so that cluster.secret is refused with a reason"},
	}},
	New: func(config []byte, host transport.Host) (transport.Transport, error) {
		if host.Inbound == nil {
			return nil, errors.New("natstransport: the host offers no Inbound")
		}
		cfg, err := ParseConfig(config)
		if err != nil {
			return nil, err
		}
		return New(cfg, host), nil
	},
}

// Config is the transport's configuration.
type Config struct {
	// Servers are the NATS servers' URLs.
	Servers []string
	// SubjectPrefix starts every subject.
	SubjectPrefix string
	// Auth are the options that authenticate the node to NATS: none, or
	// one of user and password, token, NKey seed or credentials file.
	Auth []nats.Option
	// TLS, when set, is the TLS configuration of the connection to NATS.
	TLS *tls.Config
	// RequestTimeout bounds a call without a deadline, and the wait for each
	// piece of a snapshot.
	RequestTimeout time.Duration
	// MaxMessageSize bounds a call's payload, an answer and a snapshot
	// chunk, in bytes.
	MaxMessageSize int
	// MaxSnapshotSize bounds a snapshot this node loads, in bytes.
	MaxSnapshotSize int64
	// MaxInFlight bounds the calls and snapshots of peers served at once.
	MaxInFlight int
}

// The defaults and bounds of Config.
const (
	DefaultSubjectPrefix   = "sextant"
	DefaultRequestTimeout  = 10 * time.Second
	DefaultMaxMessageSize  = 64 << 20
	DefaultMaxSnapshotSize = 1 << 30
	DefaultMaxInFlight     = 1024

	// MinMessageSize is the least max_message_size.
	MinMessageSize = 1 << 20
	// maxRequestTimeout bounds request_timeout, and the timeout a peer may
	// ask a call be given.
	maxRequestTimeout = 10 * time.Minute
)

// ParseConfig reads the plugin's configuration block (JSON, checked against
// Plugin.Config), checks every value and loads the files it names, and fills
// in the defaults.
func ParseConfig(config []byte) (Config, error) {
	var raw struct {
		Servers         []string            `json:"servers"`
		SubjectPrefix   *string             `json:"subject_prefix"`
		User            *string             `json:"user"`
		Password        *string             `json:"password"`
		Token           *string             `json:"token"`
		NKeySeedFile    *string             `json:"nkey_seed_file"`
		CredsFile       *string             `json:"creds_file"`
		TLSCAFile       string              `json:"tls_ca_file"`
		TLSCertFile     string              `json:"tls_cert_file"`
		TLSKeyFile      string              `json:"tls_key_file"`
		RequestTimeout  *sdk.ConfigDuration `json:"request_timeout"`
		MaxMessageSize  *int                `json:"max_message_size"`
		MaxSnapshotSize *int64              `json:"max_snapshot_size"`
		MaxInFlight     *int                `json:"max_in_flight"`
		Secret          *string             `json:"secret"`
	}
	if len(config) > 0 {
		if err := sdk.DecodeConfig(config, &raw); err != nil {
			return Config{}, fmt.Errorf("natstransport configuration: %w", err)
		}
	}
	cfg := Config{
		SubjectPrefix: DefaultSubjectPrefix, RequestTimeout: DefaultRequestTimeout,
		MaxMessageSize: DefaultMaxMessageSize, MaxSnapshotSize: DefaultMaxSnapshotSize, MaxInFlight: DefaultMaxInFlight,
	}
	var errs []error
	if len(raw.Servers) == 0 {
		errs = append(errs, errors.New("config.servers: list at least one NATS server (nats://host:4222)"))
	}
	for i, s := range raw.Servers {
		if err := checkServer(s); err != nil {
			errs = append(errs, fmt.Errorf("config.servers[%d]: %w", i, err))
		}
	}
	cfg.Servers = raw.Servers
	if raw.SubjectPrefix != nil {
		cfg.SubjectPrefix = *raw.SubjectPrefix
		if err := checkPrefix(cfg.SubjectPrefix); err != nil {
			errs = append(errs, err)
		}
	}
	auth, err := authOptions(raw.User, raw.Password, raw.Token, raw.NKeySeedFile, raw.CredsFile)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Auth = auth
	if cfg.TLS, err = loadTLS(raw.TLSCAFile, raw.TLSCertFile, raw.TLSKeyFile); err != nil {
		errs = append(errs, err)
	}
	if raw.RequestTimeout != nil {
		if cfg.RequestTimeout = time.Duration(*raw.RequestTimeout); cfg.RequestTimeout <= 0 || cfg.RequestTimeout > maxRequestTimeout {
			errs = append(errs, fmt.Errorf("config.request_timeout: must be positive and at most %v, not %v", maxRequestTimeout, cfg.RequestTimeout))
		}
	}
	if raw.MaxMessageSize != nil {
		if cfg.MaxMessageSize = *raw.MaxMessageSize; cfg.MaxMessageSize < MinMessageSize || cfg.MaxMessageSize > sdk.MaxMessageSize {
			errs = append(errs, fmt.Errorf("config.max_message_size: must be from %d to %d bytes, not %d", MinMessageSize, sdk.MaxMessageSize, cfg.MaxMessageSize))
		}
	}
	if raw.MaxSnapshotSize != nil {
		if cfg.MaxSnapshotSize = *raw.MaxSnapshotSize; cfg.MaxSnapshotSize < int64(cfg.MaxMessageSize) {
			errs = append(errs, fmt.Errorf("config.max_snapshot_size: must be at least max_message_size (%d bytes), not %d", cfg.MaxMessageSize, cfg.MaxSnapshotSize))
		}
	}
	if raw.MaxInFlight != nil {
		if cfg.MaxInFlight = *raw.MaxInFlight; cfg.MaxInFlight < 1 || cfg.MaxInFlight > 1<<16 {
			errs = append(errs, fmt.Errorf("config.max_in_flight: must be from 1 to %d, not %d", 1<<16, cfg.MaxInFlight))
		}
	}
	if raw.Secret != nil {
		errs = append(errs, errors.New("config.secret: natstransport takes no shared secret (from cluster.secret): "+
			"members authenticate to the NATS server (user and password, token, nkey_seed_file or creds_file, or a TLS certificate), "+
			"and its permissions say who may send as whom; unset cluster.secret"))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// checkServer checks a NATS server's URL.
func checkServer(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("not a URL: %w", err)
	case u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss":
		return fmt.Errorf("%q: the scheme must be nats, tls, ws or wss (nats://host:4222)", s)
	case u.Hostname() == "":
		return fmt.Errorf("%q names no host", s)
	case u.User != nil:
		return fmt.Errorf("%q holds credentials: give them as user and password, or token", u.Redacted())
	}
	return nil
}

// authOptions checks the credentials and returns the options that present
// them: at most one kind.
func authOptions(user, password, token, seedFile, credsFile *string) ([]nats.Option, error) {
	var kinds []string
	var opts []nats.Option
	var errs []error
	set := func(p *string) bool { return p != nil && *p != "" }
	if set(user) || set(password) {
		kinds = append(kinds, "user")
		if !set(user) || !set(password) {
			errs = append(errs, errors.New("config.user, config.password: set both, or neither"))
		}
		opts = append(opts, nats.UserInfo(deref(user), deref(password)))
	}
	if set(token) {
		kinds = append(kinds, "token")
		opts = append(opts, nats.Token(*token))
	}
	if set(seedFile) {
		kinds = append(kinds, "nkey_seed_file")
		opt, err := nats.NkeyOptionFromSeed(*seedFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("config.nkey_seed_file: %w", err))
		}
		opts = append(opts, opt)
	}
	if set(credsFile) {
		kinds = append(kinds, "creds_file")
		b, err := os.ReadFile(*credsFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("config.creds_file: %w", err))
		case !strings.Contains(string(b), "BEGIN NATS USER JWT") || !strings.Contains(string(b), "BEGIN USER NKEY SEED"):
			errs = append(errs, fmt.Errorf("config.creds_file: %s is not a NATS credentials file (a user JWT and its NKey seed)", *credsFile))
		}
		opts = append(opts, nats.UserCredentials(*credsFile))
	}
	if len(kinds) > 1 {
		errs = append(errs, fmt.Errorf("config: %s: choose one way to authenticate to NATS", strings.Join(kinds, ", ")))
	}
	return opts, errors.Join(errs...)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// loadTLS reads the TLS material for the connection to NATS: the CA
// certificates the server's must chain to, and a client certificate and
// key; nil when none is set.
func loadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("config.tls_ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("config.tls_ca_file: %s holds no PEM certificate", caFile)
		}
	}
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("config.tls_cert_file, config.tls_key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	case certFile != "" || keyFile != "":
		return nil, errors.New("config.tls_cert_file, config.tls_key_file: set both, or neither")
	}
	return c, nil
}
