package naming

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// publications keep their count of instances through every change: set
// adding, replacing and removing a service's instances, in any order.
func TestPublicationsCountTheirInstances(t *testing.T) {
	entries := make([]*entry, 20)
	for i := range entries {
		entries[i] = &entry{svc: Service{Namespace: DefaultNamespace, Group: DefaultGroup, Name: "s" + strconv.Itoa(i)}}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	var ps publications
	for step := range 2000 {
		e := entries[rnd.IntN(len(entries))]
		ps.set(e, make([]instance, rnd.IntN(4))) // 0 removes
		walked := 0
		for i, p := range ps.list {
			walked += len(p.insts)
			if len(p.insts) == 0 {
				t.Fatalf("step %d: %s kept with no instance", step, p.e.svc.Name)
			}
			if i > 0 && compareServices(ps.list[i-1].e.svc, p.e.svc) >= 0 {
				t.Fatalf("step %d: %s before %s", step, ps.list[i-1].e.svc.Name, p.e.svc.Name)
			}
		}
		if ps.count != walked {
			t.Fatalf("step %d: count %d, the instances are %d", step, ps.count, walked)
		}
		if again := newPublications(ps.list); again.count != walked {
			t.Fatalf("step %d: newPublications counts %d, want %d", step, again.count, walked)
		}
	}
}
