package remote

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client endpoint's Prometheus metrics.
type metrics struct {
	requests        *prometheus.CounterVec
	requestSeconds  *prometheus.HistogramVec
	serverRequests  *prometheus.CounterVec
	serverReqSecond *prometheus.HistogramVec
	dropped         prometheus.Counter
	closed          *prometheus.CounterVec
	refused         prometheus.Counter
	unknown         unknownTypes // the type labels of unknown request types (unknown_types.go)
	labelsDropped   prometheus.Counter
	// Of the log of client errors (client_errors.go).
	clientErrorsSuppressed, clientErrorsEvicted prometheus.Counter

	// succeeded holds, by request type label, the series of its successful
	// requests (*typeSeries): most requests succeed, and a child found
	// here costs no label hashing.
	succeeded sync.Map
}

// gauges are the values the server's gauges read when scraped.
type gauges struct {
	connections    func() int   // set up
	open           func() int   // TCP connections accepted and open
	outboundBytes  func() int64 // queued and being written, all connections
	reading        func() int   // connections holding a read buffer (h2 only)
	idleWriters    func() int64 // writer goroutines waiting for a connection
	maxConnections int
}

func newMetrics(reg prometheus.Registerer, g gauges) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_client_requests_total",
			Help: "Requests from clients, by request type and Nacos result (200, or the error code).",
		}, []string{"type", "code"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sextant_client_request_duration_seconds",
			Help:    "Time to answer a client's request, by request type.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10),
		}, []string{"type"}),
		serverRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_server_requests_total",
			Help: "Requests the server sent to clients (pushes, probes), by type and result (ok, failed, " +
				"superseded: replaced before it was written by a newer push of the same service and clusters).",
		}, []string{"type", "result"}),
		serverReqSecond: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sextant_server_request_duration_seconds",
			Help:    "Time from sending a request to a client until its answer, by type.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"type"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_connections_dropped_total",
			Help: "Connections dropped because they did not answer a detection probe.",
		}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_remote_connections_closed_total",
			Help: "Client connections the server closed for a limit, by reason (outbound_budget: more bytes " +
				"queued than remote.max_outbound_bytes; write_timeout: a write took longer than " +
				"remote.write_timeout; setup_timeout: no ConnectionSetupRequest within remote.setup_timeout).",
		}, []string{"reason"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_remote_connections_refused_total",
			Help: "TCP connections to the client gRPC port closed at accept because remote.max_connections were open.",
		}),
		labelsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_remote_labels_dropped_total",
			Help: "Labels dropped from connection setups: beyond 64 a connection, a key over 256 bytes or a value over " +
				"1024, or not UTF-8 text without control characters. The connection keeps the others.",
		}),
		clientErrorsSuppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_remote_client_error_lines_suppressed_total",
			Help: "Warn lines about client errors left out: the same client's same error is logged once a minute at most.",
		}),
		clientErrorsEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_remote_client_error_pairs_evicted_total",
			Help: "Client and error pairs the log of client errors forgot, the least recent first, to stay within 1024; " +
				"such a pair is logged afresh when it comes back.",
		}),
	}
	for _, reason := range []string{reasonOutboundBudget, reasonWriteTimeout, reasonSetupTimeout} {
		m.closed.WithLabelValues(reason)
	}
	reg.MustRegister(m.requests, m.requestSeconds, m.serverRequests, m.serverReqSecond, m.dropped, m.closed, m.refused, m.labelsDropped,
		m.clientErrorsSuppressed, m.clientErrorsEvicted,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_connections",
			Help: "Client connections with their stream set up.",
		}, func() float64 { return float64(g.connections()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_remote_open_connections",
			Help: "TCP connections open on the client gRPC port, set up or not.",
		}, func() float64 { return float64(g.open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_remote_max_connections",
			Help: "The limit of TCP connections on the client gRPC port (remote.max_connections, or derived from RLIMIT_NOFILE).",
		}, func() float64 { return float64(g.maxConnections) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_remote_outbound_queued_bytes",
			Help: "Bytes of server requests queued or being written to client streams, all connections together.",
		}, func() float64 { return float64(g.outboundBytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_remote_reading_connections",
			Help: "Client connections holding a read buffer (4 KiB each): those with input within the last second. " +
				"The h2 transport only (remote.transport); 0 on grpc, whose connections each hold one always.",
		}, func() float64 { return float64(g.reading()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_remote_idle_writers",
			Help: "Goroutines that wrote server requests to client streams, kept for the next (at most 1,024, each for 1 s).",
		}, func() float64 { return float64(g.idleWriters()) }))
	return m
}

// typeSeries are the series of one request type's successful requests.
type typeSeries struct {
	count   prometheus.Counter
	seconds prometheus.Observer
}

func (m *metrics) request(typ string, code int, d time.Duration) {
	if code != codeOK {
		m.requests.WithLabelValues(typ, strconv.Itoa(code)).Inc()
		m.requestSeconds.WithLabelValues(typ).Observe(d.Seconds())
		return
	}
	v, ok := m.succeeded.Load(typ)
	if !ok {
		// Labels are bounded (unknown_types.go), and so is the map.
		v, _ = m.succeeded.LoadOrStore(typ, &typeSeries{
			count:   m.requests.WithLabelValues(typ, strconv.Itoa(codeOK)),
			seconds: m.requestSeconds.WithLabelValues(typ),
		})
	}
	rs := v.(*typeSeries)
	rs.count.Inc()
	rs.seconds.Observe(d.Seconds())
}

func (m *metrics) serverRequestOK(typ string, d time.Duration) {
	m.serverRequests.WithLabelValues(typ, "ok").Inc()
	m.serverReqSecond.WithLabelValues(typ).Observe(d.Seconds())
}

func (m *metrics) serverRequestFailed(typ string) {
	m.serverRequests.WithLabelValues(typ, "failed").Inc()
}

func (m *metrics) serverRequestSuperseded(typ string) {
	m.serverRequests.WithLabelValues(typ, "superseded").Inc()
}
