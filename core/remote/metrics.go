package remote

import (
	"strconv"
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
}

func newMetrics(reg prometheus.Registerer, connections func() int) *metrics {
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
			Help: "Requests the server sent to clients (pushes, probes), by type and result (ok, failed).",
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
	}
	reg.MustRegister(m.requests, m.requestSeconds, m.serverRequests, m.serverReqSecond, m.dropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_connections",
			Help: "Client connections with their stream set up.",
		}, func() float64 { return float64(connections()) }))
	return m
}

func (m *metrics) request(typ string, code int, d time.Duration) {
	m.requests.WithLabelValues(typ, strconv.Itoa(code)).Inc()
	m.requestSeconds.WithLabelValues(typ).Observe(d.Seconds())
}

func (m *metrics) serverRequestOK(typ string, d time.Duration) {
	m.serverRequests.WithLabelValues(typ, "ok").Inc()
	m.serverReqSecond.WithLabelValues(typ).Observe(d.Seconds())
}

func (m *metrics) serverRequestFailed(typ string) {
	m.serverRequests.WithLabelValues(typ, "failed").Inc()
}
