package grpctransport

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	peerv1 "github.com/sextantd/sextant/proto/grpctransport/v1"
)

// How peers prove who they are. With TLS, a node's identity is the address
// its certificate names in a URI SAN, sextant://host:port (its HTTP address,
// as member lists write it); a caller's claimed from must be one of them.
// With a secret, a caller proves it knows the secret when it opens a stream:
// it asks the peer for a challenge, good once and for challengeTTL, and
// sends HMAC-SHA256(secret, proofLabel, method, from, challenge) with it.
const (
	// URIScheme is the scheme of the URI SANs that name a node.
	URIScheme = "sextant"
	// MinSecretLength is the least length of a secret, in bytes.
	MinSecretLength = 32

	challengeKey = "sextant-challenge-bin"
	proofKey     = "sextant-proof-bin"
	proofLabel   = "sextant-grpctransport-v1"
	challengeTTL = 30 * time.Second
	// A challenge: its time of issue (unix nanoseconds, 8 bytes), 16 random
	// bytes, and a MAC of both under the node's own key (16 bytes).
	challengeSize = 8 + 16 + 16
)

// TLS is a node's material for mutual TLS with its peers.
type TLS struct {
	// Certificate is the node's certificate chain and key. Its leaf names
	// the node's address in a URI SAN, sextant://host:port, and serves both
	// as a server's and as a client's certificate.
	Certificate tls.Certificate
	// CAs are the certificate authorities the peers' certificates must
	// chain to.
	CAs *x509.CertPool
}

// LoadTLS reads a node's TLS material from PEM files: the CA
// certificates, the node's certificate chain (leaf first) and its key.
func LoadTLS(caFile, certFile, keyFile string) (*TLS, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("config.tls_ca_file: %w", err)
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("config.tls_ca_file: %s holds no PEM certificate", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("config.tls_cert_file, config.tls_key_file: %w", err)
	}
	if _, err := leaf(cert); err != nil {
		return nil, fmt.Errorf("config.tls_cert_file: %w", err)
	}
	return &TLS{Certificate: cert, CAs: cas}, nil
}

// leaf returns the parsed leaf of cert.
func leaf(cert tls.Certificate) (*x509.Certificate, error) {
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("no certificate")
	}
	return x509.ParseCertificate(cert.Certificate[0])
}

// Identities returns the node addresses cert names: the host:port of each
// URI SAN sextant://host:port.
func Identities(cert *x509.Certificate) []string {
	var ids []string
	for _, u := range cert.URIs {
		if id, ok := identity(u); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

func identity(u *url.URL) (string, bool) {
	if u.Scheme != URIScheme || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	return u.Host, true
}

// checkOwnCertificate fails unless the node's certificate names self: its
// peers would refuse it.
func (c *TLS) checkOwnCertificate(self string) error {
	l, err := leaf(c.Certificate)
	if err != nil {
		return fmt.Errorf("grpctransport: this node's certificate: %w", err)
	}
	ids := Identities(l)
	for _, id := range ids {
		if id == self {
			return nil
		}
	}
	if len(ids) == 0 {
		return fmt.Errorf("grpctransport: this node's certificate names no node (it needs the URI SAN %s://%s, this node's address)", URIScheme, self)
	}
	return fmt.Errorf("grpctransport: this node's certificate names %s, not this node's address %s: its peers would refuse it (add the URI SAN %s://%s, or set cluster.self)",
		strings.Join(ids, ", "), self, URIScheme, self)
}

// serverCredentials verify the callers' certificates against the CAs.
func (c *TLS) serverCredentials() credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.Certificate},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.CAs,
	})
}

// clientCredentials verify a peer's certificate against the CAs, and that
// it names a node. Peers are named by URI SANs, which Go's host name check
// does not read, so the chain is verified here instead. Any node of the
// cluster may answer for any address: the members trust each other alike.
func (c *TLS) clientCredentials() credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{c.Certificate},
		InsecureSkipVerify: true, // VerifyConnection verifies the chain
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("grpctransport: the peer sent no certificate")
			}
			intermediates := x509.NewCertPool()
			for _, cert := range cs.PeerCertificates[1:] {
				intermediates.AddCert(cert)
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{
				Roots: c.CAs, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err != nil {
				return fmt.Errorf("grpctransport: the peer's certificate: %w", err)
			}
			if len(Identities(leaf)) == 0 {
				return fmt.Errorf("grpctransport: the peer's certificate names no node (no URI SAN %s://host:port)", URIScheme)
			}
			return nil
		},
	})
}

// certifiedFrom checks that the verified certificate of the caller on ctx
// names from, and returns from as the certificate writes it.
func certifiedFrom(ctx context.Context, from string) (string, error) {
	p, ok := grpcpeer.FromContext(ctx)
	if !ok {
		return "", errors.New("no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return "", errors.New("the caller presented no verified certificate")
	}
	ids := Identities(info.State.VerifiedChains[0][0])
	for _, id := range ids {
		if id == from {
			return id, nil
		}
	}
	if len(ids) == 0 {
		return "", fmt.Errorf("the caller says it is %s, but its certificate names no node", from)
	}
	return "", fmt.Errorf("the caller says it is %s, but its certificate names %s", from, strings.Join(ids, ", "))
}

// challenges issues challenges, and takes each back once.
type challenges struct {
	key []byte // the node's own key, which signs its challenges

	mu     sync.Mutex
	used   map[[16]byte]time.Time // the nonces of the challenges taken back, and when they were issued
	pruned time.Time
}

func newChallenges() *challenges {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails
	return &challenges{key: key, used: map[[16]byte]time.Time{}}
}

// issue returns a fresh challenge.
func (c *challenges) issue() []byte {
	b := make([]byte, 0, challengeSize)
	b = binary.BigEndian.AppendUint64(b, uint64(time.Now().UnixNano()))
	b = append(b, make([]byte, 16)...)
	_, _ = rand.Read(b[8:24])
	return append(b, c.sign(b)...)
}

func (c *challenges) sign(b []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(b[:24])
	return m.Sum(nil)[:16]
}

// check reports what is wrong with challenge, if it is not one this node
// issued in the last challengeTTL.
func (c *challenges) check(challenge []byte) error {
	if len(challenge) != challengeSize || !hmac.Equal(challenge[24:], c.sign(challenge)) {
		return errors.New("not a challenge of this node")
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(challenge)))
	if age := time.Since(issued); age < 0 || age > challengeTTL {
		return errors.New("the challenge has expired")
	}
	return nil
}

