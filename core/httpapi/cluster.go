package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/healthcheck"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/persist"
)

// A service cluster's definition — how the server checks the health of its
// persistent instances, and its metadata — is set with PUT
// /nacos/v1/ns/cluster, as Nacos 2.x's ClusterController takes it (Nacos
// serves no v2 path for it, nor a GET):
//
//   - serviceName (group@@name, or with groupName), namespaceId, clusterName
//     (required; DEFAULT is the default cluster);
//   - healthChecker (required): {"type":"TCP"}, {"type":"NONE"}, or
//     {"type":"HTTP","path":"/health","headers":"k:v|k2:v2",
//     "expectedResponseCode":200} (healthcheck.ParseChecker);
//   - useInstancePort4Check (true when absent): check each instance's own
//     port; checkPort: the port checked otherwise (then required, 1 to
//     65535);
//   - metadata: JSON, or k=v,k2=v2.
//
// The definition replaces the cluster's whole definition, through the Raft
// store (persist.PutCluster), and answers "ok". As in Nacos the service must
// exist (400, "service not found", otherwise); the cluster need not have
// instances yet. A definition stays until the service is deleted, whatever
// instances come and go. GET /service answers each cluster's checker.

// clusterEndpoints are the endpoints of service clusters.
var clusterEndpoints = []namingEndpoint{
	{http.MethodPut, "/cluster", auth.Write, []apiVersion{v1}, (*namingAPI).updateCluster},
}

// updateCluster: PUT /nacos/v1/ns/cluster.
func (a *namingAPI) updateCluster(_ apiVersion, r *http.Request, p params) (answer, error) {
	svc, err := a.normalizedService(p)
	if err != nil {
		return answer{}, err
	}
	cluster, err := p.required("clusterName")
	if err != nil {
		return answer{}, err
	}
	raw, err := p.required("healthChecker")
	if err != nil {
		return answer{}, err
	}
	checker, err := healthcheck.ParseChecker(raw)
	if err != nil {
		return answer{}, err
	}
	useInstancePort, err := p.boolean("useInstancePort4Check", true)
	if err != nil {
		return answer{}, err
	}
	if !useInstancePort && p.str("checkPort") == "" {
		return answer{}, missingParam("checkPort")
	}
	if checker.CheckPort, err = p.integer("checkPort", 0); err != nil {
		return answer{}, err
	}
	md, err := p.metadata("metadata")
	if err != nil {
		return answer{}, err
	}
	if a.store == nil {
		return answer{}, errNoStore("clusterName", "cluster definitions")
	}
	op, err := persist.Validate(a.store.FSM().Limits(), persist.PutCluster{Service: svc, Cluster: cluster,
		Definition: persist.ClusterDefinition{Checker: checker, UseInstancePort: useInstancePort, Metadata: md}})
	if err != nil {
		return answer{}, err
	}
	if !a.serviceExists(svc) {
		return answer{}, serviceError(naming.ErrServiceNotFound, svc)
	}
	if err := a.store.Do(r.Context(), op); err != nil {
		return answer{}, err
	}
	return okAnswer()
}

// serviceExists reports whether svc exists for a cluster definition: in
// the registry (instances of any kind, or a definition), or in the store
// (cluster definitions alone, kept from instances gone).
func (a *namingAPI) serviceExists(svc naming.Service) bool {
	if _, err := a.reg.ServiceDetail(svc); err == nil {
		return true
	}
	return a.store != nil && len(a.store.FSM().Clusters(svc)) > 0
}

// clusterView is a cluster of GET /service: v1 names it name, v2
// clusterName. healthChecker is as Nacos writes it; checkPort and
// useInstancePort4Check, which Nacos does not answer, tell the rest of the
// definition.
type clusterView struct {
	Name            string            `json:"name,omitempty"`
	ClusterName     string            `json:"clusterName,omitempty"`
	HealthChecker   json.RawMessage   `json:"healthChecker"`
	CheckPort       int               `json:"checkPort"`
	UseInstancePort bool              `json:"useInstancePort4Check"`
	Metadata        map[string]string `json:"metadata"`
}

// clusterViews returns the clusters of svc that GET /service answers: those
// of its instances (clusters, from the registry) and those defined in the
// store, sorted by name, each with its definition or Nacos's default (a TCP
// check of the instance's port).
func (a *namingAPI) clusterViews(v apiVersion, svc naming.Service, clusters []string) []clusterView {
	var defs map[string]persist.ClusterDefinition
	if a.store != nil {
		defs = a.store.FSM().Clusters(svc)
	}
	names := slices.Clone(clusters)
	for name := range defs {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := make([]clusterView, len(names))
	for i, name := range names {
		d, ok := defs[name]
		if !ok {
			d = persist.DefaultClusterDefinition()
		}
		md := d.Metadata
		if md == nil {
			md = map[string]string{}
		}
		out[i] = clusterView{HealthChecker: json.RawMessage(d.Checker.NacosJSON()), CheckPort: d.Checker.CheckPort,
			UseInstancePort: d.UseInstancePort, Metadata: md}
		if v == v2 {
			out[i].ClusterName = name
		} else {
			out[i].Name = name
		}
	}
	return out
}

// setPersistentHealth sets the health of the persistent instance in of svc
// by hand, as Nacos 2.x allows only when its cluster's checker is NONE;
// otherwise the server's checks own it, and the request is refused (400,
// v2 code 21004).
func (a *namingAPI) setPersistentHealth(r *http.Request, svc naming.Service, in naming.Instance, healthy bool) error {
	if a.store == nil {
		return errNoStore("healthy", "persistent instances")
	}
	d, ok := a.store.FSM().Cluster(svc, in.Cluster)
	if !ok {
		d = persist.DefaultClusterDefinition()
	}
	if d.Checker.Type != healthcheck.TypeNone {
		return &apiError{status: http.StatusBadRequest, code: codeInstanceError,
			msg: "healthy: instance " + in.ID + " is persistent and the server checks its health (cluster " + in.Cluster +
				", healthChecker " + d.Checker.NacosJSON() + "); to set it by hand, set the cluster's healthChecker to " +
				`{"type":"NONE"} with PUT /nacos/v1/ns/cluster`}
	}
	err := a.store.Do(r.Context(), persist.SetHealth{Service: svc, IP: in.IP, Port: in.Port, Cluster: in.Cluster, Healthy: healthy})
	if errors.Is(err, persist.ErrNotFound) {
		return naming.ErrInstanceNotFound // deregistered meanwhile
	}
	return err
}
