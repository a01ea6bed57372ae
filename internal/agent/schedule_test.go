package agent

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// drillFake is the control plane as the scheduler uses it; any other
// call panics (the embedded interface is nil).
type drillFake struct {
	controllerStore
	mu      sync.Mutex
	history []plan.Run
	started []plan.Run
	drills  map[string]status.DrillRecord
	merges  int
}

func (f *drillFake) Runs(context.Context, string) ([]plan.Run, error) { return f.history, nil }

func (f *drillFake) Run(_ context.Context, id string) (plan.Run, error) {
	for _, r := range append(f.history, f.started...) {
		if r.ID == id {
			return r, nil
		}
	}
	return plan.Run{}, coord.ErrNoRun
}

func (f *drillFake) StartAutomaticRun(_ context.Context, run plan.Run, _ int64) error {
	f.started = append(f.started, run)
	return nil
}

func (f *drillFake) MergeDrills(_ context.Context, group string, rec status.DrillRecord, _ coord.Fence) (status.DrillRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.merges++
	f.drills[group] = f.drills[group].Merge(rec)
	return f.drills[group], nil
}

// scheduleWorld is webshop (db at brussels and antwerp, active at
// brussels, protected) with a drill schedule whose window is always open,
// as the controller at frankfurt sees it.
func scheduleWorld(t *testing.T) (*config.Topology, status.Snapshot) {
	w, err := config.ParseWindow("00:00-24:00")
	if err != nil {
		t.Fatal(err)
	}
	topo := &config.Topology{
		Name: "test",
		Sites: []config.Site{
			{Name: "brussels", Role: config.RoleSite}, {Name: "antwerp", Role: config.RoleSite}, {Name: "frankfurt", Role: config.RoleWitness},
		},
		Coordination: config.Coordination{ServeLease: new(config.Duration(time.Second)), LeaseTTL: new(config.Duration(3 * time.Second))},
		Groups: []config.Group{{
			Name: "webshop", PreferredSite: "brussels", Policy: config.PolicyAutomatic, Sites: []string{"brussels", "antwerp"},
			MaxDataLoss: new(config.Duration(5 * time.Second)), RTOTarget: new(config.Duration(30 * time.Second)),
			Resources: []config.Resource{{Name: "db", Type: "postgres", Data: true, Class: config.ClassData}},
			Drill: &config.DrillSchedule{Every: new(config.Duration(168 * time.Hour)), Window: w, Location: time.UTC,
				Keep: new(config.Duration(time.Minute)), MaxAge: new(config.Duration(336 * time.Hour))},
		}},
	}
	peers := func(site string) map[string]status.PeerView {
		out := map[string]status.PeerView{}
		for _, s := range []string{"brussels", "antwerp", "frankfurt"} {
			if s != site {
				out[s] = status.PeerView{Reachable: true}
			}
		}
		return out
	}
	db := func(role string, streaming bool) map[string]status.ResourceView {
		rv := status.ResourceView{Group: "webshop", Resource: "db", Type: "postgres", Up: true, Role: role, Timeline: 1, Streaming: streaming}
		if role == status.RolePrimary {
			rv.Standbys = []status.StandbyView{{Name: "antwerp", Site: "antwerp", State: "streaming", LagBytes: 0, LagSeconds: 0.001}}
		}
		return map[string]status.ResourceView{"webshop/db": rv}
	}
	snap := status.Snapshot{
		Views: map[string]status.View{
			"brussels":  {Site: "brussels", Peers: peers("brussels"), Resources: db(status.RolePrimary, false)},
			"antwerp":   {Site: "antwerp", Peers: peers("antwerp"), Resources: db(status.RoleStandby, true)},
			"frankfurt": {Site: "frankfurt", Peers: peers("frankfurt")},
		},
		Records: map[string]status.Record{"webshop": {Group: "webshop", ActiveSite: "brussels", Epoch: 3, Revision: 42}},
		Lags: map[string]map[string]map[string]status.Lag{"webshop": {"db": {"antwerp": {Seconds: 0.001, Epoch: 3, MeasuredAt: time.Unix(0, 0),
			SeenAt: time.Unix(0, 0), Streaming: true}}}},
		Running: map[string]string{}, Drilling: map[string]string{}, Drills: map[string]status.DrillRecord{},
	}
	return topo, snap
}

func scheduleController(topo *config.Topology, store *drillFake) *controller {
	s, _ := topo.Site("frankfurt")
	b := &base{topo: topo, site: s, log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics()}
	return &controller{base: b, plane: &plane{base: b}, store: store}
}

