package naming

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
)

// CacheMillis is how long a client may trust a ServiceInfo before asking again.
const CacheMillis = 10000

// maxCachedViews bounds the encoded views kept per service revision; readers
// choose the filters, so they must not be able to grow it without limit.
const maxCachedViews = 16

// ViewFilter selects what a reader sees of a service.
type ViewFilter struct {
	// Clusters is the comma-separated cluster filter exactly as the reader sent
	// it; it is echoed in the view, where clients use it as a cache key. "" = all.
	Clusters    string
	HealthyOnly bool
}

// View returns svc's Nacos ServiceInfo JSON as 2.x gRPC clients read it: only
// enabled instances, of the filter's clusters, after the protection threshold.
// A view is encoded once per service revision and filter.
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
	parts := make([][]Instance, 0, len(e.publishers))
	for _, insts := range e.publishers {
		parts = append(parts, insts)
	}
	e.mu.Unlock()

	b := encodeView(svc, f, parts, lastRefTime, r.serviceMeta(svc))

	e.mu.Lock()
	if e.revision == revision && !e.removed {
		if e.views == nil || len(e.views) >= maxCachedViews {
			e.views = make(map[ViewFilter][]byte)
		}
		e.views[f] = b
	}
	e.mu.Unlock()
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

func encodeView(svc Service, f ViewFilter, parts [][]Instance, lastRefTime int64, meta ServiceMeta) []byte {
	var clusters []string
	if f.Clusters != "" {
		clusters = strings.Split(f.Clusters, ",")
	}
	var hosts []Instance
	for _, insts := range parts {
		for _, inst := range insts {
			if inst.Enabled && (clusters == nil || slices.Contains(clusters, inst.Cluster)) {
				hosts = append(hosts, inst)
			}
		}
	}
	if f.HealthyOnly {
		hosts = slices.DeleteFunc(hosts, func(i Instance) bool { return !i.Healthy })
	}
	healthy := 0
	for _, h := range hosts {
		if h.Healthy {
			healthy++
		}
	}
	protected := len(hosts) > 0 && float64(healthy)/float64(len(hosts)) <= meta.ProtectThreshold
	slices.SortFunc(hosts, func(a, b Instance) int {
		return cmp.Or(strings.Compare(a.IP, b.IP), cmp.Compare(a.Port, b.Port), strings.Compare(a.Cluster, b.Cluster))
	})

	info := serviceInfoJSON{
		Name:                     svc.Name,
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
		interval, timeout, deleteTimeout := h.heartbeat()
		md := h.Metadata
		if md == nil {
			md = emptyMetadata
		}
		info.Hosts[i] = instanceJSON{
			InstanceID:                h.ID,
			IP:                        h.IP,
			Port:                      h.Port,
			Weight:                    h.Weight,
			Healthy:                   h.Healthy || protected,
			Enabled:                   h.Enabled,
			Ephemeral:                 h.Ephemeral,
			ClusterName:               h.Cluster,
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
