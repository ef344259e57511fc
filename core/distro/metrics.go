package distro

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/naming"
)

// metrics are Distro's Prometheus metrics.
type metrics struct {
	syncs, verifications *prometheus.CounterVec
	invalid, refused     *prometheus.CounterVec
	expired              prometheus.Counter
	massExpiries, stalls prometheus.Counter
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
		massExpiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_distro_mass_expiries_total",
			Help: "Expiries that removed most (half or more, and at least 5) of a service's instances at once.",
		}),
		stalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_distro_stalls_total",
			Help: "Times this node found it had not run for a while (stopped or starved), and gave every replica the client expiry afresh.",
		}),
		loadSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sextant_distro_snapshot_load_seconds",
			Help: "How long this node took to load its start-up snapshot.",
		}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_distro_invalid_total",
			Help: "Parts of the clients members sent (syncs, snapshots) dropped for breaking the rules client input is held to, " +
				"by reason: the part (client: its id; service; instance) or the key of the limit it is over.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_distro_refused_clients_total",
			Help: "Clients a member's sync, verification, removal or snapshot named that it may not change, by reason: " +
				"owner (another member's replica), local (a client of this node), unknown_owner (no owner, or not a member).",
		}, []string{"reason"}),
	}
	for _, reason := range []string{naming.PartClient, naming.PartService, naming.PartInstance} {
		m.invalid.WithLabelValues(reason)
	}
	for _, reason := range []naming.Refusal{naming.RefusedOwner, naming.RefusedLocal, naming.RefusedUnknownOwner} {
		m.refused.WithLabelValues(string(reason))
	}
	reg.MustRegister(m.syncs, m.verifications, m.expired, m.massExpiries, m.stalls, m.loadSeconds, m.invalid, m.refused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_distro_delayed_batches",
			Help: "Sync batches waiting in the delay engine (merge window or retry delay), one per member.",
		}, func() float64 { return float64(delayed()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_distro_queued_tasks",
			Help: "Sync and verification tasks queued in the members' lanes.",
		}, func() float64 { return float64(queued()) }))
	return m
}

func result(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}