// The controller starts a due drill as a person's `siteflip drill` would,
// once: a second look while it is in progress, or after it, in the same
// window, starts nothing. At election it takes the run history's drills
// into the record, and it exports the drill metrics.
func TestScheduledDrillStarts(t *testing.T) {
	topo, snap := scheduleWorld(t)
	earlier := time.Now().Add(-10 * 24 * time.Hour).UTC()
	old := plan.Run{ID: "old-drill", Group: "webshop", State: plan.RunSucceeded, Started: earlier, Ended: earlier.Add(3 * time.Second),
		Plan: plan.Plan{Group: "webshop", Action: plan.Drill, To: "antwerp"}}
	store := &drillFake{history: []plan.Run{old}, drills: map[string]status.DrillRecord{}}
	ctl := scheduleController(topo, store)
	ds := ctl.newDrillScheduler(coord.Fence{Key: "k", Term: 7})

	ds.check(t.Context(), snap)
	if got := store.drills["webshop"]; got.LastSuccess == nil || got.LastSuccess.Run != "old-drill" {
		t.Fatalf("history not recorded: %+v", got)
	}
	if len(store.started) != 1 {
		t.Fatalf("started %d drills, want 1", len(store.started))
	}
	run := store.started[0]
	if run.Plan.Action != plan.Drill || run.Plan.To != "antwerp" || run.Request.Keep != time.Minute || run.Plan.Epoch != 3 ||
		run.By != "controller frankfurt (scheduled)" || !strings.HasPrefix(run.Reason, "scheduled: every 168h in 00:00-24:00 UTC") {
		t.Errorf("started %+v", run)
	}
	if got := gauge(t, ctl.metrics, "siteflip_drill_last_success_timestamp_seconds"); got != float64(earlier.UnixMilli())/1000 {
		t.Errorf("last success metric %v, want %v", got, float64(earlier.UnixMilli())/1000)
	}

	// In progress: not again.
	snap.Drilling = map[string]string{"webshop": run.ID}
	ds.check(t.Context(), snap)
	// Ended (failed), but its end not yet in the snapshot: not again in
	// this window either.
	snap.Drilling = map[string]string{}
	ds.check(t.Context(), snap)
	if len(store.started) != 1 {
		t.Fatalf("started %d drills, want 1", len(store.started))
	}

	// Its end is recorded, with the metrics.
	run.State, run.Ended, run.Error = plan.RunFailed, run.Started.Add(2*time.Second), "step clone:db@antwerp failed"
	ds.ended(t.Context(), run)
	if got := store.drills["webshop"]; got.Last.Run != run.ID || got.LastSuccess.Run != "old-drill" {
		t.Errorf("record after the drill: %+v", got)
	}
	if got := gauge(t, ctl.metrics, "siteflip_drill_duration_seconds"); got != 2 {
		t.Errorf("duration metric %v, want 2", got)
	}
	ds.stop()
	if got := gauge(t, ctl.metrics, "siteflip_drill_duration_seconds"); got != -1 {
		t.Errorf("duration metric after the term: %v, want none", got)
	}
}

// A group that is not protected gets no drill.
func TestScheduledDrillNotWhileUnprotected(t *testing.T) {
	topo, snap := scheduleWorld(t)
	v := snap.Views["antwerp"]
	rv := v.Resources["webshop/db"]
	rv.Streaming = false
	v.Resources = map[string]status.ResourceView{"webshop/db": rv}
	snap.Views["antwerp"] = v
	store := &drillFake{drills: map[string]status.DrillRecord{}}
	ds := scheduleController(topo, store).newDrillScheduler(coord.Fence{})
	ds.check(t.Context(), snap)
	if len(store.started) != 0 {
		t.Errorf("started %+v in an unprotected group", store.started)
	}
}

// A paused group gets no scheduled drill; resumed, it gets it.
func TestScheduledDrillNotWhilePaused(t *testing.T) {
	topo, snap := scheduleWorld(t)
	snap.Paused = map[string]status.Pause{"webshop": {Group: "webshop", By: "alice", At: time.Now().UTC(), Reason: "maintenance"}}
	store := &drillFake{drills: map[string]status.DrillRecord{}}
	ds := scheduleController(topo, store).newDrillScheduler(coord.Fence{})
	ds.check(t.Context(), snap)
	if len(store.started) != 0 {
		t.Fatalf("started %+v in a paused group", store.started)
	}
	snap.Paused = nil
	ds.check(t.Context(), snap)
	if len(store.started) != 1 {
		t.Errorf("started %d drills once resumed, want 1", len(store.started))
	}
}

// gauge reads a metric with one series; -1 when it has none.
func gauge(t *testing.T, m *metrics, name string) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			if len(mf.GetMetric()) != 1 {
				t.Fatalf("%s: %d series", name, len(mf.GetMetric()))
			}
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}
