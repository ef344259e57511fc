package remote

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/sextantd/sextant/core/naming"
)

// Nacos naming request types and their instance operations.
const (
	opRegister      = "registerInstance"
	opDeregister    = "deregisterInstance"
	opBatchRegister = "batchRegisterInstance"
	maxPageSize     = 10000
)

// namingRequest holds the fields every naming request carries.
type namingRequest struct {
	requestBase
	Namespace   string `json:"namespace"`
	ServiceName string `json:"serviceName"`
	GroupName   string `json:"groupName"`
}

func (r *namingRequest) service(l naming.Limits) (naming.Service, error) {
	return l.NormalizeService(naming.Service{Namespace: r.Namespace, Group: r.GroupName, Name: r.ServiceName})
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

// normalize converts w to a validated instance of svc; field names it in errors.
func (w *wireInstance) normalize(l naming.Limits, svc naming.Service, field string) (naming.Instance, error) {
	return l.NormalizeInstance(svc, field, naming.Instance{
		ID:        w.InstanceID,
		IP:        w.IP,
		Port:      w.Port,
		Weight:    w.Weight,
		Healthy:   w.Healthy,
		Enabled:   w.Enabled,
		Ephemeral: w.Ephemeral,
		Cluster:   w.ClusterName,
		Metadata:  w.Metadata,
	})
}

func requireEphemeral(field string, inst naming.Instance) error {
	if !inst.Ephemeral {
		return &naming.InvalidError{Field: field + ".ephemeral", Reason: "must be true: gRPC clients register ephemeral instances only"}
	}
	return nil
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
	l := s.registry.Limits()
	svc, err := req.service(l)
	if err != nil {
		return nil, err
	}
	if req.Instance == nil {
		return nil, &naming.InvalidError{Field: "instance", Reason: "must be present"}
	}
	inst, err := req.Instance.normalize(l, svc, "instance")
	if err != nil {
		return nil, err
	}
	switch req.Type {
	case opRegister:
		if err := requireEphemeral("instance", inst); err != nil {
			return nil, err
		}
		err = s.registry.Register(ctx, c.connectionID, svc, inst)
	case opDeregister:
		err = s.registry.Deregister(ctx, c.connectionID, svc, inst)
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
	l := s.registry.Limits()
	svc, err := req.service(l)
	if err != nil {
		return nil, err
	}
	insts := make([]naming.Instance, len(req.Instances))
	for i := range req.Instances {
		field := "instances[" + strconv.Itoa(i) + "]"
		if insts[i], err = req.Instances[i].normalize(l, svc, field); err != nil {
			return nil, err
		}
		if err := requireEphemeral(field, insts[i]); err != nil {
			return nil, err
		}
	}
	if err := s.registry.BatchRegister(ctx, c.connectionID, svc, insts); err != nil {
		return nil, err
	}
	return &batchInstanceResponse{Type: req.Type}, nil
}

// serviceInfoResponse is both SubscribeServiceResponse and QueryServiceResponse.
type serviceInfoResponse struct {
	responseBase
	ServiceInfo []byte // the cached encoding of the view, spliced in as is
}

// encode writes the response around the cached ServiceInfo JSON without
// re-reading it: encoding/json would validate and compact it on every answer.
func (r *serviceInfoResponse) encode() ([]byte, error) {
	base, err := json.Marshal(&r.responseBase)
	if err != nil {
		return nil, err
	}
	const field = `,"serviceInfo":`
	out := make([]byte, 0, len(base)+len(field)+len(r.ServiceInfo))
	out = append(out, base[:len(base)-1]...) // drop the closing brace
	out = append(out, field...)
	out = append(out, r.ServiceInfo...)
	return append(out, '}'), nil
}

type subscribeServiceRequest struct {
	namingRequest
	Subscribe bool   `json:"subscribe"`
	Clusters  string `json:"clusters"`
}

func (s *Server) subscribeService(ctx context.Context, c *call, req *subscribeServiceRequest) (response, error) {
	svc, err := req.service(s.registry.Limits())
	if err != nil {
		return nil, err
	}
	if err := naming.NormalizeClusters("clusters", req.Clusters); err != nil {
		return nil, err
	}
	if !req.Subscribe {
		if err := s.registry.Unsubscribe(c.connectionID, svc); err != nil {
			return nil, err
		}
		return &serviceInfoResponse{ServiceInfo: s.registry.View(svc, naming.ViewFilter{Clusters: req.Clusters})}, nil
	}
	info, err := s.registry.Subscribe(ctx, c.connectionID, svc, naming.Subscription{Clusters: req.Clusters, App: c.headers["app"]})
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
	svc, err := req.service(s.registry.Limits())
	if err != nil {
		return nil, err
	}
	if err := naming.NormalizeClusters("cluster", req.Cluster); err != nil {
		return nil, err
	}
	info := s.registry.View(svc, naming.ViewFilter{Clusters: req.Cluster, HealthyOnly: req.HealthyOnly})
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
	namespace, group, err := s.registry.Limits().NormalizeScope(req.Namespace, req.GroupName)
	if err != nil {
		return nil, err
	}
	if req.PageNo < 1 {
		return nil, &naming.InvalidError{Field: "pageNo", Reason: strconv.Itoa(req.PageNo) + " must be at least 1"}
	}
	if req.PageSize < 1 || req.PageSize > maxPageSize {
		return nil, &naming.InvalidError{Field: "pageSize", Reason: strconv.Itoa(req.PageSize) + " is out of range 1-" + strconv.Itoa(maxPageSize)}
	}
	count, names := s.registry.ListServices(namespace, group, req.PageNo, req.PageSize)
	return &serviceListResponse{Count: count, ServiceNames: names}, nil
}

// requestHandlers maps every request type the server serves, beyond
// ServerCheckRequest, to its handler.
func (s *Server) requestHandlers() map[string]handler {
	return map[string]handler{
		typeHealthCheck:           handle[healthCheckRequest](typeHealthCheckResp, s.healthCheck),
		"InstanceRequest":         handle[instanceRequest]("InstanceResponse", s.instance),
		"BatchInstanceRequest":    handle[batchInstanceRequest]("BatchInstanceResponse", s.batchInstance),
		"SubscribeServiceRequest": handle[subscribeServiceRequest]("SubscribeServiceResponse", s.subscribeService),
		"ServiceQueryRequest":     handle[serviceQueryRequest]("QueryServiceResponse", s.serviceQuery),
		"ServiceListRequest":      handle[serviceListRequest]("ServiceListResponse", s.serviceList),
	}
}
