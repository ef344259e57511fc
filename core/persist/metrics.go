package persist

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/naming"
)

// metrics is the FSM's collector: the ops it refused, by reason, the
// snapshots it could not restore, and what it holds, read when scraped.
type metrics struct {
	fsm      *FSM
	refused  *prometheus.CounterVec
	restores prometheus.Counter

	namespaces, services, defined, instances, clusters, index *prometheus.Desc
}

func newMetrics(f *FSM) *metrics {
	m := &metrics{
		fsm: f,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_persist_refused_ops_total",
			Help: "Ops of the replicated store's log entries refused, by reason: invalid (a rule), not_found, exists, not_empty, " +
				"public_namespace, bad_entry (a whole entry that could not be read), or the key of the limit the op was over.",
		}, []string{"reason"}),
		restores: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_persist_restore_failures_total",
			Help: "Snapshots of the replicated store refused as corrupt or truncated (the state was kept).",
		}),
		namespaces: prometheus.NewDesc("sextant_persist_namespaces", "Namespaces created in the replicated store (the public one not counted).", nil, nil),
		services:   prometheus.NewDesc("sextant_persist_services", "Services in the replicated store: defined, or with persistent instances or cluster definitions.", nil, nil),
		defined:    prometheus.NewDesc("sextant_persist_defined_services", "Services with a definition in the replicated store.", nil, nil),
		instances:  prometheus.NewDesc("sextant_persist_instances", "Persistent instances in the replicated store.", nil, nil),
		clusters:   prometheus.NewDesc("sextant_persist_clusters", "Cluster definitions (health checkers) in the replicated store.", nil, nil),
		index:      prometheus.NewDesc("sextant_persist_applied_index", "The log index of the last entry the replicated store applied.", nil, nil),
	}
	for _, r := range []string{reasonInvalid, reasonNotFound, reasonExists, reasonNotEmpty, reasonPublic, reasonBadEntry,
		naming.LimitNameLength, naming.LimitMetadataBytes,
		LimitInstancesPerService, LimitInstances, LimitServices, LimitNamespaces, LimitClustersPerService} {
		m.refused.WithLabelValues(r) // every reason's series, at 0
	}
	return m
}

// Metrics returns the FSM's metrics, for the server to register.
func (f *FSM) Metrics() prometheus.Collector { return f.metrics }

// count counts the refusals of one entry's response.
func (m *metrics) count(r Response) {
	if r.Err != nil {
		m.refused.WithLabelValues(reason(r.Err)).Inc()
	}
	for _, err := range r.Results {
		if err != nil {
			m.refused.WithLabelValues(reason(err)).Inc()
		}
	}
}

func (m *metrics) restoreFailed() { m.restores.Inc() }

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.refused.Describe(ch)
	m.restores.Describe(ch)
	for _, d := range []*prometheus.Desc{m.namespaces, m.services, m.defined, m.instances, m.clusters, m.index} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.refused.Collect(ch)
	m.restores.Collect(ch)
	s := m.fsm.Stats()
	index := m.fsm.Index()
	ch <- prometheus.MustNewConstMetric(m.namespaces, prometheus.GaugeValue, float64(s.Namespaces))
	ch <- prometheus.MustNewConstMetric(m.services, prometheus.GaugeValue, float64(s.Services))
	ch <- prometheus.MustNewConstMetric(m.defined, prometheus.GaugeValue, float64(s.Defined))
	ch <- prometheus.MustNewConstMetric(m.instances, prometheus.GaugeValue, float64(s.Instances))
	ch <- prometheus.MustNewConstMetric(m.clusters, prometheus.GaugeValue, float64(s.Clusters))
	ch <- prometheus.MustNewConstMetric(m.index, prometheus.GaugeValue, float64(index))
}
