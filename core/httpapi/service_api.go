package httpapi

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"strings"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/persist"
)

// The service endpoints of the naming Open API, as Nacos 2.x's
// ServiceController (v1), ServiceControllerV2, CatalogController and
// HealthController serve them.
//
// A service exists while it has instances (ephemeral or persistent), or once
// an operator creates it (POST /service) until it is deleted. What the
// operator defines — the protection threshold, metadata and selector — is
// written through the Raft store (Config.Store; without one these writes
// answer 501), so every member holds it and it outlives restarts; the
// registry mirrors it, and the reads (GET /service, the lists, the views)
// come from the registry. Views apply the protection threshold; the
// selector is stored and answered, not applied (Nacos applies a label
// selector only with a CMDB plugin).
//
// "Exists" is Nacos's: as its ServiceManager holds a service from its first
// instance of any kind, creating a service that has only ephemeral
// instances is refused (400, already exists), updating it defines it, and
// deleting a service is refused while it has instances of any kind.

// serviceEndpoints are the endpoints of services, the console's service list
// and the health of instances.
var serviceEndpoints = []namingEndpoint{
	{http.MethodPost, "/service", auth.Write, both, (*namingAPI).createService},
	{http.MethodPut, "/service", auth.Write, both, (*namingAPI).updateService},
	{http.MethodDelete, "/service", auth.Write, both, (*namingAPI).deleteService},
	{http.MethodGet, "/service", auth.Read, both, (*namingAPI).getService},
	{http.MethodGet, "/service/list", auth.Read, both, (*namingAPI).listServices},
	{http.MethodGet, "/catalog/services", auth.Read, []apiVersion{v1}, (*namingAPI).catalogServices},
	{http.MethodPut, "/health/instance", auth.Write, both, (*namingAPI).setInstanceHealth},
	{http.MethodPut, "/health", auth.Write, []apiVersion{v1}, (*namingAPI).setInstanceHealth}, // v1's other path
}

// Nacos's v2 error codes of services and instances (ErrorCode).
const (
	codeInstanceError        = 21004
	codeSelectorError        = 21006
	codeServiceAlreadyExist  = 21007
	codeServiceNotExist      = 21008
	codeServiceDeleteFailure = 21009
)

func init() {
	maps.Copy(codeMessages, map[int]string{
		codeInstanceError:        "instance error",
		codeSelectorError:        "selector error",
		codeServiceAlreadyExist:  "service already exist",
		codeServiceNotExist:      "service not exist",
		codeServiceDeleteFailure: "service delete failure",
	})
}

// serviceError turns the registry's refusals of a service operation into
// Nacos's: 400 with a v2 code of its own, as ServiceOperatorV2Impl answers.
func serviceError(err error, svc naming.Service) error {
	name := svc.GroupedName()
	switch {
	case errors.Is(err, naming.ErrServiceNotFound):
		return &apiError{status: http.StatusBadRequest, code: codeServiceNotExist, msg: "serviceName: service " + name + " not found"}
	case errors.Is(err, naming.ErrServiceExists):
		return &apiError{status: http.StatusBadRequest, code: codeServiceAlreadyExist,
			msg: "serviceName: service " + name + " already exists; change it with PUT"}
	case errors.Is(err, naming.ErrServiceNotEmpty):
		return &apiError{status: http.StatusBadRequest, code: codeServiceDeleteFailure,
			msg: "serviceName: service " + name + " still has instances and cannot be deleted; deregister them first"}
	}
	var invalid *naming.InvalidError
	if errors.As(err, &invalid) && invalid.Field == "selector" {
		return &apiError{status: http.StatusBadRequest, code: codeSelectorError, msg: invalid.Error()}
	}
	return err
}

// normalizedService reads the service a request names, with Nacos's defaults
// applied (public, DEFAULT_GROUP) and checked.
func (a *namingAPI) normalizedService(p params) (naming.Service, error) {
	svc, err := p.service()
	if err != nil {
		return svc, err
	}
	return a.reg.Limits().NormalizeService(svc)
}

