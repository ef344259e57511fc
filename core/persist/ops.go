package persist

import "github.com/sextantd/sextant/core/naming"

// Op is one operation of a log entry: PutInstance, RemoveInstance,
// SetHealth, PutService, RemoveService, PutCluster, PutNamespace or
// RemoveNamespace.
// The set is closed: only this package's types implement it.
type Op interface {
	// code is the op's name on the wire.
	code() string
}

// The ops' names on the wire.
const (
	codePutInstance     = "put_instance"
	codeRemoveInstance  = "remove_instance"
	codeSetHealth       = "set_health"
	codePutService      = "put_service"
	codeRemoveService   = "remove_service"
	codePutCluster      = "put_cluster"
	codePutNamespace    = "put_namespace"
	codeRemoveNamespace = "remove_namespace"
)

// PutInstance registers a persistent instance of Service, or replaces the
// one at the same (IP, Port, Cluster). The service need not be defined.
// Putting an instance equal to the stored one changes nothing.
type PutInstance struct {
	Service  naming.Service
	Instance Instance
	// Expect: ExpectAbsent registers only a new instance, ExpectPresent
	// replaces only an existing one.
	Expect Expect
}

// RemoveInstance deregisters the persistent instance of Service at (IP,
// Port, Cluster): an error wrapping ErrNotFound if there is none. A service
// left without instances and without a definition no longer exists.
type RemoveInstance struct {
	Service naming.Service
	IP      string
	Port    int
	Cluster string // "" is naming.DefaultCluster
}

// SetHealth sets the health of the persistent instance of Service at (IP,
// Port, Cluster), as server-side health checks find it: an error wrapping
// ErrNotFound if there is none. Writers send it only for a change; one that
// sets the health the instance has changes nothing.
type SetHealth struct {
	Service naming.Service
	IP      string
	Port    int
	Cluster string // "" is naming.DefaultCluster
	Healthy bool
}

// PutService defines Service, or replaces its definition.
type PutService struct {
	Service    naming.Service
	Definition ServiceDefinition
	// Expect: ExpectAbsent defines only a service that does not exist
	// (neither defined nor with persistent instances: cluster definitions
	// alone do not count), ExpectPresent only one that does, in the state
	// this FSM holds.
	Expect Expect
}

// RemoveService removes the definition of Service and the definitions of
// its clusters: refused with an error wrapping naming.ErrServiceNotEmpty
// while it has persistent instances (as Nacos refuses), and ErrNotFound if
// it has neither.
type RemoveService struct {
	Service naming.Service
}

// PutCluster defines the cluster Cluster of Service ("" is
// naming.DefaultCluster), or replaces its definition, as Nacos's PUT
// /nacos/v1/ns/cluster does; the service need not be defined. A cluster
// definition stays until its service is removed (RemoveService), whatever
// instances come and go, and keeps the FSM's entry of the service while it
// does.
type PutCluster struct {
	Service    naming.Service
	Cluster    string
	Definition ClusterDefinition
}

// PutNamespace creates a namespace, or replaces its name and description.
// The public namespace is built in and cannot be put.
type PutNamespace struct {
	Namespace Namespace
	// Expect: ExpectAbsent creates only a new namespace, ExpectPresent
	// changes only an existing one.
	Expect Expect
}

// RemoveNamespace removes the namespace ID: refused for the public
// namespace, with an error wrapping ErrNamespaceNotEmpty while a service of
// it exists here (defined, or with persistent instances), and ErrNotFound
// if it does not exist.
type RemoveNamespace struct {
	ID string
}

func (PutInstance) code() string     { return codePutInstance }
func (RemoveInstance) code() string  { return codeRemoveInstance }
func (SetHealth) code() string       { return codeSetHealth }
func (PutService) code() string      { return codePutService }
func (RemoveService) code() string   { return codeRemoveService }
func (PutCluster) code() string      { return codePutCluster }
func (PutNamespace) code() string    { return codePutNamespace }
func (RemoveNamespace) code() string { return codeRemoveNamespace }
