package persist

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/sextantd/sextant/core/naming"
)

// Defaults of the Config limits left at 0.
const (
	DefaultMaxInstancesPerService = 10000
	DefaultMaxInstances           = 100000
	DefaultMaxServices            = 100000
	DefaultMaxNamespaces          = 10000
	DefaultMaxOpsPerEntry         = 10000
	DefaultMaxClustersPerService  = 100

	// The name and metadata limits used when Config.Limits leaves them at
	// 0: the server's defaults for naming.max_name_length and
	// naming.max_metadata_bytes.
	DefaultMaxNameLength    = 512
	DefaultMaxMetadataBytes = 16 * 1024
)

// Config configures an FSM.
//
// Every member must run with the same limits (Limits and the count limits):
// they decide which ops Apply refuses, and an op one member applies and
// another refuses makes their states differ. They are cluster-wide settings:
// changing one takes stopping every member, not a rolling restart, as long
// as they are read from each node's configuration rather than from the log.
type Config struct {
	// Limits are the registry's name and metadata limits
	// (MaxNameLength, MaxMetadataBytes; the others are not used here);
	// those at 0 take the defaults above.
	Limits naming.Limits

	// Count limits; 0 takes the default. A Put that would go over one is
	// refused; what is stored already is kept, so a lowered limit only stops
	// growth. Restore does not apply them.
	MaxInstancesPerService int // persistent instances of one service
	MaxInstances           int // persistent instances of every service
	MaxServices            int // services defined or with persistent instances
	MaxNamespaces          int // namespaces created (the public one not counted)
	MaxOpsPerEntry         int // ops in one log entry; a larger entry is refused whole
	MaxClustersPerService  int // cluster definitions of one service

	// OnChange, if set, is called with what each Apply and ApplyBatch
	// changed, when it changed anything, and after each Restore. It runs
	// on the caller's goroutine (raft's FSM goroutine), after the change is
	// visible to the reads and without the FSM's lock held. Raft applies
	// entries one call at a time, so calls come in log order and never
	// overlap, and no later entry is applied before a call returns: it must
	// be quick (hand the change on), and must not wait for another entry to
	// be applied (raft.Apply from it would deadlock). Reads in it see the
	// state as of Change.Index; reads made later may see later states.
	OnChange func(Change)

	// Registry, if set, is made to show what changed, before OnChange: the
	// changed services' persistent instances (naming.Registry.SetPersistent)
	// and definitions (SetDefinition), which pushes them to subscribers.
	Registry *naming.Registry
	// Logger logs what the registry refused; none when nil.
	Logger hclog.Logger
}

// FSM is the replicated state of persistent instances, service definitions
// and namespaces: the raft.FSM (and raft.BatchingFSM) of the store. Its reads
// are safe for concurrent use with Apply; Apply, ApplyBatch, Snapshot and
// Restore are called by raft one at a time.
type FSM struct {
	limits   naming.Limits
	counts   limits
	maxOps   int
	onChange func(Change)
	registry *naming.Registry
	log      hclog.Logger
	metrics  *metrics

	mu sync.RWMutex
	st *state
	// gen is the generation of the state's services that may be changed in
	// place; Snapshot starts a new one (state.go).
	gen uint64
}

var _ raft.BatchingFSM = (*FSM)(nil)

// New returns an empty FSM.
func New(cfg Config) *FSM {
	or := func(v, def int) int {
		if v <= 0 {
			return def
		}
		return v
	}
	l := cfg.Limits
	l.MaxNameLength = or(l.MaxNameLength, DefaultMaxNameLength)
	l.MaxMetadataBytes = or(l.MaxMetadataBytes, DefaultMaxMetadataBytes)
	f := &FSM{
		limits: l,
		counts: limits{
			instancesPerService: or(cfg.MaxInstancesPerService, DefaultMaxInstancesPerService),
			instances:           or(cfg.MaxInstances, DefaultMaxInstances),
			services:            or(cfg.MaxServices, DefaultMaxServices),
			namespaces:          or(cfg.MaxNamespaces, DefaultMaxNamespaces),
			clustersPerService:  or(cfg.MaxClustersPerService, DefaultMaxClustersPerService),
		},
		maxOps:   or(cfg.MaxOpsPerEntry, DefaultMaxOpsPerEntry),
		onChange: cfg.OnChange,
		registry: cfg.Registry,
		log:      cfg.Logger,
		st:       newState(),
		gen:      1,
	}
	if f.log == nil {
		f.log = hclog.NewNullLogger()
	}
	f.metrics = newMetrics(f)
	return f
}

// Limits returns the name and metadata limits the FSM validates ops with
// (Config.Limits with the defaults applied), for writers' Validate.
func (f *FSM) Limits() naming.Limits { return f.limits }

// entry is one log entry to apply: its ops, or why it is refused whole.
type entry struct {
	index uint64
	ops   []decoded
	err   error
}

func (f *FSM) decode(l *raft.Log) entry {
	e := entry{index: l.Index}
	e.ops, e.err = decode(l.Data, f.maxOps)
	return e
}

