package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"net/http"
	"strconv"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/forward"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/persist"
)

// The naming Open API: Nacos's 1.x HTTP API under /nacos/v1/ns, and its twin
// under /nacos/v2/ns, in front of the same registry the gRPC port serves. An
// instance registered here is one of the client HTTPClientID(ip, port) (see
// core/naming/httpclient.go), lives by its beats (core/health), and is seen by
// gRPC subscribers and queries as they see their own; the reverse holds too.
// Persistent instances (ephemeral=false) are written through the Raft store
// instead (persistent.go) and read from the registry alike.
//
// Each endpoint is written once (a namingHandler) and served under both
// prefixes: the version only changes a few parameter names and the shape of
// the answer (v1: the bare result, "ok" as text; v2: Nacos's Result
// envelope, naming_v2.go). Handlers of other resources (services, catalog,
// operator, v2 clients) go in their own files as tables of namingEndpoints,
// listed in namingEndpointSets.

// apiVersion is the version of the Open API a request came in on.
type apiVersion int

const (
	v1 apiVersion = 1 + iota
	v2
)

// The path prefixes of the versions.
const (
	namingV1Prefix = "/nacos/v1/ns"
	namingV2Prefix = "/nacos/v2/ns"
)

// namingEndpoint is one method and path (below a version's prefix) of the
// naming Open API.
type namingEndpoint struct {
	method, path string
	need         auth.Access  // on the namespace the request names
	versions     []apiVersion // the versions that serve it
	handle       namingHandler
}

// namingHandler serves one endpoint. Its answer is what the request gets; its
// error, an *apiError or one of the registry's, becomes the refusal.
type namingHandler func(a *namingAPI, v apiVersion, r *http.Request, p params) (answer, error)

// answer is what an endpoint answers.
type answer struct {
	text string // a plain-text answer ("ok" in v1), when json and raw are nil
	json any    // a value to encode
	raw  []byte // encoded JSON (a cached view), written as is
}

func okAnswer() (answer, error) { return answer{text: "ok"}, nil }

var both = []apiVersion{v1, v2}

// instanceEndpoints are the endpoints of instances: register, deregister,
// update, get one, list (recording UDP subscribers) and beat.
var instanceEndpoints = []namingEndpoint{
	{http.MethodPost, "/instance", auth.Write, both, (*namingAPI).register},
	{http.MethodDelete, "/instance", auth.Write, both, (*namingAPI).deregister},
	{http.MethodPut, "/instance", auth.Write, both, (*namingAPI).update},
	{http.MethodGet, "/instance", auth.Read, both, (*namingAPI).getInstance},
	{http.MethodGet, "/instance/list", auth.Read, both, (*namingAPI).list},
	{http.MethodPut, "/instance/beat", auth.Write, both, (*namingAPI).beat},
}

// namingEndpointSets are every endpoint table the naming API serves.
var namingEndpointSets = [][]namingEndpoint{instanceEndpoints, serviceEndpoints, clusterEndpoints}

// namingAPI serves the naming Open API from the registry.
type namingAPI struct {
	reg     *naming.Registry
	writes  NamingWrites
	store   *persist.Store // nil: persistent writes answer 501
	log     hclog.Logger
	maxBody int64
}

// NamingWrites applies the writes of HTTP clients (register, deregister,
// update, beat) on the node responsible for the client: forward.Forwarder.
// Reads are served from this node's registry.
type NamingWrites interface {
	Apply(ctx context.Context, w forward.Write) (forward.Result, error)
}

// registerNaming adds the naming Open API to mux, each endpoint behind the
// token check of its access (RequireAccess; open when a is nil). The HTTP
// clients' writes go through writes (nil: to reg, as on a standalone node);
// persistent ones through store (nil: refused with 501).
func registerNaming(mux *http.ServeMux, reg *naming.Registry, writes NamingWrites, store *persist.Store, a *auth.Authority, log hclog.Logger) {
	if writes == nil {
		writes = forward.Local(reg)
	}
	api := &namingAPI{reg: reg, writes: writes, store: store, log: log, maxBody: maxNamingBody(reg.Limits())}
	for _, set := range namingEndpointSets {
		for _, e := range set {
			for _, v := range e.versions {
				mux.Handle(e.method+" "+v.prefix()+e.path, api.serve(v, e, a))
			}
		}
	}
}

func (v apiVersion) prefix() string {
	if v == v2 {
		return namingV2Prefix
	}
	return namingV1Prefix
}

