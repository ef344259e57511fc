package grpctransport

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sextantd/sextant/plugins/grpctransport/tlstest"
	peerv1 "github.com/sextantd/sextant/proto/grpctransport/v1"
	"github.com/sextantd/sextant/sdk/transport"
)

// tlsFor is a node's TLS material: a certificate of ca naming names, and
// trust in trusted (ca if none).
func tlsFor(t *testing.T, ca *tlstest.CA, names []string, trusted ...*tlstest.CA) *TLS {
	t.Helper()
	cert, cas := ca.TLS(t, names, trusted...)
	return &TLS{Certificate: cert, CAs: cas}
}

// quick is a short dial timeout, for calls bound to fail.
const quick = time.Second

// refused checks that a call and a snapshot from "from" to "to" fail, and
// that nothing reached to's inbound.
func refused(t *testing.T, what string, from, to *Transport, in *inbound, wantErr string) {
	t.Helper()
	ctx := timeout(t)
	if answer, err := from.Call(ctx, addr(to), "echo", []byte("let me in")); err == nil {
		t.Errorf("%s: the call succeeded with %q", what, answer)
	} else if !strings.Contains(err.Error(), wantErr) {
		t.Errorf("%s: the call failed with %q, which does not say %q", what, err, wantErr)
	}
	if err := from.Snapshot(ctx, addr(to), func([]byte) error { return nil }); err == nil {
		t.Errorf("%s: the snapshot succeeded", what)
	}
	select {
	case c := <-in.calls:
		t.Errorf("%s: the inbound got a call: %+v", what, c)
	case f := <-in.froms:
		t.Errorf("%s: the inbound was asked for a snapshot by %q", what, f)
	default:
	}
}

// works checks that a call and a snapshot from "from" (named self) to "to"
// succeed, with self as their from at to's inbound.
func works(t *testing.T, from, to *Transport, in *inbound, self string) {
	t.Helper()
	ctx := timeout(t)
	answer, err := from.Call(ctx, addr(to), "echo", []byte("hello"))
	if err != nil || string(answer) != "hello" {
		t.Fatalf("a call from %s: %q, %v", self, answer, err)
	}
	if got := <-in.calls; got != (call{self, "echo", "hello"}) {
		t.Errorf("the inbound got %+v from %s", got, self)
	}
	in.snapshot = [][]byte{[]byte("chunk")}
	var chunks []string
	if err := from.Snapshot(ctx, addr(to), func(c []byte) error { chunks = append(chunks, string(c)); return nil }); err != nil || len(chunks) != 1 {
		t.Fatalf("a snapshot for %s: %q, %v", self, chunks, err)
	}
	if got := <-in.froms; got != self {
		t.Errorf("the snapshot was asked for by %q, want %q", got, self)
	}
}

func TestMutualTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	inA, inB := newInbound(), newInbound()
	a := node(t, "a:8848", "", inA, Config{TLS: tlsFor(t, ca, []string{"a:8848"})})
	b := node(t, "b:8848", "", inB, Config{TLS: tlsFor(t, ca, []string{"b:8848"})})
	works(t, a, b, inB, "a:8848")
	works(t, b, a, inA, "b:8848")
}

func TestTLSRefusesStrangers(t *testing.T) {
	ca, other := tlstest.NewCA(t, "cluster"), tlstest.NewCA(t, "another")
	in := newInbound()
	b := node(t, "b:8848", "", in, Config{TLS: tlsFor(t, ca, []string{"b:8848"})})
	// Trusts the cluster's CA, so it would talk to b, but its own
	// certificate comes from another CA.
	c := node(t, "c:8848", "", newInbound(), Config{DialTimeout: quick, TLS: tlsFor(t, other, []string{"c:8848"}, ca)})
	refused(t, "a node with a certificate of another CA", c, b, in, "")
	plain := node(t, "p:8848", "", newInbound(), Config{DialTimeout: quick})
	refused(t, "a node without TLS", plain, b, in, "")

	// And b refuses to talk to a node whose certificate is not of its CA.
	inC := newInbound()
	d := node(t, "d:8848", "", inC, Config{TLS: tlsFor(t, other, []string{"d:8848"}, ca)})
	refused(t, "a call to a node with a certificate of another CA", b, d, inC, "certificate signed by unknown authority")
}

