package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/siteflip/siteflip/internal/buildinfo"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/pki"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// metricsWorld is an installation in every kind of state the metrics
// show, as the control plane holds it: webshop (PostgreSQL at brussels
// and antwerp, active at brussels) protected, paused, with a drill
// schedule; billing (synchronous, active at antwerp) unprotected, its
// standby at brussels not streaming, in a run; intranet not adopted yet.
// frankfurt, the witness, is the controller.
func metricsWorld(t *testing.T) (*config.Topology, status.Snapshot) {
	topo, snap := scheduleWorld(t)
	topo.Groups = append(topo.Groups,
		config.Group{
			Name: "billing", PreferredSite: "antwerp", Policy: config.PolicyAutomatic, Sites: []string{"brussels", "antwerp"},
			MaxDataLoss: new(config.Duration(0)), RTOTarget: new(config.Duration(time.Minute)),
			Resources: []config.Resource{{Name: "db", Type: "postgres", Data: true, Class: config.ClassData, Synchronous: true}},
		},
		config.Group{
			Name: "intranet", PreferredSite: "brussels", Policy: config.PolicyManual, Sites: []string{"brussels", "antwerp"},
			MaxDataLoss: new(config.Duration(time.Minute)), RTOTarget: new(config.Duration(time.Minute)),
			Resources: []config.Resource{{Name: "db", Type: "postgres", Data: true, Class: config.ClassData}},
		},
	)
	now := time.Now().UTC()
	for site, v := range snap.Views {
		v.PublishedAt, v.StartedAt = now, now.Add(-time.Hour)
		snap.Views[site] = v
	}
	// frankfurt no longer reaches antwerp; the others still do.
	fv := snap.Views["frankfurt"]
	fv.Peers["antwerp"] = status.PeerView{Reachable: false, Since: now.Add(-time.Minute), Error: "timeout"}
	billing := func(role string, streaming bool) status.ResourceView {
		rv := status.ResourceView{Group: "billing", Resource: "db", Type: "postgres", Up: true, Role: role, Timeline: 2, Streaming: streaming, ObservedAt: now}
		if role == status.RolePrimary {
			rv.Standbys = []status.StandbyView{{Name: "brussels", Site: "brussels", State: "catchup", SyncState: "sync", LagBytes: 4096, LagSeconds: 2.5}}
		}
		return rv
	}
	snap.Views["brussels"].Resources["billing/db"] = billing(status.RoleStandby, false)
	snap.Views["antwerp"].Resources["billing/db"] = billing(status.RolePrimary, false)
	snap.Records["billing"] = status.Record{Group: "billing", ActiveSite: "antwerp", Epoch: 2}
	snap.Sync = map[string]map[string]status.SyncRecord{"billing": {"db": {Group: "billing", Resource: "db", Epoch: 2, State: status.SyncDegraded, Since: now}}}
	snap.Running = map[string]string{"billing": "20261205T060000-billing-reprotect-0a0b"}
	snap.Controller = &status.Controller{Site: "frankfurt", Term: 9, Since: now.Add(-time.Hour)}
	// Metrics read the lag record of the current epoch.
	snap.Lags["webshop"]["db"]["antwerp"] = status.Lag{Seconds: 0.001, Bytes: 128, Epoch: 3, MeasuredAt: now, SeenAt: now, Streaming: true}
	return topo, snap
}

