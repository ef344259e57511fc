package naming

import (
	"cmp"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// The catalog: services an operator defines (Nacos's service API: a
// protection threshold, metadata and a selector, kept in ServiceMeta), and
// what the HTTP API's service, catalog, operator and client endpoints read of
// the registry.
//
// A service exists while it has instances or is defined. Definitions are
// written through the Raft store (core/persist), which validates them with
// Limits.CheckServiceMeta, and mirrored here by SetDefinition on every node.
// Of a definition, views read only the protection threshold; the selector is
// stored and answered, not applied (Nacos applies a label selector only with
// a CMDB plugin).

// Errors of the service definitions: ServiceDetail answers
// ErrServiceNotFound; the Raft store (core/persist) wraps them in its
// refusals of definition writes.
var (
	ErrServiceNotFound = errors.New("service not found")
	ErrServiceExists   = errors.New("service already exists")
	// ErrServiceNotEmpty refuses to delete a service that has instances.
	ErrServiceNotEmpty = errors.New("service has instances; deregister them first")
)

// The selector types Nacos knows.
const (
	SelectorNone  = "none"
	SelectorLabel = "label"
)

// Selector is a service's instance selector as Nacos defines it: "none", or
// "label" with an expression of terms "CONSUMER.label.K = PROVIDER.label.K"
// joined by '&'. The zero value is "none".
type Selector struct {
	Type       string
	Expression string
}

// Labels returns the consumer label keys a label selector's expression names,
// sorted, as Nacos's LabelSelector lists them.
func (s Selector) Labels() []string {
	var labels []string
	for term := range strings.SplitSeq(s.Expression, "&") {
		left, _, _ := strings.Cut(term, "=")
		if k, ok := strings.CutPrefix(strings.TrimSpace(left), "CONSUMER.label."); ok && !slices.Contains(labels, k) {
			labels = append(labels, k)
		}
	}
	slices.Sort(labels)
	return labels
}

// checkSelector validates a selector and returns it with "none" for "".
func (l Limits) checkSelector(s Selector) (Selector, error) {
	switch s.Type {
	case "", SelectorNone:
		if s.Expression != "" {
			return s, invalid("selector", "a selector of type none takes no expression")
		}
		return Selector{Type: SelectorNone}, nil
	case SelectorLabel:
	default:
		return s, invalid("selector", "type %s is not one of none, label", quoteShort(s.Type))
	}
	if len(s.Expression) > l.MaxMetadataBytes {
		return s, overLimit("selector", LimitMetadataBytes, "the expression is longer than %d bytes", l.MaxMetadataBytes)
	}
	if p := textProblem(s.Expression, false); p != "" {
		return s, invalid("selector", "the expression %s", p)
	}
	if strings.TrimSpace(s.Expression) == "" {
		return s, nil // Nacos accepts it: it selects every instance
	}
	for term := range strings.SplitSeq(s.Expression, "&") {
		left, right, ok := strings.Cut(term, "=")
		lk, lok := strings.CutPrefix(strings.TrimSpace(left), "CONSUMER.label.")
		rk, rok := strings.CutPrefix(strings.TrimSpace(right), "PROVIDER.label.")
		if !ok || !lok || !rok || lk == "" || lk != rk {
			return s, invalid("selector", "the term %s is not CONSUMER.label.KEY = PROVIDER.label.KEY (the same key)", quoteShort(strings.TrimSpace(term)))
		}
	}
	return s, nil
}

// CheckServiceMeta validates a service definition (an operator's, or the
// Raft store's) and returns it normalized: the selector's type set, the
// metadata copied, never nil.
func (l Limits) CheckServiceMeta(m ServiceMeta) (ServiceMeta, error) {
	if math.IsNaN(m.ProtectThreshold) || m.ProtectThreshold < 0 || m.ProtectThreshold > 1 {
		return m, invalid("protectThreshold", "%v is out of range 0-1", m.ProtectThreshold)
	}
	size := 0
	for k, v := range m.Metadata {
		if k == "" {
			return m, invalid("metadata", "keys must not be empty")
		}
		size += len(k) + len(v)
	}
	if size > l.MaxMetadataBytes {
		return m, overLimit("metadata", LimitMetadataBytes, "%d bytes exceeds the limit of %d", size, l.MaxMetadataBytes)
	}
	for k, v := range m.Metadata {
		if p := textProblem(k, false); p != "" {
			return m, invalid("metadata", "key %s %s", quoteShort(k), p)
		}
		if p := textProblem(v, true); p != "" {
			return m, invalid("metadata", "value of key %s %s", quoteShort(k), p)
		}
	}
	var err error
	if m.Selector, err = l.checkSelector(m.Selector); err != nil {
		return m, err
	}
	m.Metadata = maps.Clone(m.Metadata)
	if m.Metadata == nil {
		m.Metadata = map[string]string{}
	}
	return m, nil
}

// ServiceSummary is one service as the catalog shows it.
type ServiceSummary struct {
	Service Service
	// Defined is whether an operator defined it; Meta is then its
	// definition (else the zero ServiceMeta: threshold 0, selector none).
	Defined bool
	Meta    ServiceMeta
	// Clusters are the sorted names of the clusters its instances are in.
	Clusters []string
	// Instances counts its instances, enabled or not; Healthy the healthy ones.
	Instances, Healthy int
}

// ProtectionReached reports whether readers of the service get every
// instance marked healthy (Nacos's triggerFlag): it has instances, and the
// healthy share is at or below the threshold.
func (s ServiceSummary) ProtectionReached() bool {
	return s.Instances > 0 && float64(s.Healthy)/float64(s.Instances) <= s.Meta.ProtectThreshold
}

// ServiceDetail returns the summary of svc: ErrServiceNotFound if it is
// neither defined nor has instances.
func (r *Registry) ServiceDetail(svc Service) (_ ServiceSummary, err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return ServiceSummary{}, err
	}
	r.mu.RLock()
	m, defined := r.meta[svc]
	e := r.services[svc]
	r.mu.RUnlock()
	s := summarize(svc, e, m, defined)
	if !defined && s.Instances == 0 {
		return ServiceSummary{}, ErrServiceNotFound
	}
	return s, nil
}