// TestTLSRefusesAFalseFrom: a caller with a good certificate that names
// another node than the one it says it is, is refused.
func TestTLSRefusesAFalseFrom(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	in := newInbound()
	b := node(t, "b:8848", "", in, Config{TLS: tlsFor(t, ca, []string{"b:8848"})})

	x := tlsFor(t, ca, []string{"x:8848"})
	conn, err := grpc.NewClient("passthrough:///"+addr(b), grpc.WithTransportCredentials(x.clientCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := peerv1.NewPeerClient(conn)
	for _, from := range []string{"a:8848", "x:8849", "X:8848"} {
		ctx := metadata.AppendToOutgoingContext(timeout(t), fromKey, from)
		stream, err := client.Call(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Send fails with io.EOF once the peer has ended the stream; Recv says why.
		_ = stream.Send(&peerv1.CallRequest{Id: 1, Kind: "echo", Payload: []byte("I am " + from)})
		_, err = stream.Recv()
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "the caller says it is "+from+", but its certificate names x:8848") {
			t.Errorf("a stream from %s with a certificate for x:8848: %v", from, err)
		}
	}
	// What the certificate names is let in.
	ctx := metadata.AppendToOutgoingContext(timeout(t), fromKey, "x:8848")
	stream, err := client.Call(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&peerv1.CallRequest{Id: 1, Kind: "echo", Payload: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if res, err := stream.Recv(); err != nil || string(res.GetPayload()) != "hi" {
		t.Fatalf("a stream from x:8848 with its certificate: %v, %v", res, err)
	}
	if got := <-in.calls; got != (call{"x:8848", "echo", "hi"}) {
		t.Errorf("the inbound got %+v", got)
	}
	select {
	case c := <-in.calls:
		t.Errorf("the inbound got a call from a false from: %+v", c)
	default:
	}
}

func TestTLSNeedsACertificateNamingSelf(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"b:8848"}, "this node's certificate names b:8848, not this node's address a:8848"},
		{nil, "this node's certificate names no node (it needs the URI SAN sextant://a:8848"},
	} {
		tr := New(Config{TLS: tlsFor(t, ca, tc.names)}, transport.Host{Inbound: newInbound()})
		err := tr.Listen(context.Background(), "127.0.0.1:0", "a:8848")
		tr.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Listen as a:8848 with a certificate naming %v: %v, want %q", tc.names, err, tc.want)
		}
	}
	// Several names: any one will do.
	node(t, "a:8848", "", newInbound(), Config{TLS: tlsFor(t, ca, []string{"10.0.0.1:8848", "a:8848"})})
}

func TestSecret(t *testing.T) {
	secret := []byte("the cluster's own secret, 32 bytes or more")
	inA, inB := newInbound(), newInbound()
	a := node(t, "a:8848", "", inA, Config{Secret: secret})
	b := node(t, "b:8848", "", inB, Config{Secret: secret})
	works(t, a, b, inB, "a:8848")
	works(t, b, a, inA, "b:8848")

	wrong := node(t, "c:8848", "", newInbound(), Config{DialTimeout: quick, Secret: []byte("not the cluster's secret, though long enough")})
	refused(t, "a node with a wrong secret", wrong, b, inB, "code = Unauthenticated desc = grpctransport: refused: the caller's proof of the cluster secret is wrong")
	none := node(t, "d:8848", "", newInbound(), Config{DialTimeout: quick})
	refused(t, "a node without the secret", none, b, inB, "code = Unauthenticated desc = grpctransport: refused: the caller sent no proof of the cluster secret")
}

func TestSecretAndTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	secret := []byte("the cluster's own secret, 32 bytes or more")
	in := newInbound()
	a := node(t, "a:8848", "", newInbound(), Config{TLS: tlsFor(t, ca, []string{"a:8848"}), Secret: secret})
	b := node(t, "b:8848", "", in, Config{TLS: tlsFor(t, ca, []string{"b:8848"}), Secret: secret})
	works(t, a, b, in, "a:8848")
	c := node(t, "c:8848", "", newInbound(), Config{TLS: tlsFor(t, ca, []string{"c:8848"}), Secret: []byte("not the cluster's secret, though long enough")})
	refused(t, "a node with a good certificate and a wrong secret", c, b, in, "proof of the cluster secret is wrong")
}

