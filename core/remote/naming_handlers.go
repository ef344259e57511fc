package remote

import (
	"context"
	"strconv"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/persist"
	"github.com/sextantd/sextant/core/remote/serveropts"
)

// Nacos naming request types and their instance operations.
const (
	opRegister      = "registerInstance"
	opDeregister    = "deregisterInstance"
	opBatchRegister = "batchRegisterInstance"
)

// The handlers below convert what clients send to naming's types and leave
// its validation to the registry's entry points, which every front end
// shares; only what is particular to the gRPC protocol is checked here.

// namingRequest holds the fields every naming request carries.
type namingRequest struct {
	requestBase
	Namespace   string `json:"namespace"`
	ServiceName string `json:"serviceName"`
	GroupName   string `json:"groupName"`
}

func (r *namingRequest) service() naming.Service {
	return naming.Service{Namespace: r.Namespace, Group: r.GroupName, Name: r.ServiceName}
}

// wireInstance is an instance as clients send it.
type wireInstance struct {
	InstanceID  string            `json:"instanceId"`
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	Ephemeral   bool              `json:"ephemeral"`
	ClusterName string            `json:"clusterName"`
	Metadata    map[string]string `json:"metadata"`
}

// instance converts w; the registry validates it.
func (w *wireInstance) instance() naming.Instance {
	return naming.Instance{
		ID:        w.InstanceID,
		IP:        w.IP,
		Port:      w.Port,
		Weight:    w.Weight,
		Healthy:   w.Healthy,
		Enabled:   w.Enabled,
		Ephemeral: w.Ephemeral,
		Cluster:   w.ClusterName,
		Metadata:  w.Metadata,
	}
}

// A batch is of one client's connection: its instances are ephemeral.
func requireEphemeral(field string, w *wireInstance) error {
	if !w.Ephemeral {
		return &naming.InvalidError{Field: field + ".ephemeral", Reason: "a batch registers ephemeral instances; register persistent ones one by one"}
	}
	return nil
}

// persistentInstance serves the PersistentInstanceRequest of the Java
// client 2.2+ (its ephemeral=false instances), and an InstanceRequest of a
// persistent instance: written through the Raft store, they outlive the
// connection. As in Nacos, a deregistration names the address
// (ip, port, cluster).
func (s *Server) persistentInstance(ctx context.Context, _ *call, req *instanceRequest) (response, error) {
	if req.Instance == nil {
		return nil, &naming.InvalidError{Field: "instance", Reason: "must be present"}
	}
	if s.store == nil {
		return nil, &naming.InvalidError{Field: "instance.ephemeral", Reason: "this server stores no persistent instances; register ephemeral ones"}
	}
	w := req.Instance
	var op persist.Op
	switch req.Type {
	case opRegister:
		op = persist.PutInstance{Service: req.service(), Instance: persist.Instance{IP: w.IP, Port: w.Port, Cluster: w.ClusterName,
			Weight: w.Weight, Healthy: w.Healthy, Enabled: w.Enabled, Metadata: w.Metadata}}
	case opDeregister:
		op = persist.RemoveInstance{Service: req.service(), IP: w.IP, Port: w.Port, Cluster: w.ClusterName}
	default:
		return nil, &naming.InvalidError{Field: "type", Reason: strconv.Quote(req.Type) + " is neither " + opRegister + " nor " + opDeregister}
	}
	if err := s.store.Do(ctx, op); err != nil {
		return nil, err
	}
	return &instanceResponse{Type: req.Type}, nil
}

type instanceRequest struct {
	namingRequest
	Type     string        `json:"type"`
	Instance *wireInstance `json:"instance"`
}

type instanceResponse struct {
	responseBase
	Type string `json:"type"`
}

func (s *Server) instance(ctx context.Context, c *call, req *instanceRequest) (response, error) {
	if req.Instance == nil {
		return nil, &naming.InvalidError{Field: "instance", Reason: "must be present"}
	}
	if !req.Instance.Ephemeral {
		return s.persistentInstance(ctx, c, req)
	}
	var err error
	switch req.Type {
	case opRegister:
		err = s.registry.Register(ctx, c.connectionID, req.service(), req.Instance.instance())
	case opDeregister:
		err = s.registry.Deregister(ctx, c.connectionID, req.service(), req.Instance.instance())
	default:
		return nil, &naming.InvalidError{Field: "type", Reason: strconv.Quote(req.Type) + " is neither " + opRegister + " nor " + opDeregister}
	}
	if err != nil {
		return nil, err
	}
	return &instanceResponse{Type: req.Type}, nil
}

type batchInstanceRequest struct {
	namingRequest
	Type      string         `json:"type"`
	Instances []wireInstance `json:"instances"`
}

type batchInstanceResponse struct {
	responseBase
	Type string `json:"type"`
}

