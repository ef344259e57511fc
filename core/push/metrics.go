package push

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

var errMissingResult = errors.New("the executor returned no result for this target")

// metrics are the push engine's Prometheus metrics.
type metrics struct {
	ok, failed   prometheus.Counter
	batchSeconds prometheus.Histogram
	// The push-empty protection: empty pushes held, released after the
	// grace, dropped as instances came back.
	emptyHeld, emptyReleased, emptyDropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, pending, queued, holding func() int) *metrics {
	pushes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sextant_pushes_total",
		Help: "Pushes to subscribers, by result (ok, failed); a failed push is retried.",
	}, []string{"result"})
	m := &metrics{
		ok:     pushes.WithLabelValues("ok"),
		failed: pushes.WithLabelValues("failed"),
		emptyHeld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_push_empty_held_total",
			Help: "Pushes that would have emptied a service because replication removed its instances, held for push.protect_empty_grace.",
		}),
		emptyReleased: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_push_empty_released_total",
			Help: "Held empty pushes sent: the service was still empty after the grace, or a client of this node emptied it too.",
		}),
		emptyDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_push_empty_dropped_total",
			Help: "Held empty pushes dropped because the service had instances again within the grace.",
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sextant_push_batch_duration_seconds",
			Help:    "Time for a push batch (one service's data to its subscribers of one view) to be acknowledged by all.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
	}
	reg.MustRegister(pushes, m.batchSeconds, m.emptyHeld, m.emptyReleased, m.emptyDropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_push_delayed_tasks",
			Help: "Push tasks waiting in the delay engine (merge window or retry delay).",
		}, func() float64 { return float64(pending()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_push_empty_holding",
			Help: "Services whose empty push is held now by the push-empty protection.",
		}, func() float64 { return float64(holding()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_push_queued_tasks",
			Help: "Push tasks queued in the execute engine.",
		}, func() float64 { return float64(queued()) }))
	return m
}
