package sextantproc

import (
	"slices"
	"testing"
)

// TestFreePortsAreNeverHandedOutTwice: a port FreePorts returned stays
// reserved, so a later call (here, or in another test process, which takes
// the same file locks) does not return it while its server is yet to bind
// it.
func TestFreePortsAreNeverHandedOutTwice(t *testing.T) {
	first, err := FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range first {
		for _, q := range []int{p, p + 1000, p + 1001} {
			if reserve(q) {
				t.Fatalf("port %d, returned as one of %v, could be reserved again", q, first)
			}
		}
	}
	second, err := FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	used := func(p int) []int { return []int{p, p + 1000, p + 1001} }
	for _, p := range second {
		for _, q := range first {
			if slices.ContainsFunc(used(p), func(port int) bool { return slices.Contains(used(q), port) }) {
				t.Fatalf("%d, returned again, shares a port with %d", p, q)
			}
		}
	}
}
