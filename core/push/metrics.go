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
}

func newMetrics(reg prometheus.Registerer, pending, queued func() int) *metrics {
	pushes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sextant_pushes_total",
		Help: "Pushes to subscribers, by result (ok, failed); a failed push is retried.",
	}, []string{"result"})
	m := &metrics{
		ok:     pushes.WithLabelValues("ok"),
		failed: pushes.WithLabelValues("failed"),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sextant_push_batch_duration_seconds",
			Help:    "Time for a push batch (one service's data to its subscribers of one view) to be acknowledged by all.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
	}
	reg.MustRegister(pushes, m.batchSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_push_delayed_tasks",
			Help: "Push tasks waiting in the delay engine (merge window or retry delay).",
		}, func() float64 { return float64(pending()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sextant_push_queued_tasks",
			Help: "Push tasks queued in the execute engine.",
		}, func() float64 { return float64(queued()) }))
	return m
}
