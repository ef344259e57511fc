package persist

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/hashicorp/raft"

	"github.com/sextantd/sextant/core/naming"
)

// The snapshot stream is JSON lines: a header, one record per namespace
// (sorted by id), one per service with its definition, instances and
// cluster definitions (sorted by namespace, group, name; instances by
// cluster, ip, port; clusters by name), and an end record with the counts,
// which tells a whole stream from a truncated one. The same state always
// gives the same bytes.
//
//	{"format":"sextant.persist","v":2,"index":42}
//	{"namespace":{"id":"dev","name":"Dev","description":"…"}}
//	{"service":{"namespace":"dev","group":"G","name":"db"},"definition":{…},"instances":[{…}],"clusters":[{…}]}
//	{"end":{"namespaces":1,"services":1,"instances":1,"clusters":1}}
//
// Version 2 added the cluster definitions (the "clusters" of a service
// record and of the end record); version 1 has none. Persist writes version
// 1 while no cluster is defined, so that a member running code that reads
// only version 1 still restores it, and version 2 once one is.
const snapshotFormat = "sextant.persist"

// SnapshotVersion is the newest version of the snapshot stream: Persist
// writes it when the state holds cluster definitions (else version 1), and
// Restore reads it and every older version.
const SnapshotVersion = 2

// snapshotV1 is the snapshot version without cluster definitions.
const snapshotV1 = 1

type snapshotHeader struct {
	Format string `json:"format"`
	V      int    `json:"v"`
	Index  uint64 `json:"index"`
}

type snapshotRecord struct {
	Namespace  *wireNamespace  `json:"namespace,omitempty"`
	Service    *wireService    `json:"service,omitempty"`
	Definition *wireDefinition `json:"definition,omitempty"`
	Instances  []wireInstance  `json:"instances,omitempty"`
	Clusters   []wireCluster   `json:"clusters,omitempty"` // version 2
	End        *snapshotEnd    `json:"end,omitempty"`
}

type snapshotEnd struct {
	Namespaces int `json:"namespaces"`
	Services   int `json:"services"`
	Instances  int `json:"instances"`
	Clusters   int `json:"clusters,omitempty"` // version 2
}

// snapshot is a point-in-time copy of the state: its own maps, sharing
// services the FSM copies before it changes them.
type snapshot struct {
	services   map[naming.Service]*service
	namespaces map[string]Namespace
	instances  int
	clusters   int
	index      uint64
}

// Snapshot returns a point-in-time copy of the state, taken under the lock
// by copying the top-level maps (the services are shared, and copied by
// the FSM before it next changes them). Persist writes it while Apply goes
// on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &snapshot{services: maps.Clone(f.st.services), namespaces: maps.Clone(f.st.namespaces),
		instances: f.st.instances, clusters: f.st.clusters, index: f.st.index}
	f.gen++
	return s, nil
}

// Persist writes the snapshot to sink and closes it, or cancels it on an
// error.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist: writing the snapshot: %w", err)
	}
	return sink.Close()
}

// Release does nothing: the snapshot holds only memory.
func (s *snapshot) Release() {}

func (s *snapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64*1024)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	v := snapshotV1
	if s.clusters > 0 {
		v = SnapshotVersion
	}
	if err := enc.Encode(snapshotHeader{Format: snapshotFormat, V: v, Index: s.index}); err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(s.namespaces)) {
		ns := wireNamespace(s.namespaces[id])
		if err := enc.Encode(snapshotRecord{Namespace: &ns}); err != nil {
			return err
		}
	}
	for _, svc := range slices.SortedFunc(maps.Keys(s.services), compareServices) {
		e := s.services[svc]
		r := snapshotRecord{Service: serviceToWire(svc), Instances: make([]wireInstance, 0, len(e.instances))}
		if e.defined {
			r.Definition = definitionToWire(e.definition)
		}
		for _, a := range slices.SortedFunc(maps.Keys(e.instances), compareAddresses) {
			r.Instances = append(r.Instances, *instanceToWire(e.instances[a]))
		}
		for _, name := range slices.Sorted(maps.Keys(e.clusters)) {
			r.Clusters = append(r.Clusters, *clusterToWire(name, e.clusters[name]))
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	end := snapshotEnd{Namespaces: len(s.namespaces), Services: len(s.services), Instances: s.instances, Clusters: s.clusters}
	if err := enc.Encode(snapshotRecord{End: &end}); err != nil {
		return err
	}
	return bw.Flush()
}

// Restore replaces the state with the snapshot rc holds, and closes rc.
// Every record is validated as Apply validates ops (the count limits
// aside: a snapshot holds what was applied under them); a snapshot that is
// not whole and valid is refused with an error, and the state is left as it
// was. OnChange is then called with Restored set.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer func() { _ = rc.Close() }()
	f.mu.RLock()
	gen := f.gen
	f.mu.RUnlock()
	st, err := readSnapshot(rc, f.limits, gen)
	if err != nil {
		f.metrics.restoreFailed()
		return fmt.Errorf("persist: restoring a snapshot: %w", err)
	}
	f.mu.Lock()
	old := f.st
	f.st = st
	f.mu.Unlock()
	if f.watched() {
		// old is no longer changed: read outside the lock.
		svcs := make(map[naming.Service]struct{}, len(old.services)+len(st.services))
		nss := make(map[string]struct{}, len(old.namespaces)+len(st.namespaces))
		for _, s := range []*state{old, st} {
			for svc := range s.services {
				svcs[svc] = struct{}{}
			}
			for id := range s.namespaces {
				nss[id] = struct{}{}
			}
		}
		f.changed(Change{Index: st.index, Services: sortedServices(svcs), Namespaces: slices.Sorted(maps.Keys(nss)), Restored: true}, nil)
	}
	return nil
}

