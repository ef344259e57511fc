package cluster

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// rendezvousIDs are 10,000 HTTP client ids (ip:port#true).
func rendezvousIDs() []string {
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("10.%d.%d.%d:%d#true", i/65536, i/256%256, i%256, 8080+i%7)
	}
	return ids
}

// memberSets are clusters of n members as tests and deployments name them:
// the ports of one host (whose addresses differ in their last characters
// only) and hosts of one port.
func memberSets(n int) map[string][]string {
	sets := map[string][]string{}
	var ports, hosts []string
	for i := range n {
		ports = append(ports, fmt.Sprintf("127.0.0.1:%d", 8848+i))
		hosts = append(hosts, fmt.Sprintf("10.0.0.%d:8848", i+1))
	}
	sets["ports"], sets["hosts"] = ports, hosts
	return sets
}

// TestRendezvousIsBalanced: each of N members wins about 1/N of the ids,
// however alike their addresses.
func TestRendezvousIsBalanced(t *testing.T) {
	ids := rendezvousIDs()
	for n := 2; n <= 8; n++ {
		for name, members := range memberSets(n) {
			counts := map[string]int{}
			for _, id := range ids {
				counts[Rendezvous(id, members)]++
			}
			want := float64(len(ids)) / float64(n)
			for _, m := range members {
				// About 6 standard deviations of a binomial share.
				if got := float64(counts[m]); math.Abs(got-want) > 6*math.Sqrt(want) {
					t.Errorf("%s, %d members: %s wins %d of %d ids, want about %.0f", name, n, m, counts[m], len(ids), want)
				}
			}
		}
	}
}

// TestRendezvousMovesOnlyTheShareOfAMemberJoiningOrLeaving: of 10,000 ids,
// a member joining N takes about 1/(N+1) of them, every one from another
// member to itself; a member leaving gives away exactly the ids it held.
func TestRendezvousMovesOnlyTheShareOfAMemberJoiningOrLeaving(t *testing.T) {
	ids := rendezvousIDs()
	for n := 2; n <= 7; n++ {
		for name, all := range memberSets(n + 1) {
			members, joiner := all[:n], all[n]
			before := make([]string, len(ids))
			for i, id := range ids {
				before[i] = Rendezvous(id, members)
			}
			moved := 0
			for i, id := range ids {
				after := Rendezvous(id, all)
				if after == before[i] {
					continue
				}
				moved++
				if after != joiner {
					t.Fatalf("%s: %s moved from %s to %s when %s joined", name, id, before[i], after, joiner)
				}
			}
			want := float64(len(ids)) / float64(n+1)
			if math.Abs(float64(moved)-want) > 6*math.Sqrt(want) {
				t.Errorf("%s: %d members + 1 moved %d of %d ids, want about %.0f (1/%d)", name, n, moved, len(ids), want, n+1)
			}
			t.Logf("%s: a member joining %d moved %d of %d ids (1/%d = %.0f)", name, n, moved, len(ids), n+1, want)

			// Leaving: any member of the n+1, say the second.
			leaver := all[1]
			rest := slices.DeleteFunc(slices.Clone(all), func(a string) bool { return a == leaver })
			for _, id := range ids {
				was, now := Rendezvous(id, all), Rendezvous(id, rest)
				if was != leaver && now != was {
					t.Fatalf("%s: %s moved from %s to %s when %s left", name, id, was, now, leaver)
				}
			}
		}
	}
}

// TestRendezvousIsStable: the answer depends on the set only, not on the
// order members are listed in.
func TestRendezvousIsStable(t *testing.T) {
	members := memberSets(5)["ports"]
	reversed := slices.Clone(members)
	slices.Reverse(reversed)
	for _, id := range rendezvousIDs()[:1000] {
		if a, b := Rendezvous(id, members), Rendezvous(id, reversed); a != b {
			t.Fatalf("%s: %s or %s by the order of the members", id, a, b)
		}
	}
	if got := Rendezvous("x", nil); got != "" {
		t.Fatalf("no members: %q", got)
	}
}
