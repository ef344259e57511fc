package pluginhost

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the plugin host's Prometheus metrics, by plugin.
type metrics struct {
	restarts, calls, errors *prometheus.CounterVec
	seconds                 *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_plugin_restarts_total",
			Help: "Times a plugin process exited and was restarted.",
		}, []string{"plugin"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_plugin_calls_total",
			Help: "Push batches handed to a plugin.",
		}, []string{"plugin"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_plugin_errors_total",
			Help: "Targets a plugin reported as not delivered (they are retried).",
		}, []string{"plugin"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sextant_plugin_call_duration_seconds",
			Help:    "Time a plugin took to return a batch's results.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"plugin"}),
	}
	reg.MustRegister(m.restarts, m.calls, m.errors, m.seconds)
	return m
}

func (m *metrics) observe(plugin string, errs []error, d time.Duration) {
	m.calls.WithLabelValues(plugin).Inc()
	m.seconds.WithLabelValues(plugin).Observe(d.Seconds())
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed > 0 {
		m.errors.WithLabelValues(plugin).Add(float64(failed))
	}
}