// metricsHistory is a run history: a failover of webshop that lost data,
// the reprotect that found it, a switchover that failed, a drill.
func metricsHistory(t0 time.Time) []plan.Run {
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	failover := plan.Run{ID: "f1", Group: "webshop", State: plan.RunSucceeded, Started: at(0), Ended: at(9), WritableAt: at(4),
		Plan: plan.Plan{Group: "webshop", Action: plan.Failover, From: "brussels", To: "antwerp",
			Steps: []plan.Step{{ID: "activate", Kind: plan.Activate}}},
		Steps:    []plan.StepState{{State: plan.StepDone, Started: at(3), Ended: at(4)}},
		DataLost: "db: 8192 bytes of WAL existed only there", DataLostBy: "r1"}
	reprotect := plan.Run{ID: "r1", Group: "webshop", State: plan.RunSucceeded, Started: at(20), Ended: at(50),
		Plan: plan.Plan{Group: "webshop", Action: plan.Reprotect, From: "antwerp", To: "antwerp",
			Steps: []plan.Step{{ID: "rejoin:db@brussels", Kind: plan.Rejoin, Resource: "db", Site: "brussels"}}},
		Steps: []plan.StepState{{State: plan.StepDone, Started: at(20), Ended: at(50)}}}
	switchover := plan.Run{ID: "s1", Group: "webshop", State: plan.RunRolledBack, Started: at(60), Ended: at(70),
		Plan: plan.Plan{Group: "webshop", Action: plan.Switchover, From: "antwerp", To: "brussels"}, Error: "step promote:db@brussels failed"}
	drill := plan.Run{ID: "d1", Group: "webshop", State: plan.RunSucceeded, Started: at(100), Ended: at(130),
		Plan: plan.Plan{Group: "webshop", Action: plan.Drill, To: "antwerp",
			Steps: []plan.Step{{ID: "clone:db@antwerp", Kind: plan.Clone, Resource: "db", Site: "antwerp"}, {ID: "start:db@antwerp", Kind: plan.Start, Resource: "db", Site: "antwerp"}}},
		Steps: []plan.StepState{{State: plan.StepDone, Started: at(100), Ended: at(110), Output: map[string]string{"data_age": "1.5"}},
			{State: plan.StepDone, Started: at(110), Ended: at(112)}}}
	return []plan.Run{failover, reprotect, switchover, drill}
}

// world is the metrics of one agent of metricsWorld, built as the agent
// builds them, with fakes for the control plane, the lease and the
// history; snapErr, when set, is the control plane's answer.
type world struct {
	topo    *config.Topology
	snap    status.Snapshot
	snapErr error
	m       *metrics
	c       *drCollector
	states  *stateReader
	cert    string
	paused  []pauseInfo
	forced  bool
}

func newWorld(t *testing.T, site string) *world {
	t.Helper()
	topo, snap := metricsWorld(t)
	files, err := pki.GenerateLab(t.TempDir(), "test-ca", []pki.Identity{{Name: site}})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{topo: topo, snap: snap, m: newMetrics(), cert: files[0].Cert}
	s, _ := topo.Site(site)
	w.paused = []pauseInfo{{group: "webshop", since: time.Unix(1764900000, 0)}}
	w.states = newStateReader(func(context.Context) (status.Snapshot, status.Status, error) {
		if w.snapErr != nil {
			return status.Snapshot{}, status.Status{}, w.snapErr
		}
		return w.snap, status.Assemble(topo, w.snap, s.Name, time.Now().UTC()), nil
	})
	w.c = &drCollector{
		topo: topo, site: site, log: slog.New(slog.NewTextHandler(io.Discard, nil)), certFile: w.cert,
		state:     w.states.state,
		leaseLeft: func() (time.Duration, bool) { return 1500 * time.Millisecond, !w.forced },
		paused:    func(status.Snapshot) []pauseInfo { return w.paused },
	}
	w.m.watch(w.c)
	return w
}

// fill gives every metric of the agent itself a series, as a controller
// that ran for a while would have.
func (w *world) fill() {
	m := w.m
	m.probe("antwerp", true, 2*time.Millisecond)
	m.probe("frankfurt", false, 0)
	offset := 4.0 // ms
	m.clock("antwerp", &offset)
	m.controller.Set(1)
	m.publishErrors.Inc()
	m.connsRefused.Inc()
	m.selfFences.Inc()
	m.autoFailovers.Inc()
	m.leaseRequest("antwerp", true)
	m.leaseRequest("frankfurt", false)
	m.resource(status.ResourceView{Group: "webshop", Resource: "db", Up: true, Role: status.RolePrimary})
	m.dependency("webshop", "ldap", "brussels", true, 3*time.Millisecond)
	hist := metricsHistory(time.Unix(1764900000, 0).UTC())
	rpo := 1.5
	m.drill("webshop", status.DrillRecord{}.With(status.DrillResult{Run: "d1", Started: hist[3].Started, Ended: hist[3].Ended, Result: "succeeded", RPOSeconds: &rpo}))
	for _, r := range hist {
		m.runEnded(r)
	}
	m.lastRuns(w.topo, hist)
}

