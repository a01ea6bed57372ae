package agent

import (
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/pki"
	"github.com/siteflip/siteflip/internal/status"
)

// The metrics of the whole installation (docs/metrics.md). Every agent
// exports them from the shared view, the control plane, as it reads it at
// the scrape: the groups' states, active sites and epochs, what the
// primaries report of their standbys, who sees whom. An agent that cannot
// read the control plane (no quorum where it stands) exports only
// siteflip_control_plane_up 0 among them: a stale picture would mislead.

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descPlaneUp = desc("siteflip_control_plane_up",
		"1 when this agent read the control plane at the scrape; 0 when it could not (no quorum where it stands): then it exports none of the installation's metrics.")
	descElected = desc("siteflip_elected_controller",
		"1 for the location the control plane names the elected controller; no series while none is.", "site")

	descSiteUp = desc("siteflip_site_up",
		"1 when the other reporting locations reach the location's agent (status: up).", "site")
	descSiteReporting = desc("siteflip_site_reporting",
		"1 while the location's agent publishes its view in the control plane.", "site")
	descSiteLost = desc("siteflip_site_lost",
		"1 when every other location declared the location lost (its serve lease ran out where they stand).", "site")
	descSiteSees = desc("siteflip_site_sees",
		"1 when the location's own view says its agent reaches the peer's agent; no series while the location does not report.", "site", "peer")

	descGroupState = desc("siteflip_group_state",
		"1 for the group's current state, 0 for the others (initializing, protected, unprotected, unreachable, down, split-brain, needs-decision, failing-over).", "group", "state")
	descGroupActive = desc("siteflip_group_active",
		"1 for the group's active site, 0 for its other sites; all 0 before the group is adopted.", "group", "site")
	descGroupEpoch = desc("siteflip_group_epoch",
		"The group's epoch: it grows at every change of active site.", "group")
	descGroupMaxLoss = desc("siteflip_group_max_data_loss_seconds",
		"The group's max_data_loss: the most an automatic failover may lose.", "group")
	descGroupRTOTarget = desc("siteflip_group_rto_target_seconds",
		"The group's rto_target.", "group")
	descGroupProblems = desc("siteflip_group_problems",
		"How many problems status lists for the group.", "group")
	descGroupRunning = desc("siteflip_group_run_in_progress",
		"1 while a run (not a drill) is in progress on the group.", "group")
	descGroupDrilling = desc("siteflip_group_drill_in_progress",
		"1 while a drill is in progress on the group.", "group")
	descGroupPaused = desc("siteflip_group_paused",
		"1 while the group is paused: no automatic failover.", "group")
	descGroupPausedSince = desc("siteflip_group_paused_since_timestamp_seconds",
		"When the group was paused (Unix time); no series while it is not.", "group")
	descDrillMissed = desc("siteflip_group_drill_missed_window_timestamp_seconds",
		"When the last window of the group's drill schedule began, if it passed with a drill due and none started (Unix time); no series otherwise.", "group")
	descGroupReadiness = desc("siteflip_group_readiness",
		"1 for the group's readiness verdict in force, 0 for the others (ready, at_risk, not_ready).", "group", "verdict")
	descGroupReasons = desc("siteflip_group_readiness_reasons",
		"How many readiness reasons of each severity the group has (not_ready, at_risk, note).", "group", "severity")
	descDrillMaxAge = desc("siteflip_group_drill_max_age_seconds",
		"How old the group's last successful drill may be (its schedule's max_age); only groups with a drill schedule.", "group")

	descLagSeconds = desc("siteflip_replication_lag_seconds",
		"Replay lag of a standby in seconds, as its primary at the active site reports it.", "group", "resource", "standby")
	descLagBytes = desc("siteflip_replication_lag_bytes",
		"Replay lag of a standby in bytes, as its primary at the active site reports it.", "group", "resource", "standby")
	descStreaming = desc("siteflip_replication_streaming",
		"1 when the standby reports itself a standby that streams from its primary.", "group", "resource", "standby")
	descLastKnownLag = desc("siteflip_replication_last_known_lag_seconds",
		"The standby's lag as the controller last recorded it in this epoch: what a failover would lose, still known when the primary's site is gone.", "group", "resource", "standby")
	descFailoverReady = desc("siteflip_replication_failover_ready",
		"1 when a failover to the standby would go ahead now within max_data_loss.", "group", "resource", "standby")
	descSync = desc("siteflip_replication_sync_state",
		"For a synchronous resource, 1 for its replication mode in the group's current epoch (sync: the standby confirms every commit; degraded: commits no longer wait for it), 0 for the other.", "group", "resource", "state")

	descLeaseLeft = desc("siteflip_serve_lease_remaining_seconds",
		"How long this location's serve lease still runs: its primaries are fenced when it reaches 0.")
	descCertExpiry = desc("siteflip_certificate_expiry_timestamp_seconds",
		"When this location's own certificate expires (Unix time).", "site")
)

