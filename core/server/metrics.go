package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sextantd/sextant/core/cluster"

	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/notify"
)

// statsCollector reports the registry's counts, the event queues' depths and
// the cluster's members by state when scraped.
type statsCollector struct {
	registry *naming.Registry
	bus      *notify.Bus
	cluster  *cluster.Cluster

	clients, services, instances, subscribers, queued, members *prometheus.Desc
}

func newStatsCollector(r *naming.Registry, bus *notify.Bus, c *cluster.Cluster) *statsCollector {
	return &statsCollector{
		registry:    r,
		bus:         bus,
		cluster:     c,
		members:     prometheus.NewDesc("sextant_cluster_members", "Members of the cluster, this node included, by state.", []string{"state"}, nil),
		clients:     prometheus.NewDesc("sextant_clients", "Clients in the registry (one per connection).", nil, nil),
		services:    prometheus.NewDesc("sextant_services", "Services with at least one instance.", nil, nil),
		instances:   prometheus.NewDesc("sextant_instances", "Registered instances.", nil, nil),
		subscribers: prometheus.NewDesc("sextant_subscribers", "Subscriptions (one per client and service).", nil, nil),
		queued:      prometheus.NewDesc("sextant_event_queue_depth", "Events waiting in the event bus, by queue.", []string{"queue"}, nil),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.clients, c.services, c.instances, c.subscribers, c.queued, c.members} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.registry.Stats()
	ch <- prometheus.MustNewConstMetric(c.clients, prometheus.GaugeValue, float64(st.Clients))
	ch <- prometheus.MustNewConstMetric(c.services, prometheus.GaugeValue, float64(st.Services))
	ch <- prometheus.MustNewConstMetric(c.instances, prometheus.GaugeValue, float64(st.Instances))
	ch <- prometheus.MustNewConstMetric(c.subscribers, prometheus.GaugeValue, float64(st.Subscribers))
	for queue, depth := range c.bus.QueueDepths() {
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(depth), queue)
	}
	states := map[cluster.State]int{cluster.Up: 0, cluster.Suspicious: 0, cluster.Down: 0}
	for _, m := range c.cluster.Members() {
		states[m.State]++
	}
	for state, n := range states {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(n), string(state))
	}
}
