package naming

import "slices"

// publications are a client's instances, by service: sorted by service,
// each publication's instances the slice its entry holds. count is their
// number in all, kept with them so that the limit of a client's instances
// is checked without a walk of its services; list is changed only by set
// and newPublications, which keep it.
type publications struct {
	list  []publication
	count int
}

// newPublications returns list, sorted by service, as publications.
func newPublications(list []publication) publications {
	n := 0
	for _, p := range list {
		n += len(p.insts)
	}
	return publications{list: list, count: n}
}

// services is how many services there are instances of.
func (ps *publications) services() int { return len(ps.list) }

// find returns the index of svc's publication, or where it would be.
func (ps *publications) find(svc Service) (int, bool) {
	return slices.BinarySearchFunc(ps.list, svc, func(p publication, svc Service) int { return compareServices(p.e.svc, svc) })
}

// of returns the instances of svc.
func (ps *publications) of(svc Service) []instance {
	if i, ok := ps.find(svc); ok {
		return ps.list[i].insts
	}
	return nil
}

// set makes insts the instances of e's service; none removes it.
func (ps *publications) set(e *entry, insts []instance) {
	i, ok := ps.find(e.svc)
	if ok {
		ps.count -= len(ps.list[i].insts)
	}
	ps.count += len(insts)
	switch {
	case len(insts) == 0 && ok:
		ps.list = slices.Delete(ps.list, i, i+1)
	case len(insts) == 0:
	case ok:
		ps.list[i].insts = insts
	default:
		ps.list = slices.Insert(ps.list, i, publication{e: e, insts: insts})
	}
}
