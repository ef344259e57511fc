package persist

import (
	"errors"
	"strconv"
	"strings"

	"github.com/sextantd/sextant/core/healthcheck"
	"github.com/sextantd/sextant/core/naming"
)

// Bounds of a namespace's name and description, in bytes (the columns of
// Nacos's tenant_info table).
const (
	maxNamespaceNameBytes        = 128
	maxNamespaceDescriptionBytes = 256
)

// namespaceNameForbidden are the characters Nacos refuses in a namespace's
// name.
const namespaceNameForbidden = "@#$%^&*"

// Validate applies Nacos's defaults to op (the public namespace, the default
// group and cluster, the "none" selector) and checks it against the rules
// and the name and metadata limits of l: the op as Apply stores it, or a
// *naming.InvalidError naming the bad field, as the HTTP API's parameters are
// named (ip, port, clusterName, weight, metadata, serviceName, groupName,
// namespace; namespaceId, namespaceName and namespaceDesc for a namespace;
// the checker's fields as healthChecker.type, healthChecker.path,
// healthChecker.headers, healthChecker.expectedResponseCode and checkPort
// for a cluster).
// Putting or removing the public namespace is refused with an error wrapping
// ErrPublicNamespace. It reads no state: refusals for the state (an instance
// not found, a service not empty, a count limit) come from Apply alone.
//
// Writers call it before proposing an op, to answer bad input at once; Apply
// calls it again for every op of every entry, since what comes from the log
// is input too. The limits must be those the FSM was configured with.
func Validate(l naming.Limits, op Op) (Op, error) {
	switch op := op.(type) {
	case PutInstance:
		var err error
		if op.Service, err = l.NormalizeService(op.Service); err != nil {
			return op, err
		}
		if op.Instance, err = normalizeInstance(l, op.Service, op.Instance); err != nil {
			return op, err
		}
		return op, checkExpect(op.Expect)
	case RemoveInstance:
		a, svc, err := normalizeAddress(l, op.Service, Address{IP: op.IP, Port: op.Port, Cluster: op.Cluster})
		op.Service, op.IP, op.Port, op.Cluster = svc, a.IP, a.Port, a.Cluster
		return op, err
	case SetHealth:
		a, svc, err := normalizeAddress(l, op.Service, Address{IP: op.IP, Port: op.Port, Cluster: op.Cluster})
		op.Service, op.IP, op.Port, op.Cluster = svc, a.IP, a.Port, a.Cluster
		return op, err
	case PutService:
		var err error
		if op.Service, err = l.NormalizeService(op.Service); err != nil {
			return op, err
		}
		if op.Definition, err = checkDefinition(l, op.Definition); err != nil {
			return op, err
		}
		return op, checkExpect(op.Expect)
	case RemoveService:
		var err error
		op.Service, err = l.NormalizeService(op.Service)
		return op, err
	case PutCluster:
		var err error
		if op.Service, err = l.NormalizeService(op.Service); err != nil {
			return op, err
		}
		if op.Cluster, err = checkClusterName(l, op.Cluster); err != nil {
			return op, err
		}
		op.Definition, err = checkClusterDefinition(l, op.Definition)
		return op, err
	case PutNamespace:
		var err error
		if op.Namespace, err = checkNamespace(l, op.Namespace); err != nil {
			return op, err
		}
		return op, checkExpect(op.Expect)
	case RemoveNamespace:
		var err error
		if op.ID, err = checkNamespaceID(l, op.ID); err != nil {
			return op, err
		}
		if op.ID == naming.DefaultNamespace {
			return op, publicNamespace("remove")
		}
		return op, nil
	case nil:
		return op, invalid("op", "missing")
	}
	return op, invalid("op", "%T is not an op of this package", op)
}

// normalizeInstance checks inst with naming's rules for instances and
// returns it with its cluster set and empty metadata as nil.
func normalizeInstance(l naming.Limits, svc naming.Service, inst Instance) (Instance, error) {
	n, err := l.NormalizeInstance(svc, "", inst.naming())
	if err != nil {
		return inst, err
	}
	inst.Cluster = n.Cluster
	if len(inst.Metadata) == 0 {
		inst.Metadata = nil
	}
	return inst, nil
}

// normalizeAddress checks a service and an instance's address in it.
func normalizeAddress(l naming.Limits, svc naming.Service, a Address) (Address, naming.Service, error) {
	svc, err := l.NormalizeService(svc)
	if err != nil {
		return a, svc, err
	}
	n, err := l.NormalizeInstance(svc, "", naming.Instance{IP: a.IP, Port: a.Port, Cluster: a.Cluster})
	if err != nil {
		return a, svc, err
	}
	a.Cluster = n.Cluster
	return a, svc, nil
}

func checkExpect(e Expect) error {
	if e > ExpectPresent {
		return invalid("expect", "%d is not one of any (0), absent (1), present (2)", e)
	}
	return nil
}

