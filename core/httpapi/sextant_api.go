package httpapi

import (
	"cmp"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/pluginhost"
)

// The operator's read API: what the Nacos API does not show, for the admin
// CLI ("sextant services", ...) and the console, under /v1/sextant/ (beside
// Nacos's /nacos/ paths, as Consul's API is under /v1/):
//
//   - GET plugins: each plugin's kind, role, binary, process, state, restarts
//     and last error (Config.Plugins);
//   - GET members: the member table, this node flagged;
//   - GET services: a namespace's services with their instance, healthy and
//     subscriber counts, filtered by exact group and a name search;
//   - GET instances: a service's instances with the client that owns each
//     and the node responsible for that client;
//   - GET clients: the clients, with their kind, app, SDK version, owner and
//     counts, in one list (Nacos lists only their ids);
//   - GET subscribers: a service's subscribers with their app, SDK version,
//     cluster filter and owner.
//
// Every endpoint needs a global admin's token when auth is on
// (RequireAdmin), answers in Nacos's v2 Result envelope (naming_v2.go), and
// is paged: pageNo (1 by default) and pageSize (defaultPageSize by default,
// at most maxPageSize); data is a sextantPage. The README's "Admin CLI"
// section lists the endpoints for the CLI's and the console's users.

// sextantPrefix is the path prefix of the operator's read API.
const sextantPrefix = "/v1/sextant"

// The page sizes of the operator's read API.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// sextantMaxBody bounds what the API's handlers read of a request's body
// (GET: nothing).
const sextantMaxBody = 64 << 10

// sextantAPI serves the operator's read API.
type sextantAPI struct {
	cfg Config
	op  *operatorAPI // what the gRPC port knows of connections
}

// registerSextant adds the operator's read API to mux: plugins and members
// always, the registry's endpoints when cfg has a registry.
func registerSextant(mux *http.ServeMux, cfg Config) {
	s := &sextantAPI{cfg: cfg, op: &operatorAPI{cfg: cfg, reg: cfg.Registry}}
	api := &namingAPI{reg: cfg.Registry, log: cfg.Logger.Named("sextant"), maxBody: sextantMaxBody}
	endpoints := map[string]namingHandler{"/plugins": s.plugins, "/members": s.members}
	if cfg.Registry != nil {
		endpoints["/services"], endpoints["/instances"] = s.services, s.instances
		endpoints["/clients"], endpoints["/subscribers"] = s.clients, s.subscribers
	}
	for path, h := range endpoints {
		e := namingEndpoint{method: http.MethodGet, path: path, need: auth.Read, handle: h}
		mux.Handle(e.method+" "+sextantPrefix+path, RequireAdmin(cfg.Auth, api.serve(v2, e, nil)))
	}
}

// sextantPage is one page of a list: the items of page pageNo, and how many
// there are in all.
type sextantPage[T any] struct {
	Count    int `json:"count"`
	PageNo   int `json:"pageNo"`
	PageSize int `json:"pageSize"`
	Items    []T `json:"items"`
}

// page is the page a request asks for.
type page struct{ no, size int }

// readPage reads pageNo and pageSize.
func readPage(p params) (page, error) {
	no, err := p.integer("pageNo", 1)
	if err != nil {
		return page{}, err
	}
	size, err := p.integer("pageSize", defaultPageSize)
	if err != nil {
		return page{}, err
	}
	if no < 1 {
		return page{}, badParam("pageNo", "%d must be at least 1", no)
	}
	if size < 1 || size > maxPageSize {
		return page{}, badParam("pageSize", "%d is out of range 1-%d", size, maxPageSize)
	}
	return page{no, size}, nil
}

// bounds returns where the page starts and ends in a list of n items; a
// page past the end is empty. pageNo is compared with the number of pages
// before it is multiplied, so that no pageNo overflows.
func (pg page) bounds(n int) (start, end int) {
	if pages := (n + pg.size - 1) / pg.size; pg.no-1 >= pages {
		return n, n
	}
	start = (pg.no - 1) * pg.size
	return start, min(start+pg.size, n)
}

// pageOf returns the page of all, its items made by item.
func pageOf[S, T any](pg page, all []S, item func(S) T) sextantPage[T] {
	start, end := pg.bounds(len(all))
	out := sextantPage[T]{Count: len(all), PageNo: pg.no, PageSize: pg.size, Items: make([]T, 0, end-start)}
	for _, s := range all[start:end] {
		out.Items = append(out.Items, item(s))
	}
	return out
}