// serve reads the request's parameters (bounded), checks its token, runs the
// endpoint and writes its answer as the version has it.
func (a *namingAPI) serve(v apiVersion, e namingEndpoint, authority *auth.Authority) http.Handler {
	run := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ans, err := e.handle(a, v, r, params(r.Form))
		if err != nil {
			api := toAPIError(err, nil)
			if api.status >= http.StatusInternalServerError {
				a.log.Warn("naming request failed", "method", r.Method, "path", r.URL.Path, "error", err)
			}
			writeError(w, v, api)
			return
		}
		writeAnswer(w, v, ans)
	})
	guarded := RequireAccess(authority, e.need, NamespaceParam, run)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := readParams(w, r, a.maxBody); err != nil {
			writeError(w, v, toAPIError(err, nil))
			return
		}
		// Nacos reads accessToken from any parameter, and the SDKs send it
		// with the others: in the form body of a POST or PUT.
		if t := r.PostForm.Get(auth.TokenHeader); t != "" && r.Header.Get(auth.TokenHeader) == "" {
			r.Header.Set(auth.TokenHeader, t)
		}
		guarded.ServeHTTP(w, r)
	})
}

// writeAnswer writes a successful answer: v1 as is, v2 in the envelope.
func writeAnswer(w http.ResponseWriter, v apiVersion, ans answer) {
	if v == v2 {
		writeV2(w, http.StatusOK, codeSuccess, ans)
		return
	}
	switch {
	case ans.raw != nil:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(ans.raw)
	case ans.json != nil:
		writeJSON(w, ans.json)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(ans.text))
	}
}

// writeError writes a refusal: v1 as Nacos 1.x does, its status and the
// message as text; v2 in the envelope.
func writeError(w http.ResponseWriter, v apiVersion, e *apiError) {
	if v == v2 {
		writeV2(w, e.status, e.code, answer{text: e.msg})
		return
	}
	http.Error(w, e.msg, e.status)
}

// register: POST /instance. Answers "ok". A persistent instance
// (ephemeral=false) is written through the store.
func (a *namingAPI) register(_ apiVersion, r *http.Request, p params) (answer, error) {
	svc, err := p.service()
	if err != nil {
		return answer{}, err
	}
	in, err := p.instance()
	if err != nil {
		return answer{}, err
	}
	if !in.Ephemeral {
		if err := a.registerPersistent(r.Context(), svc, in); err != nil {
			return answer{}, err
		}
		return okAnswer()
	}
	if _, err := a.writes.Apply(r.Context(), forward.Write{Op: forward.Register, Service: svc, Instance: in}); err != nil {
		// The registry names a persistent instance at the address with
		// the instance's own (empty) prefix.
		return answer{}, toAPIError(unavailable(err), renames{"": "ephemeral"})
	}
	return okAnswer()
}

// unavailable answers a write the node responsible for its client cannot
// take now (unreachable, or responsibility moving: forward.UnavailableError)
// 503, which clients retry, on another node if they know several.
func unavailable(err error) error {
	var u *forward.UnavailableError
	if errors.As(err, &u) {
		return &apiError{status: http.StatusServiceUnavailable, code: codeServerError, msg: u.Error()}
	}
	return err
}

// deregister: DELETE /instance. The instance of the HTTP client of ip:port
// goes, whatever its cluster (as in Nacos); one that is not there is no
// error. Answers "ok". With ephemeral=false, the persistent instance goes
// instead (deregisterPersistent); without the parameter, as in Nacos, only
// an ephemeral one.
func (a *namingAPI) deregister(_ apiVersion, r *http.Request, p params) (answer, error) {
	svc, err := p.service()
	if err != nil {
		return answer{}, err
	}
	ip, port, err := p.address()
	if err != nil {
		return answer{}, err
	}
	ephemeral, _, err := p.ephemeral()
	if err != nil {
		return answer{}, err
	}
	if !ephemeral {
		if err := a.deregisterPersistent(r.Context(), svc, ip, port, p.str("clusterName")); err != nil {
			return answer{}, err
		}
		return okAnswer()
	}
	w := forward.Write{Op: forward.Deregister, Service: svc, Instance: naming.Instance{IP: ip, Port: port}}
	if _, err := a.writes.Apply(r.Context(), w); err != nil {
		return answer{}, unavailable(err)
	}
	return okAnswer()
}