// TestSecretRefusesReplays: a stream opened with a challenge and its proof
// cannot be opened again with them, at that node or another, nor for
// another method; nor with a challenge too old.
func TestSecretRefusesReplays(t *testing.T) {
	secret := []byte("the cluster's own secret, 32 bytes or more")
	in := newInbound()
	b := node(t, "b:8848", "", in, Config{Secret: secret})
	other := node(t, "o:8848", "", newInbound(), Config{Secret: secret})
	client := func(tr *Transport) peerv1.PeerClient {
		conn, err := grpc.NewClient("passthrough:///"+addr(tr), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return peerv1.NewPeerClient(conn)
	}
	toB := client(b)
	res, err := toB.Challenge(timeout(t), &peerv1.ChallengeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	challenge := res.GetChallenge()
	open := func(c peerv1.PeerClient, method string, challenge []byte) error {
		ctx := metadata.AppendToOutgoingContext(timeout(t), fromKey, "a:8848",
			challengeKey, string(challenge), proofKey, string(proof(secret, method, "a:8848", challenge)))
		stream, err := c.Call(ctx)
		if err != nil {
			return err
		}
		_ = stream.Send(&peerv1.CallRequest{Id: 1, Kind: "echo", Payload: []byte("again")}) // Recv says why it failed
		_, err = stream.Recv()
		return err
	}
	if err := open(toB, peerv1.Peer_Call_FullMethodName, challenge); err != nil {
		t.Fatalf("the first stream with the challenge: %v", err)
	}
	<-in.calls
	for _, tc := range []struct {
		what   string
		to     peerv1.PeerClient
		method string
		want   string
	}{
		{"the same stream again", toB, peerv1.Peer_Call_FullMethodName, "used before"},
		{"the stream at another node", client(other), peerv1.Peer_Call_FullMethodName, "not a challenge of this node"},
	} {
		if err := open(tc.to, tc.method, challenge); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want Unauthenticated, %q", tc.what, err, tc.want)
		}
	}
	res, err = toB.Challenge(timeout(t), &peerv1.ChallengeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := open(toB, peerv1.Peer_Snapshot_FullMethodName, res.GetChallenge()); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "proof of the cluster secret is wrong") {
		t.Errorf("a Call stream with the proof for a snapshot: %v", err)
	}

	// A challenge issued more than challengeTTL ago.
	old := binary.BigEndian.AppendUint64(nil, uint64(time.Now().Add(-challengeTTL-time.Second).UnixNano()))
	old = append(old, bytes.Repeat([]byte{7}, 16)...)
	old = append(old, b.challenges.sign(old)...)
	if err := open(toB, peerv1.Peer_Call_FullMethodName, old); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a stream with an expired challenge: %v", err)
	}
	select {
	case c := <-in.calls:
		t.Errorf("a replayed stream reached the inbound: %+v", c)
	default:
	}
}

func TestListenWarnsWithoutAuthentication(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		warn bool
	}{
		{Config{}, true},
		{Config{Secret: []byte("the cluster's own secret, 32 bytes or more")}, false},
	} {
		var logs bytes.Buffer
		tr := New(tc.cfg, transport.Host{Inbound: newInbound(), Logger: hclog.New(&hclog.LoggerOptions{Output: &logs})})
		if err := tr.Listen(context.Background(), "127.0.0.1:0", "a:8848"); err != nil {
			t.Fatal(err)
		}
		tr.Close()
		if got := strings.Contains(logs.String(), "the cluster port accepts any caller: set cluster.tls or cluster.secret"); got != tc.warn {
			t.Errorf("secret %v: warned %v, want %v:\n%s", tc.cfg.Secret != nil, got, tc.warn, logs.String())
		}
	}
}

func TestLoadTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	dir := t.TempDir()
	caFile, certFile, keyFile := ca.Files(t, dir, "a", []string{"a:8848"})
	cfg, err := ParseConfig([]byte(`{"tls_ca_file":"` + caFile + `","tls_cert_file":"` + certFile + `","tls_key_file":"` + keyFile + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS == nil {
		t.Fatal("no TLS")
	}
	l, err := leaf(cfg.TLS.Certificate)
	if err != nil || strings.Join(Identities(l), ",") != "a:8848" {
		t.Errorf("the certificate names %v (%v)", Identities(l), err)
	}
	if _, err := LoadTLS(certFile, keyFile, keyFile); err == nil || !strings.Contains(err.Error(), "config.tls_cert_file, config.tls_key_file") {
		t.Errorf("a key for a certificate: %v", err)
	}
	if _, err := LoadTLS(keyFile, certFile, keyFile); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("a key for a CA: %v", err)
	}
	// Made by hand: the key pair is good.
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
}
