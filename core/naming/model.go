// Package naming is the registry: the clients (one per gRPC connection), the
// instances they publish and the services they subscribe to, the indexes from a
// service to its publishers and subscribers, and each service's encoded view.
package naming

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// Defaults Nacos applies to names left empty.
const (
	DefaultNamespace = "public"
	DefaultGroup     = "DEFAULT_GROUP"
	DefaultCluster   = "DEFAULT"
)

// Heartbeat settings an instance may carry in its metadata (milliseconds), and
// the values used when it does not.
const (
	MetaHeartbeatInterval = "preserved.heart.beat.interval"
	MetaHeartbeatTimeout  = "preserved.heart.beat.timeout"
	MetaIPDeleteTimeout   = "preserved.ip.delete.timeout"

	DefaultHeartbeatInterval = 5000
	DefaultHeartbeatTimeout  = 15000
	DefaultIPDeleteTimeout   = 30000
)

const (
	maxNamespaceLength = 128
	maxClusterLength   = 64
	maxIPLength        = 128
	maxInstanceIDBytes = 512
	maxWeight          = 10000
)

// Service identifies a service. It is a value type and a map key.
type Service struct {
	Namespace string
	Group     string
	Name      string
}

// String renders the service as namespace/group@@name, for logs and task tags.
func (s Service) String() string {
	return s.Namespace + "/" + s.Group + "@@" + s.Name
}

// GroupedName is group@@name, the form Nacos puts in an instance's serviceName.
func (s Service) GroupedName() string {
	return s.Group + "@@" + s.Name
}

// Instance is one registered address of a service. Stored instances are never
// modified: a change replaces the value. Instances may share one Metadata map.
type Instance struct {
	ID        string
	IP        string
	Port      int
	Weight    float64
	Healthy   bool
	Enabled   bool
	Ephemeral bool
	Cluster   string
	Metadata  map[string]string
}

// sameAddress reports whether two instances name the same ip:port in the same cluster.
func (i Instance) sameAddress(o Instance) bool {
	return i.IP == o.IP && i.Port == o.Port && i.Cluster == o.Cluster
}

// heartbeat returns the instance's heartbeat interval, timeout and delete
// timeout in milliseconds, from its metadata or the defaults.
func (i Instance) heartbeat() (interval, timeout, deleteTimeout int64) {
	return metaMillis(i.Metadata, MetaHeartbeatInterval, DefaultHeartbeatInterval),
		metaMillis(i.Metadata, MetaHeartbeatTimeout, DefaultHeartbeatTimeout),
		metaMillis(i.Metadata, MetaIPDeleteTimeout, DefaultIPDeleteTimeout)
}

func metaMillis(md map[string]string, key string, def int64) int64 {
	if v, ok := md[key]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return def
}

// Subscription is what a client asked for when it subscribed to a service.
type Subscription struct {
	// Clusters is the comma-separated cluster filter exactly as sent ("" = all).
	Clusters string
	// App is the subscriber's application name (the request's "app" header).
	App string
	// Labels are the subscriber's connection labels (set by the registry).
	Labels map[string]string
}

// Limits bound what a client may register.
type Limits struct {
	MaxNameLength    int // service and group names, in bytes
	MaxMetadataBytes int // sum of key and value bytes of one instance's metadata
	MaxBatchSize     int // instances in one batch registration
}

// InvalidError reports a request parameter that cannot be accepted.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ErrClientNotFound is returned for operations on a client that is not
// connected (never set up, or already gone).
var ErrClientNotFound = errors.New("client is not connected")

// NormalizeService applies Nacos's defaults to svc and validates it.
func (l Limits) NormalizeService(svc Service) (Service, error) {
	var err error
	if svc.Namespace, svc.Group, err = l.NormalizeScope(svc.Namespace, svc.Group); err != nil {
		return svc, err
	}
	if svc.Name == "" {
		return svc, invalid("serviceName", "must not be empty")
	}
	return svc, l.checkName("serviceName", svc.Name)
}

// NormalizeScope applies Nacos's defaults to a namespace and group and
// validates them.
func (l Limits) NormalizeScope(namespace, group string) (string, string, error) {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	if group == "" {
		group = DefaultGroup
	}
	if err := checkNamespace(namespace); err != nil {
		return namespace, group, err
	}
	return namespace, group, l.checkName("groupName", group)
}

// NormalizeClusters validates a comma-separated cluster filter.
func NormalizeClusters(field, clusters string) error {
	if clusters == "" {
		return nil
	}
	for _, c := range strings.Split(clusters, ",") {
		if err := checkCluster(field, c); err != nil {
			return err
		}
	}
	return nil
}

// NormalizeInstance applies Nacos's defaults to inst (registered to svc) and
// validates it; field prefixes errors ("instance", "instances[3]").
func (l Limits) NormalizeInstance(svc Service, field string, inst Instance) (Instance, error) {
	if inst.Cluster == "" {
		inst.Cluster = DefaultCluster
	}
	if err := checkCluster(field+".clusterName", inst.Cluster); err != nil {
		return inst, err
	}
	if err := checkIP(field+".ip", inst.IP); err != nil {
		return inst, err
	}
	if inst.Port < 0 || inst.Port > 65535 {
		return inst, invalid(field+".port", "%d is out of range 0-65535", inst.Port)
	}
	if math.IsNaN(inst.Weight) || inst.Weight < 0 || inst.Weight > maxWeight {
		return inst, invalid(field+".weight", "%v is out of range 0-%d", inst.Weight, maxWeight)
	}
	if err := l.checkMetadata(field+".metadata", inst.Metadata); err != nil {
		return inst, err
	}
	if inst.ID == "" {
		inst.ID = inst.IP + "#" + strconv.Itoa(inst.Port) + "#" + inst.Cluster + "#" + svc.GroupedName()
	}
	if len(inst.ID) > maxInstanceIDBytes {
		return inst, invalid(field+".instanceId", "longer than %d bytes", maxInstanceIDBytes)
	}
	return inst, nil
}

func (l Limits) checkName(field, name string) error {
	if len(name) > l.MaxNameLength {
		return invalid(field, "longer than %d bytes", l.MaxNameLength)
	}
	if strings.Contains(name, "@@") {
		return invalid(field, "%q must not contain '@@'", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return invalid(field, "%q contains a control character", name)
		}
	}
	return nil
}

func checkNamespace(ns string) error {
	if len(ns) > maxNamespaceLength {
		return invalid("namespace", "longer than %d bytes", maxNamespaceLength)
	}
	for _, r := range ns {
		if !isAlnum(r) && r != '_' && r != '-' {
			return invalid("namespace", "%q may only contain letters, digits, '_' and '-'", ns)
		}
	}
	return nil
}

func checkCluster(field, c string) error {
	if c == "" {
		return invalid(field, "cluster name must not be empty")
	}
	if len(c) > maxClusterLength {
		return invalid(field, "cluster name longer than %d bytes", maxClusterLength)
	}
	for _, r := range c {
		if !isAlnum(r) && r != '-' && r != '.' {
			return invalid(field, "cluster name %q may only contain letters, digits, '-' and '.'", c)
		}
	}
	return nil
}

// checkIP accepts an IPv4 or IPv6 address or a host name.
func checkIP(field, ip string) error {
	if ip == "" {
		return invalid(field, "must not be empty")
	}
	if len(ip) > maxIPLength {
		return invalid(field, "longer than %d bytes", maxIPLength)
	}
	if _, err := netip.ParseAddr(ip); err == nil {
		return nil
	}
	for _, r := range ip {
		if !isAlnum(r) && r != '-' && r != '.' && r != '_' {
			return invalid(field, "%q is neither an IP address nor a host name", ip)
		}
	}
	return nil
}

func (l Limits) checkMetadata(field string, md map[string]string) error {
	size := 0
	for k, v := range md {
		if k == "" {
			return invalid(field, "keys must not be empty")
		}
		size += len(k) + len(v)
	}
	if size > l.MaxMetadataBytes {
		return invalid(field, "%d bytes exceeds the limit of %d", size, l.MaxMetadataBytes)
	}
	interval, timeout, deleteTimeout := Instance{Metadata: md}.heartbeat()
	for _, key := range []string{MetaHeartbeatInterval, MetaHeartbeatTimeout, MetaIPDeleteTimeout} {
		if v, ok := md[key]; ok {
			if n, err := strconv.ParseInt(v, 10, 64); err != nil || n <= 0 {
				return invalid(field+"."+key, "%q is not a positive number of milliseconds", v)
			}
		}
	}
	if interval >= timeout || interval >= deleteTimeout {
		return invalid(field, "heartbeat interval (%d ms) must be less than the heartbeat timeout (%d ms) and the delete timeout (%d ms)",
			interval, timeout, deleteTimeout)
	}
	return nil
}

func isAlnum(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
}
