package httpapi

import (
	"math"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/naming"
)

// The operator's endpoints, as Nacos 2.x's OperatorController(V2) and the
// console's NamespaceController serve them:
//
//   - GET {v1,v2}/operator/metrics (and /ops/metrics): {"status":"UP"} when the
//     server is ready, "DOWN" before; with onlyStatus=false (Nacos's default
//     is true) the counts, CPU, load and memory too, for a global admin.
//     The status alone is open, as /readiness is: the SDKs read it.
//   - GET {v1,v2}/operator/switches (and /ops/switches): this server's
//     settings as Nacos's SwitchDomain names them, read-only (a PUT gets
//     501: they come from the configuration); a global admin's.
//   - the console's namespaces (/nacos/v1/console/namespaces): namespaces.go.
//
// The client API (client_api.go) is registered here too: every endpoint of
// this file and that one but the status needs a global admin (RequireAdmin).

// Switches are this server's settings that GET /operator/switches reports.
type Switches struct {
	PushDelay, PushTimeout, PushRetryDelay time.Duration
	ProtectEmpty                           bool
	ProtectEmptyGrace                      time.Duration
	HealthCheckInterval                    time.Duration // the beat checker's
	// The cluster's timings (cluster.*), reported when clustered.
	ReportInterval, VerifyInterval, ClientExpiry time.Duration
}

// switchDomainName is the name of Nacos's SwitchDomain.
const switchDomainName = "00-00---000-NACOS_SWITCH_DOMAIN-000---00-00"

// switchesJSON is GET /operator/switches's answer: the fields of Nacos's
// SwitchDomain that mean something here, from the server's settings, and
// Sextant's own under "sextant".
type switchesJSON struct {
	Name                                     string          `json:"name"`
	Masters                                  []string        `json:"masters"`
	AdWeightMap                              map[string]int  `json:"adWeightMap"`
	DefaultPushCacheMillis                   int64           `json:"defaultPushCacheMillis"`
	ClientBeatInterval                       int64           `json:"clientBeatInterval"`
	DefaultCacheMillis                       int64           `json:"defaultCacheMillis"`
	HealthCheckEnabled                       bool            `json:"healthCheckEnabled"`
	AutoChangeHealthCheckEnabled             bool            `json:"autoChangeHealthCheckEnabled"`
	DistroEnabled                            bool            `json:"distroEnabled"`
	EnableStandalone                         bool            `json:"enableStandalone"`
	PushEnabled                              bool            `json:"pushEnabled"`
	CheckTimes                               int             `json:"checkTimes"`
	IncrementalList                          []string        `json:"incrementalList"`
	ServerStatusSynchronizationPeriodMillis  int64           `json:"serverStatusSynchronizationPeriodMillis"`
	ServiceStatusSynchronizationPeriodMillis int64           `json:"serviceStatusSynchronizationPeriodMillis"`
	DisableAddIP                             bool            `json:"disableAddIP"`
	SendBeatOnly                             bool            `json:"sendBeatOnly"`
	LightBeatEnabled                         bool            `json:"lightBeatEnabled"`
	DoubleWriteEnabled                       bool            `json:"doubleWriteEnabled"`
	LimitedURLMap                            map[string]int  `json:"limitedUrlMap"`
	DistroServerExpiredMillis                int64           `json:"distroServerExpiredMillis"`
	EnableAuthentication                     bool            `json:"enableAuthentication"`
	OverriddenServerStatus                   *string         `json:"overriddenServerStatus"`
	DefaultInstanceEphemeral                 bool            `json:"defaultInstanceEphemeral"`
	HealthCheckWhiteList                     []string        `json:"healthCheckWhiteList"`
	Checksum                                 *string         `json:"checksum"`
	Sextant                                  sextantSwitches `json:"sextant"`
}

