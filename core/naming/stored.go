package naming

import (
	"encoding/binary"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// How the registry stores instances. An Instance is what callers see; the
// registry keeps each as an instance of 32 bytes: its address, its flags,
// and a pointer to its shape — the cluster, weight and metadata it has in
// common with most instances, held once for all of them (Registry.shapes).
// Its id is not stored when it is the default one (DefaultInstanceID): it
// is derived when the instance is read. A client's instances share one
// string of their IP. So an instance costs the registry its 32 bytes and
// its place in the two indexes, whatever its metadata.

// instance is an Instance as the registry stores it. Stored instances are
// never modified: a change replaces the value.
type instance struct {
	ip    string
	shape *shape
	port  uint16 // validated 0-65535 before it is stored
	flags uint8  // flagHealthy | flagEnabled | flagEphemeral
}

// The flags of an instance.
const (
	flagHealthy = 1 << iota
	flagEnabled
	flagEphemeral
)

// shape is what an instance has in common with others: its cluster, weight
// and metadata. Shapes are interned, and never modified. A shape with an id
// (an instance id that is not the default one) is one instance's own, not
// interned; it shares the interned shape's cluster and metadata.
type shape struct {
	cluster  string
	weight   float64
	metadata map[string]string // nil when empty
	id       string            // "" for the default id
}

// equal reports whether two shapes hold the same values: interned ones are
// equal when they are the same shape.
func (s *shape) equal(o *shape) bool {
	return s == o || s.cluster == o.cluster && s.weight == o.weight && s.id == o.id && maps.Equal(s.metadata, o.metadata)
}

// equal reports whether two stored instances are the same in every field.
func (i instance) equal(o instance) bool {
	return i.ip == o.ip && i.port == o.port && i.flags == o.flags && i.shape.equal(o.shape)
}

func (i instance) healthy() bool { return i.flags&flagHealthy != 0 }
func (i instance) enabled() bool { return i.flags&flagEnabled != 0 }

// withHealthy returns the instance marked healthy or not.
func (i instance) withHealthy(healthy bool) instance {
	i.flags &^= flagHealthy
	if healthy {
		i.flags |= flagHealthy
	}
	return i
}

// at reports whether the instance is at ip:port in cluster.
func (i instance) at(ip string, port int, cluster string) bool {
	return i.ip == ip && int(i.port) == port && i.shape.cluster == cluster
}

// id returns the instance's id as an instance of svc.
func (i instance) id(svc Service) string {
	if i.shape.id != "" {
		return i.shape.id
	}
	return DefaultInstanceID(i.ip, int(i.port), i.shape.cluster, svc)
}

// export returns the stored instance of svc as callers see it. Its Metadata
// is the shape's, shared: it must not be modified.
func (i instance) export(svc Service) Instance {
	return Instance{
		ID:        i.id(svc),
		IP:        i.ip,
		Port:      int(i.port),
		Weight:    i.shape.weight,
		Healthy:   i.flags&flagHealthy != 0,
		Enabled:   i.flags&flagEnabled != 0,
		Ephemeral: i.flags&flagEphemeral != 0,
		Cluster:   i.shape.cluster,
		Metadata:  i.shape.metadata,
	}
}

// exportAll returns stored instances of svc as callers see them.
func exportAll(svc Service, insts []instance) []Instance {
	out := make([]Instance, len(insts))
	for i, in := range insts {
		out[i] = in.export(svc)
	}
	return out
}

// DefaultInstanceID returns the id Nacos gives an instance registered
// without one: ip#port#cluster#group@@name.
func DefaultInstanceID(ip string, port int, cluster string, svc Service) string {
	return ip + "#" + strconv.Itoa(port) + "#" + cluster + "#" + svc.Group + "@@" + svc.Name
}

// isDefaultID reports whether id is DefaultInstanceID's, without building it.
func isDefaultID(id, ip string, port int, cluster string, svc Service) bool {
	var buf [20]byte
	for _, part := range [...]string{ip, "#", string(strconv.AppendInt(buf[:0], int64(port), 10)), "#", cluster, "#", svc.Group, "@@", svc.Name} {
		rest, ok := strings.CutPrefix(id, part)
		if !ok {
			return false
		}
		id = rest
	}
	return id == ""
}

// storer turns normalized Instances into stored ones, sharing what it can
// with those it stored before: the shape of the previous instance (at first,
// the one interned last: most instances have the same) when it is the same,
// else the interned one; and the IP string of the client's instances.
type storer struct {
	shapes *interner[shape]
	recent *atomic.Pointer[shape] // the shape interned last, of any storer
	svc    Service
	ip     string // the IP of the client's instances, to share
	last   *shape // the interned shape of the previous instance
}

// store returns in (normalized: an instance of s.svc) as the registry stores it.
func (s *storer) store(in Instance) instance {
	out := instance{ip: in.IP, port: uint16(in.Port), shape: s.shape(in)}
	if in.IP == s.ip {
		out.ip = s.ip
	} else {
		s.ip = in.IP
	}
	if in.Healthy {
		out.flags |= flagHealthy
	}
	if in.Enabled {
		out.flags |= flagEnabled
	}
	if in.Ephemeral {
		out.flags |= flagEphemeral
	}
	return out
}

// storeAll stores every instance of insts.
func (s *storer) storeAll(insts []Instance) []instance {
	out := make([]instance, len(insts))
	for i, in := range insts {
		out[i] = s.store(in)
	}
	return out
}

// shape returns in's shape: an interned one, or for an instance whose id is
// not the default one, its own.
func (s *storer) shape(in Instance) *shape {
	md := in.Metadata
	if len(md) == 0 {
		md = nil
	}
	base := s.last
	if base == nil || base.cluster != in.Cluster || base.weight != in.Weight || !maps.Equal(base.metadata, md) {
		var buf [128]byte // most keys: no allocation
		base = s.shapes.intern(shapeKey(buf[:0], in.Cluster, in.Weight, md), func() *shape {
			return &shape{cluster: strings.Clone(in.Cluster), weight: in.Weight, metadata: maps.Clone(md)}
		})
		s.last = base
		s.recent.Store(base)
	}
	if in.ID == "" || isDefaultID(in.ID, in.IP, in.Port, in.Cluster, s.svc) {
		return base
	}
	own := *base
	own.id = in.ID
	return &own
}

// shapeKey appends the interning key of a shape to b: its fields, each
// string length-prefixed, the metadata sorted by key.
func shapeKey(b []byte, cluster string, weight float64, md map[string]string) []byte {
	b = appendKeyString(b, cluster)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(weight))
	return appendMapKey(b, md)
}

// appendMapKey appends m's entries, sorted by key, each string
// length-prefixed.
func appendMapKey(b []byte, m map[string]string) []byte {
	var array [8]string
	keys := array[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendKeyString(b, k)
		b = appendKeyString(b, m[k])
	}
	return b
}

func appendKeyString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}
