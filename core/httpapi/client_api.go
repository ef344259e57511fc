package httpapi

import (
	"cmp"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/remote"
)

// The client API of Nacos 2.x (ClientInfoControllerV2), under /nacos/v2/ns,
// for a global admin: the clients this node holds (its own and the other
// members' replicas), one client, what a client publishes and subscribes to,
// and the clients of a service. A client is a gRPC connection ("connection",
// id <millis>_<ip>_<port>) or an ip:port of the HTTP API ("ipPort", id
// ip:port#true).

// ConnectionSource tells what the client gRPC port knows of a connection
// (remote.Server).
type ConnectionSource interface {
	Connection(id string) (remote.ConnectionInfo, bool)
}

// The label a connection names its application with (Nacos's
// Constants.APPNAME), and what Nacos answers without one.
const (
	appNameLabel = "AppName"
	noAppName    = "-"
)

// clientEndpoints are the client API's endpoints (v2 only, as in Nacos).
func (op *operatorAPI) clientEndpoints() []namingEndpoint {
	only2 := []apiVersion{v2}
	return []namingEndpoint{
		{http.MethodGet, "/client/list", auth.Read, only2, op.clientList},
		{http.MethodGet, "/client", auth.Read, only2, op.clientDetail},
		{http.MethodGet, "/client/publish/list", auth.Read, only2, op.clientPublished},
		{http.MethodGet, "/client/subscribe/list", auth.Read, only2, op.clientSubscribed},
		{http.MethodGet, "/client/service/publisher/list", auth.Read, only2, op.servicePublishers},
		{http.MethodGet, "/client/service/subscriber/list", auth.Read, only2, op.serviceSubscribers},
	}
}

// clientList: GET /client/list, the ids of every client, sorted.
func (op *operatorAPI) clientList(*namingAPI, apiVersion, *http.Request, params) (answer, error) {
	return answer{json: op.reg.ClientIDs()}, nil
}

// client reads the clientId parameter and returns that client: 404 (v2 code
// 20004) if there is none.
func (op *operatorAPI) client(p params) (naming.ClientInfo, error) {
	id, err := p.required("clientId")
	if err != nil {
		return naming.ClientInfo{}, err
	}
	c, ok := op.reg.ClientInfo(id)
	if !ok {
		return c, &apiError{status: http.StatusNotFound, code: codeResourceNotFound, msg: "clientId: client " + quote(id) + " does not exist"}
	}
	return c, nil
}

// connection returns what the gRPC port knows of a connection of this node.
func (op *operatorAPI) connection(id string) (remote.ConnectionInfo, bool) {
	if op.cfg.Connections == nil {
		return remote.ConnectionInfo{}, false
	}
	return op.cfg.Connections.Connection(id)
}

// connectionAddress returns the ip and port a connection id names
// (<millis>_<ip>_<port>).
func connectionAddress(id string) (ip, port string) {
	first, last := strings.IndexByte(id, '_'), strings.LastIndexByte(id, '_')
	if first < 0 || last <= first {
		return "", ""
	}
	return id[first+1 : last], id[last+1:]
}

// clientDetail is GET /client's answer, as Nacos writes it (clientPort is
// text there too). connectType, appName and version are a connection's.
type clientDetail struct {
	ClientID        string  `json:"clientId"`
	Ephemeral       bool    `json:"ephemeral"`
	LastUpdatedTime int64   `json:"lastUpdatedTime"`
	ClientType      string  `json:"clientType"` // connection or ipPort
	ConnectType     *string `json:"connectType,omitempty"`
	AppName         *string `json:"appName,omitempty"`
	Version         *string `json:"version,omitempty"`
	ClientIP        string  `json:"clientIp"`
	ClientPort      string  `json:"clientPort"`
}

// clientDetail: GET /client?clientId=. lastUpdatedTime (ms) is, for a
// connection of this node, its last message; for an HTTP client, its last
// beat or poll; for another node's client, when its owner last vouched for it.
func (op *operatorAPI) clientDetail(_ *namingAPI, _ apiVersion, _ *http.Request, p params) (answer, error) {
	c, err := op.client(p)
	if err != nil {
		return answer{}, err
	}
	d := clientDetail{ClientID: c.ID, Ephemeral: true}
	if !c.LastUpdated.IsZero() {
		d.LastUpdatedTime = c.LastUpdated.UnixMilli()
	}
	if c.HTTP {
		ip, port, _ := naming.ParseHTTPClientID(c.ID)
		d.ClientType, d.ClientIP, d.ClientPort = "ipPort", ip, strconv.Itoa(port)
		return answer{json: d}, nil
	}
	connectType, app, version := "GRPC", cmp.Or(c.Labels[appNameLabel], noAppName), ""
	d.ClientType, d.ConnectType, d.AppName, d.Version = "connection", &connectType, &app, &version
	d.ClientIP, d.ClientPort = connectionAddress(c.ID)
	if info, ok := op.connection(c.ID); ok {
		version = info.ClientVersion
		if host, _, err := net.SplitHostPort(info.RemoteAddr); err == nil {
			d.ClientIP = host
		}
		d.LastUpdatedTime = info.LastActive.UnixMilli()
	}
	return answer{json: d}, nil
}

type instanceRef struct {
	IP      string `json:"ip"`
	Port    int    `json:"port"`
	Cluster string `json:"cluster"`
}

type publishedItem struct {
	Namespace          string      `json:"namespace"`
	Group              string      `json:"group"`
	ServiceName        string      `json:"serviceName"`
	RegisteredInstance instanceRef `json:"registeredInstance"`
}