// serviceMeta reads a service definition: protectThreshold (required when
// required is set, as v1's update has it; else 0), metadata (JSON or
// k=v,k2=v2; absent is none) and selector (JSON {"type":...,"expression":...};
// absent is none). As in Nacos, what is absent is reset, not kept.
func serviceMeta(p params, required bool) (naming.ServiceMeta, error) {
	var m naming.ServiceMeta
	if required && p.str("protectThreshold") == "" {
		return m, missingParam("protectThreshold")
	}
	var err error
	if m.ProtectThreshold, err = p.number("protectThreshold", 0); err != nil {
		return m, err
	}
	if m.Metadata, err = p.metadata("metadata"); err != nil {
		return m, err
	}
	if m.Selector, err = parseSelector(p.str("selector")); err != nil {
		return m, err
	}
	return m, nil
}

// parseSelector reads Nacos's selector parameter: JSON with a type and, for
// "label", an expression; Nacos URL-decodes it once more, so a value still
// percent-encoded is taken too.
func parseSelector(v string) (naming.Selector, error) {
	if strings.TrimSpace(v) == "" {
		return naming.Selector{}, nil
	}
	var raw struct {
		Type       *string `json:"type"`
		Expression string  `json:"expression"`
	}
	err := json.Unmarshal([]byte(v), &raw)
	if err != nil {
		if decoded, derr := url.QueryUnescape(v); derr == nil && decoded != v {
			err = json.Unmarshal([]byte(decoded), &raw)
		}
	}
	switch {
	case err != nil:
		return naming.Selector{}, &apiError{status: http.StatusBadRequest, code: codeSelectorError,
			msg: "selector: not the JSON of a selector ({\"type\":\"label\",\"expression\":\"...\"}): " + err.Error()}
	case raw.Type == nil:
		return naming.Selector{}, &apiError{status: http.StatusBadRequest, code: codeSelectorError, msg: "selector: no type (none or label)"}
	}
	return naming.Selector{Type: *raw.Type, Expression: raw.Expression}, nil
}

// definition is a service definition as the store holds it.
func definition(m naming.ServiceMeta) persist.ServiceDefinition {
	return persist.ServiceDefinition{ProtectThreshold: m.ProtectThreshold, Metadata: m.Metadata, Selector: m.Selector}
}

// createService: POST /service. Answers "ok"; 400 if the service exists
// (defined, or with instances of any kind).
func (a *namingAPI) createService(_ apiVersion, r *http.Request, p params) (answer, error) {
	svc, err := a.normalizedService(p)
	if err != nil {
		return answer{}, err
	}
	m, err := serviceMeta(p, false)
	if err != nil {
		return answer{}, err
	}
	if a.store == nil {
		return answer{}, errNoStore("serviceName", "service definitions")
	}
	// The store knows only the persistent state: ephemeral instances make
	// the service exist too. (The store's ExpectAbsent settles races
	// between creates.)
	if _, err := a.reg.ServiceDetail(svc); err == nil {
		return answer{}, serviceError(naming.ErrServiceExists, svc)
	}
	err = a.store.Do(r.Context(), persist.PutService{Service: svc, Definition: definition(m), Expect: persist.ExpectAbsent})
	if err != nil {
		return answer{}, serviceError(err, svc)
	}
	return okAnswer()
}

