package distro

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/sextantd/sextant/core/naming"
	clusterv1 "github.com/sextantd/sextant/proto/cluster/v1"
)

// clientToProto encodes a client; one of this node's gets self as owner.
func clientToProto(d naming.ClientData, self string) *clusterv1.Client {
	owner := d.Owner
	if owner == "" {
		owner = self
	}
	c := &clusterv1.Client{Id: d.ID, Owner: owner, Revision: d.Revision, Services: make([]*clusterv1.ServiceInstances, 0, len(d.Services))}
	var enc metadataEncoder
	for svc, insts := range d.Services {
		s := &clusterv1.ServiceInstances{Namespace: svc.Namespace, Group: svc.Group, Name: svc.Name, Instances: make([]*clusterv1.Instance, len(insts))}
		for i, in := range insts {
			s.Instances[i] = &clusterv1.Instance{
				Id: in.ID, Ip: in.IP, Port: int32(in.Port), Weight: in.Weight, Healthy: in.Healthy, Enabled: in.Enabled,
				Ephemeral: in.Ephemeral, Cluster: in.Cluster, Metadata: enc.encode(in.Metadata),
			}
		}
		c.Services = append(c.Services, s)
	}
	return c
}

// metadataEncoder encodes the metadata of one client's instances into one
// buffer, each instance's a slice of it.
type metadataEncoder struct {
	buf  []byte
	keys []string
}

// encode returns m's keys, in order, each followed by its value, each a
// uvarint length and that many bytes.
func (e *metadataEncoder) encode(m map[string]string) []byte {
	if len(m) == 0 {
		return nil
	}
	e.keys = e.keys[:0]
	for k := range m {
		e.keys = append(e.keys, k)
	}
	slices.Sort(e.keys) // the same metadata, the same bytes
	start := len(e.buf)
	for _, k := range e.keys {
		e.buf = appendString(e.buf, k)
		e.buf = appendString(e.buf, m[k])
	}
	return e.buf[start:len(e.buf):len(e.buf)]
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decoder decodes clients. Instances with the same metadata — most of a
// service's, as a rule — share one map (stored instances are never
// modified), which spares a load most of its allocations.
type decoder struct {
	shared map[string]map[string]string // by encoding
}

// client decodes a client.
func (dec *decoder) client(c *clusterv1.Client) (naming.ClientData, error) {
	d := naming.ClientData{ID: c.Id, Owner: c.Owner, Revision: c.Revision, Services: make(map[naming.Service][]naming.Instance, len(c.Services))}
	for _, s := range c.Services {
		insts := make([]naming.Instance, len(s.Instances))
		for i, in := range s.Instances {
			metadata, err := dec.metadata(in.Metadata)
			if err != nil {
				return naming.ClientData{}, fmt.Errorf("client %q, instance %q: %w", c.Id, in.Id, err)
			}
			insts[i] = naming.Instance{
				ID: in.Id, IP: in.Ip, Port: int(in.Port), Weight: in.Weight, Healthy: in.Healthy, Enabled: in.Enabled,
				Ephemeral: in.Ephemeral, Cluster: in.Cluster, Metadata: metadata,
			}
		}
		d.Services[naming.Service{Namespace: s.Namespace, Group: s.Group, Name: s.Name}] = insts
	}
	return d, nil
}

// metadata returns the metadata b encodes, shared with the instances
// decoded before that had the same.
func (dec *decoder) metadata(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if m, ok := dec.shared[string(b)]; ok {
		return m, nil
	}
	m, err := decodeMetadata(b)
	if err != nil {
		return nil, err
	}
	if dec.shared == nil {
		dec.shared = make(map[string]map[string]string)
	}
	dec.shared[string(b)] = m
	return m, nil
}

// errMetadata says a metadata encoding is cut short or malformed.
var errMetadata = errors.New("malformed metadata encoding")

// decodeMetadata decodes what metadataEncoder.encode wrote.
func decodeMetadata(b []byte) (map[string]string, error) {
	m := make(map[string]string)
	for len(b) > 0 {
		var k, v string
		var ok bool
		if k, b, ok = cutString(b); !ok {
			return nil, errMetadata
		}
		if v, b, ok = cutString(b); !ok {
			return nil, errMetadata
		}
		m[k] = v
	}
	return m, nil
}

// cutString reads one length-prefixed string off b.
func cutString(b []byte) (s string, rest []byte, ok bool) {
	n, size := binary.Uvarint(b)
	if size <= 0 || n > uint64(len(b)-size) {
		return "", nil, false
	}
	b = b[size:]
	return string(b[:n]), b[n:], true
}
