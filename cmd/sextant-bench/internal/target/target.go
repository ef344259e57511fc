// Package target names the servers a benchmark runs against and asks them
// what they are.
package target

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// GRPCOffset is how far above the HTTP port Nacos serves its clients' gRPC.
const GRPCOffset = 1000

// Unknown is the version of a server that does not report one.
const Unknown = "unknown"

// Target is one server.
type Target struct {
	HTTP string // host:port of the HTTP API
	GRPC string // host:port of the client gRPC endpoint
}

// Parse reads "host:port" HTTP addresses. The gRPC address is the same host
// at grpcPort, or at the HTTP port + 1000 when grpcPort is 0.
func Parse(addrs []string, grpcPort int) ([]Target, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no target: give --target host:port")
	}
	if grpcPort < 0 || grpcPort > 65535 {
		return nil, fmt.Errorf("--grpc-port %d is not a port number", grpcPort)
	}
	ts := make([]Target, 0, len(addrs))
	for _, a := range addrs {
		host, portText, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("target %q: want host:port (%v)", a, err)
		}
		port, err := strconv.Atoi(portText)
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("target %q: %q is not a port number", a, portText)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		g := grpcPort
		if g == 0 {
			g = port + GRPCOffset
			if g > 65535 {
				return nil, fmt.Errorf("target %q: port+%d is not a port number; give --grpc-port", a, GRPCOffset)
			}
		}
		ts = append(ts, Target{
			HTTP: net.JoinHostPort(host, strconv.Itoa(port)),
			GRPC: net.JoinHostPort(host, strconv.Itoa(g)),
		})
	}
	return ts, nil
}

// Port returns the port of a host:port address (0 if there is none).
func Port(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// versionPaths are where Nacos servers report their version.
var versionPaths = []string{"/nacos/v1/console/server/state", "/nacos/v1/ns/operator/metrics"}

// Version asks the server at httpAddr for its version string, as Nacos
// reports it in a "version" field, and returns Unknown when it reports none.
func Version(ctx context.Context, httpAddr string) string {
	client := &http.Client{Timeout: 2 * time.Second}
	for _, path := range versionPaths {
		if v := versionAt(ctx, client, "http://"+httpAddr+path); v != "" {
			return v
		}
	}
	return Unknown
}

func versionAt(ctx context.Context, client *http.Client, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ""
	}
	resp, err := client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	var body struct {
		Version any `json:"version"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil || body.Version == nil {
		return ""
	}
	return fmt.Sprint(body.Version)
}

// LocalIP returns the address this host would use to reach addr, for the
// client IP that requests carry; "" if it cannot tell. No packet is sent.
func LocalIP(addr string) string {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return ""
	}
	defer c.Close()
	host, _, _ := net.SplitHostPort(c.LocalAddr().String())
	return host
}
