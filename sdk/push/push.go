// Package push is the API of push executors: what delivers a service's data to
// the subscribers of that service. The server hands an executor batches — one
// service's encoded data and many targets — and gets back one result per target.
//
// This package is public: plugin authors import it and never anything under core/.
package push

import (
	"context"
	"encoding/json"
)

// Service names a service the way Nacos clients do.
type Service struct {
	Namespace string
	Group     string
	Name      string
}

// Target is one subscriber a batch is delivered to.
type Target struct {
	// ClientID is the subscriber's client id in the registry.
	ClientID string
	// ConnectionID is the gRPC client connection the subscriber is reached on
	// ("" for a subscriber of the HTTP API).
	ConnectionID string
	// Address is the UDP address (ip:port) a subscriber of the HTTP API
	// (a 1.x client polling instance/list with udpPort) is pushed to; ""
	// for a gRPC connection's subscriber. The udp role gets these targets.
	Address string
	// App is the subscriber's application name, when it sent one.
	App string
}

// Batch is one service's data for many subscribers that asked for the same view of it.
type Batch struct {
	Service Service
	// Clusters is the cluster filter the data was built for, as the subscribers
	// sent it ("" means every cluster).
	Clusters string
	// ServiceInfo is the Nacos ServiceInfo JSON exactly as the targets'
	// clients expect it: for gRPC connections as 2.x clients read it in a
	// NotifySubscriberRequest (the service's bare name); for the udp role's
	// targets as 1.x clients read it from instance/list (named group@@name),
	// which they take in a UDP push's "data". It is shared by every target:
	// do not modify it.
	ServiceInfo []byte
	Targets     []Target
}

// Executor delivers batches to subscribers. An executor that holds
// resources (a socket, connections) may also implement io.Closer: it is
// closed once the server stops pushing through it.
type Executor interface {
	// Push delivers b to every target and returns one error per target, in the
	// order of b.Targets: nil when the subscriber acknowledged, an error when it
	// did not (it will be retried). Push returns by ctx's deadline at the latest
	// and reports failures as errors, never as panics.
	Push(ctx context.Context, b Batch) []error
}

// Connections is the host service through which an executor reaches the
// server's gRPC client connections.
type Connections interface {
	// Request sends one server-to-client request — its Nacos class name and its
	// JSON body without requestId, which the host assigns — to each connection,
	// and waits for each client's answer or ctx. It returns one error per
	// connection, in order: nil when the client answered with result code 200.
	Request(ctx context.Context, requestType string, body []byte, connectionIDs []string) []error
}

// NotifyRequestType is the Nacos class name of a server push to a 2.x
// client: the requestType an executor passes to Connections.Request with the
// body NotifyRequest builds.
const NotifyRequestType = "NotifySubscriberRequest"

// notifyBody is the JSON of a NotifySubscriberRequest minus its requestId.
type notifyBody struct {
	Module      string          `json:"module"`
	Namespace   string          `json:"namespace"`
	ServiceName string          `json:"serviceName"`
	GroupName   string          `json:"groupName"`
	ServiceInfo json.RawMessage `json:"serviceInfo"`
}

// NotifyRequest returns the body of the NotifySubscriberRequest that carries
// b's data to a Nacos 2.x client, without the requestId (the host assigns
// it). An executor that delivers to subscribers on gRPC connections sends it
// to their ConnectionIDs:
//
//	body, err := push.NotifyRequest(b)
//	...
//	errs := host.Connections.Request(ctx, push.NotifyRequestType, body, connectionIDs)
func NotifyRequest(b Batch) ([]byte, error) {
	return json.Marshal(notifyBody{
		Module:      "naming",
		Namespace:   b.Service.Namespace,
		ServiceName: b.Service.Name,
		GroupName:   b.Service.Group,
		ServiceInfo: b.ServiceInfo,
	})
}
