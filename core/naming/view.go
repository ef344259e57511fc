package naming

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// CacheMillis is how long a client may trust a ServiceInfo before asking again.
const CacheMillis = 10000

// maxCachedViews bounds the encoded views kept per service revision; readers
// choose the filters, so they must not be able to grow it without limit.
const maxCachedViews = 16

// maxViewBytes bounds the bytes of the encoded views the registry keeps, of
// all services: past it, the views of services picked at random are dropped,
// to be encoded again when next read. A view is as large as its instances'
// JSON (~350 bytes each), so the bound keeps the views of ~100,000
// instances.
const maxViewBytes = 32 << 20

// viewCache accounts for the views the entries keep, and bounds them.
type viewCache struct {
	max   int64
	bytes atomic.Int64 // of the views kept

	mu      sync.Mutex
	holders map[*entry]struct{} // the entries keeping views

	evictions prometheus.Counter
}

func newViewCache(max int64) *viewCache {
	return &viewCache{max: max, holders: make(map[*entry]struct{}), evictions: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sextant_naming_view_evictions_total",
		Help: "Services whose cached encoded views were dropped to keep the cache within its bound.",
	})}
}

// collectors returns the cache's metrics.
func (vc *viewCache) collectors() []prometheus.Collector {
	return []prometheus.Collector{vc.evictions, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sextant_naming_view_cache_bytes",
		Help: "Bytes of the encoded service views the registry keeps, to answer reads of an unchanged service without encoding it again.",
	}, func() float64 { return float64(vc.bytes.Load()) })}
}

// trim drops the views of services until the cache is within its bound,
// those of keep (whose view was just kept) last. No entry's lock is held.
func (vc *viewCache) trim(keep *entry) {
	for vc.bytes.Load() > vc.max {
		vc.mu.Lock()
		var victim *entry
		for e := range vc.holders { // map order: a service at random
			victim = e
			if e != keep {
				break
			}
		}
		vc.mu.Unlock()
		if victim == nil {
			return
		}
		victim.mu.Lock()
		victim.dropViews()
		victim.mu.Unlock()
		vc.evictions.Inc()
	}
}

// keepView caches b as the view f of the entry's revision; e.mu is held.
func (e *entry) keepView(f ViewFilter, b []byte) {
	if len(e.views) >= maxCachedViews {
		e.dropViews()
	}
	if e.views == nil {
		e.views = make(map[ViewFilter][]byte)
	}
	if old, ok := e.views[f]; ok { // encoded twice at once
		e.viewBytes -= int64(len(old))
		e.cache.bytes.Add(-int64(len(old)))
	}
	if e.viewBytes == 0 {
		e.cache.mu.Lock()
		e.cache.holders[e] = struct{}{}
		e.cache.mu.Unlock()
	}
	e.views[f] = b
	e.viewBytes += int64(len(b))
	e.cache.bytes.Add(int64(len(b)))
}

// dropViews forgets the entry's cached views; e.mu is held.
func (e *entry) dropViews() {
	if len(e.views) == 0 {
		return
	}
	clear(e.views)
	e.cache.bytes.Add(-e.viewBytes)
	e.viewBytes = 0
	e.cache.mu.Lock()
	delete(e.cache.holders, e)
	e.cache.mu.Unlock()
}

// ViewFilter selects what a reader sees of a service.
type ViewFilter struct {
	// Clusters is the comma-separated cluster filter exactly as the reader sent
	// it; it is echoed in the view, where clients use it as a cache key. "" = all.
	Clusters    string
	HealthyOnly bool
	// GroupedName names the service group@@name, as the HTTP API (and 1.x
	// clients, which key their caches by it) has it; gRPC views name it bare.
	GroupedName bool
}

// View returns svc's Nacos ServiceInfo JSON as clients read it: only enabled
// instances, of the filter's clusters, after the protection threshold.
// A view is encoded once per service revision and filter, while the cache
// keeps it (maxViewBytes).
func (r *Registry) View(svc Service, f ViewFilter) []byte {
	e := r.lookup(svc)
	if e == nil {
		return encodeView(svc, f, nil, r.now().UnixMilli(), ServiceMeta{})
	}
	e.mu.Lock()
	if b, ok := e.views[f]; ok {
		e.mu.Unlock()
		return b
	}
	revision, lastRefTime := e.revision, e.lastRefTime
	parts := make([][]instance, 0, len(e.publishers))
	for _, insts := range e.publishers {
		parts = append(parts, insts)
	}
	e.mu.Unlock()

	b := encodeView(svc, f, parts, lastRefTime, r.serviceMeta(svc))

	e.mu.Lock()
	kept := e.revision == revision && !e.removed && int64(len(b)) <= r.views.max
	if kept {
		e.keepView(f, b)
	}
	e.mu.Unlock()
	if kept {
		r.views.trim(e)
	}
	return b
}

