package healthcheck

import (
	"github.com/prometheus/client_golang/prometheus"
)

// outcome is what one check found.
type outcome uint8

const (
	// outcomeSuccess: connected (TCP), or the expected status (HTTP).
	outcomeSuccess outcome = iota
	// outcomeRefused: the connection was refused.
	outcomeRefused
	// outcomeTimeout: no connection, or no answer, within the timeout.
	outcomeTimeout
	// outcomeStatus: an HTTP status other than the expected one.
	outcomeStatus
	// outcomeError: any other error.
	outcomeError
	numOutcomes
)

// String is the outcome's value of the result label.
func (o outcome) String() string {
	return [...]string{"success", "refused", "timeout", "status", "error"}[o]
}

// The checked types, as indices of the metrics' children.
const (
	typeIndexTCP = iota
	typeIndexHTTP
	numTypes
)

var typeNames = [numTypes]string{TypeTCP, TypeHTTP}

type metrics struct {
	checksVec   *prometheus.CounterVec
	durationVec *prometheus.HistogramVec
	changesVec  *prometheus.CounterVec
	reportFails prometheus.Counter
	targets     prometheus.Gauge
	skipped     prometheus.Counter
	late        prometheus.Counter

	// The children, resolved once.
	checks   [numTypes][numOutcomes]prometheus.Counter
	duration [numTypes]prometheus.Observer
	changes  [2]prometheus.Counter // [unhealthy, healthy]
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		checksVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_healthcheck_checks_total",
			Help: "Health checks of persistent instances run by this node, by checker type and result " +
				"(success, refused, timeout, status, error).",
		}, []string{"type", "result"}),
		durationVec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sextant_healthcheck_check_duration_seconds",
			Help:    "How long health checks of persistent instances took, by checker type.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"type"}),
		changesVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_healthcheck_changes_total",
			Help: "Health changes of persistent instances reported (written) by this node, by the new health.",
		}, []string{"healthy"}),
		reportFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_healthcheck_report_failures_total",
			Help: "Health changes whose report failed (retried at the next check).",
		}),
		targets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sextant_healthcheck_targets",
			Help: "Persistent instances this node health-checks (of the services it owns, with a TCP or HTTP checker).",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_healthcheck_skipped_total",
			Help: "Checks skipped because the instance's previous check was still running.",
		}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_healthcheck_late_rounds_total",
			Help: "Rounds that could not start all their checks within the interval (too few workers for slow targets).",
		}),
	}
	for i, typ := range typeNames {
		for o := range numOutcomes {
			m.checks[i][o] = m.checksVec.WithLabelValues(typ, o.String())
		}
		m.duration[i] = m.durationVec.WithLabelValues(typ)
	}
	m.changes[0] = m.changesVec.WithLabelValues("false")
	m.changes[1] = m.changesVec.WithLabelValues("true")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.checksVec, m.durationVec, m.changesVec, m.reportFails,
			m.targets, m.skipped, m.late} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