// readSnapshot reads and validates a snapshot stream into a new state
// whose services are of generation gen.
func readSnapshot(r io.Reader, l naming.Limits, gen uint64) (*state, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64*1024))
	dec.DisallowUnknownFields()
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("header: %w", eofIsTruncation(err))
	}
	if h.Format != snapshotFormat || h.V < snapshotV1 || h.V > SnapshotVersion {
		return nil, fmt.Errorf("header: format %q version %d, not %q version %d to %d", h.Format, h.V, snapshotFormat,
			snapshotV1, SnapshotVersion)
	}
	st := newState()
	st.index = h.Index
	for n := 1; ; n++ {
		var rec snapshotRecord
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("record %d: %w", n, eofIsTruncation(err))
		}
		var err error
		switch {
		case h.V == snapshotV1 && (rec.Clusters != nil || rec.End != nil && rec.End.Clusters != 0):
			err = errors.New("cluster definitions in a version 1 snapshot")
		case rec.End != nil && rec.Namespace == nil && rec.Service == nil && rec.Definition == nil && rec.Instances == nil &&
			rec.Clusters == nil:
			if err := st.checkEnd(*rec.End); err != nil {
				return nil, fmt.Errorf("end: %w", err)
			}
			if _, err := dec.Token(); err != io.EOF {
				return nil, errors.New("data after the end record")
			}
			return st, nil
		case rec.End != nil:
			err = errors.New("an end record holds nothing else")
		case rec.Namespace != nil && rec.Service == nil && rec.Definition == nil && rec.Instances == nil && rec.Clusters == nil:
			err = st.restoreNamespace(l, Namespace(*rec.Namespace))
		case rec.Service != nil && rec.Namespace == nil:
			err = st.restoreService(l, rec, gen)
		default:
			err = errors.New("not one of a namespace, a service, the end")
		}
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", n, err)
		}
	}
}

func eofIsTruncation(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("truncated: %w", io.ErrUnexpectedEOF)
	}
	return err
}

func (st *state) restoreNamespace(l naming.Limits, ns Namespace) error {
	ns, err := checkNamespace(l, ns)
	if err != nil {
		return err
	}
	if _, ok := st.namespaces[ns.ID]; ok {
		return fmt.Errorf("namespace %q twice", ns.ID)
	}
	st.namespaces[ns.ID] = ns
	return nil
}

func (st *state) restoreService(l naming.Limits, rec snapshotRecord, gen uint64) error {
	w := rec.Service
	svc, err := l.NormalizeService(naming.Service{Namespace: w.Namespace, Group: w.Group, Name: w.Name})
	if err != nil {
		return err
	}
	if _, ok := st.services[svc]; ok {
		return fmt.Errorf("service %s twice", svc)
	}
	e := &service{gen: gen, instances: make(map[Address]Instance, len(rec.Instances))}
	if d := rec.Definition; d != nil {
		e.defined = true
		e.definition, err = checkDefinition(l, ServiceDefinition{ProtectThreshold: d.ProtectThreshold, Metadata: d.Metadata,
			Selector: naming.Selector{Type: d.Selector.Type, Expression: d.Selector.Expression}})
		if err != nil {
			return fmt.Errorf("service %s: %w", svc, err)
		}
	}
	for _, wi := range rec.Instances {
		in, err := normalizeInstance(l, svc, Instance(wi))
		if err != nil {
			return fmt.Errorf("service %s: %w", svc, err)
		}
		if _, ok := e.instances[in.Address()]; ok {
			return fmt.Errorf("service %s: instance %s twice", svc, in.Address())
		}
		e.instances[in.Address()] = in
	}
	for _, wc := range rec.Clusters {
		name, d := clusterFromWire(wc)
		name, err := checkClusterName(l, name)
		if err == nil {
			d, err = checkClusterDefinition(l, d)
		}
		if err != nil {
			return fmt.Errorf("service %s: cluster %s: %w", svc, quoteShort(name), err)
		}
		if _, ok := e.clusters[name]; ok {
			return fmt.Errorf("service %s: cluster %s twice", svc, quoteShort(name))
		}
		if e.clusters == nil {
			e.clusters = make(map[string]ClusterDefinition, len(rec.Clusters))
		}
		e.clusters[name] = d
	}
	if !e.defined && len(e.instances) == 0 && len(e.clusters) == 0 {
		return fmt.Errorf("service %s has neither a definition nor instances nor cluster definitions", svc)
	}
	st.services[svc] = e
	st.instances += len(e.instances)
	st.clusters += len(e.clusters)
	if e.defined {
		st.defined++
	}
	return nil
}

func (st *state) checkEnd(end snapshotEnd) error {
	got := snapshotEnd{Namespaces: len(st.namespaces), Services: len(st.services), Instances: st.instances, Clusters: st.clusters}
	if got != end {
		return fmt.Errorf("the stream holds %d namespaces, %d services, %d instances, %d clusters; the end record says %d, %d, %d, %d",
			got.Namespaces, got.Services, got.Instances, got.Clusters, end.Namespaces, end.Services, end.Instances, end.Clusters)
	}
	return nil
}