// scrape gathers the agent's registry.
func scrape(t *testing.T, reg prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return mfs
}

// exposition is the text /metrics serves.
func exposition(t *testing.T, mfs []*dto.MetricFamily) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// value is the value of the series of name with exactly labels; ok is
// false when there is none.
func value(mfs []*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func seriesCount(mfs []*dto.MetricFamily, name string) int {
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// The agent's /metrics, in a representative state, passes promlint: the
// names, units, help texts and types follow Prometheus's conventions.
func TestMetricsLint(t *testing.T) {
	w := newWorld(t, "brussels")
	w.fill()
	mfs := scrape(t, w.m.reg)
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	// The lint saw the metrics it is meant to judge.
	for _, name := range []string{"siteflip_group_state", "siteflip_replication_lag_seconds", "siteflip_runs_total", "siteflip_run_duration_seconds",
		"siteflip_last_run_rto_seconds", "siteflip_certificate_expiry_timestamp_seconds", "siteflip_group_paused_since_timestamp_seconds"} {
		if seriesCount(mfs, name) == 0 {
			t.Errorf("%s has no series in the representative state", name)
		}
	}
}

// `promtool check metrics` finds nothing to say about the exposition.
// CI installs promtool (Debian's prometheus package); without it the test
// skips, saying so.
func TestMetricsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("SKIPPED: promtool is not on PATH, so `promtool check metrics` did not run; install Debian's prometheus package (scripts/deps.sh does, as root)")
	}
	w := newWorld(t, "brussels")
	w.fill()
	cmd := exec.CommandContext(t.Context(), promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition(t, scrape(t, w.m.reg)))
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// Every agent exports the installation as the control plane holds it:
// the states, the active sites, the standbys' lags, who sees whom; and
// its own lease, certificate and version.
func TestMetricsOfTheInstallation(t *testing.T) {
	for _, site := range []string{"brussels", "antwerp", "frankfurt"} {
		t.Run(site, func(t *testing.T) {
			w := newWorld(t, site)
			mfs := scrape(t, w.m.reg)
			notAfter, err := pki.NotAfter(w.cert)
			if err != nil {
				t.Fatal(err)
			}
			type L = map[string]string
			for _, c := range []struct {
				name   string
				labels L
				want   float64
			}{
				{"siteflip_control_plane_up", L{}, 1},
				{"siteflip_elected_controller", L{"site": "frankfurt"}, 1},
				{"siteflip_site_up", L{"site": "antwerp"}, 1},
				{"siteflip_site_reporting", L{"site": "frankfurt"}, 1},
				{"siteflip_site_lost", L{"site": "antwerp"}, 0},
				{"siteflip_site_sees", L{"site": "frankfurt", "peer": "antwerp"}, 0},
				{"siteflip_site_sees", L{"site": "brussels", "peer": "antwerp"}, 1},
				{"siteflip_group_state", L{"group": "webshop", "state": "protected"}, 1},
				{"siteflip_group_state", L{"group": "webshop", "state": "unprotected"}, 0},
				{"siteflip_group_state", L{"group": "billing", "state": "reprotecting"}, 1},
				{"siteflip_group_state", L{"group": "billing", "state": "unprotected"}, 0},
				{"siteflip_group_state", L{"group": "intranet", "state": "initializing"}, 1},
				{"siteflip_group_active", L{"group": "webshop", "site": "brussels"}, 1},
				{"siteflip_group_active", L{"group": "webshop", "site": "antwerp"}, 0},
				{"siteflip_group_active", L{"group": "billing", "site": "antwerp"}, 1},
				{"siteflip_group_active", L{"group": "intranet", "site": "brussels"}, 0},
				{"siteflip_group_epoch", L{"group": "webshop"}, 3},
				{"siteflip_group_max_data_loss_seconds", L{"group": "webshop"}, 5},
				{"siteflip_group_max_data_loss_seconds", L{"group": "billing"}, 0},
				{"siteflip_group_rto_target_seconds", L{"group": "billing"}, 60},
				{"siteflip_group_run_in_progress", L{"group": "billing"}, 1},
				{"siteflip_group_run_in_progress", L{"group": "webshop"}, 0},
				{"siteflip_group_drill_max_age_seconds", L{"group": "webshop"}, 336 * 3600},
				{"siteflip_group_paused", L{"group": "webshop"}, 1},
				{"siteflip_group_paused", L{"group": "billing"}, 0},
				{"siteflip_group_paused_since_timestamp_seconds", L{"group": "webshop"}, 1764900000},
				{"siteflip_group_readiness", L{"group": "webshop", "verdict": "at_risk"}, 1},
				{"siteflip_group_readiness", L{"group": "webshop", "verdict": "ready"}, 0},
				{"siteflip_group_readiness", L{"group": "webshop", "verdict": "not_ready"}, 0},
				{"siteflip_group_readiness", L{"group": "intranet", "verdict": "not_ready"}, 1},
				{"siteflip_group_readiness_reasons", L{"group": "intranet", "severity": "not_ready"}, 1},
				{"siteflip_group_readiness_reasons", L{"group": "webshop", "severity": "note"}, 0},
				{"siteflip_replication_lag_seconds", L{"group": "webshop", "resource": "db", "standby": "antwerp"}, 0.001},
				{"siteflip_replication_lag_bytes", L{"group": "billing", "resource": "db", "standby": "brussels"}, 4096},
				{"siteflip_replication_lag_seconds", L{"group": "billing", "resource": "db", "standby": "brussels"}, 2.5},
				{"siteflip_replication_streaming", L{"group": "webshop", "resource": "db", "standby": "antwerp"}, 1},
				{"siteflip_replication_streaming", L{"group": "billing", "resource": "db", "standby": "brussels"}, 0},
				{"siteflip_replication_last_known_lag_seconds", L{"group": "webshop", "resource": "db", "standby": "antwerp"}, 0.001},
				{"siteflip_replication_failover_ready", L{"group": "webshop", "resource": "db", "standby": "antwerp"}, 1},
				{"siteflip_replication_failover_ready", L{"group": "billing", "resource": "db", "standby": "brussels"}, 0},
				{"siteflip_replication_sync_state", L{"group": "billing", "resource": "db", "state": "degraded"}, 1},
				{"siteflip_replication_sync_state", L{"group": "billing", "resource": "db", "state": "sync"}, 0},
				{"siteflip_serve_lease_remaining_seconds", L{}, 1.5},
				{"siteflip_certificate_expiry_timestamp_seconds", L{"site": site}, unixSeconds(notAfter)},
				{"siteflip_build_info", L{"version": buildinfo.String(), "goversion": runtime.Version()}, 1},
			} {
				got, ok := value(mfs, c.name, c.labels)
				if !ok || got != c.want {
					t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
				}
			}
			// webshop's schedule is open all day and it has no drill on
			// record: yesterday's window was missed.
			if got, ok := value(mfs, "siteflip_group_drill_missed_window_timestamp_seconds", L{"group": "webshop"}); !ok || got > unixSeconds(time.Now()) {
				t.Errorf("siteflip_group_drill_missed_window_timestamp_seconds of webshop = %v (present %v), want the start of a window past", got, ok)
			}
			// A group not adopted has no standby, and no epoch.
			for _, name := range []string{"siteflip_group_epoch", "siteflip_replication_streaming"} {
				if _, ok := value(mfs, name, L{"group": "intranet"}); ok {
					t.Errorf("%s has a series for intranet, not adopted", name)
				}
			}
			if n := seriesCount(mfs, "siteflip_group_state"); n != 3*len(groupStates) {
				t.Errorf("siteflip_group_state has %d series, want %d (every state of 3 groups)", n, 3*len(groupStates))
			}
		})
	}
}

// An agent that cannot read the control plane says so, and shows no
// stale picture of the installation; it exports its own metrics still.
func TestMetricsWithoutControlPlane(t *testing.T) {
	w := newWorld(t, "brussels")
	w.snapErr = errors.New("read control plane: context deadline exceeded")
	mfs := scrape(t, w.m.reg)
	if got, ok := value(mfs, "siteflip_control_plane_up", nil); !ok || got != 0 {
		t.Errorf("siteflip_control_plane_up = %v (present %v), want 0", got, ok)
	}
	for _, name := range []string{"siteflip_group_state", "siteflip_group_active", "siteflip_site_up", "siteflip_replication_lag_seconds", "siteflip_elected_controller"} {
		if n := seriesCount(mfs, name); n != 0 {
			t.Errorf("%s has %d series without the control plane", name, n)
		}
	}
	for _, name := range []string{"siteflip_serve_lease_remaining_seconds", "siteflip_certificate_expiry_timestamp_seconds", "siteflip_build_info"} {
		if seriesCount(mfs, name) != 1 {
			t.Errorf("%s missing without the control plane", name)
		}
	}
	// The control plane is back: so is the picture (after readEvery).
	w.snapErr = nil
	w.states.lock <- struct{}{}
	w.states.at = time.Time{}
	<-w.states.lock
	if got, _ := value(scrape(t, w.m.reg), "siteflip_group_state", map[string]string{"group": "webshop", "state": "protected"}); got != 1 {
		t.Errorf("webshop not protected once the control plane answers again")
	}
}

// A location a force lets serve without a lease shows no lease left
// (it is not about to fence); a certificate it cannot read, no expiry.
func TestMetricsForcedLeaseAndMissingCertificate(t *testing.T) {
	w := newWorld(t, "brussels")
	w.forced = true
	if err := os.Remove(w.cert); err != nil {
		t.Fatal(err)
	}
	mfs := scrape(t, w.m.reg)
	for _, name := range []string{"siteflip_serve_lease_remaining_seconds", "siteflip_certificate_expiry_timestamp_seconds"} {
		if n := seriesCount(mfs, name); n != 0 {
			t.Errorf("%s has %d series", name, n)
		}
	}
	if got, _ := value(mfs, "siteflip_control_plane_up", nil); got != 1 {
		t.Errorf("siteflip_control_plane_up = %v, want 1", got)
	}
}

// The scrapes within readEvery of a read share it.
func TestMetricsReadOncePerInterval(t *testing.T) {
	w := newWorld(t, "brussels")
	reads := 0
	read := w.states.read
	w.states.read = func(ctx context.Context) (status.Snapshot, status.Status, error) {
		reads++
		return read(ctx)
	}
	scrape(t, w.m.reg)
	scrape(t, w.m.reg)
	if reads != 1 {
		t.Errorf("two scrapes read the control plane %d times, want 1", reads)
	}
}

// The last runs: RTO and data lost as the reports give them, the outcome;
// the counters count only the runs this agent drove to their end.
func TestMetricsOfRuns(t *testing.T) {
	w := newWorld(t, "frankfurt")
	w.fill()
	mfs := scrape(t, w.m.reg)
	type L = map[string]string
	for _, c := range []struct {
		name   string
		labels L
		want   float64
	}{
		{"siteflip_last_run_succeeded", L{"group": "webshop", "action": "failover"}, 1},
		{"siteflip_last_run_rto_seconds", L{"group": "webshop", "action": "failover"}, 4},
		{"siteflip_last_run_data_lost", L{"group": "webshop", "action": "failover"}, 1},
		{"siteflip_last_run_end_timestamp_seconds", L{"group": "webshop", "action": "failover"}, 1764900009},
		{"siteflip_last_run_succeeded", L{"group": "webshop", "action": "switchover"}, 0},
		{"siteflip_last_run_succeeded", L{"group": "webshop", "action": "reprotect"}, 1},
		{"siteflip_last_run_data_lost", L{"group": "webshop", "action": "switchover"}, 0},
		{"siteflip_last_run_data_loss_seconds", L{"group": "webshop", "action": "drill"}, 1.5},
		{"siteflip_last_run_rto_seconds", L{"group": "webshop", "action": "drill"}, 12},
		{"siteflip_runs_total", L{"action": "switchover", "outcome": "rolled-back"}, 1},
		{"siteflip_runs_total", L{"action": "failover", "outcome": "succeeded"}, 1},
		{"siteflip_run_duration_seconds", L{"action": "reprotect"}, 1},
	} {
		got, ok := value(mfs, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// A reprotect has no RTO, and the failover's loss is said in words.
	if _, ok := value(mfs, "siteflip_last_run_rto_seconds", L{"group": "webshop", "action": "reprotect"}); ok {
		t.Error("a reprotect has an RTO")
	}
	if _, ok := value(mfs, "siteflip_last_run_data_loss_seconds", L{"group": "webshop", "action": "failover"}); ok {
		t.Error("the failover's data loss in seconds is exported, though its run says it in bytes of WAL")
	}
}

// The controller counts a run it drove to its end, not one that had
// ended before it took it up; a reprotect that rejoined the old site of
// the group's last failover has it read again, now telling what it lost.
func TestControllerRunEnded(t *testing.T) {
	topo, _ := metricsWorld(t)
	hist := metricsHistory(time.Unix(1764900000, 0).UTC())
	failover := hist[0]
	failover.DataLost, failover.DataLostBy = "", ""
	store := &drillFake{history: []plan.Run{failover}, drills: map[string]status.DrillRecord{}}
	ctl := scheduleController(topo, store)
	ctl.metrics.lastRuns(topo, store.history)
	lost := func() (float64, bool) {
		return value(scrape(t, ctl.metrics.reg), "siteflip_last_run_data_lost", map[string]string{"group": "webshop", "action": "failover"})
	}
	if _, ok := lost(); ok {
		t.Fatal("the failover's loss is known before its old site rejoined")
	}
	reprotect := hist[1]
	store.history = []plan.Run{hist[0], reprotect} // the engine filled in the failover's loss
	ctl.runEnded(t.Context(), reprotect, false)
	ctl.runEnded(t.Context(), reprotect, true) // a new controller finds it ended
	if got, ok := lost(); !ok || got != 1 {
		t.Errorf("siteflip_last_run_data_lost of the failover = %v (present %v) after the reprotect, want 1", got, ok)
	}
	if id, pending := ctl.metrics.lossPending("webshop"); pending {
		t.Errorf("failover %s still waits for its loss", id)
	}
	mfs := scrape(t, ctl.metrics.reg)
	if got, _ := value(mfs, "siteflip_runs_total", map[string]string{"action": "reprotect", "outcome": "succeeded"}); got != 1 {
		t.Errorf("siteflip_runs_total of reprotects = %v, want 1 (counted once)", got)
	}
	ctl.metrics.clearLastRuns()
	if n := seriesCount(scrape(t, ctl.metrics.reg), "siteflip_last_run_succeeded"); n != 0 {
		t.Errorf("%d last-run series after the term", n)
	}
}

// metricName finds the metric names in a PromQL expression.
var metricName = regexp.MustCompile(`\bsiteflip_[a-z0-9_]+\b`)

// exported is every name the representative registry exports, with the
// series names of its histograms.
func exported(t *testing.T) map[string]bool {
	w := newWorld(t, "brussels")
	w.fill()
	names := map[string]bool{}
	for _, mf := range scrape(t, w.m.reg) {
		names[mf.GetName()] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+s] = true
			}
		}
	}
	return names
}

