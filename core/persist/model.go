package persist

import (
	"cmp"
	"maps"
	"net"
	"strconv"
	"strings"

	"github.com/sextantd/sextant/core/healthcheck"
	"github.com/sextantd/sextant/core/naming"
)

// Instance is one persistent instance of a service. Its key in the service
// is (IP, Port, Cluster). Stored instances are never modified: a change
// replaces the value, and instances read from the FSM share their Metadata
// map with the stored one, which must not be modified.
type Instance struct {
	IP       string
	Port     int
	Cluster  string // "" is naming.DefaultCluster
	Weight   float64
	Healthy  bool
	Enabled  bool
	Metadata map[string]string
}

// Address is the instance's key within its service.
func (i Instance) Address() Address { return Address{IP: i.IP, Port: i.Port, Cluster: i.Cluster} }

// Naming returns the instance of svc as the registry holds it (for
// naming.Registry.SetPersistent): persistent (Ephemeral false), with the ID
// naming.Limits.NormalizeInstance gives an instance registered without one,
// ip#port#cluster#group@@name. The Metadata map is shared.
func (i Instance) Naming(svc naming.Service) naming.Instance {
	n := i.naming()
	n.ID = i.IP + "#" + strconv.Itoa(i.Port) + "#" + i.Cluster + "#" + svc.GroupedName()
	return n
}

// naming is the instance without an ID, for naming's checks.
func (i Instance) naming() naming.Instance {
	return naming.Instance{IP: i.IP, Port: i.Port, Cluster: i.Cluster, Weight: i.Weight,
		Healthy: i.Healthy, Enabled: i.Enabled, Metadata: i.Metadata}
}

func (i Instance) equal(o Instance) bool {
	return i.IP == o.IP && i.Port == o.Port && i.Cluster == o.Cluster && i.Weight == o.Weight &&
		i.Healthy == o.Healthy && i.Enabled == o.Enabled && maps.Equal(i.Metadata, o.Metadata)
}

// Address names a persistent instance within its service.
type Address struct {
	IP      string
	Port    int
	Cluster string
}

// String renders the address as ip:port in cluster C, for messages.
func (a Address) String() string {
	return net.JoinHostPort(a.IP, strconv.Itoa(a.Port)) + " in cluster " + a.Cluster
}

func compareAddresses(a, b Address) int {
	return cmp.Or(strings.Compare(a.Cluster, b.Cluster), strings.Compare(a.IP, b.IP), cmp.Compare(a.Port, b.Port))
}

func compareServices(a, b naming.Service) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Group, b.Group), strings.Compare(a.Name, b.Name))
}

// ServiceDefinition is what an operator defines of a service (Nacos's
// service API). It maps to naming.ServiceMeta.
type ServiceDefinition struct {
	// ProtectThreshold is the protection threshold, 0..1.
	ProtectThreshold float64
	Metadata         map[string]string
	// Selector is "none" (the zero value is stored as "none") or "label".
	Selector naming.Selector
}

// Meta returns the definition as the registry holds it.
func (d ServiceDefinition) Meta() naming.ServiceMeta {
	return naming.ServiceMeta{ProtectThreshold: d.ProtectThreshold, Metadata: d.Metadata, Selector: d.Selector}
}

func (d ServiceDefinition) equal(o ServiceDefinition) bool {
	return d.ProtectThreshold == o.ProtectThreshold && d.Selector == o.Selector && maps.Equal(d.Metadata, o.Metadata)
}

// ClusterDefinition is what an operator defines of a service cluster
// (Nacos's PUT /nacos/v1/ns/cluster): how the server checks the health of
// the cluster's persistent instances, and the cluster's metadata. A cluster
// without one is checked as DefaultClusterDefinition says.
type ClusterDefinition struct {
	// Checker is the cluster's health checker: TCP (stored as
	// healthcheck.TypeTCP, never ""), HTTP (its ExpectedCode stored as 200
	// when 0) or NONE. Its CheckPort is Nacos's checkPort: the port checked
	// when UseInstancePort is false (then 1 to 65535), kept but not used
	// when it is true. Its Headers map is shared and must not be modified.
	Checker healthcheck.Checker
	// UseInstancePort is Nacos's useInstancePort4Check: each instance is
	// checked on its own port.
	UseInstancePort bool
	// Metadata is the cluster's metadata; the map is shared and must not be
	// modified.
	Metadata map[string]string
}

