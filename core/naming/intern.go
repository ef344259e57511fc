package naming

import (
	"runtime"
	"sync"
	"weak"

	"github.com/prometheus/client_golang/prometheus"
)

// interner shares one copy of equal values among everything the registry
// holds: the shapes of instances (stored.go), the labels of connections. It
// holds its values weakly, as Go's unique package does (which takes only
// comparable values, and a shape holds a map): a value nothing else refers to
// is collected, and its entry goes with it (runtime.AddCleanup), so the table
// holds only values in use. It is bounded too, since what it holds is what
// clients send: at max entries, a value not in it is returned unshared.
type interner[T any] struct {
	kind  string
	mu    sync.Mutex
	table map[string]weak.Pointer[T] // by the value's key
	max   int

	// hits found their value in the table, misses added it, unshared found
	// the table full.
	hits, misses, unshared prometheus.Counter
}

// Interner bounds: what the registry shares, by kind.
const (
	maxInternedShapes = 1 << 16
	maxInternedLabels = 1 << 14
)

// newInternLookups returns the counter of the interners' lookups.
func newInternLookups() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sextant_naming_intern_lookups_total",
		Help: "Values the registry looked up to share one copy of, by kind (shape: an instance's cluster, weight " +
			"and metadata; labels: a connection's) and result (hit: shared; miss: added; full: kept unshared, the table being at its bound).",
	}, []string{"kind", "result"})
}

// newInterner returns an empty interner of at most max values, its lookups
// counted in lookups under kind.
func newInterner[T any](kind string, max int, lookups *prometheus.CounterVec) *interner[T] {
	return &interner[T]{
		kind:     kind,
		table:    make(map[string]weak.Pointer[T]),
		max:      max,
		hits:     lookups.WithLabelValues(kind, "hit"),
		misses:   lookups.WithLabelValues(kind, "miss"),
		unshared: lookups.WithLabelValues(kind, "full"),
	}
}

// gauge returns a gauge of the values the table holds.
func (t *interner[T]) gauge() prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "sextant_naming_interned",
		Help:        "Distinct values the registry shares one copy of among what it holds, by kind.",
		ConstLabels: prometheus.Labels{"kind": t.kind},
	}, func() float64 { return float64(t.len()) })
}

// intern returns the value whose key is key: the one in the table, else the
// one build returns, added to the table if it has room. build is called with
// the table locked: it must be quick, and not use the interner.
func (t *interner[T]) intern(key []byte, build func() *T) *T {
	t.mu.Lock()
	p, found := t.table[string(key)] // no copy of key to look up
	if found {
		if v := p.Value(); v != nil {
			t.mu.Unlock()
			t.hits.Inc()
			return v
		}
	}
	v := build()
	if !found && len(t.table) >= t.max {
		t.mu.Unlock()
		t.unshared.Inc()
		return v
	}
	k := string(key)
	t.table[k] = weak.Make(v)
	runtime.AddCleanup(v, t.forget, k)
	t.mu.Unlock()
	t.misses.Inc()
	return v
}

// forget removes the entry of key once its value is gone; a value added
// since under the same key stays.
func (t *interner[T]) forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.table[key]; ok && p.Value() == nil {
		delete(t.table, key)
	}
}

// len returns how many values the table holds.
func (t *interner[T]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.table)
}
