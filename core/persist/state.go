package persist

import (
	"maps"

	"github.com/sextantd/sextant/core/naming"
)

// state is what the FSM holds. Its maps are the FSM's own; a snapshot
// copies them and shares the services, which are copied on write: a
// service whose gen is older than the FSM's may be shared with a snapshot,
// and is cloned before it is changed (mutable).
type state struct {
	services   map[naming.Service]*service
	namespaces map[string]Namespace // values are immutable
	instances  int                  // persistent instances of every service
	defined    int                  // services defined
	clusters   int                  // cluster definitions of every service
	index      uint64               // the last log index applied
}

// service is one service's definition, persistent instances and cluster
// definitions. The state holds a service while it has any of them, and no
// other; it exists for the Expect of PutService while it is defined or has
// an instance.
type service struct {
	gen        uint64
	defined    bool
	definition ServiceDefinition
	instances  map[Address]Instance
	clusters   map[string]ClusterDefinition // nil when none
}

// exists reports whether the service exists for PutService's Expect:
// defined, or with persistent instances.
func (e *service) exists() bool { return e != nil && (e.defined || len(e.instances) > 0) }

func newState() *state {
	return &state{services: make(map[naming.Service]*service), namespaces: make(map[string]Namespace)}
}

// limits are the count limits Apply enforces.
type limits struct {
	instancesPerService, instances, services, namespaces, clustersPerService int
}

// changes collects what one Apply or ApplyBatch changed: the services, and
// of each the addresses whose instance was put, changed or removed (what the
// registry's mirror updates, without going over the service's others).
type changes struct {
	services   map[naming.Service]struct{}
	addresses  map[naming.Service]map[Address]struct{}
	namespaces map[string]struct{}
}

func (c *changes) instance(svc naming.Service, a Address) {
	c.service(svc)
	if c.addresses == nil {
		c.addresses = make(map[naming.Service]map[Address]struct{})
	}
	if c.addresses[svc] == nil {
		c.addresses[svc] = make(map[Address]struct{})
	}
	c.addresses[svc][a] = struct{}{}
}

func (c *changes) service(svc naming.Service) {
	if c.services == nil {
		c.services = make(map[naming.Service]struct{})
	}
	c.services[svc] = struct{}{}
}

func (c *changes) namespace(id string) {
	if c.namespaces == nil {
		c.namespaces = make(map[string]struct{})
	}
	c.namespaces[id] = struct{}{}
}

// mutable returns svc's service, to be changed by the op of generation gen:
// a new one if it does not exist (added to the state), a clone if it may be
// shared with a snapshot.
func (s *state) mutable(svc naming.Service, gen uint64) *service {
	e := s.services[svc]
	switch {
	case e == nil:
		e = &service{gen: gen, instances: make(map[Address]Instance)}
		s.services[svc] = e
	case e.gen != gen:
		e = &service{gen: gen, defined: e.defined, definition: e.definition, instances: maps.Clone(e.instances),
			clusters: maps.Clone(e.clusters)}
		s.services[svc] = e
	}
	return e
}

// dropIfGone removes svc from the state when it no longer exists.
func (s *state) dropIfGone(svc naming.Service, e *service) {
	if !e.defined && len(e.instances) == 0 && len(e.clusters) == 0 {
		delete(s.services, svc)
	}
}

