package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/httpwire"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/stats"
	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// The Nacos 1.x HTTP Open API, as the scenarios http-register and beats
// speak it: requests shaped as the 1.x Java SDK sends them (NamingProxy),
// parameters in the query and, for writes, a form body.

// Paths of the v1 naming API.
const (
	instancePath     = "/nacos/v1/ns/instance"
	instanceListPath = "/nacos/v1/ns/instance/list"
	beatPath         = "/nacos/v1/ns/instance/beat"
)

// dialHTTP makes a client of every target's HTTP port with Concurrency
// keep-alive connections and opens them, within deadline, recording each in
// series. The i-th operation of a scenario goes to clients[i % targets].
func (r *run) dialHTTP(deadline time.Time, series *stats.Series) []*httpwire.Client {
	r.Monitor.set("connect", series)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	clients := make([]*httpwire.Client, len(r.Targets))
	for i, t := range r.Targets {
		clients[i] = httpwire.New(t.HTTP, r.Concurrency, r.ClientVersion)
		clients[i].Dial(ctx, func(d time.Duration, err error) {
			if err != nil {
				series.Fail(kind(err))
				return
			}
			series.OK(d)
		})
	}
	return clients
}

// closeHTTP closes the clients.
func closeHTTP(clients []*httpwire.Client) {
	for _, c := range clients {
		c.Close()
	}
}

// groupedName is a service's name as the 1.x SDK sends it: group@@name.
func groupedName(svc wire.Service) string { return svc.Group + "@@" + svc.Name }

// serviceParams appends the parameters naming a service.
func serviceParams(b []byte, svc wire.Service) []byte {
	b = httpwire.AppendParam(b, "namespaceId", svc.Namespace)
	b = httpwire.AppendParam(b, "serviceName", groupedName(svc))
	return httpwire.AppendParam(b, "groupName", svc.Group)
}

// registerForm is the form of a registration of ip:port in svc (the Java
// SDK's registerService): healthy, enabled, ephemeral, in the default
// cluster, without metadata.
func registerForm(svc wire.Service, ip string, port int, weight float64) []byte {
	b := make([]byte, 0, 256)
	b = serviceParams(b, svc)
	b = httpwire.AppendParam(b, "clusterName", "DEFAULT")
	b = httpwire.AppendParam(b, "ip", ip)
	b = httpwire.AppendParam(b, "port", strconv.Itoa(port))
	b = httpwire.AppendParam(b, "weight", strconv.FormatFloat(weight, 'f', -1, 64))
	b = httpwire.AppendParam(b, "enable", "true")
	b = httpwire.AppendParam(b, "healthy", "true")
	b = httpwire.AppendParam(b, "ephemeral", "true")
	return httpwire.AppendParam(b, "metadata", "{}")
}

// registerHTTP registers ip:port in svc and checks the answer is "ok".
func registerHTTP(ctx context.Context, c *httpwire.Client, svc wire.Service, ip string, port int, weight float64) error {
	body, err := c.Do(ctx, httpwire.Request{Method: "POST", Path: instancePath, Form: registerForm(svc, ip, port, weight)})
	if err != nil {
		return err
	}
	if string(body) != "ok" {
		return &wire.ProtocolError{Reason: fmt.Sprintf("registration answered %.100q, want ok", body)}
	}
	return nil
}

// deregisterHTTP deregisters ip:port from svc (parameters in the query, as
// the SDK sends a DELETE).
func deregisterHTTP(ctx context.Context, c *httpwire.Client, svc wire.Service, ip string, port int) error {
	q := serviceParams(make([]byte, 0, 192), svc)
	q = httpwire.AppendParam(q, "clusterName", "DEFAULT")
	q = httpwire.AppendParam(q, "ip", ip)
	q = httpwire.AppendParam(q, "port", strconv.Itoa(port))
	q = httpwire.AppendParam(q, "ephemeral", "true")
	_, err := c.Do(ctx, httpwire.Request{Method: "DELETE", Path: instancePath + "?" + string(q)})
	return err
}

// listHTTP returns the hosts of svc as instance/list answers them (only
// the healthy ones with healthyOnly).
func listHTTP(ctx context.Context, c *httpwire.Client, svc wire.Service, healthyOnly bool) ([]wire.Instance, error) {
	q := serviceParams(nil, svc)
	q = httpwire.AppendParam(q, "healthyOnly", strconv.FormatBool(healthyOnly))
	body, err := c.Do(ctx, httpwire.Request{Method: "GET", Path: instanceListPath + "?" + string(q)})
	if err != nil {
		return nil, err
	}
	var info wire.ServiceInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, &wire.ProtocolError{Reason: fmt.Sprintf("instance/list: %v", err)}
	}
	return info.Hosts, nil
}
