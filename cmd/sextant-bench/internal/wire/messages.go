package wire

import (
	"encoding/json"
	"fmt"
)

// Service names a service as requests carry it; empty fields take the
// server's defaults (namespace public, group DEFAULT_GROUP).
type Service struct {
	Namespace string
	Group     string
	Name      string
}

func (s Service) String() string { return s.Namespace + "/" + s.Group + "@@" + s.Name }

// Instance is an instance as the Nacos wire carries it.
type Instance struct {
	InstanceID  string            `json:"instanceId"`
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	Ephemeral   bool              `json:"ephemeral"`
	ClusterName string            `json:"clusterName"`
	ServiceName string            `json:"serviceName"`
	Metadata    map[string]string `json:"metadata"`
}

// NewInstance returns a healthy, enabled, ephemeral instance of weight 1 in
// the default cluster, as the official clients register one.
func NewInstance(ip string, port int) Instance {
	return Instance{IP: ip, Port: port, Weight: 1, Healthy: true, Enabled: true, Ephemeral: true, ClusterName: "DEFAULT"}
}

// ServiceInfo is a service's data as queries, subscriptions and pushes carry it.
type ServiceInfo struct {
	Name                     string     `json:"name"`
	GroupName                string     `json:"groupName"`
	Clusters                 string     `json:"clusters"`
	CacheMillis              int64      `json:"cacheMillis"`
	Hosts                    []Instance `json:"hosts"`
	LastRefTime              int64      `json:"lastRefTime"`
	Checksum                 string     `json:"checksum"`
	AllIPs                   bool       `json:"allIPs"`
	ReachProtectionThreshold bool       `json:"reachProtectionThreshold"`
	Valid                    bool       `json:"valid"`
}

// Request is a client request: its JSON body and its class names.
type Request interface {
	// RequestType is the request's class name (Metadata.type).
	RequestType() string
	// ResponseType is the class name of a successful answer.
	ResponseType() string
}

// internalRequest is the body of the connection-level requests.
type internalRequest struct {
	RequestID string `json:"requestId"`
	Module    string `json:"module"`
}

// HealthCheck is the client keep-alive, HealthCheckRequest.
type HealthCheck struct{ internalRequest }

// NewHealthCheck returns a HealthCheckRequest.
func NewHealthCheck() *HealthCheck { return &HealthCheck{internalRequest{Module: "internal"}} }

// RequestType implements Request.
func (*HealthCheck) RequestType() string { return "HealthCheckRequest" }

// ResponseType implements Request.
func (*HealthCheck) ResponseType() string { return "HealthCheckResponse" }

type serverCheck struct{ internalRequest }

func (*serverCheck) RequestType() string  { return "ServerCheckRequest" }
func (*serverCheck) ResponseType() string { return "ServerCheckResponse" }

// connectionSetup is the first message on the bi-stream.
type connectionSetup struct {
	internalRequest
	ClientVersion   string            `json:"clientVersion"`
	Tenant          string            `json:"tenant"`
	Labels          map[string]string `json:"labels"`
	ClientAbilities struct{}          `json:"clientAbilities"`
}

// namingRequest holds the fields of every naming request.
type namingRequest struct {
	RequestID   string `json:"requestId"`
	Module      string `json:"module"`
	Namespace   string `json:"namespace"`
	ServiceName string `json:"serviceName"`
	GroupName   string `json:"groupName"`
}

func naming(s Service) namingRequest {
	return namingRequest{Module: "naming", Namespace: s.Namespace, ServiceName: s.Name, GroupName: s.Group}
}

// InstanceRequest registers or deregisters one instance.
type InstanceRequest struct {
	namingRequest
	Type     string   `json:"type"`
	Instance Instance `json:"instance"`
}

// Register returns the request that makes inst the connection's instance of svc.
func Register(svc Service, inst Instance) *InstanceRequest {
	return &InstanceRequest{namingRequest: naming(svc), Type: "registerInstance", Instance: inst}
}