// apply applies one valid, normalized op (Validate's) at generation gen.
func (s *state) apply(op Op, lim limits, gen uint64, ch *changes) error {
	switch op := op.(type) {
	case PutInstance:
		return s.putInstance(op, lim, gen, ch)
	case RemoveInstance:
		a := Address{IP: op.IP, Port: op.Port, Cluster: op.Cluster}
		e := s.services[op.Service]
		if e == nil {
			return instanceNotFound(op.Service, a)
		}
		if _, ok := e.instances[a]; !ok {
			return instanceNotFound(op.Service, a)
		}
		e = s.mutable(op.Service, gen)
		delete(e.instances, a)
		s.instances--
		s.dropIfGone(op.Service, e)
		ch.instance(op.Service, a)
	case SetHealth:
		a := Address{IP: op.IP, Port: op.Port, Cluster: op.Cluster}
		e := s.services[op.Service]
		if e == nil {
			return instanceNotFound(op.Service, a)
		}
		in, ok := e.instances[a]
		switch {
		case !ok:
			return instanceNotFound(op.Service, a)
		case in.Healthy == op.Healthy:
			return nil
		}
		in.Healthy = op.Healthy
		s.mutable(op.Service, gen).instances[a] = in
		ch.instance(op.Service, a)
	case PutService:
		e := s.services[op.Service]
		switch {
		case !e.exists() && op.Expect == ExpectPresent:
			return serviceNotFound(op.Service, "not found")
		case e.exists() && op.Expect == ExpectAbsent:
			return serviceExists(op.Service)
		case e == nil && len(s.services) >= lim.services:
			return overLimit("serviceName", LimitServices, "%d services exist, at the limit of %d", len(s.services), lim.services)
		case e != nil && e.defined && e.definition.equal(op.Definition):
			return nil
		}
		e = s.mutable(op.Service, gen)
		if !e.defined {
			s.defined++
		}
		e.defined, e.definition = true, op.Definition
		ch.service(op.Service)
	case RemoveService:
		e := s.services[op.Service]
		switch {
		case e == nil:
			return serviceNotFound(op.Service, "is not defined")
		case len(e.instances) > 0:
			return serviceNotEmpty(op.Service, len(e.instances))
		}
		delete(s.services, op.Service) // it has no instances: gone
		if e.defined {
			s.defined--
		}
		s.clusters -= len(e.clusters)
		ch.service(op.Service)
	case PutCluster:
		return s.putCluster(op, lim, gen, ch)
	case PutNamespace:
		old, ok := s.namespaces[op.Namespace.ID]
		switch {
		case !ok && op.Expect == ExpectPresent:
			return namespaceNotFound(op.Namespace.ID)
		case ok && op.Expect == ExpectAbsent:
			return namespaceExists(op.Namespace.ID)
		case !ok && len(s.namespaces) >= lim.namespaces:
			return overLimit("namespaceId", LimitNamespaces, "%d namespaces exist, at the limit of %d", len(s.namespaces), lim.namespaces)
		case ok && old == op.Namespace:
			return nil
		}
		s.namespaces[op.Namespace.ID] = op.Namespace
		ch.namespace(op.Namespace.ID)
	case RemoveNamespace:
		if _, ok := s.namespaces[op.ID]; !ok {
			return namespaceNotFound(op.ID)
		}
		if n := s.countServices(op.ID); n > 0 {
			return namespaceNotEmpty(op.ID, n)
		}
		delete(s.namespaces, op.ID)
		ch.namespace(op.ID)
	}
	return nil
}

func (s *state) putInstance(op PutInstance, lim limits, gen uint64, ch *changes) error {
	a := op.Instance.Address()
	e := s.services[op.Service]
	var old Instance
	var exists bool
	if e != nil {
		old, exists = e.instances[a]
	}
	switch {
	case !exists && op.Expect == ExpectPresent:
		return instanceNotFound(op.Service, a)
	case exists && op.Expect == ExpectAbsent:
		return instanceExists(op.Service, a)
	case exists && old.equal(op.Instance):
		return nil
	case exists:
		// Replacing an instance never grows anything.
	case e == nil && len(s.services) >= lim.services:
		return overLimit("serviceName", LimitServices, "%d services exist, at the limit of %d", len(s.services), lim.services)
	case e != nil && len(e.instances) >= lim.instancesPerService:
		return overLimit("serviceName", LimitInstancesPerService, "the service has %d persistent instances, at the limit of %d", len(e.instances), lim.instancesPerService)
	case s.instances >= lim.instances:
		return overLimit("ip", LimitInstances, "%d persistent instances exist, at the limit of %d", s.instances, lim.instances)
	}
	e = s.mutable(op.Service, gen)
	e.instances[a] = op.Instance
	if !exists {
		s.instances++
	}
	ch.instance(op.Service, a)
	return nil
}

func (s *state) putCluster(op PutCluster, lim limits, gen uint64, ch *changes) error {
	e := s.services[op.Service]
	var old ClusterDefinition
	var exists bool
	if e != nil {
		old, exists = e.clusters[op.Cluster]
	}
	switch {
	case exists && old.equal(op.Definition):
		return nil
	case exists:
		// Replacing a definition never grows anything.
	case e == nil && len(s.services) >= lim.services:
		return overLimit("serviceName", LimitServices, "%d services exist, at the limit of %d", len(s.services), lim.services)
	case e != nil && len(e.clusters) >= lim.clustersPerService:
		return overLimit("clusterName", LimitClustersPerService, "the service has %d cluster definitions, at the limit of %d",
			len(e.clusters), lim.clustersPerService)
	}
	e = s.mutable(op.Service, gen)
	if e.clusters == nil {
		e.clusters = make(map[string]ClusterDefinition)
	}
	e.clusters[op.Cluster] = op.Definition
	if !exists {
		s.clusters++
	}
	ch.service(op.Service)
	return nil
}

// countServices counts the services of namespace.
func (s *state) countServices(namespace string) int {
	n := 0
	for svc := range s.services {
		if svc.Namespace == namespace {
			n++
		}
	}
	return n
}