// millis returns t in Unix milliseconds, 0 for the zero time (omitted).
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// pluginJSON is one plugin of GET /v1/sextant/plugins.
type pluginJSON struct {
	Name          string `json:"name"`
	Kind          string `json:"kind"`
	Role          string `json:"role,omitempty"`
	Builtin       bool   `json:"builtin"`
	Path          string `json:"path,omitempty"`
	InProcess     bool   `json:"inProcess"`
	PID           int    `json:"pid,omitempty"`
	State         string `json:"state"`
	Restarts      int    `json:"restarts"`
	ServingSince  int64  `json:"servingSince,omitempty"`
	LastError     string `json:"lastError,omitempty"`
	LastErrorTime int64  `json:"lastErrorTime,omitempty"`
}

// plugins: GET /v1/sextant/plugins, in start order.
func (s *sextantAPI) plugins(_ *namingAPI, _ apiVersion, _ *http.Request, p params) (answer, error) {
	pg, err := readPage(p)
	if err != nil {
		return answer{}, err
	}
	var all []pluginhost.PluginStatus
	if s.cfg.Plugins != nil {
		all = s.cfg.Plugins()
	}
	return answer{json: pageOf(pg, all, func(st pluginhost.PluginStatus) pluginJSON {
		return pluginJSON{Name: st.Name, Kind: string(st.Kind), Role: st.Role, Builtin: st.Path == "", Path: st.Path,
			InProcess: st.InProcess, PID: st.PID, State: st.State, Restarts: st.Restarts,
			ServingSince: millis(st.ServingSince), LastError: st.LastError, LastErrorTime: millis(st.LastErrorTime)}
	})}, nil
}

// memberJSON is one member of GET /v1/sextant/members.
type memberJSON struct {
	Address    string `json:"address"`
	IP         string `json:"ip"`
	Port       int    `json:"port"`
	State      string `json:"state"`
	Self       bool   `json:"self"`
	Failures   int    `json:"failures"`
	LastReport int64  `json:"lastReport,omitempty"`
	LastError  string `json:"lastError,omitempty"`
}

// members: GET /v1/sextant/members, by address.
func (s *sextantAPI) members(_ *namingAPI, _ apiVersion, _ *http.Request, p params) (answer, error) {
	pg, err := readPage(p)
	if err != nil {
		return answer{}, err
	}
	var all []cluster.Member
	if s.cfg.Members != nil {
		all = s.cfg.Members()
	}
	return answer{json: pageOf(pg, all, func(m cluster.Member) memberJSON {
		host, port, _ := net.SplitHostPort(m.Address)
		return memberJSON{Address: m.Address, IP: host, Port: atoiOrZero(port), State: string(m.State), Self: m.Self,
			Failures: m.Failures, LastReport: millis(m.LastReport), LastError: m.LastError}
	})}, nil
}

// self returns this node's address in the member table ("" without one).
func (s *sextantAPI) self() string {
	if s.cfg.Members != nil {
		for _, m := range s.cfg.Members() {
			if m.Self {
				return m.Address
			}
		}
	}
	return ""
}

// owner returns the node responsible for the client id and whether it is
// this node; "" if the registry holds no such client.
func (s *sextantAPI) owner(id, self string) (node string, local bool) {
	owner, held := s.cfg.Registry.ClientOwner(id)
	switch {
	case !held:
		return "", false
	case owner == "":
		return self, true
	}
	return owner, false
}

// The kinds of client an item names.
const (
	clientConnection = "connection" // a gRPC connection
	clientIPPort     = "ipPort"     // an ip:port of the HTTP API
	clientPersistent = "persistent" // the persistent instances at an ip:port (the Raft store's)
)

// serviceJSON is one service of GET /v1/sextant/services.
type serviceJSON struct {
	NamespaceID       string   `json:"namespaceId"`
	GroupName         string   `json:"groupName"`
	Name              string   `json:"name"`
	Clusters          []string `json:"clusters"`
	Instances         int      `json:"instances"`
	Healthy           int      `json:"healthy"`
	Subscribers       int      `json:"subscribers"`
	Defined           bool     `json:"defined"`
	ProtectThreshold  float64  `json:"protectThreshold"`
	ProtectionReached bool     `json:"protectionReached"`
}

