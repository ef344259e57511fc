package transporttest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sextantd/sextant/sdk"
	"github.com/sextantd/sextant/sdk/transport"
)

// httpPlugin is a small transport over HTTP/1.1, written against the SDK
// alone, for the kit's own tests: a call is a POST of the payload to /call,
// answered with the peer's answer (200) or its error (500); a snapshot is a
// GET of /snapshot, answered with frames (see writeFrame). Cancelling a
// call closes its connection, which ends the peer's request context. With
// a token, every request carries it, and one without it is refused (403).
var httpPlugin = transport.Plugin{
	Info: sdk.Info{Name: "http", Version: "0.0.1", Config: sdk.Schema{
		{Key: "dial_timeout", Type: sdk.Duration, Description: "how long a connection to a peer may take (default 1s)"},
		{Key: "token", Type: sdk.String, Description: "a token the nodes share: requests without it are refused"},
	}},
	New: func(config []byte, host transport.Host) (transport.Transport, error) {
		c := struct {
			DialTimeout sdk.ConfigDuration `json:"dial_timeout"`
			Token       string             `json:"token"`
		}{DialTimeout: sdk.ConfigDuration(time.Second)}
		if err := sdk.DecodeConfig(config, &c); err != nil {
			return nil, err
		}
		tr := &http.Transport{DialContext: (&net.Dialer{Timeout: time.Duration(c.DialTimeout)}).DialContext}
		return &httpTransport{inbound: host.Inbound, tr: tr, client: &http.Client{Transport: tr}, token: c.Token}, nil
	},
}

type httpTransport struct {
	inbound transport.Inbound
	tr      *http.Transport
	client  *http.Client
	token   string
	lax     bool // sends its token, but lets requests without it in

	mu   sync.Mutex
	srv  *http.Server
	self string
}

func (t *httpTransport) Listen(ctx context.Context, address, self string) error {
	l, err := (&net.ListenConfig{}).Listen(ctx, "tcp", address)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /call", t.serveCall)
	mux.HandleFunc("GET /snapshot", t.serveSnapshot)
	srv := &http.Server{Handler: mux}
	t.mu.Lock()
	t.srv, t.self = srv, self
	t.mu.Unlock()
	go srv.Serve(l)
	return nil
}

func (t *httpTransport) from() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.self
}

// refused refuses r if it lacks the token.
func (t *httpTransport) refused(w http.ResponseWriter, r *http.Request) bool {
	if t.token == "" || t.lax || r.Header.Get("Token") == t.token {
		return false
	}
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte("http: no token, no entry"))
	return true
}

func (t *httpTransport) serveCall(w http.ResponseWriter, r *http.Request) {
	if t.refused(w, r) {
		return
	}
	payload, err := io.ReadAll(r.Body) // read whole: the server then notices the caller leave
	if err == nil {
		payload, err = t.inbound.Handle(r.Context(), r.Header.Get("From"), r.Header.Get("Kind"), payload)
	}
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		payload = []byte(err.Error())
	}
	_, _ = w.Write(payload)
}

func (t *httpTransport) Call(ctx context.Context, target, kind string, payload []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+target+"/call", bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("From", t.from())
	req.Header.Set("Kind", kind)
	req.Header.Set("Token", t.token)
	resp, err := t.do(ctx, req, target)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return nil, err
	case resp.StatusCode != http.StatusOK:
		return nil, errors.New(string(body))
	}
	return body, nil
}

// do sends req, failing with ErrUnreachable when the peer cannot be reached.
func (t *httpTransport) do(ctx context.Context, req *http.Request, target string) (*http.Response, error) {
	resp, err := t.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("%w: %s: %v", transport.ErrUnreachable, target, err)
		}
	}
	return resp, err
}

// The frames of a snapshot: a kind, the length of the data, the data.
const (
	chunkFrame = 'c' // a chunk
	errorFrame = 'e' // the snapshot failed: the error's message
	endFrame   = 'k' // the snapshot is whole
)

func writeFrame(w io.Writer, kind byte, data []byte) error {
	head := []byte{kind, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(head[1:], uint32(len(data)))
	_, err := w.Write(append(head, data...))
	return err
}

func (t *httpTransport) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	if t.refused(w, r) {
		return
	}
	err := t.inbound.Snapshot(r.Context(), r.Header.Get("From"), func(chunk []byte) error {
		return writeFrame(w, chunkFrame, chunk)
	})
	if err != nil {
		_ = writeFrame(w, errorFrame, []byte(err.Error()))
		return
	}
	_ = writeFrame(w, endFrame, nil)
}

func (t *httpTransport) Snapshot(ctx context.Context, target string, fn func([]byte) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/snapshot", nil)
	if err != nil {
		return err
	}
	req.Header.Set("From", t.from())
	req.Header.Set("Token", t.token)
	resp, err := t.do(ctx, req, target)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return errors.New(string(body))
	}
	r := bufio.NewReader(resp.Body)
	for {
		head := make([]byte, 5)
		if _, err := io.ReadFull(r, head); err != nil {
			return fmt.Errorf("the snapshot broke off: %w", err)
		}
		data := make([]byte, binary.BigEndian.Uint32(head[1:]))
		if _, err := io.ReadFull(r, data); err != nil {
			return fmt.Errorf("the snapshot broke off: %w", err)
		}
		switch head[0] {
		case chunkFrame:
			if err := fn(data); err != nil {
				return err
			}
		case errorFrame:
			return errors.New(string(data))
		default:
			return nil
		}
	}
}

func (t *httpTransport) Close() error {
	t.mu.Lock()
	srv := t.srv
	t.mu.Unlock()
	t.tr.CloseIdleConnections()
	if srv == nil {
		return nil
	}
	return srv.Close()
}
