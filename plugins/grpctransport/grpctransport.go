// Package grpctransport is the built-in cluster transport: Sextant nodes
// speak gRPC to each other on the cluster port (proto/grpctransport/v1,
// service Peer). Each node keeps one connection and one open Call stream per
// peer, made when first needed and made again after it breaks; every call to
// that peer is multiplexed on the stream, with its deadline and its
// cancellation carried across. Snapshots stream chunk by chunk, a chunk
// larger than 1 MiB in pieces that the receiver joins again.
//
// Peers authenticate each other with mutual TLS (tls_* keys: a node is the
// address its certificate names, sextant://host:port), or prove a shared
// secret when they open a stream (secret), or both. Without either, the wire
// is plaintext gRPC and anyone who reaches the cluster port is taken for the
// node it says it is. Every node of a cluster must use this transport, with
// the same max_message_size and the same authentication.
//
// It is written against sdk alone, like any third party's plugin.
package grpctransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	peerv1 "github.com/sextantd/sextant/proto/grpctransport/v1"
	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/streamcall"
	"github.com/sextantd/sextant/sdk/transport"
)

// Plugin is the transport as a plugin. Its configuration is optional.
var Plugin = transport.Plugin{
	Info: sdk.Info{Name: "grpctransport", Version: "1.0.0", Config: sdk.Schema{
		{Key: "dial_timeout", Type: sdk.Duration,
			Description: "how long a call waits for a connection to a peer before the peer counts as unreachable (default 2s)"},
		{Key: "max_message_size", Type: sdk.Int,
			Description: "the largest call, answer or snapshot chunk between nodes, in bytes; the same on every node (default 256 MiB)"},
		{Key: "tls_ca_file", Type: sdk.String,
			Description: "PEM file of the CA certificates the peers' certificates must chain to; with tls_cert_file and tls_key_file, peers speak mutual TLS (the server sets it from cluster.tls.ca_file)"},
		{Key: "tls_cert_file", Type: sdk.String,
			Description: "PEM file of this node's certificate chain, leaf first; the leaf names the node's address in a URI SAN sextant://host:port (from cluster.tls.cert_file)"},
		{Key: "tls_key_file", Type: sdk.String,
			Description: "PEM file of the certificate's private key (from cluster.tls.key_file)"},
		{Key: "secret", Type: sdk.String,
			Description: "a secret shared by the cluster's nodes, at least 32 bytes: a caller must prove it knows it (from cluster.secret; no default)"},
	}},
	New: func(config []byte, host transport.Host) (transport.Transport, error) {
		if host.Inbound == nil {
			return nil, errors.New("grpctransport: the host offers no Inbound")
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
	// DialTimeout bounds the making of a connection to a peer.
	DialTimeout time.Duration
	// MaxMessageSize bounds a call's payload or answer, in bytes.
	MaxMessageSize int
	// TLS, when set, runs mutual TLS with the peers: a caller is the node
	// its certificate names.
	TLS *TLS
	// Secret, when set, is shared by the cluster's nodes: a caller must
	// prove it knows it (at least MinSecretLength bytes).
	Secret []byte
}

// The defaults of Config.
const (
	DefaultDialTimeout    = 2 * time.Second
	DefaultMaxMessageSize = sdk.MaxMessageSize
)

// ParseConfig reads the plugin's configuration block (JSON, checked against
// Plugin.Config) and fills in the defaults.
func ParseConfig(config []byte) (Config, error) {
	var raw struct {
		DialTimeout    *sdk.ConfigDuration `json:"dial_timeout"`
		MaxMessageSize *int                `json:"max_message_size"`
		TLSCAFile      string              `json:"tls_ca_file"`
		TLSCertFile    string              `json:"tls_cert_file"`
		TLSKeyFile     string              `json:"tls_key_file"`
		Secret         *string             `json:"secret"`
	}
	if len(config) > 0 {
		if err := sdk.DecodeConfig(config, &raw); err != nil {
			return Config{}, fmt.Errorf("grpctransport configuration: %w", err)
		}
	}
	cfg := Config{DialTimeout: DefaultDialTimeout, MaxMessageSize: DefaultMaxMessageSize}
	if raw.DialTimeout != nil {
		if cfg.DialTimeout = time.Duration(*raw.DialTimeout); cfg.DialTimeout <= 0 {
			return Config{}, fmt.Errorf("config.dial_timeout: must be positive, not %v", cfg.DialTimeout)
		}
	}
	if raw.MaxMessageSize != nil {
		if cfg.MaxMessageSize = *raw.MaxMessageSize; cfg.MaxMessageSize < minMessageSize {
			return Config{}, fmt.Errorf("config.max_message_size: must be at least %d bytes, not %d", minMessageSize, cfg.MaxMessageSize)
		}
	}
	switch files := []string{raw.TLSCAFile, raw.TLSCertFile, raw.TLSKeyFile}; {
	case !slices.Contains(files, ""):
		tlsCfg, err := LoadTLS(raw.TLSCAFile, raw.TLSCertFile, raw.TLSKeyFile)
		if err != nil {
			return Config{}, err
		}
		cfg.TLS = tlsCfg
	case slices.ContainsFunc(files, func(f string) bool { return f != "" }):
		return Config{}, errors.New("config.tls_ca_file, config.tls_cert_file, config.tls_key_file: set all three, or none")
	}
	if raw.Secret != nil {
		if len(*raw.Secret) < MinSecretLength {
			return Config{}, fmt.Errorf("config.secret: must be at least %d bytes, not %d", MinSecretLength, len(*raw.Secret))
		}
		cfg.Secret = []byte(*raw.Secret)
	}
	return cfg, nil
}

const (
	// fromKey is the gRPC metadata key of the calling node's own address.
	fromKey = "sextant-from"
	// chunkSize bounds the pieces of a snapshot's chunks on the wire.
	chunkSize = 1 << 20
	// overhead is room in a message for what is not payload.
	overhead = 64 << 10
	// minMessageSize is the least max_message_size: a chunk and its overhead.
	minMessageSize = chunkSize + overhead
)

// ErrClosed is returned for calls on a closed transport.
var ErrClosed = errors.New("grpctransport: closed")

// Transport is the gRPC transport of one node.
type Transport struct {
	cfg     Config
	inbound transport.Inbound
	logger  hclog.Logger
	// challenges are those this node issues, with a secret.
	challenges *challenges
	refusalCounters
	ctx     context.Context // ends at Close: every stream to a peer does
	cancel  context.CancelFunc
	serving sync.WaitGroup // the server
	// background are the goroutines that open streams to peers and keep
	// them while they last.
	background sync.WaitGroup

	mu     sync.Mutex
	self   string
	server *grpc.Server
	addr   net.Addr
	peers  map[string]*peer
	closed bool
}

// New returns the transport of a node whose server takes what peers send
// through host.Inbound.
func New(cfg Config, host transport.Host) *Transport {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	logger := host.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Transport{cfg: cfg, inbound: host.Inbound, logger: logger, challenges: newChallenges(), ctx: ctx, cancel: cancel, peers: map[string]*peer{}}
}

// Listen serves peers on address as the node self.
func (t *Transport) Listen(ctx context.Context, address, self string) error {
	if self == "" {
		return errors.New("grpctransport: Listen needs the node's own address (self)")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return ErrClosed
	case t.server != nil:
		return fmt.Errorf("grpctransport: already listening on %s", t.addr)
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(t.cfg.MaxMessageSize),
		grpc.MaxSendMsgSize(t.cfg.MaxMessageSize),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveTime / 2, PermitWithoutStream: true}),
		grpc.WaitForHandlers(true), // Close returns once no handler runs
	}
	if t.cfg.TLS != nil {
		if err := t.cfg.TLS.checkOwnCertificate(self); err != nil {
			return err
		}
		opts = append(opts, grpc.Creds(loggedHandshakes{t.cfg.TLS.serverCredentials(), t}))
	}
	lis, err := new(net.ListenConfig).Listen(ctx, "tcp", address)
	if err != nil {
		return fmt.Errorf("grpctransport: %w", err)
	}
	srv := grpc.NewServer(opts...)
	peerv1.RegisterPeerServer(srv, &peerServer{t: t})
	t.server, t.addr, t.self = srv, lis.Addr(), self
	t.serving.Go(func() { _ = srv.Serve(lis) })
	t.logger.Debug("listening for peers", "address", lis.Addr().String(), "self", self, "tls", t.cfg.TLS != nil, "secret", len(t.cfg.Secret) > 0)
	if t.cfg.TLS == nil && len(t.cfg.Secret) == 0 {
		t.logger.Warn("the cluster port accepts any caller: set cluster.tls or cluster.secret", "address", lis.Addr().String())
	}
	return nil
}

