package faults_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sextantd/sextant/cmd/internal/rawnacos"
)

// The suite speaks the Nacos 2.x client wire by hand (cmd/internal/rawnacos):
// a subscriber that records every NotifySubscriberRequest as it arrives, its
// instance count included, is an honest witness of empty pushes (the Go SDK
// drops them unless told not to), and a raw client has none of the SDK's own
// data races on reconnection.

const (
	typeNotify     = rawnacos.NotifyType
	defaultGroup   = "DEFAULT_GROUP"
	requestTimeout = 5 * time.Second
)

// conn is one client connection to a node: a Nacos client, and so, to the
// node, one client.
type conn struct{ *rawnacos.Conn }

// dial connects to the client gRPC port at addr, opens the stream and sets
// the connection up; onPush (may be nil) sees every push.
func dial(addr string, onPush func([]byte)) (*conn, error) {
	c, err := rawnacos.Dial(addr, rawnacos.Options{
		ClientVersion: "sextant-faults", RequestIDPrefix: "faults-", SetupTimeout: requestTimeout, OnPush: onPush,
	})
	if err != nil {
		return nil, err
	}
	return &conn{c}, nil
}

// request sends a unary request and fails unless it is answered with
// result code 200.
func (c *conn) request(timeout time.Duration, typ string, body map[string]any) (rawnacos.Answer, error) {
	a, err := c.Call(timeout, typ, body)
	if err == nil && a.ResultCode != 200 {
		err = fmt.Errorf("%s to %s: answered %d/%d %s", typ, c.Addr, a.ResultCode, a.ErrorCode, a.Message)
	}
	return a, err
}

// instance is a healthy, enabled, ephemeral instance as clients send it.
func instance(addr endpoint) map[string]any {
	return map[string]any{
		"ip": addr.ip, "port": addr.port, "weight": 1.0, "healthy": true, "enabled": true, "ephemeral": true,
		"clusterName": "DEFAULT", "metadata": map[string]string{},
	}
}

func naming(svc string, extra map[string]any) map[string]any {
	extra["namespace"], extra["groupName"], extra["serviceName"] = "", defaultGroup, svc
	return extra
}

// register makes addrs this client's instances of svc (one is sent as a
// registration, more as a batch).
func (c *conn) register(svc string, addrs []endpoint) error {
	if len(addrs) == 1 {
		_, err := c.request(requestTimeout, "InstanceRequest", naming(svc, map[string]any{"type": "registerInstance", "instance": instance(addrs[0])}))
		return err
	}
	list := make([]map[string]any, len(addrs))
	for i, a := range addrs {
		list[i] = instance(a)
	}
	_, err := c.request(requestTimeout, "BatchInstanceRequest", naming(svc, map[string]any{"type": "batchRegisterInstance", "instances": list}))
	return err
}

// deregister removes this client's instance addr of svc.
func (c *conn) deregister(svc string, addr endpoint) error {
	_, err := c.request(requestTimeout, "InstanceRequest", naming(svc, map[string]any{"type": "deregisterInstance", "instance": instance(addr)}))
	return err
}

// subscribe subscribes to every cluster of svc.
func (c *conn) subscribe(svc string) error {
	_, err := c.request(requestTimeout, "SubscribeServiceRequest", naming(svc, map[string]any{"subscribe": true, "clusters": ""}))
	return err
}

// query returns the instances the node serves for svc.
func (c *conn) query(timeout time.Duration, svc string) ([]endpoint, error) {
	info, err := c.queryInfo(timeout, svc)
	return info.hosts, err
}

// queryInfo returns what the node serves for svc.
func (c *conn) queryInfo(timeout time.Duration, svc string) (serviceInfo, error) {
	a, err := c.request(timeout, "ServiceQueryRequest", naming(svc, map[string]any{"cluster": "", "healthyOnly": false}))
	if err != nil {
		return serviceInfo{}, err
	}
	return decodeInfo(a.Body)
}

// endpoint is an instance's address.
type endpoint struct {
	ip   string
	port int
}

func (e endpoint) String() string { return e.ip + ":" + strconv.Itoa(e.port) }

// pushed is what a push names and carries.
type pushed struct {
	service string
	serviceInfo
}

// serviceInfo is what a push or a query's answer says of a service.
type serviceInfo struct {
	hosts []endpoint
	// ref is its lastRefTime: when the node's data of the service last
	// changed before it was sent (the nodes share the test's clock).
	ref time.Time
}

// decodePush reads a NotifySubscriberRequest's body.
func decodePush(body []byte) (pushed, error) {
	var b struct {
		ServiceName string `json:"serviceName"`
		GroupName   string `json:"groupName"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return pushed{}, err
	}
	if b.GroupName != defaultGroup {
		return pushed{}, fmt.Errorf("a push for group %q", b.GroupName)
	}
	info, err := decodeInfo(body)
	return pushed{service: b.ServiceName, serviceInfo: info}, err
}

// decodeInfo reads the serviceInfo of a push or a query's answer.
func decodeInfo(body []byte) (serviceInfo, error) {
	var b struct {
		ServiceInfo *struct {
			Hosts []struct {
				IP   string `json:"ip"`
				Port int    `json:"port"`
			} `json:"hosts"`
			LastRefTime int64 `json:"lastRefTime"`
		} `json:"serviceInfo"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return serviceInfo{}, err
	}
	if b.ServiceInfo == nil {
		return serviceInfo{}, errors.New("no serviceInfo")
	}
	out := make([]endpoint, len(b.ServiceInfo.Hosts))
	for i, h := range b.ServiceInfo.Hosts {
		out[i] = endpoint{h.IP, h.Port}
	}
	return serviceInfo{hosts: out, ref: time.UnixMilli(b.ServiceInfo.LastRefTime)}, nil
}