// update: PUT /instance. Sets the weight, enabled and metadata given (those
// absent keep their values) of the instances at ip:port in clusterName that
// clients of this node publish, whichever protocol registered them. Answers
// "ok"; 404 when there is none. With ephemeral=false, or without the
// parameter when the address holds a persistent instance (Nacos updates
// whatever instance is at the address), the persistent instance is updated
// through the store (updatePersistent).
func (a *namingAPI) update(_ apiVersion, r *http.Request, p params) (answer, error) {
	svc, err := p.service()
	if err != nil {
		return answer{}, err
	}
	ip, port, err := p.address()
	if err != nil {
		return answer{}, err
	}
	var u naming.InstanceUpdate
	if p.str("weight") != "" {
		w, err := p.number("weight", 1)
		if err != nil {
			return answer{}, err
		}
		u.Weight = &w
	}
	if u.Enabled, err = p.enabled(); err != nil {
		return answer{}, err
	}
	if u.Metadata, err = p.metadata("metadata"); err != nil {
		return answer{}, err
	}
	ephemeral, given, err := p.ephemeral()
	if err != nil {
		return answer{}, err
	}
	cluster := p.str("clusterName")
	if !given && a.store != nil {
		_, persistent := a.persistentAt(svc, ip, port, cluster, false)
		ephemeral = !persistent
	}
	if !ephemeral {
		if err := a.updatePersistent(r.Context(), svc, ip, port, cluster, u); err != nil {
			return answer{}, err
		}
		return okAnswer()
	}
	w := forward.Write{Op: forward.Update, Service: svc, Instance: naming.Instance{IP: ip, Port: port, Cluster: cluster}, Update: u}
	if _, err := a.writes.Apply(r.Context(), w); err != nil {
		return answer{}, unavailable(err)
	}
	return okAnswer()
}