// Apply applies one committed log entry (raft.LogCommand) and returns its
// Response (a Response value: the ApplyFuture's Response().(Response) on
// the proposing node). Its ops are applied in order, each on the state the ones before
// it left, each on its own: one refused leaves the others applied (as Nacos
// applies the instances of a batch independently). Every op is validated
// again (Validate), so an entry from the log cannot store what a writer
// could not. Other log types are ignored (nil).
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	resp := f.applyEntries([]entry{f.decode(l)})
	return resp[0]
}

// ApplyBatch applies consecutive committed entries as Apply does, under one
// lock, and calls OnChange once for all of them. Entries other than
// raft.LogCommand get nil.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	entries := make([]entry, 0, len(logs))
	for _, l := range logs {
		if l.Type == raft.LogCommand {
			entries = append(entries, f.decode(l))
		}
	}
	resps := f.applyEntries(entries)
	out := make([]any, len(logs))
	i := 0
	for j, l := range logs {
		if l.Type == raft.LogCommand {
			out[j] = resps[i]
			i++
		}
	}
	return out
}

func (f *FSM) applyEntries(entries []entry) []Response {
	resps := make([]Response, len(entries))
	var ch changes
	f.mu.Lock()
	for i, e := range entries {
		resps[i] = f.applyLocked(e, &ch)
	}
	index := f.st.index
	f.mu.Unlock()
	for _, r := range resps {
		f.metrics.count(r)
	}
	if len(ch.services) > 0 || len(ch.namespaces) > 0 {
		f.changed(Change{Index: index, Services: sortedServices(ch.services), Namespaces: slices.Sorted(maps.Keys(ch.namespaces))}, ch.addresses)
	}
	return resps
}

// watched reports whether anyone is told of changes.
func (f *FSM) watched() bool { return f.onChange != nil || f.registry != nil }

// changed mirrors c into the registry, then calls OnChange. addresses are
// the instances each service's change touched, mirrored one by one; after a
// restore every service of c is mirrored whole.
func (f *FSM) changed(c Change, addresses map[naming.Service]map[Address]struct{}) {
	if f.registry != nil {
		ctx := context.Background()
		for _, svc := range c.Services {
			var err error
			switch touched := addresses[svc]; {
			case c.Restored:
				err = f.registry.SetPersistent(ctx, svc, f.mirrored(svc))
			case len(touched) > 0:
				err = f.registry.ChangePersistent(ctx, svc, f.instanceChanges(svc, touched))
			}
			if err != nil {
				f.log.Error("the registry refused persistent instances", "service", svc.String(), "error", err)
			}
			var meta *naming.ServiceMeta
			if def, ok := f.Service(svc); ok {
				m := def.Meta()
				meta = &m
			}
			if err := f.registry.SetDefinition(ctx, svc, meta); err != nil {
				f.log.Error("the registry refused a service definition", "service", svc.String(), "error", err)
			}
		}
	}
	if f.onChange != nil {
		f.onChange(c)
	}
}

// mirrored returns every persistent instance of svc as the registry holds
// them.
func (f *FSM) mirrored(svc naming.Service) []naming.Instance {
	insts := f.Instances(svc)
	out := make([]naming.Instance, len(insts))
	for i, in := range insts {
		out[i] = in.Naming(svc)
	}
	return out
}

// instanceChanges returns what svc now holds at each of the addresses.
func (f *FSM) instanceChanges(svc naming.Service, addresses map[Address]struct{}) []naming.PersistentChange {
	out := make([]naming.PersistentChange, 0, len(addresses))
	f.mu.RLock()
	defer f.mu.RUnlock()
	var held map[Address]Instance
	if e := f.st.services[svc]; e != nil {
		held = e.instances
	}
	for a := range addresses {
		if in, ok := held[a]; ok {
			out = append(out, naming.PersistentChange{Instance: in.Naming(svc)})
		} else {
			out = append(out, naming.PersistentChange{Instance: naming.Instance{IP: a.IP, Port: a.Port, Cluster: a.Cluster}, Removed: true})
		}
	}
	return out
}

// applyLocked applies one entry; f.mu is held.
func (f *FSM) applyLocked(e entry, ch *changes) Response {
	if e.index > f.st.index {
		f.st.index = e.index
	}
	if e.err != nil {
		return Response{Index: e.index, Err: e.err}
	}
	r := Response{Index: e.index, Results: make([]error, len(e.ops))}
	for i, d := range e.ops {
		if d.err != nil {
			r.Results[i] = d.err
			continue
		}
		op, err := Validate(f.limits, d.op)
		if err == nil {
			err = f.st.apply(op, f.counts, f.gen, ch)
		}
		r.Results[i] = err
	}
	return r
}

func sortedServices(set map[naming.Service]struct{}) []naming.Service {
	return slices.SortedFunc(maps.Keys(set), compareServices)
}

// Index returns the log index of the last command entry applied, or of the
// snapshot last restored.
func (f *FSM) Index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.index
}

