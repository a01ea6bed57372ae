package agent

import (
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/siteflip/siteflip/internal/buildinfo"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/report"
	"github.com/siteflip/siteflip/internal/status"
)

// metrics are the agent's Prometheus metrics, on a registry of its own
// (docs/metrics.md lists them). Those of the whole installation, read from
// the control plane at the scrape, are drCollector's (drmetrics.go).
type metrics struct {
	reg           *prometheus.Registry
	peerUp        *prometheus.GaugeVec
	probeRTT      *prometheus.HistogramVec
	clockOffset   *prometheus.GaugeVec
	controller    prometheus.Gauge
	publishErrors prometheus.Counter
	resourceUp    *prometheus.GaugeVec
	primary       *prometheus.GaugeVec
	leaseOK       *prometheus.CounterVec
	selfFences    prometheus.Counter
	autoFailovers prometheus.Counter
	connsRefused  prometheus.Counter
	// The outside services this site's groups require (dependencies.go).
	dependencyUp    *prometheus.GaugeVec
	dependencyProbe *prometheus.GaugeVec
	// The drills of each group, exported by the controller.
	drillSuccess  *prometheus.GaugeVec
	drillDuration *prometheus.GaugeVec
	drillRPO      *prometheus.GaugeVec
	// The runs this agent drove to their end as controller.
	runs        *prometheus.CounterVec
	runDuration *prometheus.HistogramVec
	// The last ended run of each group and action, from the run history;
	// exported by the controller.
	lastRunEnd       *prometheus.GaugeVec
	lastRunSucceeded *prometheus.GaugeVec
	lastRunRTO       *prometheus.GaugeVec
	lastRunLoss      *prometheus.GaugeVec
	lastRunLost      *prometheus.GaugeVec
	// lastMu guards last, the runs the last-run metrics show.
	lastMu sync.Mutex
	last   map[lastRunKey]lastRunRef
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
		clockOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_peer_clock_offset_seconds", Help: "How far the peer agent's clock is ahead of this one's (negative: behind), estimated from the last successful probe.",
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
		dependencyUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_dependency_up", Help: "1 when this location reaches the outside service the group requires (after two failed probes in a row: 0).",
		}, []string{"group", "dependency", "site"}),
		dependencyProbe: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_dependency_probe_seconds", Help: "How long this location's last probe of the outside service the group requires took, answered or not.",
		}, []string{"group", "dependency", "site"}),
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
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "siteflip_runs_total", Help: "Runs this agent drove to their end as controller, by action and outcome (succeeded, failed, rolled-back); sum over the agents for the installation's.",
		}, []string{"action", "outcome"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "siteflip_run_duration_seconds", Help: "Duration of the runs this agent drove to their end as controller, from their start to their end.",
			Buckets: []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600},
		}, []string{"action"}),
		lastRunEnd: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_last_run_end_timestamp_seconds", Help: "When the group's last ended run of the action ended (Unix time); exported by the controller.",
		}, []string{"group", "action"}),
		lastRunSucceeded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_last_run_succeeded", Help: "1 when the group's last ended run of the action succeeded, 0 when it failed or was rolled back; exported by the controller.",
		}, []string{"group", "action"}),
		lastRunRTO: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_last_run_rto_seconds", Help: "Measured RTO of the group's last ended run of the action, as its report gives it; no series when it has none; exported by the controller.",
		}, []string{"group", "action"}),
		lastRunLoss: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_last_run_data_loss_seconds", Help: "What the group's last ended run of the action lost, as a time (a drill: the data age of its copies), as its report gives it; no series while unknown; exported by the controller.",
		}, []string{"group", "action"}),
		lastRunLost: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "siteflip_last_run_data_lost", Help: "1 when the group's last ended run of the action is known to have lost data, 0 when known to have lost none; no series while unknown; exported by the controller.",
		}, []string{"group", "action"}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "siteflip_build_info", Help: "Always 1: the agent's version and the Go version it was built with.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(buildinfo.String(), runtime.Version()).Set(1)
	m.reg.MustRegister(m.leaseOK, m.selfFences, m.autoFailovers, m.connsRefused, m.peerUp, m.probeRTT, m.clockOffset, m.controller, m.publishErrors, m.resourceUp, m.primary,
		m.dependencyUp, m.dependencyProbe,
		m.drillSuccess, m.drillDuration, m.drillRPO,
		m.runs, m.runDuration, m.lastRunEnd, m.lastRunSucceeded, m.lastRunRTO, m.lastRunLoss, m.lastRunLost, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watch adds the installation's metrics, read at the scrape.
func (m *metrics) watch(c *drCollector) { m.reg.MustRegister(c) }

// clock exports a peer's clock offset (presence's estimate, in ms).
func (m *metrics) clock(peer string, offsetMs *float64) {
	if offsetMs != nil {
		m.clockOffset.WithLabelValues(peer).Set(*offsetMs / 1000)
	}
}

func (m *metrics) probe(peer string, ok bool, rtt time.Duration) {
	if ok {
		m.peerUp.WithLabelValues(peer).Set(1)
		m.probeRTT.WithLabelValues(peer).Observe(rtt.Seconds())
	} else {
		m.peerUp.WithLabelValues(peer).Set(0)
	}
}

// resource exports what this agent observed of a local resource. The
// standbys' lags are the installation's metrics: every agent exports them
// from the view the primary's agent publishes (drmetrics.go).
func (m *metrics) resource(v status.ResourceView) {
	m.resourceUp.WithLabelValues(v.Group, v.Resource).Set(b2f(v.Up))
	m.primary.WithLabelValues(v.Group, v.Resource).Set(b2f(v.Role == status.RolePrimary))
}

// dependency exports this site's last probe of a group's dependency.
func (m *metrics) dependency(group, dep, site string, up bool, took time.Duration) {
	m.dependencyUp.WithLabelValues(group, dep, site).Set(b2f(up))
	m.dependencyProbe.WithLabelValues(group, dep, site).Set(took.Seconds())
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

// runEnded counts a run this agent, as controller, drove to its end.
func (m *metrics) runEnded(run plan.Run) {
	action := string(run.Plan.Action)
	m.runs.WithLabelValues(action, run.State).Inc()
	if !run.Ended.IsZero() && !run.Ended.Before(run.Started) {
		m.runDuration.WithLabelValues(action).Observe(run.Ended.Sub(run.Started).Seconds())
	}
}

// lastRunKey is a group and an action.
type lastRunKey struct{ group, action string }

// lastRunRef is the run the last-run metrics of a group and action show.
type lastRunRef struct {
	id    string
	ended time.Time
	// lossKnown: the run says whether it lost data (a failover does once
	// the rejoin of its old site told).
	lossKnown bool
}

// lastRuns exports the last ended run of each group and action in runs,
// the run history, instead of what was exported.
func (m *metrics) lastRuns(t *config.Topology, runs []plan.Run) {
	m.clearLastRuns()
	for _, r := range runs {
		m.lastRun(t, r)
	}
}

// lastRun exports r as the last run of its group and action, unless it
// ended before the run exported.
func (m *metrics) lastRun(t *config.Topology, r plan.Run) {
	g, ok := t.Group(r.Group)
	if !ok || !r.Done() {
		return // no longer in the topology, or not ended
	}
	m.lastMu.Lock()
	defer m.lastMu.Unlock()
	k := lastRunKey{r.Group, string(r.Plan.Action)}
	if prev, ok := m.last[k]; ok && r.Ended.Before(prev.ended) {
		return
	}
	rep := report.Build(r, g)
	labels := []string{k.group, k.action}
	m.lastRunEnd.WithLabelValues(labels...).Set(unixSeconds(r.Ended))
	m.lastRunSucceeded.WithLabelValues(labels...).Set(b2f(r.State == plan.RunSucceeded))
	for _, v := range []*prometheus.GaugeVec{m.lastRunRTO, m.lastRunLoss, m.lastRunLost} {
		v.DeleteLabelValues(labels...)
	}
	if rep.RTO.Known {
		m.lastRunRTO.WithLabelValues(labels...).Set(rep.RTO.D.Seconds())
	}
	if rep.RPO.Known {
		m.lastRunLoss.WithLabelValues(labels...).Set(rep.RPO.D.Seconds())
	}
	known := true
	switch {
	case r.DataLost != "":
		m.lastRunLost.WithLabelValues(labels...).Set(1)
	case rep.RPO.Known && rep.RPO.D == 0:
		m.lastRunLost.WithLabelValues(labels...).Set(0)
	default:
		known = false
	}
	if m.last == nil {
		m.last = map[lastRunKey]lastRunRef{}
	}
	m.last[k] = lastRunRef{id: r.ID, ended: r.Ended, lossKnown: known}
}

// lossPending returns the group's last failover while what it lost is
// not known: a rejoin of its old site may tell.
func (m *metrics) lossPending(group string) (string, bool) {
	m.lastMu.Lock()
	defer m.lastMu.Unlock()
	ref, ok := m.last[lastRunKey{group, string(plan.Failover)}]
	return ref.id, ok && !ref.lossKnown
}

// clearLastRuns removes the last runs' metrics when this agent stops
// being the controller: the next one exports them.
func (m *metrics) clearLastRuns() {
	m.lastMu.Lock()
	defer m.lastMu.Unlock()
	for _, v := range []*prometheus.GaugeVec{m.lastRunEnd, m.lastRunSucceeded, m.lastRunRTO, m.lastRunLoss, m.lastRunLost} {
		v.Reset()
	}
	m.last = nil
}