// updateService: PUT /service. Replaces the definition (v1 requires
// protectThreshold, as Nacos does); answers "ok"; 400 if the service does
// not exist.
func (a *namingAPI) updateService(v apiVersion, r *http.Request, p params) (answer, error) {
	svc, err := a.normalizedService(p)
	if err != nil {
		return answer{}, err
	}
	m, err := serviceMeta(p, v == v1)
	if err != nil {
		return answer{}, err
	}
	if a.store == nil {
		return answer{}, errNoStore("serviceName", "service definitions")
	}
	expect := persist.ExpectPresent
	fsm := a.store.FSM()
	if _, defined := fsm.Service(svc); !defined && len(fsm.Instances(svc)) == 0 {
		// Unknown to the store: it exists if it has ephemeral instances,
		// and is then defined.
		if _, err := a.reg.ServiceDetail(svc); err != nil {
			return answer{}, serviceError(err, svc)
		}
		expect = persist.ExpectAny
	}
	err = a.store.Do(r.Context(), persist.PutService{Service: svc, Definition: definition(m), Expect: expect})
	if err != nil {
		return answer{}, serviceError(err, svc)
	}
	return okAnswer()
}

// deleteService: DELETE /service. Answers "ok"; 400 if the service does not
// exist or still has instances of any kind (the store refuses it while it
// has persistent ones; this node's registry tells of the ephemeral ones).
// Its cluster definitions go with it, and a service of cluster definitions
// alone (its instances gone) is deleted too.
func (a *namingAPI) deleteService(_ apiVersion, r *http.Request, p params) (answer, error) {
	svc, err := a.normalizedService(p)
	if err != nil {
		return answer{}, err
	}
	if a.store == nil {
		return answer{}, errNoStore("serviceName", "service definitions")
	}
	d, err := a.reg.ServiceDetail(svc)
	switch {
	case errors.Is(err, naming.ErrServiceNotFound) && len(a.store.FSM().Clusters(svc)) > 0:
		// Cluster definitions alone: the store's only.
	case err != nil:
		return answer{}, serviceError(err, svc)
	case d.Instances > 0:
		return answer{}, serviceError(naming.ErrServiceNotEmpty, svc)
	}
	if err := a.store.Do(r.Context(), persist.RemoveService{Service: svc}); err != nil {
		return answer{}, serviceError(err, svc)
	}
	return okAnswer()
}

// selectorOf is a selector as Nacos 2.x writes it: {"type":"none",
// "contextType":"NONE"}, or {"type":"label","contextType":"CMDB",
// "expression":...,"labels":[...]}.
func selectorOf(s naming.Selector) map[string]any {
	if s.Type != naming.SelectorLabel {
		return map[string]any{"type": naming.SelectorNone, "contextType": "NONE"}
	}
	labels := s.Labels()
	if labels == nil {
		labels = []string{}
	}
	return map[string]any{"type": naming.SelectorLabel, "contextType": "CMDB", "expression": s.Expression, "labels": labels}
}

// serviceDetailV1 is GET /service's answer in v1 (ServiceOperatorV2Impl's
// queryService).
type serviceDetailV1 struct {
	NamespaceID      string            `json:"namespaceId"`
	GroupName        string            `json:"groupName"`
	Name             string            `json:"name"`
	ProtectThreshold float64           `json:"protectThreshold"`
	Metadata         map[string]string `json:"metadata"`
	Selector         map[string]any    `json:"selector"`
	Clusters         []clusterView     `json:"clusters"`
}

// serviceDetailV2 is GET /service's data in v2 (Nacos 2.x's ServiceDetailInfo).
type serviceDetailV2 struct {
	Namespace        string                 `json:"namespace"`
	ServiceName      string                 `json:"serviceName"`
	GroupName        string                 `json:"groupName"`
	ClusterMap       map[string]clusterView `json:"clusterMap"`
	Metadata         map[string]string      `json:"metadata"`
	ProtectThreshold float64                `json:"protectThreshold"`
	Selector         map[string]any         `json:"selector"`
	Ephemeral        bool                   `json:"ephemeral"`
}