// services: GET /v1/sextant/services, the services of namespaceId that
// exist, by group and name: only those of groupName (exactly) when given,
// whose name contains search (in any case) when given, and that have
// instances with hasInstances=true. Subscribers are counted for the page's
// services only.
func (s *sextantAPI) services(_ *namingAPI, _ apiVersion, _ *http.Request, p params) (answer, error) {
	pg, err := readPage(p)
	if err != nil {
		return answer{}, err
	}
	hasInstances, err := p.boolean("hasInstances", false)
	if err != nil {
		return answer{}, err
	}
	ns, group := p.str("namespaceId"), p.str("groupName")
	if group != "" {
		if _, _, err := s.cfg.Registry.Limits().NormalizeScope(ns, group); err != nil {
			return answer{}, err
		}
	}
	all, err := s.cfg.Registry.Services(ns)
	if err != nil {
		return answer{}, err
	}
	search := strings.ToLower(p.str("search"))
	matched := all[:0]
	for _, sv := range all {
		if (group == "" || sv.Service.Group == group) && (!hasInstances || sv.Instances > 0) &&
			strings.Contains(strings.ToLower(sv.Service.Name), search) {
			matched = append(matched, sv)
		}
	}
	return answer{json: pageOf(pg, matched, func(sv naming.ServiceSummary) serviceJSON {
		subs, _ := s.cfg.Registry.AllSubscribers(sv.Service) // the service was read just now: valid
		return serviceJSON{NamespaceID: sv.Service.Namespace, GroupName: sv.Service.Group, Name: sv.Service.Name,
			Clusters: sv.Clusters, Instances: sv.Instances, Healthy: sv.Healthy, Subscribers: len(subs), Defined: sv.Defined,
			ProtectThreshold: sv.Meta.ProtectThreshold, ProtectionReached: sv.ProtectionReached()}
	})}, nil
}