// Services returns the summary of every service of namespace that exists,
// sorted by group and name.
func (r *Registry) Services(namespace string) (_ []ServiceSummary, err error) {
	defer r.countRefusal(&err)
	if namespace, _, err = r.limits.NormalizeScope(namespace, ""); err != nil {
		return nil, err
	}
	type found struct {
		e       *entry
		m       ServiceMeta
		defined bool
	}
	all := map[Service]found{}
	r.mu.RLock()
	for svc, e := range r.services {
		if svc.Namespace == namespace {
			all[svc] = found{e: e}
		}
	}
	for svc, m := range r.meta {
		if svc.Namespace == namespace {
			all[svc] = found{e: all[svc].e, m: m, defined: true}
		}
	}
	r.mu.RUnlock()
	out := make([]ServiceSummary, 0, len(all))
	for svc, f := range all {
		if s := summarize(svc, f.e, f.m, f.defined); s.Defined || s.Instances > 0 {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b ServiceSummary) int {
		return cmp.Or(strings.Compare(a.Service.Group, b.Service.Group), strings.Compare(a.Service.Name, b.Service.Name))
	})
	return out, nil
}

// summarize counts what e (nil for none) holds of svc.
func summarize(svc Service, e *entry, m ServiceMeta, defined bool) ServiceSummary {
	s := ServiceSummary{Service: svc, Defined: defined, Meta: m, Clusters: []string{}}
	if s.Meta.Selector.Type == "" {
		s.Meta.Selector.Type = SelectorNone
	}
	if e == nil {
		return s
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, insts := range e.publishers {
		for _, in := range insts {
			s.Instances++
			if in.healthy() {
				s.Healthy++
			}
			if !slices.Contains(s.Clusters, in.shape.cluster) {
				s.Clusters = append(s.Clusters, in.shape.cluster)
			}
		}
	}
	slices.Sort(s.Clusters)
	return s
}

// serviceNames returns the sorted names of the services of namespace and
// group that have instances or are defined.
func (r *Registry) serviceNames(namespace, group string) []string {
	r.mu.RLock()
	var names []string
	for svc, e := range r.services {
		if svc.Namespace == namespace && svc.Group == group && e.hasInstances() {
			names = append(names, svc.Name)
		}
	}
	for svc := range r.meta {
		if svc.Namespace == namespace && svc.Group == group {
			if e := r.services[svc]; e == nil || !e.hasInstances() { // else listed above
				names = append(names, svc.Name)
			}
		}
	}
	r.mu.RUnlock()
	slices.Sort(names)
	return names
}

// ServiceCount returns how many services exist: with instances, or defined.
func (r *Registry) ServiceCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := int(r.nServices.Load())
	for svc := range r.meta {
		if e := r.services[svc]; e == nil || !e.hasInstances() {
			n++
		}
	}
	return n
}