// The dashboard shows only metrics the agent exports, and is an
// importable Grafana dashboard with its data source as an input.
func TestDashboardNamesExportedMetrics(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "siteflip.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Inputs []struct {
			Name, Type, PluginID string
		} `json:"__inputs"`
		SchemaVersion int    `json:"schemaVersion"`
		UID           string `json:"uid"`
		Title         string `json:"title"`
		Panels        []struct {
			Title      string `json:"title"`
			Type       string `json:"type"`
			Datasource *struct {
				Type, UID string
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("deploy/grafana/siteflip.json: %v", err)
	}
	if dash.SchemaVersion < 36 || dash.UID == "" || dash.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q", dash.SchemaVersion, dash.UID, dash.Title)
	}
	if len(dash.Inputs) != 1 || dash.Inputs[0].Name != "DS_PROMETHEUS" || dash.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs %+v, want the one Prometheus data source DS_PROMETHEUS", dash.Inputs)
	}
	names := exported(t)
	var used []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
			t.Errorf("panel %q: data source %+v, want ${DS_PROMETHEUS}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			found := metricName.FindAllString(tg.Expr, -1)
			if len(found) == 0 {
				t.Errorf("panel %q: %q names no siteflip metric", p.Title, tg.Expr)
			}
			for _, n := range found {
				if !names[n] {
					t.Errorf("panel %q: %s is not exported by the agent", p.Title, n)
				}
				used = append(used, n)
			}
		}
	}
	// The variables and the descriptions too.
	for _, n := range metricName.FindAllString(string(data), -1) {
		if !names[n] {
			t.Errorf("deploy/grafana/siteflip.json names %s, which the agent does not export", n)
		}
	}
	for _, want := range []string{"siteflip_group_state", "siteflip_group_active", "siteflip_replication_lag_seconds", "siteflip_group_max_data_loss_seconds",
		"siteflip_serve_lease_remaining_seconds", "siteflip_runs_total", "siteflip_last_run_rto_seconds", "siteflip_last_run_data_lost",
		"siteflip_certificate_expiry_timestamp_seconds", "siteflip_group_paused", "siteflip_build_info", "siteflip_site_sees"} {
		if !slices.Contains(used, want) {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}

// Every query of the dashboard is valid PromQL: promtool parses them as
// recording rules. Skipped, saying so, without promtool.
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("SKIPPED: promtool is not on PATH, so the dashboard's queries were not parsed; install Debian's prometheus package (scripts/deps.sh does, as root)")
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "siteflip.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			n++
			expr, _ := json.Marshal(strings.ReplaceAll(tg.Expr, "$group", ".*"))
			fmt.Fprintf(&rules, "      - record: dashboard_query_%d\n        expr: %s\n", n, expr)
		}
	}
	file := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), promtool, "check", "rules", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("SUCCESS: %d rules found", n)) {
		t.Errorf("promtool check rules of the dashboard's %d queries: %v\n%s", n, err, out)
	}
}

