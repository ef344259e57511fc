package membership

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// DefaultPort is Nacos's HTTP port: the port of an address given without one
// when nothing better is known. Providers use the port of the node's own
// address instead, as Nacos does (a bare ip in cluster.conf means the node's
// own server.port, 8848 unless changed).
const DefaultPort = 8848

// ParseAddress returns addr as the canonical host:port every member list
// holds: an IP in its canonical form (IPv6 in brackets), a host name in lower
// case, and defaultPort when addr has no port. It accepts "host:port",
// "host", "[v6]:port", "[v6]" and a bare IPv6 address.
func ParseAddress(addr string, defaultPort int) (string, error) {
	s := strings.TrimSpace(addr)
	if s == "" {
		return "", errors.New("empty address")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '/' || r == '@' || r == '?' || r == '#' }) {
		return "", fmt.Errorf("%q is not host[:port]", s)
	}
	host, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", fmt.Errorf("%q has no closing bracket", s)
		}
		host, port = s[1:end], s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return "", fmt.Errorf("%q: unexpected %q after the bracketed address", s, port)
			}
			if port = port[1:]; port == "" {
				return "", fmt.Errorf("%q: empty port", s)
			}
		}
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Is6() {
			return "", fmt.Errorf("%q: only an IPv6 address goes in brackets", s)
		}
	case strings.Count(s, ":") == 1:
		host, port, _ = strings.Cut(s, ":")
		if port == "" {
			return "", fmt.Errorf("%q: empty port", s)
		}
	case strings.Count(s, ":") > 1: // a bare IPv6 address
		if ip, err := netip.ParseAddr(s); err != nil || !ip.Is6() {
			return "", fmt.Errorf("%q is not host[:port] (an IPv6 address with a port goes in brackets: [v6]:port)", s)
		}
	}
	host, err := canonicalHost(host)
	if err != nil {
		return "", fmt.Errorf("%q: %w", s, err)
	}
	p := defaultPort
	if port != "" {
		if p, err = parsePort(port); err != nil {
			return "", fmt.Errorf("%q: %w", s, err)
		}
	} else if p < 1 || p > 65535 {
		return "", fmt.Errorf("%q has no port, and the default port %d is invalid", s, defaultPort)
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

func parsePort(s string) (int, error) {
	if strings.Trim(s, "0123456789") != "" || len(s) > 5 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	p, _ := strconv.Atoi(s)
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return p, nil
}

// canonicalHost returns an IP address in its canonical form and a host name
// in lower case, or why host is neither.
func canonicalHost(host string) (string, error) {
	if host == "" {
		return "", errors.New("empty host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.String(), nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if len(name) == 0 || len(name) > 253 {
		return "", fmt.Errorf("host %q is not an IP address or a host name", host)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" ||
			l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("host %q is not an IP address or a host name", host)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		// 10.0.0.256, 010.0.0.1, 10.1: what looks like an IPv4 address
		// and is none is a typo, not a host name.
		return "", fmt.Errorf("host %q is not a valid IP address", host)
	}
	return name, nil
}

// ParseClusterConf reads a member list in the format of Nacos's cluster.conf,
// which Nacos's address servers also answer with: one address per line (or
// several, separated by commas), '#' starting a comment, blank lines
// ignored. It returns the addresses it could parse — canonical (ParseAddress,
// with defaultPort), sorted, without duplicates — and one error for each
// entry it could not, naming its line.
func ParseClusterConf(text []byte, defaultPort int) (members []string, malformed []error) {
	text = bytes.TrimPrefix(text, []byte("\ufeff")) // a byte-order mark
	for n, line := range strings.Split(string(text), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for item := range strings.SplitSeq(line, ",") {
			if strings.TrimSpace(item) == "" {
				continue
			}
			addr, err := ParseAddress(item, defaultPort)
			if err != nil {
				malformed = append(malformed, fmt.Errorf("line %d: %w", n+1, err))
				continue
			}
			members = append(members, addr)
		}
	}
	slices.Sort(members)
	return slices.Compact(members), malformed
}

// WithSelf returns members sorted, without duplicates, and with self — the
// node's own canonical address — added if it is not among them, which added
// reports. Nacos does the same: a node missing from its own cluster.conf
// still runs, counting itself in (and warns).
func WithSelf(members []string, self string) (list []string, added bool) {
	list = slices.Clone(members)
	if !slices.Contains(list, self) {
		list, added = append(list, self), true
	}
	slices.Sort(list)
	return slices.Compact(list), added
}

// portOf returns the port of a canonical host:port address.
func portOf(addr string) int {
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return p
}
