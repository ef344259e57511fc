package distro

import "github.com/prometheus/client_golang/prometheus"

// metrics are Distro's Prometheus metrics.
type metrics struct {
	syncs, verifications *prometheus.CounterVec
	expired              prometheus.Counter
	loadSeconds          prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, delayed, queued func() int) *metrics {
	m := &metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_distro_syncs_total",
			Help: "Batches of client changes sent to members, by result (ok, failed); failed ones are retried.",
		}, []string{"result"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_distro_verifications_total",
			Help: "Verifications of this node's clients sent to members, by result (ok, failed).",
		}, []string{"result"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_distro_expired_clients_total",
			Help: "Replicated clients removed because their owner stopped vouching for them.",
		}),
		loadSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sextant_distro_snapshot_load_seconds",
			Help: "How long this node took to load its start-up snapshot.",
		}),
	}
	reg.MustRegister(m.syncs, m.verifications, m.expired, m.loadSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_distro_delayed_batches",
			Help: "Sync batches waiting in the delay engine (merge window or retry delay), one per member.",
		}, func() float64 { return float64(delayed()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_distro_queued_tasks",
			Help: "Sync and verification tasks queued in the execute engine.",
		}, func() float64 { return float64(queued()) }))
	return m
}

func result(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}
