package persist

import (
	"errors"
	"fmt"

	"github.com/sextantd/sextant/core/naming"
)

// What an op may be refused for, besides invalid input (a
// *naming.InvalidError naming the field, and the limit when it is over one).
// Refusals wrap them; those about a service or an instance also wrap
// naming's equivalent (naming.ErrServiceNotFound, naming.ErrServiceExists,
// naming.ErrInstanceNotFound), so front ends answer them as they answer the
// registry's.
var (
	// ErrNotFound: the instance, service or namespace does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a Put with ExpectAbsent found its target.
	ErrExists = errors.New("already exists")
	// ErrNamespaceNotEmpty refuses to remove a namespace that holds a
	// service here (defined, or with persistent instances).
	ErrNamespaceNotEmpty = errors.New("namespace has services; remove them first")
	// ErrPublicNamespace refuses to put or remove the built-in public
	// namespace.
	ErrPublicNamespace = errors.New("the public namespace is built in and cannot be changed or removed")
	// ErrBadEntry refuses a log entry as a whole (Response.Err): not
	// decodable, of an unknown version, or with too many ops.
	ErrBadEntry = errors.New("bad log entry")
)

// The limits' keys: the Limit of the *naming.InvalidError refusing an op
// over one, and the reason the refusal is counted under.
const (
	LimitInstancesPerService = "persist.max_instances_per_service"
	LimitInstances           = "persist.max_instances"
	LimitServices            = "persist.max_services"
	LimitNamespaces          = "persist.max_namespaces"
	LimitClustersPerService  = "persist.max_clusters_per_service"
	LimitOpsPerEntry         = "persist.max_ops_per_entry"
)

// stateError is a refusal for the state an op found. It wraps a kind
// (ErrNotFound, ...) and, for services and instances, naming's equivalent.
type stateError struct {
	msg  string
	errs []error
}

func (e *stateError) Error() string   { return e.msg }
func (e *stateError) Unwrap() []error { return e.errs }

func refuse(msg string, errs ...error) error { return &stateError{msg: msg, errs: errs} }

func instanceNotFound(svc naming.Service, a Address) error {
	return refuse(fmt.Sprintf("persistent instance %s of %s not found", a, svc), ErrNotFound, naming.ErrInstanceNotFound)
}

func instanceExists(svc naming.Service, a Address) error {
	return refuse(fmt.Sprintf("persistent instance %s of %s already exists", a, svc), ErrExists)
}

func serviceNotFound(svc naming.Service, what string) error {
	return refuse(fmt.Sprintf("service %s %s", svc, what), ErrNotFound, naming.ErrServiceNotFound)
}

func serviceExists(svc naming.Service) error {
	return refuse(fmt.Sprintf("service %s already exists", svc), ErrExists, naming.ErrServiceExists)
}

func serviceNotEmpty(svc naming.Service, n int) error {
	return refuse(fmt.Sprintf("service %s has %d persistent instances; deregister them first", svc, n), naming.ErrServiceNotEmpty)
}

func namespaceNotFound(id string) error {
	return refuse(fmt.Sprintf("namespace %q not found", id), ErrNotFound)
}

func namespaceExists(id string) error {
	return refuse(fmt.Sprintf("namespace %q already exists", id), ErrExists)
}

func namespaceNotEmpty(id string, n int) error {
	return refuse(fmt.Sprintf("namespace %q has %d services; remove them first", id, n), ErrNamespaceNotEmpty)
}

func publicNamespace(what string) error {
	return refuse(fmt.Sprintf("namespace %q: cannot %s the public namespace, which is built in", naming.DefaultNamespace, what), ErrPublicNamespace)
}

// badEntry refuses an entry as a whole.
func badEntry(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadEntry, fmt.Sprintf(format, args...))
}

// invalid is a *naming.InvalidError breaking a rule.
func invalid(field, format string, args ...any) error {
	return &naming.InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// overLimit is a *naming.InvalidError over the limit whose key is limit.
func overLimit(field, limit, format string, args ...any) error {
	return &naming.InvalidError{Field: field, Reason: fmt.Sprintf(format, args...) + " (" + limit + ")", Limit: limit}
}

// The reasons refusals are counted under, besides the limits' keys
// (naming's and this package's).
const (
	reasonInvalid   = "invalid"
	reasonNotFound  = "not_found"
	reasonExists    = "exists"
	reasonNotEmpty  = "not_empty"
	reasonPublic    = "public_namespace"
	reasonBadEntry  = "bad_entry"
	reasonUnknownOp = "other"
)

// reason is the label a refusal is counted under.
func reason(err error) string {
	var inv *naming.InvalidError
	switch {
	case errors.As(err, &inv):
		if inv.Limit != "" {
			return inv.Limit
		}
		return reasonInvalid
	case errors.Is(err, ErrBadEntry):
		return reasonBadEntry
	case errors.Is(err, ErrNotFound):
		return reasonNotFound
	case errors.Is(err, ErrExists):
		return reasonExists
	case errors.Is(err, naming.ErrServiceNotEmpty), errors.Is(err, ErrNamespaceNotEmpty):
		return reasonNotEmpty
	case errors.Is(err, ErrPublicNamespace):
		return reasonPublic
	}
	return reasonUnknownOp
}
