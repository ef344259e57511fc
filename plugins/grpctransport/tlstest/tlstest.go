// Package tlstest makes throwaway certificate authorities and node
// certificates for tests of grpctransport's mutual TLS: a node's certificate
// names its address in a URI SAN, sextant://host:port, and serves as both a
// server's and a client's certificate. Keys are ECDSA P-256, certificates
// valid for a day; nothing is meant to outlive the test.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// uriScheme is grpctransport.URIScheme (imported, it would keep the
// package's own tests from using this one).
const uriScheme = "sextant"

// CA is a certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA's certificate, PEM-encoded.
	PEM []byte
}

// NewCA returns a new self-signed CA named name.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &CA{Cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Node returns a certificate the CA signs naming each of addresses
// (host:port) in a URI SAN sextant://host:port, and its key, PEM-encoded.
func (ca *CA) Node(tb testing.TB, addresses ...string) (certPEM, keyPEM []byte) {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: "sextant node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if len(addresses) > 0 {
		tmpl.Subject.CommonName = addresses[0]
	}
	for _, a := range addresses {
		tmpl.URIs = append(tmpl.URIs, &url.URL{Scheme: uriScheme, Host: a})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// TLS returns a node's TLS material, as grpctransport.TLS holds it: a
// certificate of ca naming addresses, and a pool of the CAs trusted (ca
// itself if none is given).
func (ca *CA) TLS(tb testing.TB, addresses []string, trusted ...*CA) (tls.Certificate, *x509.CertPool) {
	tb.Helper()
	certPEM, keyPEM := ca.Node(tb, addresses...)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	return cert, pool(ca, trusted)
}

// Files writes a node's TLS material into dir as PEM files named after
// name: the certificates of the CAs trusted (ca itself if none is given),
// and a certificate of ca naming addresses with its key. It returns the
// three paths, as the tls_* keys take them.
func (ca *CA) Files(tb testing.TB, dir, name string, addresses []string, trusted ...*CA) (caFile, certFile, keyFile string) {
	tb.Helper()
	if len(trusted) == 0 {
		trusted = []*CA{ca}
	}
	var bundle []byte
	for _, c := range trusted {
		bundle = append(bundle, c.PEM...)
	}
	certPEM, keyPEM := ca.Node(tb, addresses...)
	caFile, certFile, keyFile = filepath.Join(dir, name+"-ca.pem"), filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	for path, data := range map[string][]byte{caFile: bundle, certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

func pool(ca *CA, trusted []*CA) *x509.CertPool {
	if len(trusted) == 0 {
		trusted = []*CA{ca}
	}
	p := x509.NewCertPool()
	for _, c := range trusted {
		p.AddCert(c.Cert)
	}
	return p
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