// sortedServices returns the keys of m sorted by namespace, group and name.
func sortedServices[V any](m map[naming.Service]V) []naming.Service {
	svcs := make([]naming.Service, 0, len(m))
	for svc := range m {
		svcs = append(svcs, svc)
	}
	slices.SortFunc(svcs, func(a, b naming.Service) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Group, b.Group), strings.Compare(a.Name, b.Name))
	})
	return svcs
}

// clientPublished: GET /client/publish/list?clientId=, one item per instance
// the client publishes.
func (op *operatorAPI) clientPublished(_ *namingAPI, _ apiVersion, _ *http.Request, p params) (answer, error) {
	c, err := op.client(p)
	if err != nil {
		return answer{}, err
	}
	items := []publishedItem{}
	for _, svc := range sortedServices(c.Published) {
		for _, in := range c.Published[svc] {
			items = append(items, publishedItem{Namespace: svc.Namespace, Group: svc.Group, ServiceName: svc.Name,
				RegisteredInstance: instanceRef{IP: in.IP, Port: in.Port, Cluster: in.Cluster}})
		}
	}
	return answer{json: items}, nil
}

type subscriberInfo struct {
	App   string `json:"app"`
	Agent string `json:"agent"`
	Addr  string `json:"addr"`
}

type subscribedItem struct {
	Namespace      string         `json:"namespace"`
	Group          string         `json:"group"`
	ServiceName    string         `json:"serviceName"`
	SubscriberInfo subscriberInfo `json:"subscriberInfo"`
}

// subscriberAddress returns a subscriber's ip and port as Nacos's Subscriber
// has them: a connection's client IP and port 0, or a UDP subscriber's address.
func (op *operatorAPI) subscriberAddress(clientID string, s naming.Subscription) (ip string, port int) {
	if s.Addr != "" {
		host, p, err := net.SplitHostPort(s.Addr)
		if err == nil {
			port, _ = strconv.Atoi(p)
			return host, port
		}
		return s.Addr, 0
	}
	ip, _ = connectionAddress(clientID)
	if info, ok := op.connection(clientID); ok {
		if host, _, err := net.SplitHostPort(info.RemoteAddr); err == nil {
			ip = host
		}
	}
	return ip, 0
}

// clientSubscribed: GET /client/subscribe/list?clientId=, one item per
// service the client subscribes to: its app, agent (a connection's client
// version) and address (a connection's IP, a UDP subscriber's ip:port).
func (op *operatorAPI) clientSubscribed(_ *namingAPI, _ apiVersion, _ *http.Request, p params) (answer, error) {
	c, err := op.client(p)
	if err != nil {
		return answer{}, err
	}
	agent := ""
	if info, ok := op.connection(c.ID); ok {
		agent = info.ClientVersion
	}
	items := []subscribedItem{}
	for _, svc := range sortedServices(c.Subscribed) {
		s := c.Subscribed[svc]
		addr := s.Addr
		if addr == "" {
			addr, _ = op.subscriberAddress(c.ID, s)
		}
		items = append(items, subscribedItem{Namespace: svc.Namespace, Group: svc.Group, ServiceName: svc.Name,
			SubscriberInfo: subscriberInfo{App: cmp.Or(s.App, noAppName), Agent: agent, Addr: addr}})
	}
	return answer{json: items}, nil
}

// clientAddress is one client of a service, as the service's publisher and
// subscriber lists have it.
type clientAddress struct {
	ClientID string `json:"clientId"`
	IP       string `json:"ip"`
	Port     int    `json:"port"`
}

// addressFilter reads the optional ip and port that narrow a service's
// clients. (Nacos requires both to match, so that without them it lists
// nothing; here what is not given does not filter.)
func addressFilter(p params) (func(ip string, port int) bool, error) {
	ip := p.str("ip")
	port, err := p.integer("port", -1)
	if err != nil {
		return nil, err
	}
	return func(i string, n int) bool { return (ip == "" || i == ip) && (port < 0 || n == port) }, nil
}

// servicePublishers: GET /client/service/publisher/list, the clients that
// publish the service (namespaceId, groupName, serviceName), one item per
// instance, optionally only those at ip and port.
func (op *operatorAPI) servicePublishers(_ *namingAPI, _ apiVersion, _ *http.Request, p params) (answer, error) {
	svc, err := p.service()
	if err != nil {
		return answer{}, err
	}
	match, err := addressFilter(p)
	if err != nil {
		return answer{}, err
	}
	pubs, err := op.reg.Publishers(svc)
	if err != nil {
		return answer{}, err
	}
	items := []clientAddress{}
	for _, id := range slices.Sorted(maps.Keys(pubs)) {
		for _, in := range pubs[id] {
			if match(in.IP, in.Port) {
				items = append(items, clientAddress{ClientID: id, IP: in.IP, Port: in.Port})
			}
		}
	}
	return answer{json: items}, nil
}

// serviceSubscribers: GET /client/service/subscriber/list, the clients that
// subscribe to the service, optionally only those at ip and port (a
// connection's port is 0, as in Nacos).
func (op *operatorAPI) serviceSubscribers(_ *namingAPI, _ apiVersion, _ *http.Request, p params) (answer, error) {
	svc, err := p.service()
	if err != nil {
		return answer{}, err
	}
	match, err := addressFilter(p)
	if err != nil {
		return answer{}, err
	}
	subs, err := op.reg.AllSubscribers(svc)
	if err != nil {
		return answer{}, err
	}
	items := []clientAddress{}
	for _, s := range subs {
		if ip, port := op.subscriberAddress(s.ClientID, s.Subscription); match(ip, port) {
			items = append(items, clientAddress{ClientID: s.ClientID, IP: ip, Port: port})
		}
	}
	return answer{json: items}, nil
}