// groupStates are the states siteflip_group_state lists for every group.
var groupStates = []string{
	status.StateInitializing, status.StateProtected, status.StateUnprotected, status.StateUnreachable,
	status.StateDown, status.StateSplitBrain, status.StateNeedsDecision, status.StateFailingOver,
	status.StateSwitchingOver, status.StateFailingBack, status.StateReprotecting,
}

// readinessVerdicts are the verdicts siteflip_group_readiness lists for
// every group.
var readinessVerdicts = []string{status.Ready, status.AtRisk, status.NotReady}

// pauseInfo is a paused group: automatic failover is off for it.
type pauseInfo struct {
	group string
	since time.Time
}

// pausedGroups lists the paused groups of snap (`siteflip pause`, kept in
// the control plane), in no particular order.
func pausedGroups(snap status.Snapshot) []pauseInfo {
	var out []pauseInfo
	for g, p := range snap.Paused {
		out = append(out, pauseInfo{group: g, since: p.At})
	}
	return out
}

// drCollector exports the installation's metrics, read from the control
// plane at the scrape, and this location's serve lease and certificate.
type drCollector struct {
	topo *config.Topology
	site string
	log  *slog.Logger
	// state is the installation as the agent's shared reader last read
	// it (stateReader): two Prometheus servers scraping every agent read
	// the control plane once, not twice.
	state func() (status.Snapshot, status.Status, error)
	// leaseLeft is how long this location's serve lease still runs; ok
	// is false when a force lets it serve without one.
	leaseLeft func() (left time.Duration, ok bool)
	// certFile is this location's certificate; "" without TLS.
	certFile string
	paused   func(status.Snapshot) []pauseInfo

	mu sync.Mutex
	// certErr is the last error reading the certificate, logged once.
	certErr string
}

// newDRCollector is the collector of the agent whose parts are given.
func newDRCollector(b *base, states *stateReader, sl *serveLease) *drCollector {
	c := &drCollector{
		topo: b.topo, site: b.site.Name, log: b.log,
		state: states.state,
		leaseLeft: func() (time.Duration, bool) {
			if sl.forced != nil && sl.forced() {
				return 0, false
			}
			sl.mu.Lock()
			defer sl.mu.Unlock()
			return sl.lease.Left(time.Now()), true
		},
		paused: pausedGroups,
	}
	if b.topo.TLSEnabled() {
		c.certFile = b.site.TLS.CertFile
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *drCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descPlaneUp, descElected, descSiteUp, descSiteReporting, descSiteLost, descSiteSees,
		descGroupState, descGroupActive, descGroupEpoch, descGroupMaxLoss, descGroupRTOTarget, descGroupProblems,
		descGroupRunning, descGroupDrilling, descGroupPaused, descGroupPausedSince, descGroupReadiness, descGroupReasons, descDrillMaxAge, descDrillMissed,
		descLagSeconds, descLagBytes, descStreaming, descLastKnownLag, descFailoverReady, descSync,
		descLeaseLeft, descCertExpiry,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *drCollector) Collect(ch chan<- prometheus.Metric) {
	if c.leaseLeft != nil {
		if left, ok := c.leaseLeft(); ok {
			ch <- constGauge(descLeaseLeft, max(0, left.Seconds()))
		}
	}
	if c.certFile != "" {
		na, err := pki.NotAfter(c.certFile)
		if err == nil {
			ch <- constGauge(descCertExpiry, unixSeconds(na), c.site)
		}
		c.certError(err)
	}
	snap, st, err := c.state()
	if err != nil {
		ch <- constGauge(descPlaneUp, 0)
		return
	}
	ch <- constGauge(descPlaneUp, 1)
	collectState(ch, c.topo, st, c.paused(snap))
}

// certError logs a failure to read the certificate once, not at every
// scrape, and its end.
func (c *drCollector) certError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil && err.Error() != c.certErr:
		c.log.Warn("cannot read this location's certificate: siteflip_certificate_expiry_timestamp_seconds is not exported", "error", err)
		c.certErr = err.Error()
	case err == nil && c.certErr != "":
		c.log.Info("this location's certificate can be read again", "file", c.certFile)
		c.certErr = ""
	}
}