// take marks the checked challenge used, failing if it was already.
func (c *challenges) take(challenge []byte) error {
	var nonce [16]byte
	copy(nonce[:], challenge[8:24])
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(challenge)))
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.pruned) > challengeTTL {
		for n, at := range c.used {
			if now.Sub(at) > challengeTTL {
				delete(c.used, n)
			}
		}
		c.pruned = now
	}
	if _, seen := c.used[nonce]; seen {
		return errors.New("the challenge was used before (a replay)")
	}
	c.used[nonce] = issued
	return nil
}

// proof is the proof of secret for a stream of method opened by from with
// challenge.
func proof(secret []byte, method, from string, challenge []byte) []byte {
	m := hmac.New(sha256.New, secret)
	for _, part := range [][]byte{[]byte(proofLabel), []byte(method), []byte(from)} {
		m.Write(part)
		m.Write([]byte{0})
	}
	m.Write(challenge)
	return m.Sum(nil)
}

// checkProof checks the caller's proof of the secret on ctx.
func (t *Transport) checkProof(ctx context.Context, method, from string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	challenge, sent := md.Get(challengeKey), md.Get(proofKey)
	if len(challenge) != 1 || len(sent) != 1 {
		return errors.New("the caller sent no proof of the cluster secret")
	}
	if err := t.challenges.check([]byte(challenge[0])); err != nil {
		return err
	}
	if !hmac.Equal([]byte(sent[0]), proof(t.cfg.Secret, method, from, []byte(challenge[0]))) {
		return errors.New("the caller's proof of the cluster secret is wrong")
	}
	return t.challenges.take([]byte(challenge[0]))
}

// authenticate returns the caller of a stream of method: the from it
// claims, once the caller has proved it is that node (with TLS) and knows
// the secret (with one).
func (t *Transport) authenticate(ctx context.Context, method string) (string, error) {
	from, err := fromOf(ctx)
	if err != nil {
		return "", err
	}
	if t.cfg.TLS != nil {
		if from, err = certifiedFrom(ctx, from); err != nil {
			return "", t.refuse(ctx, codes.PermissionDenied, err)
		}
	}
	if len(t.cfg.Secret) > 0 {
		if err := t.checkProof(ctx, method, from); err != nil {
			return "", t.refuse(ctx, codes.Unauthenticated, err)
		}
	}
	return from, nil
}

// refuse logs a refused caller and returns the caller's error.
func (t *Transport) refuse(ctx context.Context, code codes.Code, why error) error {
	addr := "unknown"
	if p, ok := grpcpeer.FromContext(ctx); ok {
		addr = p.Addr.String()
	}
	t.logRefusal(addr, why)
	return status.Errorf(code, "grpctransport: refused: %v", why)
}

// logRefusal logs a refused caller, at most one line every
// refusalLogInterval.
func (t *Transport) logRefusal(addr string, why error) {
	now := time.Now().UnixNano()
	last := t.lastRefusal.Load()
	if now-last >= int64(refusalLogInterval) && t.lastRefusal.CompareAndSwap(last, now) {
		t.logger.Warn("refused a caller on the cluster port", "remote", addr, "reason", why.Error(),
			"refused_since_last_line", t.refusals.Swap(0)+1)
	} else {
		t.refusals.Add(1)
	}
}

// loggedHandshakes are server credentials that log the TLS handshakes they
// fail: callers without a certificate of the cluster's CA.
type loggedHandshakes struct {
	credentials.TransportCredentials
	t *Transport
}

func (c loggedHandshakes) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		c.t.logRefusal(conn.RemoteAddr().String(), fmt.Errorf("TLS handshake: %w", err))
	}
	return out, info, err
}

func (c loggedHandshakes) Clone() credentials.TransportCredentials {
	return loggedHandshakes{c.TransportCredentials.Clone(), c.t}
}

// refusalLogInterval spaces the log lines about refused callers.
const refusalLogInterval = 10 * time.Second

// refusalCounters count the refused callers not logged yet.
type refusalCounters struct {
	lastRefusal atomic.Int64 // unix nanoseconds of the last line
	refusals    atomic.Int64 // refused since
}

// withCredentials returns ctx with what opens a stream of method to the
// peer: this node's address and, with a secret, the proof of it.
func (p *peer) withCredentials(ctx context.Context, method string) (context.Context, error) {
	md := []string{fromKey, p.t.self}
	if secret := p.t.cfg.Secret; len(secret) > 0 {
		res, err := p.client.Challenge(ctx, &peerv1.ChallengeRequest{})
		if err != nil {
			return nil, err
		}
		challenge := res.GetChallenge()
		md = append(md, challengeKey, string(challenge), proofKey, string(proof(secret, method, p.t.self, challenge)))
	}
	return metadata.AppendToOutgoingContext(ctx, md...), nil
}
