package forward

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	writes         *prometheus.CounterVec
	received       *prometheus.CounterVec
	handoffs       *prometheus.CounterVec
	clients        *prometheus.GaugeVec
	forwardSeconds prometheus.Histogram
	resent         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_forward_writes_total",
			Help: "Writes of HTTP API clients this node took, by op (register, deregister, update, beat) and route: local (this node is responsible), forwarded (answered by the responsible node), unavailable (it could not be reached: 503).",
		}, []string{"op", "route"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_forward_received_total",
			Help: "Writes other members forwarded to this node, by op and result: ok, refused (an invalid write, or no such instance), not_responsible (this node sees another node responsible), unavailable.",
		}, []string{"op", "result"}),
		handoffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sextant_forward_handoffs_total",
			Help: "HTTP clients moved between nodes, by step: released (given up when asked), handed_over (given up by this node's own round, and taken), returned (handed over, not taken, taken back), uncertain (handed over, no answer), adopted (taken with the former owner's data), adopted_replica (taken from the replica of an owner DOWN or gone), kept (held as its own on both: this node's copy kept), rehomed (a replica re-homed to its new owner), notice_dropped.",
		}, []string{"step"}),
		clients: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sextant_forward_http_clients",
			Help: "HTTP clients with instances that this node holds as its own, by whether it is responsible for them (not_responsible: to be handed over), at the last round.",
		}, []string{"state"}),
		forwardSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sextant_forward_seconds",
			Help:    "Round trips of writes forwarded to the responsible node.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 3},
		}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sextant_forward_resent_total",
			Help: "Forwarded writes sent again because the node this one saw responsible for the client saw another node responsible (the members' views converging).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.writes, m.received, m.handoffs, m.clients, m.forwardSeconds, m.resent} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