// Addr is the address the transport listens on (nil before Listen): the
// port chosen when Listen was given port 0.
func (t *Transport) Addr() net.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addr
}

// Close stops serving peers and closes every connection to them. It returns
// once the handlers of what peers sent have returned.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	srv, peers := t.server, t.peers
	t.peers = nil
	t.mu.Unlock()
	t.cancel()
	if srv != nil {
		srv.Stop()
	}
	var errs []error
	for _, p := range peers {
		p.mu.Lock()
		p.closed = true // no opening starts after: see caller
		p.mu.Unlock()
		if err := p.conn.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	t.background.Wait()
	t.serving.Wait()
	return errors.Join(errs...)
}

// Call sends payload to the peer at target on the stream to it, and waits
// for the answer.
func (t *Transport) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	if len(payload) > t.cfg.MaxMessageSize-overhead {
		return nil, fmt.Errorf("grpctransport: a payload of %d bytes is more than max_message_size (%d) allows", len(payload), t.cfg.MaxMessageSize)
	}
	p, err := t.peer(target)
	if err != nil {
		return nil, err
	}
	c, err := p.caller(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.Call(ctx, func(id uint64, deadline int64) *peerv1.CallRequest {
		return &peerv1.CallRequest{Id: id, TimeoutNanos: timeLeft(deadline), Kind: kind, Payload: payload}
	})
	switch {
	case err == nil && res.GetError() != "" && ended(ctx) != nil:
		return nil, ended(ctx) // the peer gave up at the deadline too
	case err == nil && res.GetError() != "":
		return nil, errors.New(res.GetError()) // the peer's own error
	case err == nil:
		return res.GetPayload(), nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case t.ctx.Err() != nil:
		return nil, ErrClosed
	case errors.Is(err, streamcall.ErrClosed):
		// The peer ended the stream (it refused this node, say) as the call
		// went out: its status comes as the stream's end.
		select {
		case <-c.Done():
			err = c.Err()
		case <-ctx.Done():
		}
	}
	return nil, fmt.Errorf("grpctransport: calling %s: %w", target, err)
}

