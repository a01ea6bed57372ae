package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/siteflip/siteflip/internal/status"
)

// metrics are the agent's Prometheus metrics, on a registry of its own.
type metrics struct {
	reg           *prometheus.Registry
	peerUp        *prometheus.GaugeVec
	probeRTT      *prometheus.HistogramVec
	controller    prometheus.Gauge
	publishErrors prometheus.Counter
	resourceUp    *prometheus.GaugeVec
	primary       *prometheus.GaugeVec
	lagBytes      *prometheus.GaugeVec
	lagSeconds    *prometheus.GaugeVec
	leaseOK       *prometheus.CounterVec
	selfFences    prometheus.Counter
	autoFailovers prometheus.Counter
	connsRefused  prometheus.Counter
	// The drills of each group, exported by the controller.
	drillSuccess  *prometheus.GaugeVec
	drillDuration *prometheus.GaugeVec
	drillRPO      *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		peerUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_peer_reachable", Help: "1 when the last probe of the peer location's agent succeeded.",
		}, []string{"peer"}),
		probeRTT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "siteflip_probe_duration_seconds", Help: "Duration of successful probes of peer agents.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"peer"}),
		controller: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "siteflip_controller", Help: "1 while this agent is the elected controller.",
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "siteflip_view_publish_errors_total", Help: "Failed publications of this location's view.",
		}),
		resourceUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_resource_up", Help: "1 when the local resource answers.",
		}, []string{"group", "resource"}),
		primary: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_resource_primary", Help: "1 when the local resource is a primary.",
		}, []string{"group", "resource"}),
		lagBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_replication_lag_bytes", Help: "Replay lag of a standby in bytes, measured by its primary.",
		}, []string{"group", "resource", "standby"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_replication_lag_seconds", Help: "Replay lag of a standby in seconds, measured by its primary.",
		}, []string{"group", "resource", "standby"}),
		leaseOK: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siteflip_serve_lease_requests_total", Help: "Serve lease requests to other locations, by outcome.",
		}, []string{"peer", "outcome"}),
		selfFences: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "siteflip_self_fences_total", Help: "Databases this agent fenced because its serve lease ran out, or because they served where their group is not active.",
		}),
		autoFailovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "siteflip_automatic_failovers_total", Help: "Automatic failovers this agent started as controller.",
		}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "siteflip_api_connections_refused_total", Help: "Connections closed at once: over the per-client or total limit.",
		}),
		drillSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_drill_last_success_timestamp_seconds", Help: "When the group's last successful drill started (Unix time); exported by the controller.",
		}, []string{"group"}),
		drillDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_drill_duration_seconds", Help: "How long the group's last drill took, from its start to its end; exported by the controller.",
		}, []string{"group"}),
		drillRPO: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_drill_rpo_seconds", Help: "The data age of the group's last drill: the RPO a failover would have had; exported by the controller while known.",
		}, []string{"group"}),
	}
	m.reg.MustRegister(m.leaseOK, m.selfFences, m.autoFailovers, m.connsRefused, m.peerUp, m.probeRTT, m.controller, m.publishErrors, m.resourceUp, m.primary, m.lagBytes, m.lagSeconds,
		m.drillSuccess, m.drillDuration, m.drillRPO,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) probe(peer string, ok bool, rtt time.Duration) {
	if ok {
		m.peerUp.WithLabelValues(peer).Set(1)
		m.probeRTT.WithLabelValues(peer).Observe(rtt.Seconds())
	} else {
		m.peerUp.WithLabelValues(peer).Set(0)
	}
}

func (m *metrics) resource(v status.ResourceView) {
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	m.resourceUp.WithLabelValues(v.Group, v.Resource).Set(b2f(v.Up))
	m.primary.WithLabelValues(v.Group, v.Resource).Set(b2f(v.Role == status.RolePrimary))
	// A standby that left (or a primary that went down) must not keep its
	// last lag on display.
	labels := prometheus.Labels{"group": v.Group, "resource": v.Resource}
	m.lagBytes.DeletePartialMatch(labels)
	m.lagSeconds.DeletePartialMatch(labels)
	for _, sb := range v.Standbys {
		if sb.LagBytes < 0 || sb.LagSeconds < 0 {
			continue // not measured yet
		}
		name := sb.Site
		if name == "" {
			name = sb.Name
		}
		m.lagBytes.WithLabelValues(v.Group, v.Resource, name).Set(float64(sb.LagBytes))
		m.lagSeconds.WithLabelValues(v.Group, v.Resource, name).Set(sb.LagSeconds)
	}
}

func (m *metrics) leaseRequest(peer string, ok bool) {
	outcome := "granted"
	if !ok {
		outcome = "failed"
	}
	m.leaseOK.WithLabelValues(peer, outcome).Inc()
}

// drill exports what is kept of a group's drills.
func (m *metrics) drill(group string, rec status.DrillRecord) {
	if s := rec.LastSuccess; s != nil {
		m.drillSuccess.WithLabelValues(group).Set(float64(s.Started.UnixMilli()) / 1000)
	}
	last := rec.Last
	if last == nil {
		return
	}
	if !last.Ended.IsZero() {
		m.drillDuration.WithLabelValues(group).Set(last.Ended.Sub(last.Started).Seconds())
	}
	if last.RPOSeconds != nil {
		m.drillRPO.WithLabelValues(group).Set(*last.RPOSeconds)
	} else {
		m.drillRPO.DeleteLabelValues(group) // the last drill did not tell
	}
}

// clearDrills removes the drill metrics, when this agent stops being the
// controller.
func (m *metrics) clearDrills() {
	m.drillSuccess.Reset()
	m.drillDuration.Reset()
	m.drillRPO.Reset()
}
