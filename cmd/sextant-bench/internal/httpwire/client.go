// Package httpwire speaks the Nacos Open API (the 1.x HTTP API) as a load
// generator needs it: HTTP/1.1 requests on a fixed set of keep-alive
// connections, one request at a time on each, as the SDKs' pooled clients
// send them. It is deliberately small — no redirects, proxies, compression
// or TLS — so that the generator, which shares the machine with the server,
// spends as little CPU per request as it can: a request is one write and
// its answer, usually, one read.
package httpwire

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"syscall"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// maxBody bounds an answer's body (a service's whole view, at most).
const maxBody = 64 << 20

// Client sends requests to one server over at most Conns keep-alive
// connections. It is safe for concurrent use; a request waits for a free
// connection.
type Client struct {
	addr      string
	userAgent string
	// free holds the connections not in use; nil entries are slots whose
	// connection is to be dialled on first use.
	free chan *conn
}

// New returns a client of the server at addr (host:port) with conns
// connections, dialled when first needed (or by Dial).
func New(addr string, conns int, userAgent string) *Client {
	c := &Client{addr: addr, userAgent: userAgent, free: make(chan *conn, conns)}
	for range conns {
		c.free <- nil
	}
	return c
}

// conn is one keep-alive connection.
type conn struct {
	nc  net.Conn
	r   *bufio.Reader
	buf []byte // the request being written
}

// StatusError is an answer whose status is not 2xx.
type StatusError struct {
	Code int
	Body string // its first bytes
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Code, e.Body) }

// Kind names the error for counting in results.
func (e *StatusError) Kind() string { return fmt.Sprintf("HTTP %d", e.Code) }

// Request is one request: its method, path (with the query, if any) and
// form body (url-encoded, empty for none).
type Request struct {
	Method string
	Path   string
	Form   []byte
}

// Dial opens every connection that is not open yet, calling done with the
// outcome and time of each. It returns when all were tried or ctx ends.
func (c *Client) Dial(ctx context.Context, done func(time.Duration, error)) {
	n := cap(c.free)
	for range n {
		var cn *conn
		select {
		case cn = <-c.free:
		case <-ctx.Done():
			return
		}
		if cn == nil {
			start := time.Now()
			var err error
			cn, err = c.dial(ctx)
			done(time.Since(start), err)
		}
		defer func(cn *conn) { c.free <- cn }(cn)
	}
}

func (c *Client) dial(ctx context.Context) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", wire.ErrUnreachable, err)
	}
	return &conn{nc: nc, r: bufio.NewReaderSize(nc, 4096)}, nil
}

// Close closes the connections not in use; those in use close when their
// request ends (Do fails after Close).
func (c *Client) Close() {
	for range cap(c.free) {
		cn := <-c.free
		if cn != nil {
			cn.nc.Close()
		}
	}
	close(c.free)
}