// ended returns ctx's error, or DeadlineExceeded once its deadline has
// passed, even if its timer has not fired yet.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// timeLeft is the time left until deadline (unix nanoseconds, 0 for none),
// as a request's timeout_nanos: 0 for none, at least 1 for a deadline.
func timeLeft(deadline int64) int64 {
	if deadline == 0 {
		return 0
	}
	return max(deadline-time.Now().UnixNano(), 1)
}

// Snapshot streams the snapshot of the peer at target to fn.
func (t *Transport) Snapshot(ctx context.Context, target string, fn func([]byte) error) error {
	p, err := t.peer(target)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(t.ctx, cancel)()
	var stream grpc.ServerStreamingClient[peerv1.Chunk]
	err = p.open(ctx, cancel, peerv1.Peer_Snapshot_FullMethodName, func(ctx context.Context) (err error) {
		stream, err = p.client.Snapshot(ctx, &peerv1.SnapshotRequest{}, p.callOptions...)
		return err
	})
	if err != nil {
		return err
	}
	var pieces []byte // of a chunk that came in pieces
	for {
		chunk, err := stream.Recv()
		switch {
		case err == nil:
		case errors.Is(err, io.EOF) && pieces != nil:
			return fmt.Errorf("grpctransport: the snapshot of %s ended in the middle of a chunk", target)
		case errors.Is(err, io.EOF):
			return nil
		case t.ctx.Err() != nil:
			return ErrClosed
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			if s, ok := status.FromError(err); ok && s.Code() == codes.Unknown {
				return errors.New(s.Message()) // the peer's own error
			}
			return fmt.Errorf("grpctransport: the snapshot of %s broke: %w", target, err)
		}
		data := chunk.GetData()
		if chunk.GetMore() || pieces != nil {
			if len(pieces)+len(data) > t.cfg.MaxMessageSize {
				return fmt.Errorf("grpctransport: the snapshot of %s has a chunk larger than max_message_size (%d)", target, t.cfg.MaxMessageSize)
			}
			pieces = append(pieces, data...)
			if chunk.GetMore() {
				continue
			}
			data, pieces = pieces, nil
		}
		if err := fn(data); err != nil {
			return err
		}
	}
}

// peer returns the connection to target, made on first use.
func (t *Transport) peer(target string) (*peer, error) {
	if target == "" {
		return nil, errors.New("grpctransport: no target")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return nil, ErrClosed
	case t.self == "":
		return nil, errors.New("grpctransport: Listen first: the transport tells peers who calls, and learns it there")
	}
	if p := t.peers[target]; p != nil {
		return p, nil
	}
	creds := insecure.NewCredentials()
	if t.cfg.TLS != nil {
		creds = t.cfg.TLS.clientCredentials()
	}
	// passthrough: every connection attempt resolves target afresh, so a
	// peer back on another address under the same name is found.
	conn, err := grpc.NewClient("passthrough:///"+target,
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: t.cfg.DialTimeout,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true}),
	)
	if err != nil {
		return nil, fmt.Errorf("grpctransport: target %q: %w", target, err)
	}
	p := &peer{
		t:      t,
		target: target,
		conn:   conn,
		client: peerv1.NewPeerClient(conn),
		callOptions: []grpc.CallOption{
			grpc.MaxCallRecvMsgSize(t.cfg.MaxMessageSize), grpc.MaxCallSendMsgSize(t.cfg.MaxMessageSize),
		},
	}
	t.peers[target] = p
	return p, nil
}

