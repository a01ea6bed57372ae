package safety

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
)

// schedule is "every 168h in WINDOW" in zone (UTC when "").
func schedule(t *testing.T, window, zone string) *config.DrillSchedule {
	t.Helper()
	w, err := config.ParseWindow(window)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	return &config.DrillSchedule{Every: new(config.Duration(168 * time.Hour)), Window: w, Timezone: zone, Location: loc,
		Keep: new(config.Duration(0)), MaxAge: new(config.Duration(336 * time.Hour))}
}

// at reads a UTC time; 2026-12-05 is a Saturday.
func at(s string) time.Time {
	v, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return v
}

func drillOK(started string) *status.DrillResult {
	return &status.DrillResult{Run: "r-" + started, Started: at(started), Result: plan.RunSucceeded}
}

func drillFailed(started string) *status.DrillResult {
	return &status.DrillResult{Run: "r-" + started, Started: at(started), Result: plan.RunFailed}
}

// TestScheduleDrills is the rule of scheduled drills, one decision per
// case. Groups webshop and crm, at brussels and antwerp, active at
// brussels, protected, drilled last on Saturday 2026-11-28 in their
// window, unless the case says otherwise.
func TestScheduleDrills(t *testing.T) {
	sat := schedule(t, "Sat 02:00-05:00", "UTC")
	type group struct {
		schedule *config.DrillSchedule
		at       string
		active   string
		record   status.DrillRecord
		tried    string
		state    string
		busy     string
		paused   bool
	}
	lastWeek := status.DrillRecord{Last: drillOK("2026-11-28 02:00"), LastSuccess: drillOK("2026-11-28 02:00")}
	healthy := func(mod func(g *group)) group {
		g := group{schedule: sat, active: "brussels", record: lastWeek, state: status.StateProtected}
		if mod != nil {
			mod(&g)
		}
		return g
	}
	type want struct {
		start, blocked string
		next, missed   string
	}
	tests := []struct {
		name     string
		now      string
		groups   []group
		drilling map[string]string
		want     []want
	}{
		{"due in the window", "2026-12-05 02:00", []group{healthy(nil)}, nil,
			[]want{{start: "antwerp", next: "2026-12-05 02:00"}}},
		{"due in the window, at a site named", "2026-12-05 02:00", []group{healthy(func(g *group) { g.at = "antwerp"; g.active = "antwerp" })}, nil,
			[]want{{blocked: "the drill site antwerp is the group's active site; a drill copies a standby: fail back, or change drill.at", next: "2026-12-05 02:00"}}},
		{"the active site moved: the drill follows the standby", "2026-12-05 02:00", []group{healthy(func(g *group) { g.active = "antwerp" })}, nil,
			[]want{{start: "brussels", next: "2026-12-05 02:00"}}},
		{"before the window", "2026-12-05 01:59", []group{healthy(nil)}, nil,
			[]want{{next: "2026-12-05 02:00"}}},
		{"after the window, drilled in it", "2026-12-05 05:00", []group{healthy(func(g *group) {
			g.record = status.DrillRecord{Last: drillOK("2026-12-05 02:00"), LastSuccess: drillOK("2026-12-05 02:00")}
		})}, nil, []want{{next: "2026-12-12 02:00"}}},
		{"not due: a manual drill on Wednesday", "2026-12-05 02:00", []group{healthy(func(g *group) {
			g.record = status.DrillRecord{Last: drillOK("2026-12-02 10:00"), LastSuccess: drillOK("2026-12-02 10:00")}
		})}, nil, []want{{next: "2026-12-12 02:00"}}},
		{"failed in this window: not again before the next", "2026-12-05 03:00", []group{healthy(func(g *group) {
			g.record.Last = drillFailed("2026-12-05 02:00")
		})}, nil, []want{{next: "2026-12-12 02:00"}}},
		{"started by this controller, its end not recorded yet", "2026-12-05 02:00", []group{healthy(func(g *group) { g.tried = "2026-12-05 02:00" })}, nil,
			[]want{{next: "2026-12-12 02:00"}}},
		{"window across midnight, after midnight", "2026-12-06 00:30", []group{healthy(func(g *group) { g.schedule = schedule(t, "Sat 23:00-01:00", "UTC") })}, nil,
			[]want{{start: "antwerp", next: "2026-12-06 00:30"}}},
		{"window across midnight, after it", "2026-12-06 01:00", []group{healthy(func(g *group) { g.schedule = schedule(t, "Sat 23:00-01:00", "UTC") })}, nil,
			[]want{{next: "2026-12-12 23:00", missed: "2026-12-05 23:00"}}},
		// 01:30 UTC is 02:30 in Brussels: inside Brussels' window, not
		// UTC's.
		{"in the window's time zone", "2026-12-05 01:30", []group{
			healthy(func(g *group) { g.schedule = schedule(t, "Sat 02:00-05:00", "Europe/Brussels") }),
			healthy(nil),
		}, nil, []want{{start: "antwerp", next: "2026-12-05 01:30"}, {next: "2026-12-05 02:00"}}},
		{"not protected", "2026-12-05 02:00", []group{healthy(func(g *group) { g.state = status.StateUnprotected })}, nil,
			[]want{{blocked: "the group is unprotected, not protected", next: "2026-12-05 02:00"}}},
		{"not protected all window: missed", "2026-12-05 05:00", []group{healthy(func(g *group) { g.state = status.StateUnprotected })}, nil,
			[]want{{next: "2026-12-12 02:00", missed: "2026-12-05 02:00"}}},
		{"not adopted", "2026-12-05 02:00", []group{healthy(func(g *group) { g.active, g.state = "", status.StateInitializing })}, nil,
			[]want{{blocked: "no controller has adopted the group yet", next: "2026-12-05 02:00"}}},
		{"a failover in progress", "2026-12-05 02:00", []group{healthy(func(g *group) { g.busy = "run-1" })}, nil,
			[]want{{blocked: "run run-1 is in progress on the group", next: "2026-12-05 02:00"}}},
		{"paused: a person's maintenance holds it back", "2026-12-05 02:00", []group{healthy(func(g *group) { g.paused = true })}, nil,
			[]want{{blocked: "the group is paused (by alice at 2026-12-05T01:00:00Z); `siteflip resume webshop` lets its scheduled drills start", next: "2026-12-05 02:00"}}},
		{"paused all window: missed", "2026-12-05 05:00", []group{healthy(func(g *group) { g.paused = true })}, nil,
			[]want{{next: "2026-12-12 02:00", missed: "2026-12-05 02:00"}}},
		{"two groups, one site: one at a time", "2026-12-05 02:00", []group{healthy(nil), healthy(nil)}, nil,
			[]want{{start: "antwerp", next: "2026-12-05 02:00"}, {blocked: "a drill of group webshop is in progress at antwerp", next: "2026-12-05 02:00"}}},
		{"another group's drill at the site", "2026-12-05 02:00", []group{healthy(nil)}, map[string]string{"antwerp": "crm"},
			[]want{{blocked: "a drill of group crm is in progress at antwerp", next: "2026-12-05 02:00"}}},
		{"another group's drill at another site", "2026-12-05 02:00", []group{healthy(nil)}, map[string]string{"brussels": "crm"},
			[]want{{start: "antwerp", next: "2026-12-05 02:00"}}},
		{"never drilled: due, and the last window missed", "2026-12-03 12:00", []group{healthy(func(g *group) { g.record = status.DrillRecord{} })}, nil,
			[]want{{next: "2026-12-05 02:00", missed: "2026-11-28 02:00"}}},
		{"no schedule", "2026-12-05 02:00", []group{healthy(func(g *group) { g.schedule = nil })}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in []DrillGroup
			for i, g := range tt.groups {
				cg := &config.Group{Name: []string{"webshop", "crm"}[i], Sites: []string{"brussels", "antwerp"}}
				if g.schedule != nil {
					s := *g.schedule
					s.At = g.at
					cg.Drill = &s
				}
				dg := DrillGroup{Group: cg, Active: g.active, Record: g.record, State: g.state, Busy: g.busy}
				if g.tried != "" {
					dg.Tried = at(g.tried)
				}
				if g.paused {
					dg.Paused = &status.Pause{Group: cg.Name, By: "alice", At: at("2026-12-05 01:00"), Reason: "maintenance"}
				}
				in = append(in, dg)
			}
			var got []want
			for _, d := range ScheduleDrills(at(tt.now), in, tt.drilling) {
				w := want{start: d.Start, blocked: d.Blocked, next: d.Next.UTC().Format("2006-01-02 15:04")}
				if !d.Missed.IsZero() {
					w.missed = d.Missed.UTC().Format("2006-01-02 15:04")
				}
				got = append(got, w)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// A group that is not protected through its whole window: its drill is
// held back with the reason, and once the window has passed the missed
// window is reported once, with that reason — by this controller, which
// saw it.
func TestMissedWindowReportedOnce(t *testing.T) {
	g := &config.Group{Name: "webshop", Sites: []string{"brussels", "antwerp"}, Drill: schedule(t, "Sat 02:00-05:00", "UTC")}
	in := []DrillGroup{{Group: g, Active: "brussels", State: status.StateUnprotected,
		Record: status.DrillRecord{Last: drillOK("2026-11-28 02:00"), LastSuccess: drillOK("2026-11-28 02:00")}}}
	m := NewDrillMemory()
	var reported []MissedWindow
	for now := at("2026-12-05 01:00"); now.Before(at("2026-12-05 08:00")); now = now.Add(5 * time.Second) {
		ds := ScheduleDrills(now, in, nil)
		for _, d := range ds {
			if d.Start != "" {
				t.Fatalf("%s: a drill started in an unprotected group", now)
			}
		}
		reported = append(reported, m.Update(now, ds)...)
	}
	want := []MissedWindow{{Group: "webshop", Start: at("2026-12-05 02:00"), End: at("2026-12-05 05:00"), Why: "the group is unprotected, not protected"}}
	if diff := cmp.Diff(want, reported); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}

	// A controller elected after the window reports it too, without a
	// reason it did not see.
	m = NewDrillMemory()
	got := m.Update(at("2026-12-06 10:00"), ScheduleDrills(at("2026-12-06 10:00"), in, nil))
	if len(got) != 1 || got[0].Why != "" || !got[0].Start.Equal(at("2026-12-05 02:00")) {
		t.Errorf("reported by a later controller: %+v", got)
	}
	if again := m.Update(at("2026-12-06 10:01"), ScheduleDrills(at("2026-12-06 10:01"), in, nil)); len(again) != 0 {
		t.Errorf("reported twice: %+v", again)
	}

	// A drill it starts counts for its window even before its end is
	// recorded: no second start.
	in[0].State = status.StateProtected
	m = NewDrillMemory()
	now := at("2026-12-12 02:00")
	first := ScheduleDrills(now, in, nil)
	m.Update(now, first)
	in[0].Tried = m.Tried["webshop"]
	if second := ScheduleDrills(now.Add(5*time.Second), in, nil); first[0].Start != "antwerp" || second[0].Start != "" {
		t.Errorf("first %+v, second %+v: want one start", first[0], second[0])
	}
}

func TestDrillResultOf(t *testing.T) {
	if drillDataAge != resource.OutputDataAge {
		t.Fatalf("data age output %q; the resource model says %q", drillDataAge, resource.OutputDataAge)
	}
	t0 := at("2026-12-05 02:00")
	run := plan.Run{ID: "d1", Group: "webshop", State: plan.RunSucceeded, Started: t0, Ended: t0.Add(4 * time.Second),
		Plan: plan.Plan{Action: plan.Drill, To: "antwerp", Steps: []plan.Step{
			{Kind: plan.Clone, Resource: "db"}, {Kind: plan.Clone, Resource: "ledger"}, {Kind: plan.Start, Resource: "db"}, {Kind: plan.Teardown, Resource: "db"},
		}},
		Steps: []plan.StepState{
			{State: plan.StepDone, Ended: t0.Add(time.Second), Output: map[string]string{resource.OutputDataAge: "0.003"}},
			{State: plan.StepDone, Ended: t0.Add(time.Second), Output: map[string]string{resource.OutputDataAge: "0.25"}},
			{State: plan.StepDone, Ended: t0.Add(2300 * time.Millisecond)},
			{State: plan.StepDone, Ended: t0.Add(4 * time.Second)},
		},
	}
	d := DrillResultOf(run)
	if d.Run != "d1" || d.Site != "antwerp" || d.Result != "succeeded" || d.RTOSeconds == nil || *d.RTOSeconds != 2.3 || d.RPOSeconds == nil || *d.RPOSeconds != 0.25 {
		t.Errorf("result %+v (rto %v, rpo %v)", d, d.RTOSeconds, d.RPOSeconds)
	}
	run.Steps[1].Output = map[string]string{}
	if d := DrillResultOf(run); d.RPOSeconds != nil {
		t.Errorf("a clone without its data age: rpo %v, want unknown", *d.RPOSeconds)
	}
	run.State, run.Error = plan.RunFailed, "step start:db@antwerp failed: boom"
	run.Steps[2].State = plan.StepFailed
	if d := DrillResultOf(run); d.RTOSeconds != nil || d.Result != "failed" || d.Error == "" {
		t.Errorf("failed drill %+v", d)
	}

	h := DrillHistory([]plan.Run{
		{ID: "f1", Group: "webshop", State: plan.RunSucceeded, Started: t0.Add(-time.Hour), Plan: plan.Plan{Action: plan.Failover}},
		{ID: "d0", Group: "webshop", State: plan.RunSucceeded, Started: t0.Add(-168 * time.Hour), Plan: plan.Plan{Action: plan.Drill}},
		run,
		{ID: "d2", Group: "webshop", State: plan.RunRunning, Started: t0.Add(time.Hour), Plan: plan.Plan{Action: plan.Drill}},
	})
	if r := h["webshop"]; len(h) != 1 || r.Last.Run != "d1" || r.LastSuccess.Run != "d0" {
		t.Errorf("history %+v", h)
	}
}