func (s *Server) batchInstance(ctx context.Context, c *call, req *batchInstanceRequest) (response, error) {
	if req.Type != opBatchRegister {
		return nil, &naming.InvalidError{Field: "type", Reason: strconv.Quote(req.Type) + " is not " + opBatchRegister}
	}
	insts := make([]naming.Instance, len(req.Instances))
	for i := range req.Instances {
		if err := requireEphemeral("instances["+strconv.Itoa(i)+"]", &req.Instances[i]); err != nil {
			return nil, err
		}
		insts[i] = req.Instances[i].instance()
	}
	if err := s.registry.BatchRegister(ctx, c.connectionID, req.service(), insts); err != nil {
		return nil, err
	}
	return &batchInstanceResponse{Type: req.Type}, nil
}

// serviceInfoResponse is both SubscribeServiceResponse and QueryServiceResponse.
type serviceInfoResponse struct {
	responseBase
	ServiceInfo []byte // the cached encoding of the view, spliced in as is
}

// answer is the response of class typ around the cached ServiceInfo JSON,
// which is neither re-read (encoding/json would validate and compact it on
// every answer) nor copied: it is written from the cache.
func (r *serviceInfoResponse) answer(typ string) *serveropts.Answer {
	a := new(splicedAnswer)
	head := append(appendBase(a.head[:0], &r.responseBase), serviceInfoField...)
	a.parts = [3][]byte{head, r.ServiceInfo, closingBrace}
	a.Answer = serveropts.Answer{Type: typ, Body: a.parts[:]}
	return &a.Answer
}

// splicedAnswer is an answer around a ServiceInfo, allocated with its parts
// and room for the first.
type splicedAnswer struct {
	serveropts.Answer
	parts [3][]byte
	head  [baseSize + 64]byte
}

const serviceInfoField = `,"serviceInfo":`

var closingBrace = []byte{'}'}

type subscribeServiceRequest struct {
	namingRequest
	Subscribe bool   `json:"subscribe"`
	Clusters  string `json:"clusters"`
}

func (s *Server) subscribeService(ctx context.Context, c *call, req *subscribeServiceRequest) (response, error) {
	var info []byte
	var err error
	if req.Subscribe {
		info, err = s.registry.Subscribe(ctx, c.connectionID, req.service(), naming.Subscription{Clusters: req.Clusters, App: c.headers["app"]})
	} else {
		info, err = s.registry.Unsubscribe(c.connectionID, req.service(), req.Clusters)
	}
	if err != nil {
		return nil, err
	}
	return &serviceInfoResponse{ServiceInfo: info}, nil
}

type serviceQueryRequest struct {
	namingRequest
	Cluster     string `json:"cluster"`
	HealthyOnly bool   `json:"healthyOnly"`
}

func (s *Server) serviceQuery(_ context.Context, _ *call, req *serviceQueryRequest) (response, error) {
	info, err := s.registry.Query(req.service(), naming.ViewFilter{Clusters: req.Cluster, HealthyOnly: req.HealthyOnly})
	if err != nil {
		return nil, err
	}
	return &serviceInfoResponse{ServiceInfo: info}, nil
}

type serviceListRequest struct {
	namingRequest
	PageNo   int `json:"pageNo"`
	PageSize int `json:"pageSize"`
}

type serviceListResponse struct {
	responseBase
	Count        int      `json:"count"`
	ServiceNames []string `json:"serviceNames"`
}

func (s *Server) serviceList(_ context.Context, _ *call, req *serviceListRequest) (response, error) {
	count, names, err := s.registry.ListServices(req.Namespace, req.GroupName, req.PageNo, req.PageSize)
	if err != nil {
		return nil, err
	}
	return &serviceListResponse{Count: count, ServiceNames: names}, nil
}

// requestHandlers maps every request type the server serves, beyond
// ServerCheckRequest, to its handler.
func (s *Server) requestHandlers() map[string]handler {
	return map[string]handler{
		typeHealthCheck:             handle[healthCheckRequest](typeHealthCheckResp, s.healthCheck),
		"InstanceRequest":           handle[instanceRequest]("InstanceResponse", s.instance),
		"PersistentInstanceRequest": handle[instanceRequest]("InstanceResponse", s.persistentInstance),
		"BatchInstanceRequest":      handle[batchInstanceRequest]("BatchInstanceResponse", s.batchInstance),
		"SubscribeServiceRequest":   handle[subscribeServiceRequest]("SubscribeServiceResponse", s.subscribeService),
		"ServiceQueryRequest":       handle[serviceQueryRequest]("QueryServiceResponse", s.serviceQuery),
		"ServiceListRequest":        handle[serviceListRequest]("ServiceListResponse", s.serviceList),
	}
}