// Keepalive pings find a peer gone without a word (a partition, a host
// powered off) while the stream to it looks open.
const (
	keepaliveTime    = 10 * time.Second
	keepaliveTimeout = 5 * time.Second
)

// peer is the connection to one peer and the Call stream on it.
type peer struct {
	t           *Transport
	target      string
	conn        *grpc.ClientConn
	client      peerv1.PeerClient
	callOptions []grpc.CallOption

	mu      sync.Mutex
	current *opening // the stream being opened, or open; nil before the first call
	closed  bool     // the transport is closing: no more openings
}

// opening is the opening of a Call stream and, once ready is closed, what
// came of it.
type opening struct {
	ready  chan struct{}
	caller *streamcall.Caller[*peerv1.CallRequest, *peerv1.CallResult]
	err    error
}

// usable reports whether calls may wait on o: it is still opening, or open.
func (o *opening) usable() bool {
	select {
	case <-o.ready:
	default:
		return true
	}
	if o.err != nil {
		return false
	}
	select {
	case <-o.caller.Done():
		return false
	default:
		return true
	}
}

// caller returns the open Call stream to the peer, opening one if there is
// none (or it broke): every call waiting for the same opening gets what
// comes of it.
func (p *peer) caller(ctx context.Context) (*streamcall.Caller[*peerv1.CallRequest, *peerv1.CallResult], error) {
	p.mu.Lock()
	o := p.current
	if o == nil || !o.usable() {
		if p.closed { // Close waits for the openings before, no more
			p.mu.Unlock()
			return nil, ErrClosed
		}
		o = &opening{ready: make(chan struct{})}
		p.current = o
		p.t.background.Go(func() { p.openCall(o) })
	}
	p.mu.Unlock()
	select {
	case <-o.ready:
		return o.caller, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// openCall opens a Call stream for o, and returns once it has ended: when
// it breaks or the transport closes.
func (p *peer) openCall(o *opening) {
	ctx, cancel := context.WithCancel(p.t.ctx)
	defer cancel()
	var stream grpc.BidiStreamingClient[peerv1.CallRequest, peerv1.CallResult]
	o.err = p.open(ctx, cancel, peerv1.Peer_Call_FullMethodName, func(ctx context.Context) (err error) {
		stream, err = p.client.Call(ctx, p.callOptions...)
		return err
	})
	if o.err == nil {
		o.caller = streamcall.NewCaller(stream, func(id uint64) *peerv1.CallRequest {
			return &peerv1.CallRequest{Id: id, Cancel: true}
		})
	}
	close(o.ready)
	if o.caller != nil {
		<-o.caller.Done()
	}
}

// open opens a stream of method to the peer with start, telling it who
// calls (and proving it, with a secret), and gives up after the dial timeout
// by calling cancel, which must end ctx. Failing fast is the point: the
// cluster marks a peer that cannot be reached DOWN, so no call waits for a
// connection to become ready.
func (p *peer) open(ctx context.Context, cancel context.CancelFunc, method string, start func(context.Context) error) error {
	var timedOut atomic.Bool
	timer := time.AfterFunc(p.t.cfg.DialTimeout, func() {
		timedOut.Store(true)
		cancel()
	})
	streamCtx, err := p.withCredentials(ctx, method)
	if err == nil {
		err = start(streamCtx)
	}
	timer.Stop()
	switch {
	case p.t.ctx.Err() != nil:
		return ErrClosed
	case timedOut.Load():
		return fmt.Errorf("%w: %s: no connection within %v", transport.ErrUnreachable, p.target, p.t.cfg.DialTimeout)
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case status.Code(err) == codes.Unavailable:
		return fmt.Errorf("%w: %s: %s", transport.ErrUnreachable, p.target, dialError(status.Convert(err).Message()))
	}
	return fmt.Errorf("grpctransport: opening a stream to %s: %w", p.target, err)
}

// dialError is the heart of gRPC's message for a failed connection: "dial
// tcp 10.0.0.2:9849: connect: connection refused" out of `connection error:
// desc = "transport: Error while dialing: dial tcp ...: connection refused"`.
func dialError(msg string) string {
	const marker = "Error while dialing: "
	if i := strings.Index(msg, marker); i >= 0 {
		return strings.TrimSuffix(msg[i+len(marker):], `"`)
	}
	return msg
}