// sextantSwitches are the settings Nacos has no switch for.
type sextantSwitches struct {
	PushDelayMillis           int64 `json:"pushDelayMillis"`
	PushTimeoutMillis         int64 `json:"pushTimeoutMillis"`
	PushRetryDelayMillis      int64 `json:"pushRetryDelayMillis"`
	PushProtectEmpty          bool  `json:"pushProtectEmpty"`
	PushProtectEmptyMillis    int64 `json:"pushProtectEmptyGraceMillis"`
	HealthCheckIntervalMillis int64 `json:"healthCheckIntervalMillis"`
}

// metricsJSON is GET /operator/metrics's answer with onlyStatus=false, as
// Nacos 2.x's OperatorController has it. Its counts are this node's view:
// instanceCount and subscribeCount hold every node's clients (replicas
// included), responsible* this node's own.
type metricsJSON struct {
	Status                      string  `json:"status"`
	ServiceCount                int     `json:"serviceCount"`
	InstanceCount               int64   `json:"instanceCount"`
	SubscribeCount              int64   `json:"subscribeCount"`
	ResponsibleInstanceCount    int     `json:"responsibleInstanceCount"`
	ClientCount                 int     `json:"clientCount"`
	ConnectionBasedClientCount  int     `json:"connectionBasedClientCount"`
	EphemeralIPPortClientCount  int     `json:"ephemeralIpPortClientCount"`
	PersistentIPPortClientCount int     `json:"persistentIpPortClientCount"`
	ResponsibleClientCount      int     `json:"responsibleClientCount"`
	CPU                         float64 `json:"cpu"`  // this process's share of the machine's CPUs since the last sample, 0..1
	Load                        float64 `json:"load"` // the 1-minute load average (0 where the OS does not say)
	Mem                         float64 `json:"mem"`  // the share of the machine's memory in use, 0..1 (0 where the OS does not say)
}

// operatorAPI serves the operator's and the client API's endpoints.
type operatorAPI struct {
	cfg Config
	reg *naming.Registry
	cpu cpuSampler
}

// registerOperator adds the operator's endpoints, the client API and the
// console's namespaces to mux (when cfg has a registry).
func registerOperator(mux *http.ServeMux, cfg Config, log hclog.Logger) {
	if cfg.Registry == nil {
		return
	}
	op := &operatorAPI{cfg: cfg, reg: cfg.Registry}
	api := &namingAPI{reg: cfg.Registry, log: log, maxBody: maxNamingBody(cfg.Registry.Limits())}
	handle := func(e namingEndpoint, guard func(http.Handler) http.Handler) {
		for _, v := range e.versions {
			mux.Handle(e.method+" "+v.prefix()+e.path, guard(api.serve(v, e, nil)))
		}
	}
	admin := func(h http.Handler) http.Handler { return RequireAdmin(cfg.Auth, h) }
	for _, base := range []string{"/operator", "/ops"} {
		handle(namingEndpoint{http.MethodGet, base + "/metrics", auth.Read, both, op.metrics}, op.metricsGuard)
		handle(namingEndpoint{http.MethodGet, base + "/switches", auth.Read, both, op.switches}, admin)
	}
	for _, e := range op.clientEndpoints() {
		handle(e, admin)
	}
	registerNamespaces(mux, cfg)
}

// metricsGuard lets the status alone through, and the full metrics
// (onlyStatus=false) only to a global admin.
func (op *operatorAPI) metricsGuard(h http.Handler) http.Handler {
	admin := RequireAdmin(op.cfg.Auth, h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if only, err := params(r.URL.Query()).boolean("onlyStatus", true); err == nil && !only {
			admin.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r) // a bad onlyStatus is refused there
	})
}

// status is the server's status as Nacos names it.
func (op *operatorAPI) status() string {
	if op.cfg.Ready() {
		return "UP"
	}
	return "DOWN"
}