// instanceJSON is one instance of GET /v1/sextant/instances.
type instanceJSON struct {
	InstanceID  string            `json:"instanceId,omitempty"`
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	ClusterName string            `json:"clusterName"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	Ephemeral   bool              `json:"ephemeral"`
	Metadata    map[string]string `json:"metadata"`
	ClientID    string            `json:"clientId"`
	ClientType  string            `json:"clientType"`
	OwnerNode   string            `json:"ownerNode,omitempty"`
	Local       bool              `json:"local"`
}

// service reads the service a request names, with Nacos's defaults applied
// and checked.
func (s *sextantAPI) service(p params) (naming.Service, error) {
	svc, err := p.service()
	if err != nil {
		return svc, err
	}
	return s.cfg.Registry.Limits().NormalizeService(svc)
}

// instances: GET /v1/sextant/instances, the instances of a service (404
// if it neither has any nor is defined) by ip, port and cluster, each with
// its client and the node responsible for that client.
func (s *sextantAPI) instances(_ *namingAPI, _ apiVersion, _ *http.Request, p params) (answer, error) {
	svc, err := s.service(p)
	if err != nil {
		return answer{}, err
	}
	pg, err := readPage(p)
	if err != nil {
		return answer{}, err
	}
	if _, err := s.cfg.Registry.ServiceDetail(svc); errors.Is(err, naming.ErrServiceNotFound) {
		return answer{}, &apiError{status: http.StatusNotFound, code: codeResourceNotFound,
			msg: "serviceName: service " + quote(svc.GroupedName()) + " not found in namespace " + quote(svc.Namespace)}
	} else if err != nil {
		return answer{}, err
	}
	pubs, err := s.cfg.Registry.Publishers(svc)
	if err != nil {
		return answer{}, err
	}
	var all []instanceJSON
	for id, insts := range pubs {
		for _, in := range insts {
			md := in.Metadata
			if md == nil {
				md = map[string]string{}
			}
			all = append(all, instanceJSON{InstanceID: in.ID, IP: in.IP, Port: in.Port, ClusterName: in.Cluster, Weight: in.Weight,
				Healthy: in.Healthy, Enabled: in.Enabled, Ephemeral: in.Ephemeral, Metadata: md, ClientID: id})
		}
	}
	slices.SortFunc(all, func(a, b instanceJSON) int {
		return cmp.Or(strings.Compare(a.IP, b.IP), cmp.Compare(a.Port, b.Port), strings.Compare(a.ClusterName, b.ClusterName),
			strings.Compare(a.ClientID, b.ClientID))
	})
	self := s.self()
	return answer{json: pageOf(pg, all, func(in instanceJSON) instanceJSON {
		switch _, _, isHTTP := naming.ParseHTTPClientID(in.ClientID); {
		case in.ClientID == naming.PersistentClientID(in.IP, in.Port):
			in.ClientType = clientPersistent
			return in // the Raft store's: no node owns it
		case isHTTP:
			in.ClientType = clientIPPort
		default:
			in.ClientType = clientConnection
		}
		in.OwnerNode, in.Local = s.owner(in.ClientID, self)
		return in
	})}, nil
}

// clientJSON is one client of GET /v1/sextant/clients.
type clientJSON struct {
	ClientID      string `json:"clientId"`
	ClientType    string `json:"clientType"`
	IP            string `json:"ip"`
	Port          int    `json:"port"`
	App           string `json:"app,omitempty"`
	Version       string `json:"version,omitempty"`
	OwnerNode     string `json:"ownerNode,omitempty"`
	Local         bool   `json:"local"`
	Instances     int    `json:"instances"`
	Subscriptions int    `json:"subscriptions"`
	LastUpdated   int64  `json:"lastUpdated,omitempty"`
}

// clients: GET /v1/sextant/clients, by id. Only the page's clients are read;
// one gone meanwhile is left out of its page.
func (s *sextantAPI) clients(_ *namingAPI, _ apiVersion, _ *http.Request, p params) (answer, error) {
	pg, err := readPage(p)
	if err != nil {
		return answer{}, err
	}
	self := s.self()
	out := pageOf(pg, s.cfg.Registry.ClientIDs(), func(id string) *clientJSON {
		c, ok := s.cfg.Registry.ClientInfo(id)
		if !ok {
			return nil
		}
		item := &clientJSON{ClientID: id, App: c.Labels[appNameLabel], Subscriptions: len(c.Subscribed), LastUpdated: millis(c.LastUpdated)}
		item.OwnerNode, item.Local = self, c.Owner == ""
		if !item.Local {
			item.OwnerNode = c.Owner
		}
		for _, insts := range c.Published {
			item.Instances += len(insts)
		}
		if c.HTTP {
			item.ClientType = clientIPPort
			item.IP, item.Port, _ = naming.ParseHTTPClientID(id)
			return item
		}
		item.ClientType = clientConnection
		ip, port := connectionAddress(id)
		item.IP, item.Port = ip, atoiOrZero(port)
		if info, ok := s.op.connection(id); ok {
			item.Version, item.LastUpdated = info.ClientVersion, info.LastActive.UnixMilli()
			if host, _, err := net.SplitHostPort(info.RemoteAddr); err == nil {
				item.IP = host
			}
		}
		return item
	})
	items := make([]clientJSON, 0, len(out.Items))
	for _, c := range out.Items {
		if c != nil {
			items = append(items, *c)
		}
	}
	return answer{json: sextantPage[clientJSON]{Count: out.Count, PageNo: out.PageNo, PageSize: out.PageSize, Items: items}}, nil
}

// atoiOrZero returns the integer s holds, 0 if it holds none.
func atoiOrZero(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// subscriberJSON is one subscriber of GET /v1/sextant/subscribers.
type subscriberJSON struct {
	ClientID   string `json:"clientId"`
	ClientType string `json:"clientType"`
	IP         string `json:"ip"`
	Port       int    `json:"port"`
	App        string `json:"app,omitempty"`
	Agent      string `json:"agent,omitempty"`
	Clusters   string `json:"clusters"`
	OwnerNode  string `json:"ownerNode,omitempty"`
	Local      bool   `json:"local"`
}

// subscribers: GET /v1/sextant/subscribers, the subscribers of a service by
// client id; a service nobody subscribes to has none (never 404: a
// subscription may come before the service).
func (s *sextantAPI) subscribers(_ *namingAPI, _ apiVersion, _ *http.Request, p params) (answer, error) {
	svc, err := s.service(p)
	if err != nil {
		return answer{}, err
	}
	pg, err := readPage(p)
	if err != nil {
		return answer{}, err
	}
	subs, err := s.cfg.Registry.AllSubscribers(svc)
	if err != nil {
		return answer{}, err
	}
	self := s.self()
	return answer{json: pageOf(pg, subs, func(sub naming.Subscriber) subscriberJSON {
		item := subscriberJSON{ClientID: sub.ClientID, ClientType: clientConnection, App: sub.App, Clusters: sub.Clusters}
		if _, _, isHTTP := naming.ParseHTTPClientID(sub.ClientID); isHTTP {
			item.ClientType = clientIPPort
		}
		item.IP, item.Port = s.op.subscriberAddress(sub.ClientID, sub.Subscription)
		if info, ok := s.op.connection(sub.ClientID); ok {
			item.Agent = info.ClientVersion
		}
		item.OwnerNode, item.Local = s.owner(sub.ClientID, self)
		return item
	})}, nil
}