type serviceInfoJSON struct {
	Name                     string         `json:"name"`
	GroupName                string         `json:"groupName"`
	Clusters                 string         `json:"clusters"`
	CacheMillis              int            `json:"cacheMillis"`
	Hosts                    []instanceJSON `json:"hosts"`
	LastRefTime              int64          `json:"lastRefTime"`
	Checksum                 string         `json:"checksum"`
	AllIPs                   bool           `json:"allIPs"`
	ReachProtectionThreshold bool           `json:"reachProtectionThreshold"`
	Valid                    bool           `json:"valid"`
}

type instanceJSON struct {
	InstanceID                string            `json:"instanceId"`
	IP                        string            `json:"ip"`
	Port                      int               `json:"port"`
	Weight                    float64           `json:"weight"`
	Healthy                   bool              `json:"healthy"`
	Enabled                   bool              `json:"enabled"`
	Ephemeral                 bool              `json:"ephemeral"`
	ClusterName               string            `json:"clusterName"`
	ServiceName               string            `json:"serviceName"`
	Metadata                  map[string]string `json:"metadata"`
	InstanceHeartBeatInterval int64             `json:"instanceHeartBeatInterval"`
	InstanceHeartBeatTimeOut  int64             `json:"instanceHeartBeatTimeOut"`
	IPDeleteTimeout           int64             `json:"ipDeleteTimeout"`
	InstanceIDGenerator       string            `json:"instanceIdGenerator"`
}

var emptyMetadata = map[string]string{}

func encodeView(svc Service, f ViewFilter, parts [][]instance, lastRefTime int64, meta ServiceMeta) []byte {
	var clusters []string
	if f.Clusters != "" {
		clusters = strings.Split(f.Clusters, ",")
	}
	var hosts []instance
	for _, insts := range parts {
		for _, inst := range insts {
			if inst.enabled() && (clusters == nil || slices.Contains(clusters, inst.shape.cluster)) {
				hosts = append(hosts, inst)
			}
		}
	}
	if f.HealthyOnly {
		hosts = slices.DeleteFunc(hosts, func(i instance) bool { return !i.healthy() })
	}
	healthy := 0
	for _, h := range hosts {
		if h.healthy() {
			healthy++
		}
	}
	protected := len(hosts) > 0 && float64(healthy)/float64(len(hosts)) <= meta.ProtectThreshold
	slices.SortFunc(hosts, func(a, b instance) int {
		return cmp.Or(strings.Compare(a.ip, b.ip), cmp.Compare(a.port, b.port), strings.Compare(a.shape.cluster, b.shape.cluster))
	})

	name := svc.Name
	if f.GroupedName {
		name = svc.GroupedName()
	}
	info := serviceInfoJSON{
		Name:                     name,
		GroupName:                svc.Group,
		Clusters:                 f.Clusters,
		CacheMillis:              CacheMillis,
		Hosts:                    make([]instanceJSON, len(hosts)),
		LastRefTime:              lastRefTime,
		ReachProtectionThreshold: protected,
		Valid:                    true,
	}
	grouped := svc.GroupedName()
	for i, h := range hosts {
		interval, timeout, deleteTimeout := Instance{Metadata: h.shape.metadata}.heartbeat()
		md := h.shape.metadata
		if md == nil {
			md = emptyMetadata
		}
		info.Hosts[i] = instanceJSON{
			InstanceID:                h.id(svc),
			IP:                        h.ip,
			Port:                      int(h.port),
			Weight:                    h.shape.weight,
			Healthy:                   h.healthy() || protected,
			Enabled:                   true, // only enabled instances are shown
			Ephemeral:                 h.flags&flagEphemeral != 0,
			ClusterName:               h.shape.cluster,
			ServiceName:               grouped,
			Metadata:                  md,
			InstanceHeartBeatInterval: interval,
			InstanceHeartBeatTimeOut:  timeout,
			IPDeleteTimeout:           deleteTimeout,
			InstanceIDGenerator:       "simple",
		}
	}
	b, err := json.Marshal(info)
	if err != nil {
		// Every field is a string, number or bool map: Marshal cannot fail.
		panic("naming: encoding ServiceInfo: " + err.Error())
	}
	return b
}