// DefaultClusterDefinition is the definition of a cluster an operator never
// defined, as in Nacos: a TCP check of each instance's own port.
func DefaultClusterDefinition() ClusterDefinition {
	return ClusterDefinition{Checker: healthcheck.DefaultChecker(), UseInstancePort: true}
}

// HealthChecker returns the checker the cluster's instances are checked
// with: Checker, on each instance's own port (CheckPort 0) when
// UseInstancePort is set.
func (d ClusterDefinition) HealthChecker() healthcheck.Checker {
	c := d.Checker
	if d.UseInstancePort {
		c.CheckPort = 0
	}
	return c
}

func (d ClusterDefinition) equal(o ClusterDefinition) bool {
	a, b := d.Checker, o.Checker
	return a.Type == b.Type && a.Path == b.Path && a.ExpectedCode == b.ExpectedCode && a.CheckPort == b.CheckPort &&
		maps.Equal(a.Headers, b.Headers) && d.UseInstancePort == o.UseInstancePort && maps.Equal(d.Metadata, o.Metadata)
}

// ServiceInfo is one service of the FSM: defined, or holding persistent
// instances or cluster definitions, or several of these.
type ServiceInfo struct {
	Service naming.Service
	// Defined is whether it has a definition; Definition is then it.
	Defined    bool
	Definition ServiceDefinition
	// Instances counts its persistent instances.
	Instances int
	// Clusters counts its cluster definitions.
	Clusters int
}

// Namespace is a namespace an operator created.
type Namespace struct {
	ID          string
	Name        string
	Description string
}

// PublicNamespace is the built-in default namespace. It always exists, is
// never stored, and can be neither changed nor removed.
var PublicNamespace = Namespace{ID: naming.DefaultNamespace, Name: naming.DefaultNamespace, Description: "Public Namespace"}

// Expect is the condition a Put sets on what it replaces, so that a create
// and an update stay what they are when writers race.
type Expect uint8

const (
	// ExpectAny puts whether or not the target exists (an upsert).
	ExpectAny Expect = iota
	// ExpectAbsent puts only a target that does not exist yet (a create);
	// else the op is refused with an error wrapping ErrExists.
	ExpectAbsent
	// ExpectPresent puts only a target that exists (an update); else the op
	// is refused with an error wrapping ErrNotFound.
	ExpectPresent
)

// String returns the expectation's wire name ("" for ExpectAny).
func (e Expect) String() string {
	switch e {
	case ExpectAny:
		return ""
	case ExpectAbsent:
		return "absent"
	case ExpectPresent:
		return "present"
	}
	return "expect(" + strconv.Itoa(int(e)) + ")"
}

// Change is what one Apply, ApplyBatch or Restore changed; Config.OnChange
// receives it.
type Change struct {
	// Index is the log index of the last entry applied (of the snapshot,
	// for a Restore).
	Index uint64
	// Services are the services whose persistent instances, definition or
	// cluster definitions changed, sorted by namespace, group and name.
	// Read them again with Instances, Service and Clusters.
	Services []naming.Service
	// Namespaces are the ids of the namespaces created, changed or removed,
	// sorted.
	Namespaces []string
	// Restored is set for a Restore: Services and Namespaces then list
	// everything the state held before or holds after it.
	Restored bool
}

// Response is what Apply returns for one log entry (the raft ApplyFuture's
// Response on the node that proposed it).
type Response struct {
	// Index is the entry's log index.
	Index uint64
	// Err refuses the entry as a whole (not decodable, an unknown version,
	// too many ops); no op of it was applied, and Results is nil.
	Err error
	// Results holds one result per op, in the entry's order: nil when the op
	// was applied (or changed nothing), else why it was refused.
	Results []error
}
