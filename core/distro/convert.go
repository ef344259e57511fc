package distro

import (
	"encoding/binary"

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
	for svc, insts := range d.Services {
		s := &clusterv1.ServiceInstances{Namespace: svc.Namespace, Group: svc.Group, Name: svc.Name, Instances: make([]*clusterv1.Instance, len(insts))}
		for i, in := range insts {
			s.Instances[i] = &clusterv1.Instance{
				Id: in.ID, Ip: in.IP, Port: int32(in.Port), Weight: in.Weight, Healthy: in.Healthy, Enabled: in.Enabled,
				Ephemeral: in.Ephemeral, Cluster: in.Cluster, Metadata: metadataToProto(in.Metadata),
			}
		}
		c.Services = append(c.Services, s)
	}
	return c
}

// decoder decodes clients. Instances with the same metadata — most of a
// service's, as a rule — share one map (stored instances are never
// modified), which spares a load most of its allocations.
type decoder struct {
	shared map[string]map[string]string // by sharedKey
	key    []byte
}

// client decodes a client.
func (dec *decoder) client(c *clusterv1.Client) naming.ClientData {
	d := naming.ClientData{ID: c.Id, Owner: c.Owner, Revision: c.Revision, Services: make(map[naming.Service][]naming.Instance, len(c.Services))}
	for _, s := range c.Services {
		insts := make([]naming.Instance, len(s.Instances))
		for i, in := range s.Instances {
			insts[i] = naming.Instance{
				ID: in.Id, IP: in.Ip, Port: int(in.Port), Weight: in.Weight, Healthy: in.Healthy, Enabled: in.Enabled,
				Ephemeral: in.Ephemeral, Cluster: in.Cluster, Metadata: dec.metadata(in.Metadata),
			}
		}
		d.Services[naming.Service{Namespace: s.Namespace, Group: s.Group, Name: s.Name}] = insts
	}
	return d
}

// metadataToProto flattens metadata to keys and values in turn.
func metadataToProto(m map[string]string) []string {
	if len(m) == 0 {
		return nil
	}
	kv := make([]string, 0, 2*len(m))
	for k, v := range m {
		kv = append(kv, k, v)
	}
	return kv
}

// metadata returns the metadata kv encodes, shared with the instances
// decoded before that had the same.
func (dec *decoder) metadata(kv []string) map[string]string {
	if len(kv) == 0 {
		return nil
	}
	// Each string length-prefixed, so that no two lists have one key.
	dec.key = dec.key[:0]
	for _, s := range kv {
		dec.key = binary.AppendUvarint(dec.key, uint64(len(s)))
		dec.key = append(dec.key, s...)
	}
	if m, ok := dec.shared[string(dec.key)]; ok {
		return m
	}
	m := metadataFromProto(kv)
	if dec.shared == nil {
		dec.shared = make(map[string]map[string]string)
	}
	dec.shared[string(dec.key)] = m
	return m
}

// metadataFromProto rebuilds metadata from keys and values in turn; a last
// key without a value gets "".
func metadataFromProto(kv []string) map[string]string {
	if len(kv) == 0 {
		return nil
	}
	m := make(map[string]string, (len(kv)+1)/2)
	for i := 0; i < len(kv); i += 2 {
		if i+1 < len(kv) {
			m[kv[i]] = kv[i+1]
		} else {
			m[kv[i]] = ""
		}
	}
	return m
}