// getService: GET /service, the service's definition and its clusters (those
// its instances are in, and those defined) with their health checkers
// (cluster.go); 400 if it does not exist (as Nacos).
func (a *namingAPI) getService(v apiVersion, _ *http.Request, p params) (answer, error) {
	svc, err := a.normalizedService(p)
	if err != nil {
		return answer{}, err
	}
	s, err := a.reg.ServiceDetail(svc)
	if err != nil {
		return answer{}, serviceError(err, svc)
	}
	md := s.Meta.Metadata
	if md == nil {
		md = map[string]string{}
	}
	clusters := a.clusterViews(v, svc, s.Clusters)
	if v == v2 {
		d := serviceDetailV2{Namespace: svc.Namespace, ServiceName: svc.Name, GroupName: svc.Group,
			ClusterMap: make(map[string]clusterView, len(clusters)), Metadata: md,
			ProtectThreshold: s.Meta.ProtectThreshold, Selector: selectorOf(s.Meta.Selector), Ephemeral: true}
		for _, c := range clusters {
			d.ClusterMap[c.ClusterName] = c
		}
		return answer{json: d}, nil
	}
	d := serviceDetailV1{NamespaceID: svc.Namespace, GroupName: svc.Group, Name: svc.Name,
		ProtectThreshold: s.Meta.ProtectThreshold, Metadata: md, Selector: selectorOf(s.Meta.Selector), Clusters: clusters}
	return answer{json: d}, nil
}

// serviceListV1 and serviceListV2 are the answers of GET /service/list.
type serviceListV1 struct {
	Count int      `json:"count"`
	Doms  []string `json:"doms"`
}

type serviceListV2 struct {
	Count    int      `json:"count"`
	Services []string `json:"services"`
}

// listServices: GET /service/list, one page of the names of the services of
// a group (namespaceId, groupName; pageNo and pageSize, required in v1 as in
// Nacos, 1 and 20 by default in v2). The names are bare (no group), sorted;
// the selector parameter is ignored, as Nacos without a CMDB does. The
// gRPC ServiceListRequest lists the same services.
func (a *namingAPI) listServices(v apiVersion, _ *http.Request, p params) (answer, error) {
	pageNo, pageSize := 1, 20
	var err error
	if v == v1 {
		if pageNo, err = p.requiredInt("pageNo"); err != nil {
			return answer{}, err
		}
		if pageSize, err = p.requiredInt("pageSize"); err != nil {
			return answer{}, err
		}
	} else {
		if pageNo, err = p.integer("pageNo", pageNo); err != nil {
			return answer{}, err
		}
		if pageSize, err = p.integer("pageSize", pageSize); err != nil {
			return answer{}, err
		}
	}
	count, names, err := a.reg.ListServices(p.str("namespaceId"), p.str("groupName"), pageNo, pageSize)
	if err != nil {
		return answer{}, err
	}
	if v == v2 {
		return answer{json: serviceListV2{Count: count, Services: names}}, nil
	}
	return answer{json: serviceListV1{Count: count, Doms: names}}, nil
}

// catalogService is one service of the console's list (Nacos's ServiceView).
type catalogService struct {
	Name                 string `json:"name"`
	GroupName            string `json:"groupName"`
	ClusterCount         int    `json:"clusterCount"`
	IPCount              int    `json:"ipCount"`
	HealthyInstanceCount int    `json:"healthyInstanceCount"`
	TriggerFlag          string `json:"triggerFlag"` // "true" when the protection threshold is reached
}

type catalogList struct {
	Count       int              `json:"count"`
	ServiceList []catalogService `json:"serviceList"`
}