// Do sends req and returns the answer's body when its status is 2xx, a
// *StatusError when it is another. The request is bounded by ctx's deadline.
// A request that fails on a kept-alive connection before the server
// answered a byte (the server closed it meanwhile) is sent once more on a
// new one, as net/http does for requests that may be repeated; the Open
// API's writes are idempotent.
func (c *Client) Do(ctx context.Context, req Request) ([]byte, error) {
	var cn *conn
	var ok bool
	select {
	case cn, ok = <-c.free:
		if !ok {
			return nil, fmt.Errorf("%w: client closed", wire.ErrConnectionLost)
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	body, status, err := c.roundTrip(ctx, &cn, req, true)
	c.free <- cn
	if err != nil {
		return nil, err
	}
	if status < 200 || status > 299 {
		return nil, &StatusError{Code: status, Body: string(body[:min(len(body), 200)])}
	}
	return body, nil
}

// roundTrip sends req on *cnp, dialling one if needed, and reads the
// answer; on failure *cnp is closed and set to nil.
func (c *Client) roundTrip(ctx context.Context, cnp **conn, req Request, mayRetry bool) ([]byte, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	reused := *cnp != nil
	if !reused {
		cn, err := c.dial(ctx)
		if err != nil {
			return nil, 0, err
		}
		*cnp = cn
	}
	cn := *cnp
	deadline, _ := ctx.Deadline() // zero: none
	_ = cn.nc.SetDeadline(deadline)
	cn.buf = c.appendRequest(cn.buf[:0], req)
	body, status, keep, answered, err := cn.exchange(cn.buf)
	if err != nil {
		cn.nc.Close()
		*cnp = nil
		if reused && !answered && mayRetry && ctx.Err() == nil && staleConn(err) {
			return c.roundTrip(ctx, cnp, req, false)
		}
		if ctx.Err() != nil || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
			return nil, 0, fmt.Errorf("%w: %v", context.DeadlineExceeded, err)
		}
		return nil, 0, fmt.Errorf("%w: %v", wire.ErrConnectionLost, err)
	}
	if !keep {
		cn.nc.Close()
		*cnp = nil
	}
	return body, status, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// staleConn reports whether err is what a connection the server closed
// while idle gives.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// appendRequest encodes req.
func (c *Client) appendRequest(b []byte, req Request) []byte {
	b = append(b, req.Method...)
	b = append(b, ' ')
	b = append(b, req.Path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.addr...)
	if c.userAgent != "" {
		b = append(b, "\r\nUser-Agent: "...)
		b = append(b, c.userAgent...)
	}
	if len(req.Form) > 0 || req.Method == "POST" || req.Method == "PUT" {
		b = append(b, "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(req.Form)), 10)
	}
	b = append(b, "\r\n\r\n"...)
	return append(b, req.Form...)
}

// exchange writes an encoded request and reads its answer: the body, the
// status, whether the connection may be kept, and whether any byte of the
// answer came.
func (cn *conn) exchange(request []byte) (body []byte, status int, keep, answered bool, err error) {
	if _, err = cn.nc.Write(request); err != nil {
		return nil, 0, false, false, err
	}
	line, err := cn.r.ReadSlice('\n')
	if err != nil {
		return nil, 0, false, len(line) > 0, err
	}
	answered = true
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return nil, 0, false, true, fmt.Errorf("%w: status line %q", errProtocol, line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return nil, 0, false, true, fmt.Errorf("%w: status line %q", errProtocol, line)
	}
	keep = line[7] == '1' // HTTP/1.1 keeps alive unless told otherwise
	length, chunked := -1, false
	for {
		h, err := cn.r.ReadSlice('\n')
		if err != nil {
			return nil, 0, false, true, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, found := bytes.Cut(h, []byte(":"))
		if !found {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 || length > maxBody {
				return nil, 0, false, true, fmt.Errorf("%w: Content-Length %q", errProtocol, value)
			}
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "Connection"):
			if asciiEqualFold(value, "close") {
				keep = false
			} else if asciiEqualFold(value, "keep-alive") {
				keep = true
			}
		}
	}
	switch {
	case chunked:
		body, err = io.ReadAll(io.LimitReader(httputil.NewChunkedReader(cn.r), maxBody))
		if err == nil {
			// The trailer section, empty from Go's servers: its final CRLF.
			for {
				var t []byte
				if t, err = cn.r.ReadSlice('\n'); err != nil || len(bytes.TrimRight(t, "\r\n")) == 0 {
					break
				}
			}
		}
	case length >= 0:
		body = make([]byte, length)
		_, err = io.ReadFull(cn.r, body)
	case status == 204 || status == 304 || status/100 == 1:
	default: // until the server closes
		body, err = io.ReadAll(io.LimitReader(cn.r, maxBody))
		keep = false
	}
	if err != nil {
		return nil, 0, false, true, err
	}
	return body, status, keep, true, nil
}

var errProtocol = errors.New("not an HTTP/1.x answer")

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// AppendParam appends name=value, url-encoded, to a form or query, with a
// '&' before it unless b is empty.
func AppendParam(b []byte, name, value string) []byte {
	if len(b) > 0 {
		b = append(b, '&')
	}
	b = appendEscaped(b, name)
	b = append(b, '=')
	return appendEscaped(b, value)
}

// appendEscaped appends s as application/x-www-form-urlencoded does.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := range len(s) {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b = append(b, c)
		case c == ' ':
			b = append(b, '+')
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return b
}