// Namespaces returns the sorted namespaces that hold anything: a service
// with instances or subscribers, or a defined one.
func (r *Registry) Namespaces() []string {
	r.mu.RLock()
	set := map[string]struct{}{}
	for svc := range r.services {
		set[svc.Namespace] = struct{}{}
	}
	for svc := range r.meta {
		set[svc.Namespace] = struct{}{}
	}
	r.mu.RUnlock()
	return slices.Sorted(maps.Keys(set))
}

// Publishers returns the instances of svc by the id of the client that
// publishes them.
func (r *Registry) Publishers(svc Service) (_ map[string][]Instance, err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return nil, err
	}
	e := r.lookup(svc)
	if e == nil {
		return map[string][]Instance{}, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string][]Instance, len(e.publishers))
	for id, insts := range e.publishers {
		out[id] = exportAll(e.svc, insts)
	}
	return out, nil
}

// AllSubscribers returns every subscriber of svc, of connections and of the
// HTTP API (with an Addr) alike.
func (r *Registry) AllSubscribers(svc Service) (_ []Subscriber, err error) {
	defer r.countRefusal(&err)
	if svc, err = r.limits.NormalizeService(svc); err != nil {
		return nil, err
	}
	e := r.lookup(svc)
	if e == nil {
		return nil, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	subs := make([]Subscriber, 0, len(e.subscribers))
	for id, s := range e.subscribers {
		subs = append(subs, Subscriber{ClientID: id, Subscription: s})
	}
	slices.SortFunc(subs, func(a, b Subscriber) int { return strings.Compare(a.ClientID, b.ClientID) })
	return subs, nil
}

// ClientInfo is what the registry knows of one client.
type ClientInfo struct {
	ID string
	// Owner is the node responsible for a replicated client; "" for a
	// client of this node.
	Owner string
	// HTTP is set for a client of the HTTP API (its id is HTTPClientID's).
	HTTP bool
	// Labels are a connection's labels (nil for the HTTP API's clients).
	Labels map[string]string
	// LastUpdated is, for an HTTP client of this node, its last beat or
	// poll; for a replica, when its owner last vouched for it; zero for a
	// connection of this node (its connection knows).
	LastUpdated time.Time
	Published   map[Service][]Instance
	Subscribed  map[Service]Subscription
}

// ClientIDs returns the sorted ids of every client, this node's and
// replicated ones.
func (r *Registry) ClientIDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.clients))
}

// ClientInfo returns what the registry knows of the client id.
func (r *Registry) ClientInfo(id string) (ClientInfo, bool) {
	r.mu.RLock()
	c := r.clients[id]
	r.mu.RUnlock()
	if c == nil {
		return ClientInfo{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.alive {
		return ClientInfo{}, false
	}
	_, _, httpID := ParseHTTPClientID(id)
	info := ClientInfo{ID: c.id, Owner: c.owner, HTTP: c.http != nil || httpID, Labels: maps.Clone(c.labelMap()),
		Published: c.exportPublished(), Subscribed: maps.Clone(c.subscribed)}
	if info.Subscribed == nil {
		info.Subscribed = map[Service]Subscription{}
	}
	switch {
	case !c.local():
		info.LastUpdated = c.verified
	case c.http != nil:
		for _, t := range c.http.beats {
			info.LastUpdated = later(info.LastUpdated, t)
		}
		for _, t := range c.http.expires {
			info.LastUpdated = later(info.LastUpdated, t.Add(-r.udpTTL))
		}
	}
	return info, true
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ClientCounts counts the clients by kind, as Nacos's operator metrics do.
type ClientCounts struct {
	All        int
	Connection int // clients of a gRPC connection
	HTTP       int // clients of the HTTP API (Nacos's ephemeral ip:port clients)
	// Local counts this node's clients, and LocalInstances their instances.
	Local, LocalInstances int
}

// CountClients returns the ClientCounts.
func (r *Registry) CountClients() ClientCounts {
	var n ClientCounts
	for _, c := range r.allClients() {
		c.mu.Lock()
		if c.alive {
			n.All++
			if _, _, httpID := ParseHTTPClientID(c.id); c.http != nil || httpID {
				n.HTTP++
			} else {
				n.Connection++
			}
			if c.local() {
				n.Local++
				n.LocalInstances += c.published.count
			}
		}
		c.mu.Unlock()
	}
	return n
}
