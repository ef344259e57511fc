package consensus

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's Prometheus metrics: counters of what it did, and
// a collector that reads raft's state at each scrape.
type metrics struct {
	applies   *prometheus.CounterVec
	applyTime prometheus.Histogram
	forwarded prometheus.Counter
	installs  *prometheus.CounterVec
	impostors prometheus.Counter
	changes   *prometheus.CounterVec
}

// newMetrics makes the node's metrics, registered on reg unless it is nil.
func newMetrics(reg prometheus.Registerer, n *Node) *metrics {
	m := &metrics{
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_raft_applies_total",
			Help: "Writes given to the replicated log on this node, by result (ok, rejected by the state machine, no_quorum, stopped, canceled, error).",
		}, []string{"result"}),
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sextant_raft_apply_duration_seconds",
			Help:    "How long writes given on this node took to be committed and applied by the leader.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_raft_forwarded_total",
			Help: "Writes and read barriers this node forwarded to the leader.",
		}),
		installs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_raft_snapshot_installs_total",
			Help: "Snapshots received from a leader, by result (ok, refused: too large or out of order, failed).",
		}, []string{"result"}),
		impostors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_raft_refused_messages_total",
			Help: "Raft messages refused because they named another server than the member that sent them.",
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_raft_configuration_changes_total",
			Help: "Changes of the raft configuration this node made as leader, by change (add, promote, remove, transfer) and result (ok, failed).",
		}, []string{"change", "result"}),
	}
	for _, r := range []string{"ok", "rejected", "no_quorum", "stopped", "canceled", "error"} {
		m.applies.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.applies, m.applyTime, m.forwarded, m.installs, m.impostors, m.changes, &collector{n: n})
	}
	return m
}

// applied counts a write given on this node.
func (m *metrics) applied(d time.Duration, err error) {
	result := "ok"
	switch {
	case err == nil:
		m.applyTime.Observe(d.Seconds())
	case errors.Is(err, ErrRejected):
		result = "rejected"
	case errors.Is(err, ErrNoQuorum):
		result = "no_quorum"
	case errors.Is(err, ErrStopped):
		result = "stopped"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		result = "canceled"
	default:
		result = "error"
	}
	m.applies.WithLabelValues(result).Inc()
}

// The descriptions of the collector's metrics.
var (
	descState = prometheus.NewDesc("sextant_raft_state",
		"Raft's state on this node: 1 for the current one (follower, candidate, leader, shutdown).", []string{"state"}, nil)
	descLeader = prometheus.NewDesc("sextant_raft_leader_known",
		"Whether this node knows a leader (1) or not (0).", nil, nil)
	descTerm = prometheus.NewDesc("sextant_raft_term",
		"The current raft term.", nil, nil)
	descCommit = prometheus.NewDesc("sextant_raft_commit_index",
		"The index of the last entry known committed.", nil, nil)
	descApplied = prometheus.NewDesc("sextant_raft_applied_index",
		"The index of the last entry the state machine applied.", nil, nil)
	descLast = prometheus.NewDesc("sextant_raft_last_index",
		"The index of the last entry in the log.", nil, nil)
	descContact = prometheus.NewDesc("sextant_raft_last_contact_seconds",
		"Seconds since this node last heard from the leader (0 on the leader; -1 when it never did).", nil, nil)
	descVoters = prometheus.NewDesc("sextant_raft_servers",
		"Servers of the latest raft configuration, by suffrage (voter, nonvoter).", []string{"suffrage"}, nil)
)

// collector reads the node's raft state at each scrape.
type collector struct{ n *Node }

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descLeader, descTerm, descCommit, descApplied, descLast, descContact, descVoters} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.Stats()
	for _, st := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		v := 0.0
		if s.State == st {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, st.String())
	}
	known := 0.0
	if s.Leader != "" {
		known = 1
	}
	contact := -1.0
	if !s.LastContact.IsZero() {
		contact = time.Since(s.LastContact).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, known)
	ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(s.Term))
	ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, float64(s.CommitIndex))
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(s.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(descLast, prometheus.GaugeValue, float64(s.LastIndex))
	ch <- prometheus.MustNewConstMetric(descContact, prometheus.GaugeValue, contact)
	ch <- prometheus.MustNewConstMetric(descVoters, prometheus.GaugeValue, float64(s.Voters), "voter")
	ch <- prometheus.MustNewConstMetric(descVoters, prometheus.GaugeValue, float64(s.Nonvoters), "nonvoter")
}
