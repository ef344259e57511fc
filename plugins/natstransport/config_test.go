package natstransport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// seed is an NKey user seed for the tests, and its public key.
const (
	seed     = "SUADXGOJIL4GBCTUAX7TYI2P264CNQGEBT7BDPR2PAQULH4SD4PVMB3XVU"
	seedUser = "UBO4JZHYMVJUHSMRS3WXJW7Q6GBHY673PNOK4RMNONPTDVKVHBZ52Q4W"
)

// writeFile writes body into a file of dir and returns its path.
func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// selfSigned writes a self-signed certificate and its key, and returns
// their files.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "natstransport test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
		writeFile(t, dir, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
}

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	seedFile := writeFile(t, dir, "seed.nk", seed+"\n")
	badSeed := writeFile(t, dir, "bad.nk", "not a seed\n")
	creds := writeFile(t, dir, "user.creds", "-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n"+seed+"\n------END USER NKEY SEED------\n")
	servers := []any{"nats://127.0.0.1:4222", "tls://nats.example:4443"}

	cfg, err := ParseConfig([]byte(`{"servers":["nats://127.0.0.1:4222"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SubjectPrefix != DefaultSubjectPrefix || cfg.RequestTimeout != DefaultRequestTimeout || cfg.MaxMessageSize != DefaultMaxMessageSize ||
		cfg.MaxSnapshotSize != DefaultMaxSnapshotSize || cfg.MaxInFlight != DefaultMaxInFlight || cfg.TLS != nil || len(cfg.Auth) != 0 {
		t.Errorf("the defaults: %+v", cfg)
	}

	for _, ok := range []map[string]any{
		{"servers": servers, "subject_prefix": "prod.sextant", "request_timeout": "2s", "max_message_size": 1 << 20,
			"max_snapshot_size": 1 << 20, "max_in_flight": 1},
		{"servers": servers, "user": "node1", "password": "pw"},
		{"servers": servers, "token": "tok"},
		{"servers": servers, "nkey_seed_file": seedFile},
		{"servers": servers, "creds_file": creds},
		{"servers": servers, "tls_ca_file": certFile},
		{"servers": servers, "tls_ca_file": certFile, "tls_cert_file": certFile, "tls_key_file": keyFile},
		{"servers": []any{"ws://nats.example:8080", "wss://nats.example"}},
	} {
		raw, _ := json.Marshal(ok)
		if _, err := ParseConfig(raw); err != nil {
			t.Errorf("ParseConfig(%s): %v", raw, err)
		}
	}

	for _, tc := range []struct {
		block map[string]any
		want  string
	}{
		{map[string]any{}, "config.servers: list at least one"},
		{map[string]any{"servers": []any{"127.0.0.1:4222"}}, "config.servers[0]"},
		{map[string]any{"servers": []any{"http://127.0.0.1:4222"}}, "the scheme must be nats"},
		{map[string]any{"servers": []any{"nats://"}}, "names no host"},
		{map[string]any{"servers": []any{"nats://u:p@host:4222"}}, "holds credentials"},
		{map[string]any{"servers": servers, "subject_prefix": "a.*"}, "config.subject_prefix"},
		{map[string]any{"servers": servers, "subject_prefix": ""}, "config.subject_prefix: must not be empty"},
		{map[string]any{"servers": servers, "user": "node1"}, "config.user, config.password: set both"},
		{map[string]any{"servers": servers, "password": "pw"}, "config.user, config.password: set both"},
		{map[string]any{"servers": servers, "user": "u", "password": "p", "token": "t"}, "user, token: choose one"},
		{map[string]any{"servers": servers, "nkey_seed_file": filepath.Join(dir, "missing")}, "config.nkey_seed_file"},
		{map[string]any{"servers": servers, "nkey_seed_file": badSeed}, "config.nkey_seed_file"},
		{map[string]any{"servers": servers, "creds_file": seedFile}, "is not a NATS credentials file"},
		{map[string]any{"servers": servers, "creds_file": filepath.Join(dir, "missing")}, "config.creds_file"},
		{map[string]any{"servers": servers, "tls_ca_file": keyFile}, "config.tls_ca_file"},
		{map[string]any{"servers": servers, "tls_cert_file": certFile}, "config.tls_cert_file, config.tls_key_file: set both"},
		{map[string]any{"servers": servers, "tls_cert_file": certFile, "tls_key_file": certFile}, "config.tls_cert_file, config.tls_key_file"},
		{map[string]any{"servers": servers, "request_timeout": "0s"}, "config.request_timeout"},
		{map[string]any{"servers": servers, "request_timeout": "11m"}, "config.request_timeout"},
		{map[string]any{"servers": servers, "max_message_size": 1000}, "config.max_message_size"},
		{map[string]any{"servers": servers, "max_message_size": 1 << 30}, "config.max_message_size"},
		{map[string]any{"servers": servers, "max_snapshot_size": 1000}, "config.max_snapshot_size"},
		{map[string]any{"servers": servers, "max_in_flight": 0}, "config.max_in_flight"},
		{map[string]any{"servers": servers, "secret": strings.Repeat("s", 32)}, "config.secret: natstransport takes no shared secret"},
		{map[string]any{"servers": servers, "unknown": 1}, "unknown field"},
	} {
		raw, _ := json.Marshal(tc.block)
		if _, err := ParseConfig(raw); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%s) = %v, want an error with %q", raw, err, tc.want)
		}
	}
}

func TestSchemaChecksTheBlock(t *testing.T) {
	if err := Plugin.Config.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := Plugin.Config.Check(map[string]any{"servers": []any{"nats://127.0.0.1:4222"}, "max_in_flight": 10, "request_timeout": "1s"}); err != nil {
		t.Error(err)
	}
	if _, err := Plugin.Config.Check(map[string]any{}); err == nil || !strings.Contains(err.Error(), "config.servers: required") {
		t.Errorf("a block without servers: %v", err)
	}
}