// The alert rules load, and pass their unit tests (CI runs the same
// promtool commands). Skipped, saying so, without promtool.
func TestRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("SKIPPED: promtool is not on PATH, so the alert rules were not checked; install Debian's prometheus package (scripts/deps.sh does, as root)")
	}
	dir := filepath.Join("..", "..", "deploy", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "siteflip.rules.yml"},
		{"test", "rules", "siteflip.rules.test.yml"},
		{"check", "config", "--syntax-only", "prometheus.yml"},
	} {
		cmd := exec.CommandContext(t.Context(), promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// The alert rules name only metrics the agent exports.
func TestRulesNameExportedMetrics(t *testing.T) {
	names := exported(t)
	for _, file := range []string{"siteflip.rules.yml", "siteflip.rules.test.yml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "prometheus", file))
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, n := range metricName.FindAllString(string(data), -1) {
			seen++
			if !names[n] {
				t.Errorf("%s names %s, which the agent does not export", file, n)
			}
		}
		if seen == 0 {
			t.Errorf("%s names no siteflip metric", file)
		}
	}
}

// pausedGroups reads the pauses the control plane keeps: a paused group
// and when, none for a group not paused.
func TestPausedGroups(t *testing.T) {
	at := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	snap := status.Snapshot{Paused: map[string]status.Pause{"crm": {Group: "crm", By: "alice", At: at}}}
	got := pausedGroups(snap)
	if len(got) != 1 || got[0].group != "crm" || !got[0].since.Equal(at) {
		t.Errorf("pausedGroups = %+v, want crm since %s", got, at)
	}
	if got := pausedGroups(status.Snapshot{}); len(got) != 0 {
		t.Errorf("no pause: pausedGroups = %+v", got)
	}
}