// collectState sends the installation's metrics from st, the status
// assembled from the control plane, and the paused groups.
func collectState(ch chan<- prometheus.Metric, t *config.Topology, st status.Status, paused []pauseInfo) {
	if st.Controller != "" {
		ch <- constGauge(descElected, 1, st.Controller)
	}
	for _, s := range st.Sites {
		ch <- constGauge(descSiteUp, b2f(s.Up), s.Name)
		ch <- constGauge(descSiteReporting, b2f(s.Reporting), s.Name)
		ch <- constGauge(descSiteLost, b2f(s.Lost), s.Name)
		for _, peer := range slices.Sorted(maps.Keys(s.Sees)) {
			ch <- constGauge(descSiteSees, b2f(s.Sees[peer]), s.Name, peer)
		}
	}
	pausedSince := map[string]time.Time{}
	for _, p := range paused {
		pausedSince[p.group] = p.since
	}
	for _, gs := range st.Groups {
		g, ok := t.Group(gs.Name)
		if !ok {
			continue
		}
		collectGroup(ch, g, gs)
		since, isPaused := pausedSince[g.Name]
		ch <- constGauge(descGroupPaused, b2f(isPaused), g.Name)
		if isPaused && !since.IsZero() {
			ch <- constGauge(descGroupPausedSince, unixSeconds(since), g.Name)
		}
	}
}

// collectGroup sends one group's metrics.
func collectGroup(ch chan<- prometheus.Metric, g *config.Group, gs status.GroupStatus) {
	known := slices.Contains(groupStates, gs.State)
	for _, s := range groupStates {
		ch <- constGauge(descGroupState, b2f(s == gs.State), g.Name, s)
	}
	if !known && gs.State != "" {
		// A state added after this list: shown rather than lost.
		ch <- constGauge(descGroupState, 1, g.Name, gs.State)
	}
	for _, s := range g.Sites {
		ch <- constGauge(descGroupActive, b2f(s == gs.ActiveSite), g.Name, s)
	}
	if gs.Epoch > 0 {
		ch <- constGauge(descGroupEpoch, float64(gs.Epoch), g.Name)
	}
	if g.MaxDataLoss != nil {
		ch <- constGauge(descGroupMaxLoss, g.MaxDataLoss.D().Seconds(), g.Name)
	}
	if g.RTOTarget != nil {
		ch <- constGauge(descGroupRTOTarget, g.RTOTarget.D().Seconds(), g.Name)
	}
	ch <- constGauge(descGroupProblems, float64(len(gs.Problems)), g.Name)
	ch <- constGauge(descGroupRunning, b2f(gs.Run != ""), g.Name)
	ch <- constGauge(descGroupDrilling, b2f(gs.Drill != ""), g.Name)
	if r := gs.Readiness; r != nil {
		count := map[string]int{}
		for _, x := range r.Reasons {
			count[x.Severity]++
		}
		for _, v := range readinessVerdicts {
			ch <- constGauge(descGroupReadiness, b2f(v == r.Verdict), g.Name, v)
		}
		for _, sev := range []string{status.NotReady, status.AtRisk, status.SeverityNote} {
			ch <- constGauge(descGroupReasons, float64(count[sev]), g.Name, sev)
		}
	}
	if g.Drill != nil && g.Drill.MaxAge != nil {
		ch <- constGauge(descDrillMaxAge, g.Drill.MaxAge.D().Seconds(), g.Name)
	}
	if d := gs.Drills; d != nil && !d.Missed.IsZero() {
		ch <- constGauge(descDrillMissed, unixSeconds(d.Missed), g.Name)
	}
	if gs.ActiveSite == "" {
		return // not adopted: no standby yet
	}
	for _, rs := range gs.Resources {
		if rs.Class != string(config.ClassData) {
			continue
		}
		if sr := rs.Synchronous; sr != nil && sr.Epoch == gs.Epoch {
			for _, mode := range []string{status.SyncOn, status.SyncDegraded} {
				ch <- constGauge(descSync, b2f(sr.State == mode), g.Name, rs.Name, mode)
			}
		}
		for _, rss := range rs.Sites {
			if rss.Site == gs.ActiveSite {
				continue
			}
			labels := []string{g.Name, rs.Name, rss.Site}
			ch <- constGauge(descStreaming, b2f(rss.Role == status.RoleStandby && rss.Streaming), labels...)
			if rss.LagSeconds != nil {
				ch <- constGauge(descLagSeconds, *rss.LagSeconds, labels...)
			}
			if rss.LagBytes != nil {
				ch <- constGauge(descLagBytes, float64(*rss.LagBytes), labels...)
			}
			if l := rss.LastKnownLag; l != nil && l.Epoch == gs.Epoch {
				ch <- constGauge(descLastKnownLag, l.Seconds, labels...)
			}
			if rss.FailoverReady != nil {
				ch <- constGauge(descFailoverReady, b2f(*rss.FailoverReady), labels...)
			}
		}
	}
}

func constGauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unixSeconds is t as Unix time in seconds, to the millisecond.
func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }
