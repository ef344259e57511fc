// Package naming is the registry: the clients (one per gRPC connection, and
// one per ip:port of the HTTP API's instances and UDP subscribers,
// httpclient.go), the instances they publish and the services they subscribe
// to, the indexes from a service to its publishers and subscribers, and each
// service's encoded view.
package naming

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
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

// Heartbeat returns the instance's heartbeat interval, timeout and delete
// timeout, from its metadata or the defaults. Only instances kept alive by
// beats (those of the HTTP API's clients) use them.
func (i Instance) Heartbeat() (interval, timeout, deleteTimeout time.Duration) {
	in, out, del := i.heartbeat()
	return millis(in), millis(out), millis(del)
}

// millis converts milliseconds to a Duration, the largest one for more than
// a Duration holds (metadata may name any positive int64).
func millis(ms int64) time.Duration {
	if ms > int64(math.MaxInt64/time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
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
	// Addr is the UDP address (ip:port) of a subscriber of the HTTP API,
	// which polls instance/list and is pushed over UDP; "" for a
	// connection's subscriber (set by the registry).
	Addr string
}

// Limits bound what a client may register and subscribe to. The registry's
// entry points check them, so every front end gets the same rules.
type Limits struct {
	MaxNameLength    int // service and group names, in bytes
	MaxMetadataBytes int // sum of key and value bytes of one instance's metadata
	MaxBatchSize     int // instances in one batch registration

	// The limits below are off when 0 (the server always sets them, from
	// configuration that requires them positive).

	// MaxServicesPerClient bounds the services one client (connection) has
	// instances in; replacing its instances of one of them is never refused.
	MaxServicesPerClient int
	// MaxInstancesPerClient bounds the instances one client has in all its
	// services; a registration that does not add to them (replacing a batch
	// with one as large or smaller) is never refused.
	MaxInstancesPerClient int
	// MaxSubscriptionsPerClient bounds the services one client subscribes
	// to; subscribing again to one of them is never refused.
	MaxSubscriptionsPerClient int
	// MaxClustersPerFilter bounds the clusters a subscription or query names;
	// with each name at most 64 bytes, it also bounds the filter's length.
	MaxClustersPerFilter int
}

// The configuration keys of the limits, named in refusals and as the limit
// label of the refusal counter.
const (
	LimitNameLength             = "naming.max_name_length"
	LimitMetadataBytes          = "naming.max_metadata_bytes"
	LimitBatchSize              = "naming.max_batch_size"
	LimitServicesPerClient      = "naming.max_services_per_client"
	LimitInstancesPerClient     = "naming.max_instances_per_client"
	LimitSubscriptionsPerClient = "naming.max_subscriptions_per_client"
	LimitClustersPerFilter      = "naming.max_clusters_per_filter"
)

var limitKeys = []string{LimitNameLength, LimitMetadataBytes, LimitBatchSize,
	LimitServicesPerClient, LimitInstancesPerClient, LimitSubscriptionsPerClient, LimitClustersPerFilter}

// MaxPageSize is the largest page of service names ListServices serves.
const MaxPageSize = 10000

// InvalidError reports a request parameter that cannot be accepted. Front
// ends answer it as a bad request (Nacos errorCode 400).
type InvalidError struct {
	Field  string
	Reason string
	// Limit is the configuration key of the limit the request is over; ""
	// when it breaks a rule rather than a configurable limit.
	Limit string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// overLimit is invalid for a request over the limit whose key is limit; the
// reason ends naming the key.
func overLimit(field, limit, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...) + " (" + limit + ")", Limit: limit}
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

// CheckClusters validates a comma-separated cluster filter ("" = every
// cluster): at most MaxClustersPerFilter valid cluster names. Its length is
// checked before anything else is read of it.
func (l Limits) CheckClusters(field, clusters string) error {
	if clusters == "" {
		return nil
	}
	if n := l.MaxClustersPerFilter; n > 0 {
		// n names of at most maxClusterLength bytes, and n-1 commas.
		maxLen := math.MaxInt
		if n <= math.MaxInt/(maxClusterLength+1) {
			maxLen = n*(maxClusterLength+1) - 1
		}
		if len(clusters) > maxLen {
			return overLimit(field, LimitClustersPerFilter, "%d bytes exceed the limit of %d for %d clusters",
				len(clusters), maxLen, n)
		}
		if count := strings.Count(clusters, ",") + 1; count > n {
			return overLimit(field, LimitClustersPerFilter, "%d clusters exceed the limit of %d", count, n)
		}
	}
	for c := range strings.SplitSeq(clusters, ",") {
		if err := checkCluster(field, c); err != nil {
			return err
		}
	}
	return nil
}

// CheckInstancesPerClient refuses a client holding instances in all (with
// what field brings) if that is over MaxInstancesPerClient. The registry's
// entry points check the total a registration would leave, and only when it
// adds instances; replication checks a replicated client's total
// (ClientData.InstanceCount) with it.
func (l Limits) CheckInstancesPerClient(field string, instances int) error {
	if most := l.MaxInstancesPerClient; most > 0 && instances > most {
		return overLimit(field, LimitInstancesPerClient, "the client would have %d instances, over the limit of %d", instances, most)
	}
	return nil
}

// checkApp validates a subscriber's application name ("" = none given).
func (l Limits) checkApp(field, app string) error {
	if len(app) > l.MaxNameLength {
		return overLimit(field, LimitNameLength, "longer than %d bytes", l.MaxNameLength)
	}
	if p := textProblem(app, false); p != "" {
		return invalid(field, "%q %s", app, p)
	}
	return nil
}

// NormalizeInstance applies Nacos's defaults to inst (registered to svc) and
// validates it; field prefixes errors ("instance", "instances[3]"; "" names
// the instance's fields alone, as the HTTP API's parameters are).
func (l Limits) NormalizeInstance(svc Service, field string, inst Instance) (Instance, error) {
	inst, err := l.normalizeInstance(svc, inst)
	if err != nil && field != "" {
		// The field's full name is built only for a refusal.
		var e *InvalidError
		if errors.As(err, &e) {
			e.Field = field + "." + e.Field
		}
	}
	return inst, err
}

// normalizeInstance is NormalizeInstance with errors naming the instance's
// fields alone.
func (l Limits) normalizeInstance(svc Service, inst Instance) (Instance, error) {
	if inst.Cluster == "" {
		inst.Cluster = DefaultCluster
	}
	if err := checkCluster("clusterName", inst.Cluster); err != nil {
		return inst, err
	}
	if err := checkIP("ip", inst.IP); err != nil {
		return inst, err
	}
	if err := checkPort("port", inst.Port); err != nil {
		return inst, err
	}
	if math.IsNaN(inst.Weight) || inst.Weight < 0 || inst.Weight > maxWeight {
		return inst, invalid("weight", "%v is out of range 0-%d", inst.Weight, maxWeight)
	}
	if err := l.checkMetadata("metadata", inst.Metadata); err != nil {
		return inst, err
	}
	if inst.ID == "" {
		inst.ID = DefaultInstanceID(inst.IP, inst.Port, inst.Cluster, svc)
	}
	if len(inst.ID) > maxInstanceIDBytes {
		return inst, invalid("instanceId", "longer than %d bytes", maxInstanceIDBytes)
	}
	if p := textProblem(inst.ID, false); p != "" {
		return inst, invalid("instanceId", "%q %s", inst.ID, p)
	}
	return inst, nil
}

func checkPort(field string, port int) error {
	if port < 0 || port > 65535 {
		return invalid(field, "%d is out of range 0-65535", port)
	}
	return nil
}

func (l Limits) checkName(field, name string) error {
	if len(name) > l.MaxNameLength {
		return overLimit(field, LimitNameLength, "longer than %d bytes", l.MaxNameLength)
	}
	if strings.Contains(name, "@@") {
		return invalid(field, "%q must not contain '@@'", name)
	}
	if p := textProblem(name, false); p != "" {
		return invalid(field, "%q %s", name, p)
	}
	return nil
}

// TextProblem says what is wrong with s as a name a client may store (one
// line of text: see textProblem), or "" if nothing is. Other front ends
// apply it to what they keep of a client, such as its connection labels.
func TextProblem(s string) string { return textProblem(s, false) }

// textProblem says what is wrong with s as text a client may store, or ""
// if nothing is: it must be valid UTF-8 without control characters (C0, DEL
// and C1); multiline text may hold tab, line feed and carriage return.
func textProblem(s string, multiline bool) string {
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b == 0x7f || b < 0x20 && !(multiline && (b == '\t' || b == '\n' || b == '\r')) {
				return fmt.Sprintf("contains the control character %U", rune(b))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return "is not valid UTF-8"
		}
		if r >= 0x80 && r <= 0x9f {
			return fmt.Sprintf("contains the control character %U", r)
		}
		i += size
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
	// An IPv6 zone ("fe80::1%eth0") may hold any bytes for ParseAddr.
	if p := textProblem(ip, false); p != "" {
		return invalid(field, "%q %s", ip, p)
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
		return overLimit(field, LimitMetadataBytes, "%d bytes exceeds the limit of %d", size, l.MaxMetadataBytes)
	}
	// Keys are names; values are text and may span lines (JSON, say).
	for k, v := range md {
		if p := textProblem(k, false); p != "" {
			return invalid(field, "key %s %s", quoteShort(k), p)
		}
		if p := textProblem(v, true); p != "" {
			return invalid(field, "value of key %s %s", quoteShort(k), p)
		}
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
