package persistent_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/sextantd/sextant/cmd/internal/rawnacos"
)

// The raw client (cmd/internal/rawnacos) speaks the Nacos 2.x client wire by
// hand: the SDK has no PersistentInstanceRequest, and a raw client shows
// every answer's codes as the server gave them.

const requestTimeout = 10 * time.Second

// rawConn is one client connection to a node: to the node, one client.
type rawConn struct{ *rawnacos.Conn }

// answer is a response: its type, common fields and body.
type answer = rawnacos.Answer

// dial connects to the client gRPC port at addr, opens the stream and sets
// the connection up.
func dial(addr string) (*rawConn, error) {
	c, err := rawnacos.Dial(addr, rawnacos.Options{
		ClientVersion: "sextant-persistent-e2e", RequestIDPrefix: "persistent-e2e-", SetupTimeout: requestTimeout,
	})
	if err != nil {
		return nil, err
	}
	return &rawConn{c}, nil
}

// instanceBody is a healthy, enabled instance of weight 1.
func instanceBody(ip string, port int, ephemeral bool, metadata map[string]string) map[string]any {
	return map[string]any{"ip": ip, "port": port, "weight": 1.0, "healthy": true, "enabled": true, "ephemeral": ephemeral,
		"clusterName": "DEFAULT", "metadata": metadata}
}

func namingBody(svc string, extra map[string]any) map[string]any {
	extra["namespace"], extra["groupName"], extra["serviceName"] = "public", "DEFAULT_GROUP", svc
	return extra
}

// registerPersistent sends a PersistentInstanceRequest registering ip:port
// in svc, and returns the answer.
func (c *rawConn) registerPersistent(timeout time.Duration, svc, ip string, port int, metadata map[string]string) (answer, error) {
	return c.Call(timeout, "PersistentInstanceRequest", namingBody(svc, map[string]any{"type": "registerInstance", "instance": instanceBody(ip, port, false, metadata)}))
}

// deregisterPersistent sends a PersistentInstanceRequest deregistering
// ip:port from svc.
func (c *rawConn) deregisterPersistent(svc, ip string, port int) (answer, error) {
	return c.Call(requestTimeout, "PersistentInstanceRequest", namingBody(svc, map[string]any{"type": "deregisterInstance", "instance": instanceBody(ip, port, false, nil)}))
}

// registerEphemeral makes ip:port this connection's instance of svc.
func (c *rawConn) registerEphemeral(svc, ip string, port int) (answer, error) {
	return c.Call(requestTimeout, "InstanceRequest", namingBody(svc, map[string]any{"type": "registerInstance", "instance": instanceBody(ip, port, true, nil)}))
}

// query returns the addresses (ip:port) a node answers a
// ServiceQueryRequest for svc with, and whether each is ephemeral.
func (c *rawConn) query(svc string) (map[string]bool, error) {
	a, err := c.Call(requestTimeout, "ServiceQueryRequest", namingBody(svc, map[string]any{"cluster": "", "healthyOnly": false}))
	if err != nil {
		return nil, err
	}
	if a.ResultCode != 200 {
		return nil, fmt.Errorf("ServiceQueryRequest: %s", a)
	}
	var b struct {
		ServiceInfo struct {
			Hosts []struct {
				IP        string `json:"ip"`
				Port      int    `json:"port"`
				Ephemeral bool   `json:"ephemeral"`
			} `json:"hosts"`
		} `json:"serviceInfo"`
	}
	if err := json.Unmarshal(a.Body, &b); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, h := range b.ServiceInfo.Hosts {
		out[h.IP+":"+strconv.Itoa(h.Port)] = h.Ephemeral
	}
	return out, nil
}