// metrics: GET /operator/metrics.
func (op *operatorAPI) metrics(_ *namingAPI, _ apiVersion, _ *http.Request, p params) (answer, error) {
	only, err := p.boolean("onlyStatus", true)
	if err != nil {
		return answer{}, err
	}
	if only {
		return answer{json: map[string]string{"status": op.status()}}, nil
	}
	stats, clients := op.reg.Stats(), op.reg.CountClients()
	load, mem := systemLoad()
	return answer{json: metricsJSON{
		Status:                     op.status(),
		ServiceCount:               op.reg.ServiceCount(),
		InstanceCount:              stats.Instances,
		SubscribeCount:             stats.Subscribers,
		ResponsibleInstanceCount:   clients.LocalInstances,
		ClientCount:                clients.All,
		ConnectionBasedClientCount: clients.Connection,
		EphemeralIPPortClientCount: clients.HTTP,
		ResponsibleClientCount:     clients.Local,
		CPU:                        op.cpu.usage(),
		Load:                       load,
		Mem:                        mem,
	}}, nil
}

// switches: GET /operator/switches.
func (op *operatorAPI) switches(_ *namingAPI, _ apiVersion, _ *http.Request, _ params) (answer, error) {
	s := op.cfg.Switches
	clustered := len(op.cfg.Members()) > 1
	return answer{json: switchesJSON{
		Name:                                     switchDomainName,
		AdWeightMap:                              map[string]int{},
		DefaultPushCacheMillis:                   naming.CacheMillis,
		ClientBeatInterval:                       naming.DefaultHeartbeatInterval,
		DefaultCacheMillis:                       naming.CacheMillis,
		HealthCheckEnabled:                       true,
		AutoChangeHealthCheckEnabled:             true,
		DistroEnabled:                            clustered,
		EnableStandalone:                         true,
		PushEnabled:                              true,
		CheckTimes:                               3, // failed health reports before a member is DOWN
		IncrementalList:                          []string{},
		ServerStatusSynchronizationPeriodMillis:  s.ReportInterval.Milliseconds(),
		ServiceStatusSynchronizationPeriodMillis: s.VerifyInterval.Milliseconds(),
		LightBeatEnabled:                         true,
		LimitedURLMap:                            map[string]int{},
		DistroServerExpiredMillis:                s.ClientExpiry.Milliseconds(),
		EnableAuthentication:                     op.cfg.Auth != nil,
		DefaultInstanceEphemeral:                 true,
		HealthCheckWhiteList:                     []string{},
		Sextant: sextantSwitches{
			PushDelayMillis:           s.PushDelay.Milliseconds(),
			PushTimeoutMillis:         s.PushTimeout.Milliseconds(),
			PushRetryDelayMillis:      s.PushRetryDelay.Milliseconds(),
			PushProtectEmpty:          s.ProtectEmpty,
			PushProtectEmptyMillis:    s.ProtectEmptyGrace.Milliseconds(),
			HealthCheckIntervalMillis: s.HealthCheckInterval.Milliseconds(),
		},
	}}, nil
}

// cpuSampler measures this process's CPU use between samples.
type cpuSampler struct {
	mu   sync.Mutex
	wall time.Time     // of the baseline sample
	cpu  time.Duration // the process's CPU time then
}

// processStart approximates when the process started: the first baseline.
var processStart = time.Now()

// minCPUWindow is the shortest window a usage is measured over: samples
// closer to the baseline are measured from it, without moving it.
const minCPUWindow = time.Second

// usage returns the process's CPU time since the baseline over the CPU time
// the machine had, 0..1, and moves the baseline when it is old enough.
func (s *cpuSampler) usage() float64 {
	cpu, ok := processCPUTime()
	if !ok {
		return 0
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wall.IsZero() {
		s.wall = processStart
	}
	wall := now.Sub(s.wall).Seconds() * float64(runtime.NumCPU())
	used := (cpu - s.cpu).Seconds()
	if now.Sub(s.wall) >= minCPUWindow {
		s.wall, s.cpu = now, cpu
	}
	if wall <= 0 || used <= 0 {
		return 0
	}
	return math.Min(used/wall, 1)
}