// Deregister returns the request that removes the connection's instance of svc.
func Deregister(svc Service, inst Instance) *InstanceRequest {
	return &InstanceRequest{namingRequest: naming(svc), Type: "deregisterInstance", Instance: inst}
}

// RequestType implements Request.
func (*InstanceRequest) RequestType() string { return "InstanceRequest" }

// ResponseType implements Request.
func (*InstanceRequest) ResponseType() string { return "InstanceResponse" }

// SubscribeRequest subscribes to a service or ends a subscription.
type SubscribeRequest struct {
	namingRequest
	Subscribe bool   `json:"subscribe"`
	Clusters  string `json:"clusters"`
}

// Subscribe returns the request that subscribes the connection to svc (all
// clusters).
func Subscribe(svc Service) *SubscribeRequest {
	return &SubscribeRequest{namingRequest: naming(svc), Subscribe: true}
}

// RequestType implements Request.
func (*SubscribeRequest) RequestType() string { return "SubscribeServiceRequest" }

// ResponseType implements Request.
func (*SubscribeRequest) ResponseType() string { return "SubscribeServiceResponse" }

// QueryRequest asks for a service's instances once.
type QueryRequest struct {
	namingRequest
	Cluster     string `json:"cluster"`
	HealthyOnly bool   `json:"healthyOnly"`
	UDPPort     int    `json:"udpPort"`
}

// Query returns the request for svc's instances (all clusters, healthy or not).
func Query(svc Service) *QueryRequest { return &QueryRequest{namingRequest: naming(svc)} }

// RequestType implements Request.
func (*QueryRequest) RequestType() string { return "ServiceQueryRequest" }

// ResponseType implements Request.
func (*QueryRequest) ResponseType() string { return "QueryServiceResponse" }

// Response is the part every response carries.
type Response struct {
	ResultCode int    `json:"resultCode"`
	ErrorCode  int    `json:"errorCode"`
	Success    bool   `json:"success"`
	Message    string `json:"message"`
	RequestID  string `json:"requestId"`
}

func (r *Response) base() *Response { return r }

// response is a decoded response body.
type response interface{ base() *Response }

// ServiceInfoResponse is the answer to a query or a subscription.
type ServiceInfoResponse struct {
	Response
	ServiceInfo ServiceInfo `json:"serviceInfo"`
}

type serverCheckResponse struct {
	Response
	ConnectionID string `json:"connectionId"`
}

// NotifySubscriber is a server push, NotifySubscriberRequest.
type NotifySubscriber struct {
	RequestID   string      `json:"requestId"`
	ServiceName string      `json:"serviceName"`
	GroupName   string      `json:"groupName"`
	ServiceInfo ServiceInfo `json:"serviceInfo"`
}

// NotifySubscriberType is the class name of a server push.
const NotifySubscriberType = "NotifySubscriberRequest"

// DecodeNotify decodes the body of a NotifySubscriberRequest.
func DecodeNotify(body []byte) (*NotifySubscriber, error) {
	var n NotifySubscriber
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, &ProtocolError{Reason: fmt.Sprintf("%s body could not be parsed: %v", NotifySubscriberType, err)}
	}
	return &n, nil
}

// PersistentInstanceRequest registers or deregisters one persistent
// (ephemeral=false) instance, as the Java client 2.2+ sends it; the server
// writes it through its Raft store.
type PersistentInstanceRequest struct {
	namingRequest
	Type     string   `json:"type"`
	Instance Instance `json:"instance"`
}

// RegisterPersistent returns the request that registers inst, made
// persistent, in svc.
func RegisterPersistent(svc Service, inst Instance) *PersistentInstanceRequest {
	inst.Ephemeral = false
	return &PersistentInstanceRequest{namingRequest: naming(svc), Type: "registerInstance", Instance: inst}
}

// RequestType implements Request.
func (*PersistentInstanceRequest) RequestType() string { return "PersistentInstanceRequest" }

// ResponseType implements Request.
func (*PersistentInstanceRequest) ResponseType() string { return "InstanceResponse" }
