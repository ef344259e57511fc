package remote

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"

	"github.com/sextantd/sextant/core/remote/serveropts"
)

// typeNotifySubscriber is the Nacos class name of a push.
const typeNotifySubscriber = "NotifySubscriberRequest"

// limitError is a limit that closes a connection; reason labels the
// sextant_remote_connections_closed_total metric.
type limitError struct{ reason, text string }

func (e *limitError) Error() string { return e.text }

// Reasons a connection is closed by the server, as the metric labels them.
const (
	reasonOutboundBudget = "outbound_budget"
	reasonWriteTimeout   = "write_timeout"
	reasonSetupTimeout   = "setup_timeout"
)

var (
	errOutboundBudget = &limitError{reasonOutboundBudget, "outbound byte budget exceeded"}
	errWriteTimeout   = &limitError{reasonWriteTimeout, "write timeout: the client did not take a message in time"}
)

// Bounds of the derived connection limit (DefaultMaxConnections).
const (
	// reservedFiles are the file descriptors left, below RLIMIT_NOFILE, for
	// the HTTP port, the cluster port, plugins, logs and data files.
	reservedFiles     = 256
	minMaxConnections = 16
	maxMaxConnections = 1 << 30
	// fallbackMaxConnections is the limit where there is no RLIMIT_NOFILE.
	fallbackMaxConnections = 10000
)

// DefaultMaxConnections is the connection limit when Config.MaxConnections
// is 0: the open-file soft limit minus reservedFiles, but at least half the
// limit and at least minMaxConnections.
func DefaultMaxConnections() int {
	nofile, ok := openFileLimit()
	if !ok {
		return fallbackMaxConnections
	}
	return maxConnectionsFor(nofile)
}

func maxConnectionsFor(nofile uint64) int {
	n := nofile / 2
	if nofile > reservedFiles && nofile-reservedFiles > n {
		n = nofile - reservedFiles
	}
	return int(min(max(n, minMaxConnections), maxMaxConnections))
}

// DefaultHTTPConnections is the HTTP port's connection limit when
// http.max_connections is 0: half the descriptors the client port's limit
// (maxConnections; 0 derives it as DefaultMaxConnections does) leaves below
// RLIMIT_NOFILE, so that the cluster port, plugins and files keep the other
// half; at least minMaxConnections. With the defaults it is 128.
func DefaultHTTPConnections(maxConnections int) int {
	nofile, ok := openFileLimit()
	if !ok {
		return reservedFiles / 2
	}
	return httpConnectionsFor(nofile, maxConnections)
}

func httpConnectionsFor(nofile uint64, maxConnections int) int {
	if maxConnections <= 0 {
		maxConnections = maxConnectionsFor(nofile)
	}
	left := uint64(0)
	if n := uint64(maxConnections); nofile > n {
		left = nofile - n
	}
	return int(min(max(left/2, minMaxConnections), maxMaxConnections))
}

// newStreamConn returns the connection of a client's stream with the
// server's limits; broken closes it (see conn.brokenWrite).
func (s *Server) newStreamConn(id, addr string, write func(serveropts.Message) error, broken func(error)) *conn {
	c := newConn(id, addr, time.Now(), write, broken)
	c.budget, c.outbound = s.cfg.MaxOutboundBytes, &s.outboundBytes
	if s.cfg.WriteTimeout > 0 {
		c.clock = &writeClock{timeout: s.cfg.WriteTimeout, expire: func() { c.abort(errWriteTimeout) }}
	}
	c.writers = s.writers.Load()
	return c
}

// dropConn closes c's TCP connection because of err — a failed write or a
// limit, which is counted; its stream then ends and its client is removed.
func (s *Server) dropConn(c *conn, err error) {
	var limit *limitError
	if errors.As(err, &limit) {
		s.metrics.closed.WithLabelValues(limit.reason).Inc()
		s.clientErrors.report(clientIP(c.addr, c.id), "limit "+limit.reason, "closing a connection over a limit",
			"connection", c.id, "reason", limit.reason, "error", err)
	} else {
		s.log.Debug("send failed; closing connection", "connection", c.id, "error", err)
	}
	s.lis.closeConn(c.addr)
}

// coalesceKey returns the key under which a request replaces an older unsent
// one on a connection: for a NotifySubscriberRequest, its namespace, group,
// service and the cluster filter of its serviceInfo — what a Nacos client
// caches a ServiceInfo under. Anything else, or a body that does not name all
// of them, has no key (""). It reads the body only as far as it must: the
// fields come before the hosts in the bodies pushrpc sends.
func coalesceKey(typ string, body []byte) string {
	if typ != typeNotifySubscriber {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	var namespace, group, name, clusters string
	var haveNamespace, haveGroup, haveName, haveClusters bool
	key := func() string { return namespace + "\x00" + group + "\x00" + name + "\x00" + clusters }
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		var ok bool
		switch t {
		case "namespace":
			haveNamespace, ok = true, dec.Decode(&namespace) == nil
		case "groupName":
			haveGroup, ok = true, dec.Decode(&group) == nil
		case "serviceName":
			haveName, ok = true, dec.Decode(&name) == nil
		case "serviceInfo":
			early := haveNamespace && haveGroup && haveName
			clusters, haveClusters, ok = infoClusters(dec, early)
			if ok && haveClusters && early {
				return key()
			}
		default:
			ok = skip(dec)
		}
		if !ok {
			return ""
		}
	}
	if !haveGroup || !haveName || !haveClusters {
		return ""
	}
	return key()
}

// infoClusters reads a serviceInfo object's clusters field. If early, it
// returns as soon as it has it; otherwise it reads the whole object.
func infoClusters(dec *json.Decoder, early bool) (clusters string, found, ok bool) {
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", false, false
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", false, false
		}
		if t != "clusters" {
			if !skip(dec) {
				return "", false, false
			}
			continue
		}
		if dec.Decode(&clusters) != nil {
			return "", false, false
		}
		if found = true; early {
			return clusters, true, true
		}
	}
	_, err := dec.Token() // '}'
	return clusters, found, err == nil
}

func skip(dec *json.Decoder) bool {
	var v json.RawMessage
	return dec.Decode(&v) == nil
}