// checkDefinition validates a service definition with naming's rules and
// returns it with the selector's type set and empty metadata as nil.
func checkDefinition(l naming.Limits, d ServiceDefinition) (ServiceDefinition, error) {
	m, err := l.CheckServiceMeta(d.Meta())
	if err != nil {
		return d, err
	}
	d.Metadata, d.Selector = m.Metadata, m.Selector
	if len(d.Metadata) == 0 {
		d.Metadata = nil
	}
	return d, nil
}

// checkClusterName validates a cluster's name with naming's rule for
// cluster names, "" being naming.DefaultCluster, and names the field
// clusterName.
func checkClusterName(l naming.Limits, name string) (string, error) {
	if name == "" {
		return naming.DefaultCluster, nil
	}
	if strings.Contains(name, ",") {
		return name, invalid("clusterName", "%s names more than one cluster; name one", quoteShort(name))
	}
	return name, l.CheckClusters("clusterName", name)
}

// checkClusterDefinition validates a cluster definition and returns it as
// it is stored: the checker's type set ("" is TCP), an HTTP checker's
// expected code set (0 is 200), empty headers and metadata as nil. The
// checker's fields are named as the HTTP API names them (healthChecker.type,
// healthChecker.path, ..., checkPort); the metadata as metadata, bounded by
// the metadata limit.
func checkClusterDefinition(l naming.Limits, d ClusterDefinition) (ClusterDefinition, error) {
	c := &d.Checker
	if c.Type == "" {
		c.Type = healthcheck.TypeTCP
	}
	if err := c.Validate(); err != nil {
		return d, err
	}
	if c.Type == healthcheck.TypeHTTP && c.ExpectedCode == 0 {
		c.ExpectedCode = healthcheck.DefaultExpectedCode
	}
	if len(c.Headers) == 0 {
		c.Headers = nil
	}
	if !d.UseInstancePort && c.CheckPort == 0 {
		return d, invalid("checkPort", "0 is not a port: give the port to check (1 to 65535), or set useInstancePort4Check")
	}
	m, err := l.CheckServiceMeta(naming.ServiceMeta{Metadata: d.Metadata})
	if err != nil {
		return d, err
	}
	d.Metadata = m.Metadata
	if len(d.Metadata) == 0 {
		d.Metadata = nil
	}
	return d, nil
}

// checkNamespaceID validates a namespace id with naming's namespace rule
// (letters, digits, '_' and '-', at most 128 bytes), "" being the public
// namespace, and names the field namespaceId.
func checkNamespaceID(l naming.Limits, id string) (string, error) {
	id, _, err := l.NormalizeScope(id, naming.DefaultGroup)
	var inv *naming.InvalidError
	if errors.As(err, &inv) {
		return id, &naming.InvalidError{Field: "namespaceId", Reason: inv.Reason, Limit: inv.Limit}
	}
	return id, err
}

// checkNamespace validates a namespace to put: not the public one, a valid
// id, a name of one line without Nacos's forbidden characters, a
// description of text.
func checkNamespace(l naming.Limits, ns Namespace) (Namespace, error) {
	var err error
	if ns.ID, err = checkNamespaceID(l, ns.ID); err != nil {
		return ns, err
	}
	if ns.ID == naming.DefaultNamespace {
		return ns, publicNamespace("put")
	}
	switch {
	case strings.TrimSpace(ns.Name) == "":
		return ns, invalid("namespaceName", "must not be blank")
	case len(ns.Name) > maxNamespaceNameBytes:
		return ns, invalid("namespaceName", "longer than %d bytes", maxNamespaceNameBytes)
	case strings.ContainsAny(ns.Name, namespaceNameForbidden):
		return ns, invalid("namespaceName", "%s must not contain any of %s", quoteShort(ns.Name), namespaceNameForbidden)
	}
	if p := naming.TextProblem(ns.Name); p != "" {
		return ns, invalid("namespaceName", "%s %s", quoteShort(ns.Name), p)
	}
	if len(ns.Description) > maxNamespaceDescriptionBytes {
		return ns, invalid("namespaceDesc", "longer than %d bytes", maxNamespaceDescriptionBytes)
	}
	if p := multilineTextProblem(ns.Description); p != "" {
		return ns, invalid("namespaceDesc", "%s", p)
	}
	return ns, nil
}

// multilineTextProblem is naming.TextProblem for text that may span lines:
// tab, line feed and carriage return are allowed (as naming allows them in
// metadata values; its multiline check is not exported).
func multilineTextProblem(s string) string {
	for line := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == '\t' || r == '\n' || r == '\r' }) {
		if p := naming.TextProblem(line); p != "" {
			return p
		}
	}
	return ""
}

// quoteShort quotes s for a message, cut to its first 64 bytes.
func quoteShort(s string) string {
	const most = 64
	if len(s) <= most {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:most]) + "..."
}