// normalize applies Nacos's defaults to a service to read; false if it is
// not valid (then nothing holds it).
func (f *FSM) normalize(svc naming.Service) (naming.Service, bool) {
	svc, err := f.limits.NormalizeService(svc)
	return svc, err == nil
}

// Instances returns the persistent instances of svc, sorted by cluster, ip
// and port; none if it has none. The slice is the caller's; the instances'
// Metadata maps are shared and must not be modified.
func (f *FSM) Instances(svc naming.Service) []Instance {
	svc, ok := f.normalize(svc)
	if !ok {
		return nil
	}
	f.mu.RLock()
	var out []Instance
	if e := f.st.services[svc]; e != nil {
		out = slices.Collect(maps.Values(e.instances))
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b Instance) int { return compareAddresses(a.Address(), b.Address()) })
	return out
}

// AllInstances returns every persistent instance, by service (the
// server-side health checks' targets). The slices are the caller's; the
// instances' Metadata maps are shared and must not be modified.
func (f *FSM) AllInstances() map[naming.Service][]Instance {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[naming.Service][]Instance, len(f.st.services))
	for svc, e := range f.st.services {
		if len(e.instances) > 0 {
			out[svc] = slices.Collect(maps.Values(e.instances))
		}
	}
	return out
}

// Cluster returns the definition of the cluster name of svc ("" is
// naming.DefaultCluster), if it is defined. Its maps are shared and must
// not be modified.
func (f *FSM) Cluster(svc naming.Service, name string) (ClusterDefinition, bool) {
	svc, ok := f.normalize(svc)
	if !ok {
		return ClusterDefinition{}, false
	}
	if name == "" {
		name = naming.DefaultCluster
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if e := f.st.services[svc]; e != nil {
		d, ok := e.clusters[name]
		return d, ok
	}
	return ClusterDefinition{}, false
}

// Clusters returns the cluster definitions of svc, by cluster name; none
// if it has none. The map is the caller's; the definitions' maps are shared
// and must not be modified.
func (f *FSM) Clusters(svc naming.Service) map[string]ClusterDefinition {
	svc, ok := f.normalize(svc)
	if !ok {
		return nil
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if e := f.st.services[svc]; e != nil {
		return maps.Clone(e.clusters)
	}
	return nil
}

// AllClusters returns the cluster definitions of every service that has
// any, by service and cluster name (with AllInstances, the server-side
// health checks' targets). The maps are the caller's; the definitions'
// maps are shared and must not be modified.
func (f *FSM) AllClusters() map[naming.Service]map[string]ClusterDefinition {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[naming.Service]map[string]ClusterDefinition)
	for svc, e := range f.st.services {
		if len(e.clusters) > 0 {
			out[svc] = maps.Clone(e.clusters)
		}
	}
	return out
}

// Service returns the definition of svc, if it is defined. Its Metadata map
// is shared and must not be modified.
func (f *FSM) Service(svc naming.Service) (ServiceDefinition, bool) {
	svc, ok := f.normalize(svc)
	if !ok {
		return ServiceDefinition{}, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if e := f.st.services[svc]; e != nil && e.defined {
		return e.definition, true
	}
	return ServiceDefinition{}, false
}

// Services returns the services of namespace ("" is the public one) that
// the FSM holds (defined, or with persistent instances or cluster
// definitions), sorted by group and name. The definitions' Metadata maps
// are shared and must not be modified.
func (f *FSM) Services(namespace string) []ServiceInfo {
	if namespace == "" {
		namespace = naming.DefaultNamespace
	}
	var out []ServiceInfo
	f.mu.RLock()
	for svc, e := range f.st.services {
		if svc.Namespace == namespace {
			out = append(out, ServiceInfo{Service: svc, Defined: e.defined, Definition: e.definition, Instances: len(e.instances),
				Clusters: len(e.clusters)})
		}
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b ServiceInfo) int { return compareServices(a.Service, b.Service) })
	return out
}

// Namespaces returns every namespace, the public one first, then the
// created ones sorted by id.
func (f *FSM) Namespaces() []Namespace {
	f.mu.RLock()
	out := make([]Namespace, 0, len(f.st.namespaces)+1)
	for _, ns := range f.st.namespaces {
		out = append(out, ns)
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b Namespace) int { return strings.Compare(a.ID, b.ID) })
	return slices.Insert(out, 0, PublicNamespace)
}

// Namespace returns the namespace id ("" is the public one), if it exists.
func (f *FSM) Namespace(id string) (Namespace, bool) {
	if id == "" || id == naming.DefaultNamespace {
		return PublicNamespace, true
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	ns, ok := f.st.namespaces[id]
	return ns, ok
}

// Stats counts what the FSM holds.
type Stats struct {
	Namespaces int // created namespaces (the public one not counted)
	Services   int // services defined or with persistent instances or cluster definitions
	Defined    int // services defined
	Instances  int // persistent instances
	Clusters   int // cluster definitions
}

// Stats returns the current counts.
func (f *FSM) Stats() Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return Stats{Namespaces: len(f.st.namespaces), Services: len(f.st.services), Defined: f.st.defined, Instances: f.st.instances,
		Clusters: f.st.clusters}
}