// catalogServices: GET /nacos/v1/ns/catalog/services, the console's service
// list: the services of namespaceId whose name contains serviceNameParam and
// whose group contains groupNameParam (substrings, where Nacos takes them as
// regular expressions), sorted by group and name; with hasIpCount=true only
// those with instances. pageNo (1) and pageSize (10) page it. withInstances=true
// (Nacos's list with every instance) is not served.
func (a *namingAPI) catalogServices(_ apiVersion, _ *http.Request, p params) (answer, error) {
	withInstances, err := p.boolean("withInstances", false)
	if err != nil {
		return answer{}, err
	}
	if withInstances {
		return answer{}, &apiError{status: http.StatusNotImplemented, code: codeParameterValidate,
			msg: "withInstances: the list with every instance is not implemented; read each service's GET /nacos/v1/ns/instance/list"}
	}
	hasIPCount, err := p.boolean("hasIpCount", false)
	if err != nil {
		return answer{}, err
	}
	pageNo, err := p.integer("pageNo", 1)
	if err != nil {
		return answer{}, err
	}
	pageSize, err := p.integer("pageSize", 10)
	if err != nil {
		return answer{}, err
	}
	if pageNo < 1 {
		return answer{}, badParam("pageNo", "%d must be at least 1", pageNo)
	}
	if pageSize < 1 || pageSize > naming.MaxPageSize {
		return answer{}, badParam("pageSize", "%d is out of range 1-%d", pageSize, naming.MaxPageSize)
	}
	all, err := a.reg.Services(p.str("namespaceId"))
	if err != nil {
		return answer{}, err
	}
	nameHas, groupHas := p.str("serviceNameParam"), p.str("groupNameParam")
	matched := all[:0]
	for _, s := range all {
		if strings.Contains(s.Service.Name, nameHas) && strings.Contains(s.Service.Group, groupHas) && (!hasIPCount || s.Instances > 0) {
			matched = append(matched, s)
		}
	}
	out := catalogList{Count: len(matched), ServiceList: []catalogService{}}
	if pages := (len(matched) + pageSize - 1) / pageSize; pageNo-1 < pages {
		start := (pageNo - 1) * pageSize
		for _, s := range matched[start:min(start+pageSize, len(matched))] {
			flag := "false"
			if s.ProtectionReached() {
				flag = "true"
			}
			out.ServiceList = append(out.ServiceList, catalogService{Name: s.Service.Name, GroupName: s.Service.Group,
				ClusterCount: len(s.Clusters), IPCount: s.Instances, HealthyInstanceCount: s.Healthy, TriggerFlag: flag})
		}
	}
	return answer{json: out}, nil
}

// setInstanceHealth: PUT /health/instance, an operator setting an instance's
// health (clusterName: DEFAULT when absent). As Nacos 2.x, it is allowed only
// for a persistent instance of a cluster whose health checker is NONE
// (setPersistentHealth), and refused otherwise: 400 (v2 code 21004), for an
// ephemeral instance (its health follows its client) as for a persistent
// one the server checks (its next check would undo the operator's value);
// 404 for an instance that does not exist. Answers "ok".
func (a *namingAPI) setInstanceHealth(v apiVersion, r *http.Request, p params) (answer, error) {
	healthyParam := "healthy"
	if v == v1 && p.str("healthy") == "" && p.str("valid") != "" {
		healthyParam = "valid" // Nacos 1.x's name, which v1 still takes
	}
	if p.str(healthyParam) == "" {
		return answer{}, missingParam("healthy")
	}
	healthy, err := p.boolean(healthyParam, true)
	if err != nil {
		return answer{}, err
	}
	svc, err := a.normalizedService(p)
	if err != nil {
		return answer{}, err
	}
	ip, port, err := p.address()
	if err != nil {
		return answer{}, err
	}
	in, err := a.reg.Instance(svc, ip, port, p.str("clusterName"))
	if err != nil {
		return answer{}, err
	}
	if in.Ephemeral {
		return answer{}, &apiError{status: http.StatusBadRequest, code: codeInstanceError,
			msg: "healthy: instance " + in.ID + " is ephemeral: its health follows its client's beats or connection and " +
				"cannot be set by an operator (Nacos 2.x sets it only for persistent instances whose cluster's health checker is NONE)"}
	}
	if err := a.setPersistentHealth(r, svc, in, healthy); err != nil {
		return answer{}, err
	}
	return okAnswer()
}