// instanceDetail is one instance as GET /instance answers it (Nacos's
// InstanceController.detail; v2 names the service serviceName).
type instanceDetail struct {
	Service     string            `json:"service,omitempty"`
	ServiceName string            `json:"serviceName,omitempty"`
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	ClusterName string            `json:"clusterName"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	InstanceID  string            `json:"instanceId"`
	Metadata    map[string]string `json:"metadata"`
}

// getInstance: GET /instance, the instance at ip:port in cluster (v1; v2
// clusterName) of any client, enabled or not. 404 when there is none.
func (a *namingAPI) getInstance(v apiVersion, _ *http.Request, p params) (answer, error) {
	svc, err := p.service()
	if err != nil {
		return answer{}, err
	}
	if svc, err = a.reg.Limits().NormalizeService(svc); err != nil {
		return answer{}, err
	}
	ip, port, err := p.address()
	if err != nil {
		return answer{}, err
	}
	clusterNames := []string{"cluster", "clusterName"}
	if v == v2 {
		clusterNames[0], clusterNames[1] = clusterNames[1], clusterNames[0]
	}
	cluster, clusterParam := p.first(clusterNames...)
	in, err := a.reg.Instance(svc, ip, port, cluster)
	if err != nil {
		return answer{}, toAPIError(err, renames{"clusterName": clusterParam})
	}
	md := in.Metadata
	if md == nil {
		md = map[string]string{}
	}
	d := instanceDetail{IP: in.IP, Port: in.Port, ClusterName: in.Cluster, Weight: in.Weight,
		Healthy: in.Healthy, InstanceID: in.ID, Metadata: md}
	if v == v2 {
		d.ServiceName = svc.GroupedName()
	} else {
		d.Service = svc.GroupedName()
	}
	return answer{json: d}, nil
}

// list: GET /instance/list, the service's ServiceInfo as 1.x clients read it
// (named group@@name; enabled instances of the clusters asked, after the
// protection threshold; healthyOnly). A caller that gives a UDP port (v1
// udpPort and clientIP, v2 port and ip; the client IP defaults to the
// caller's address) is recorded as a UDP subscriber until
// naming.HTTPSubscriberTTL after this poll.
func (a *namingAPI) list(v apiVersion, r *http.Request, p params) (answer, error) {
	svc, err := p.service()
	if err != nil {
		return answer{}, err
	}
	if svc, err = a.reg.Limits().NormalizeService(svc); err != nil {
		return answer{}, err
	}
	clustersNames, ipParam, portParam := []string{"clusters", "clusterName"}, "clientIP", "udpPort"
	if v == v2 {
		clustersNames, ipParam, portParam = []string{"clusterName", "clusters"}, "ip", "port"
	}
	clusters, clustersParam := p.first(clustersNames...)
	if err := a.reg.Limits().CheckClusters(clustersParam, clusters); err != nil {
		return answer{}, err
	}
	healthyOnly, err := p.boolean("healthyOnly", false)
	if err != nil {
		return answer{}, err
	}
	udpPort, err := p.integer(portParam, 0)
	if err != nil {
		return answer{}, err
	}
	if udpPort != 0 {
		ip := p.str(ipParam)
		if ip == "" {
			ip = remoteIP(r)
		}
		err := a.reg.SubscribeHTTP(svc, ip, udpPort, naming.Subscription{Clusters: clusters, App: p.str("app")})
		var invalid *naming.InvalidError
		switch {
		case errors.As(err, &invalid):
			return answer{}, toAPIError(err, renames{"clientIP": ipParam, "udpPort": portParam, "clusters": clustersParam})
		case err != nil:
			// The poll is still answered: only pushes are lost.
			a.log.Debug("UDP subscriber not recorded", "service", svc.String(), "subscriber", net.JoinHostPort(ip, strconv.Itoa(udpPort)), "error", err)
		}
	}
	return answer{raw: a.reg.View(svc, naming.ViewFilter{Clusters: clusters, HealthyOnly: healthyOnly, GroupedName: true})}, nil
}

// beatInfo is the beat parameter: the JSON a 1.x client sends with each beat.
type beatInfo struct {
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	Cluster     string            `json:"cluster"`
	ServiceName string            `json:"serviceName"`
	Weight      *float64          `json:"weight"`
	Metadata    map[string]string `json:"metadata"`
	Ephemeral   *bool             `json:"ephemeral"`
}

// beatAnswer is what a beat is answered (both versions' data).
type beatAnswer struct {
	ClientBeatInterval int64 `json:"clientBeatInterval"`
	Code               int   `json:"code"`
	LightBeatEnabled   bool  `json:"lightBeatEnabled"`
}

// Nacos's beat result codes (NamingResponseCode).
const (
	beatOK       = 10200
	beatNotFound = 20404
)

// beat: PUT /instance/beat. The instance is named by the beat JSON (ip, port,
// cluster), or, for a light beat without it, by the ip, port and clusterName
// parameters. A beat keeps the instance alive and makes it healthy; a beat
// with the JSON of an instance that is gone registers it again (healthy), as
// Nacos does; a light beat of one answers code 20404, and the client
// registers again.
//
// A beat of a persistent instance changes nothing (persistentBeat): one
// whose JSON says ephemeral=false, or one that finds no ephemeral instance
// where a persistent one is.
func (a *namingAPI) beat(_ apiVersion, r *http.Request, p params) (answer, error) {
	var info *beatInfo
	if raw := p.str("beat"); raw != "" {
		info = new(beatInfo)
		if err := json.Unmarshal([]byte(raw), info); err != nil {
			return answer{}, badParam("beat", "not the JSON of a beat: %v", err)
		}
	}
	if p.str("serviceName") == "" && info != nil && info.ServiceName != "" {
		p = maps.Clone(p)
		p["serviceName"] = []string{info.ServiceName}
	}
	svc, err := p.service()
	if err != nil {
		return answer{}, err
	}
	var ip string
	var port int
	var rn renames
	cluster := p.str("clusterName")
	if info != nil {
		ip, port = info.IP, info.Port
		rn = renames{"ip": "beat.ip", "port": "beat.port", "beat.clusterName": "beat.cluster"}
		if info.Cluster != "" {
			cluster = info.Cluster
		}
		if info.Ephemeral != nil && !*info.Ephemeral {
			if a.store == nil {
				return answer{}, errPersistent("beat.ephemeral")
			}
			return a.persistentBeat(svc, ip, port), nil
		}
	} else {
		if ip, err = p.required("ip"); err != nil {
			return answer{}, err
		}
		if port, err = p.requiredInt("port"); err != nil {
			return answer{}, err
		}
	}
	w := forward.Write{Op: forward.Beat, Service: svc, Instance: naming.Instance{IP: ip, Port: port}}
	if info != nil {
		// What registers the instance again if it is gone.
		body := naming.Instance{IP: info.IP, Port: info.Port, Cluster: cluster, Weight: 1, Healthy: true, Enabled: true,
			Ephemeral: true, Metadata: info.Metadata}
		if info.Weight != nil {
			body.Weight = *info.Weight
		}
		w.Body = &body
	}
	res, err := a.writes.Apply(r.Context(), w)
	if (err != nil || !res.Found) && a.store != nil {
		// No ephemeral instance: a persistent one at the address is the
		// one the beat is for (an address is never both).
		if _, ok := a.persistentAt(svc, ip, port, "", true); ok {
			return a.persistentBeat(svc, ip, port), nil
		}
	}
	if err != nil {
		return answer{}, toAPIError(unavailable(err), rn)
	}
	if !res.Found {
		return answer{json: beatAnswer{ClientBeatInterval: naming.DefaultHeartbeatInterval, Code: beatNotFound, LightBeatEnabled: true}}, nil
	}
	interval, _, _ := res.Instance.Heartbeat()
	return answer{json: beatAnswer{ClientBeatInterval: interval.Milliseconds(), Code: beatOK, LightBeatEnabled: true}}, nil
}
