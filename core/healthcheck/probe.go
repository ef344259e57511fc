package healthcheck

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userAgent is sent with HTTP checks unless the checker's headers set one.
const userAgent = "Sextant-Health-Check"

// maxBodyDrain is how much of an HTTP check's answer is read before the
// connection is closed.
const maxBodyDrain = 4 << 10

// result is what one check found, and whether a failure is hard (the
// instance turns unhealthy at once) or soft (after Config.UnhealthyAfter in
// a row).
type result struct {
	outcome outcome
	hard    bool
	detail  string // for logs: "tcp: connection refused", "http: status 500"
}

// hostPort is where t is checked.
func hostPort(t Target) string {
	port := t.Checker.CheckPort
	if port == 0 {
		port = t.Address.Port
	}
	return net.JoinHostPort(t.Address.IP, strconv.Itoa(port))
}

// checkTCP opens a connection to t within the TCP timeout and closes it at
// once, without lingering: the close sends a reset, so that no socket is left
// in TIME_WAIT on either side (as HAProxy closes its checks).
func (s *Scheduler) checkTCP(ctx context.Context, t Target) result {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TCPTimeout)
	defer cancel()
	conn, err := s.dial(ctx, "tcp", hostPort(t))
	if err != nil {
		return failed("tcp", err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
	return result{outcome: outcomeSuccess}
}

// checkHTTP GETs the checker's path on t within the HTTP timeout. A
// redirect is not followed: its status is the answer. The body is read up
// to maxBodyDrain bytes, and the connection is not kept.
func (s *Scheduler) checkHTTP(ctx context.Context, t Target) result {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HTTPTimeout)
	defer cancel()
	host := hostPort(t)
	// An IPv6 zone's % must be escaped in a URL.
	url := "http://" + strings.ReplaceAll(host, "%", "%25") + t.Checker.requestPath()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return result{outcome: outcomeError, detail: "http: " + err.Error()}
	}
	req.Header.Set("User-Agent", userAgent)
	for name, value := range t.Checker.Headers {
		if http.CanonicalHeaderKey(name) == "Host" {
			req.Host = value
			continue
		}
		req.Header.Set(name, value)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return failed("http", err)
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxBodyDrain)
	_ = resp.Body.Close()
	code := resp.StatusCode
	if code == t.Checker.expected() {
		return result{outcome: outcomeSuccess}
	}
	// As Nacos: 302 and 503 may pass ("busy, verify later"), any other
	// status is a hard failure.
	return result{outcome: outcomeStatus, hard: code != http.StatusFound && code != http.StatusServiceUnavailable,
		detail: "http: status " + strconv.Itoa(code)}
}

// failed classifies a dial or request error as Nacos does: a refused
// connection is a hard failure (nothing listens), a timeout or any other
// error a soft one.
func failed(proto string, err error) result {
	var nerr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return result{outcome: outcomeRefused, hard: true, detail: proto + ": connection refused"}
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &nerr) && nerr.Timeout():
		return result{outcome: outcomeTimeout, detail: proto + ": timeout"}
	}
	return result{outcome: outcomeError, detail: proto + ": " + err.Error()}
}

// newHTTPClient is the client of HTTP checks: no proxy, no redirects, no
// kept connections, no compression, a bound on the answer's headers.
func newHTTPClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            dial,
			DisableKeepAlives:      true,
			DisableCompression:     true,
			MaxResponseHeaderBytes: 64 << 10,
			ExpectContinueTimeout:  0,
			TLSHandshakeTimeout:    10 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
