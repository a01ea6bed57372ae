package safety

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// topology: sites brussels and antwerp, witness frankfurt; group webshop
// (db, asynchronous, max_data_loss 5s) active at brussels.
func topology(policy string, flapPeriod time.Duration) *config.Topology {
	return &config.Topology{
		Name: "test",
		Sites: []config.Site{
			{Name: "brussels", Role: config.RoleSite},
			{Name: "antwerp", Role: config.RoleSite},
			{Name: "frankfurt", Role: config.RoleWitness},
		},
		Coordination: config.Coordination{ServeLease: new(config.Duration(time.Second)), LeaseTTL: new(config.Duration(3 * time.Second))},
		Groups: []config.Group{{
			Name: "webshop", PreferredSite: "brussels", Policy: policy,
			Sites:       []string{"brussels", "antwerp"},
			MaxDataLoss: new(config.Duration(5 * time.Second)),
			FlapPeriod:  new(config.Duration(flapPeriod)),
			FlapConfirm: new(config.Duration(10 * time.Second)),
			Resources:   []config.Resource{{Name: "db", Type: "postgres", Data: true}},
		}},
	}
}

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

// world is the control plane as the controller at frankfurt reads it.
type world struct {
	active   string
	epoch    int64
	lost     []string            // sites every other location marked lost
	marks    map[string][]string // partial marks: site → by
	db       map[string]string   // role of db by site (absent: the site does not report it)
	lag      *status.Lag         // antwerp's (or brussels') last lag, in the record's epoch
	running  string
	decision bool // a decision is recorded for webshop
	noRecord bool
	paused   bool // a person paused webshop
}

func healthy() world {
	return world{active: "brussels", epoch: 3, db: map[string]string{"brussels": status.RolePrimary, "antwerp": status.RoleStandby},
		lag: &status.Lag{Seconds: 0.01, Bytes: 256, Epoch: 3, MeasuredAt: t0, SeenAt: t0.Add(50 * time.Millisecond), Streaming: true}}
}

func (w world) input(now time.Time, topo *config.Topology) Input {
	sites := []string{"brussels", "antwerp", "frankfurt"}
	lost := map[string]bool{}
	for _, s := range w.lost {
		lost[s] = true
	}
	snap := status.Snapshot{Revision: 100, Views: map[string]status.View{}, Records: map[string]status.Record{},
		Running: map[string]string{}, Marks: map[string]map[string]status.Mark{}, Decisions: map[string]status.Decision{},
		Lags: map[string]map[string]map[string]status.Lag{}, ViewAges: map[string]time.Duration{}}
	for _, s := range sites {
		if lost[s] {
			continue // a lost site publishes nothing
		}
		v := status.View{Site: s, PublishedAt: now, Peers: map[string]status.PeerView{}, Resources: map[string]status.ResourceView{}}
		for _, o := range sites {
			if o != s {
				v.Peers[o] = status.PeerView{Reachable: !lost[o], Since: now.Add(-time.Minute)}
			}
		}
		if role, ok := w.db[s]; ok {
			rv := status.ResourceView{Group: "webshop", Resource: "db", Type: "postgres", Up: true, Role: role, Timeline: w.epoch, Streaming: role == status.RoleStandby}
			v.Resources["webshop/db"] = rv
		}
		snap.Views[s] = v
		snap.ViewAges[s] = 0
	}
	for _, s := range w.lost {
		snap.Marks[s] = map[string]status.Mark{}
		for _, o := range sites {
			if o != s {
				snap.Marks[s][o] = status.Mark{Site: s, By: o, At: now}
			}
		}
	}
	for s, by := range w.marks {
		snap.Marks[s] = map[string]status.Mark{}
		for _, o := range by {
			snap.Marks[s][o] = status.Mark{Site: s, By: o, At: now}
		}
	}
	if !w.noRecord {
		snap.Records["webshop"] = status.Record{Group: "webshop", ActiveSite: w.active, Epoch: w.epoch, Revision: 42}
	}
	if w.running != "" {
		snap.Running["webshop"] = w.running
	}
	if w.decision {
		snap.Decisions["webshop"] = status.Decision{Group: "webshop", Site: w.active}
	}
	if w.paused {
		snap.Paused = map[string]status.Pause{"webshop": {Group: "webshop", By: "alice", At: t0.Add(-time.Hour), Reason: "kernel upgrade"}}
	}
	if w.lag != nil {
		other := "antwerp"
		if w.active == "antwerp" {
			other = "brussels"
		}
		snap.Lags["webshop"] = map[string]map[string]status.Lag{"db": {other: *w.lag}}
	}
	return Input{Now: now, Topology: topo, Snapshot: snap, Status: status.Assemble(topo, snap, "frankfurt", now)}
}

// describe is one line per action, for comparison.
func describe(as []Action) string {
	var out []string
	for _, a := range as {
		switch a := a.(type) {
		case StartFailover:
			out = append(out, fmt.Sprintf("failover %s→%s rev %d marked by %s", a.From, a.Request.To, a.Revision, strings.Join(a.MarkedBy, ",")))
		case NeedDecision:
			out = append(out, "decide: "+a.Decision.Command)
		case ClearDecision:
			out = append(out, "clear decision")
		case Damp:
			out = append(out, fmt.Sprintf("damp %s for %s", a.Site, a.Until))
		default:
			out = append(out, fmt.Sprintf("%T", a))
		}
	}
	return strings.Join(out, "; ")
}

func TestDecide(t *testing.T) {
	lost := func(w world) world { w.lost = []string{"brussels"}; return w }
	for _, tt := range []struct {
		name   string
		policy string
		w      world
		want   string
	}{
		{"healthy: nothing", config.PolicyAutomatic, healthy(), ""},
		{"active site lost: failover at once", config.PolicyAutomatic, lost(healthy()),
			"failover brussels→antwerp rev 42 marked by antwerp,frankfurt"},
		{"marked by the witness only: not lost", config.PolicyAutomatic,
			func() world { w := healthy(); w.marks = map[string][]string{"brussels": {"frankfurt"}}; return w }(), ""},
		{"marked by antwerp only (cut link): not lost", config.PolicyAutomatic,
			func() world { w := healthy(); w.marks = map[string][]string{"brussels": {"antwerp"}}; return w }(), ""},
		{"standby site lost: nothing to fail over", config.PolicyAutomatic,
			func() world { w := healthy(); w.lost = []string{"antwerp"}; return w }(), ""},
		{"run in progress: nothing", config.PolicyAutomatic,
			func() world { w := lost(healthy()); w.running = "r1"; return w }(), ""},
		{"not adopted: nothing", config.PolicyAutomatic,
			func() world { w := lost(healthy()); w.noRecord = true; return w }(), ""},
		{"manual policy: a person decides", config.PolicyManual, lost(healthy()),
			"decide: siteflip failover webshop --to antwerp"},
		{"paused, active site lost: a person decides", config.PolicyAutomatic,
			func() world { w := lost(healthy()); w.paused = true; return w }(),
			"decide: siteflip failover webshop --to antwerp"},
		{"paused and healthy: nothing", config.PolicyAutomatic,
			func() world { w := healthy(); w.paused = true; return w }(), ""},
		{"paused, lag too stale: decide, accepting the loss", config.PolicyAutomatic,
			func() world {
				w := lost(healthy())
				w.paused = true
				w.lag.MeasuredAt = t0.Add(-10 * time.Second)
				return w
			}(),
			"decide: siteflip failover webshop --to antwerp --accept-data-loss"},
		{"paused, a run in progress (a person's): nothing", config.PolicyAutomatic,
			func() world { w := lost(healthy()); w.paused = true; w.running = "r1"; return w }(), ""},
		{"paused, a decision recorded, site back: clear it", config.PolicyAutomatic,
			func() world { w := healthy(); w.paused = true; w.decision = true; return w }(), "clear decision"},
		{"lag too stale: decide, accepting the loss", config.PolicyAutomatic,
			func() world { w := lost(healthy()); w.lag.MeasuredAt = t0.Add(-10 * time.Second); return w }(),
			"decide: siteflip failover webshop --to antwerp --accept-data-loss"},
		{"lag of an older epoch: decide, accepting the loss", config.PolicyAutomatic,
			func() world { w := lost(healthy()); w.lag.Epoch = 2; return w }(),
			"decide: siteflip failover webshop --to antwerp --accept-data-loss"},
		{"lag never measured: decide, accepting the loss", config.PolicyAutomatic,
			func() world { w := lost(healthy()); w.lag = nil; return w }(),
			"decide: siteflip failover webshop --to antwerp --accept-data-loss"},
		{"target does not report its db: decide", config.PolicyAutomatic,
			func() world { w := lost(healthy()); delete(w.db, "antwerp"); return w }(),
			"decide: siteflip failover webshop --to antwerp"},
		{"target is a primary already (split): decide", config.PolicyAutomatic,
			func() world { w := lost(healthy()); w.db["antwerp"] = status.RolePrimary; return w }(),
			"decide: siteflip failover webshop --to antwerp"},
		{"no longer lost, a decision recorded: clear it", config.PolicyAutomatic,
			func() world { w := healthy(); w.decision = true; return w }(), "clear decision"},
		{"failover after a decision: clear it too", config.PolicyAutomatic,
			func() world { w := lost(healthy()); w.decision = true; return w }(),
			"failover brussels→antwerp rev 42 marked by antwerp,frankfurt; clear decision"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			topo := topology(tt.policy, 10*time.Minute)
			got := describe(Decide(tt.w.input(t0, topo), NewMemory()))
			if got != tt.want {
				t.Errorf("Decide:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}

// TestDecideOnce: a decision is recorded once, and again only when it
// changes.
func TestDecideOnce(t *testing.T) {
	topo := topology(config.PolicyManual, 10*time.Minute)
	m := NewMemory()
	w := healthy()
	w.lost = []string{"brussels"}
	first := Decide(w.input(t0, topo), m)
	if len(first) != 1 {
		t.Fatalf("first decision: %s", describe(first))
	}
	m.Done(first[0])
	if again := Decide(w.input(t0.Add(time.Second), topo), m); len(again) != 0 {
		t.Errorf("the same decision recorded again: %s", describe(again))
	}
	topo.Groups[0].Policy = config.PolicyAutomatic
	w.lag = nil
	if changed := describe(Decide(w.input(t0.Add(2*time.Second), topo), m)); !strings.Contains(changed, "--accept-data-loss") {
		t.Errorf("a changed decision is not recorded: %q", changed)
	}
}

// TestFlapOrSecondDisaster walks through sequences of losses over time
// and checks when each failover starts.
func TestFlapOrSecondDisaster(t *testing.T) {
	type event struct {
		at     time.Duration // after t0
		active string
		lost   string // the site lost now ("" for none)
		want   string // "failover", "damp", "" (nothing)
	}
	for _, tt := range []struct {
		name   string
		period time.Duration
		runs   []plan.Run // the history a new controller finds
		events []event
	}{
		{"one loss: at once", 10 * time.Minute, nil, []event{
			{0, "brussels", "brussels", "failover"},
		}},
		{"second disaster at the other site soon after: at once", 10 * time.Minute, nil, []event{
			{0, "brussels", "brussels", "failover"},
			{30 * time.Second, "antwerp", "", ""},
			{60 * time.Second, "antwerp", "antwerp", "failover"},
		}},
		{"the same site lost again soon after: a flap, confirmed first", 10 * time.Minute, nil, []event{
			{0, "brussels", "brussels", "failover"},
			{30 * time.Second, "antwerp", "", ""},
			{60 * time.Second, "antwerp", "antwerp", "failover"},
			{90 * time.Second, "brussels", "", ""},
			{120 * time.Second, "brussels", "brussels", "damp"},
			{125 * time.Second, "brussels", "brussels", ""}, // told once
			{129 * time.Second, "brussels", "brussels", ""},
			{130 * time.Second, "brussels", "brussels", "failover"}, // lost 10 s without a break
		}},
		{"a flap that comes back within the confirmation: no failover", 10 * time.Minute, nil, []event{
			{0, "brussels", "brussels", "failover"},
			{60 * time.Second, "antwerp", "antwerp", "failover"},
			{120 * time.Second, "brussels", "brussels", "damp"},
			{125 * time.Second, "brussels", "", ""},
			{126 * time.Second, "brussels", "brussels", "damp"}, // a new loss: counted from here
			{135 * time.Second, "brussels", "brussels", ""},
			{136 * time.Second, "brussels", "brussels", "failover"},
		}},
		{"the same site lost again after the period: at once", 10 * time.Minute, nil, []event{
			{0, "brussels", "brussels", "failover"},
			{60 * time.Second, "antwerp", "antwerp", "failover"},
			{11 * time.Minute, "brussels", "brussels", "failover"},
		}},
		{"damping off (flap_period 0)", 0, nil, []event{
			{0, "brussels", "brussels", "failover"},
			{60 * time.Second, "antwerp", "antwerp", "failover"},
			{120 * time.Second, "brussels", "brussels", "failover"},
		}},
		{"a new controller remembers the failovers from the run history", 10 * time.Minute,
			[]plan.Run{{Group: "webshop", Started: t0.Add(-time.Minute), Plan: plan.Plan{Action: plan.Failover, From: "brussels", To: "antwerp"}}},
			[]event{
				{0, "brussels", "brussels", "damp"},
				{10 * time.Second, "brussels", "brussels", "failover"},
			}},
		{"switchovers in the history are no losses", 10 * time.Minute,
			[]plan.Run{{Group: "webshop", Started: t0.Add(-time.Minute), Plan: plan.Plan{Action: plan.Switchover, From: "brussels", To: "antwerp"}}},
			[]event{{0, "brussels", "brussels", "failover"}}},
		{"a failed failover is retried as a flap would be", 10 * time.Minute, nil, []event{
			{0, "brussels", "brussels", "failover"},
			{5 * time.Second, "brussels", "brussels", "damp"}, // the run failed: brussels is still active
			{10 * time.Second, "brussels", "brussels", "failover"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			topo := topology(config.PolicyAutomatic, tt.period)
			m := NewMemory()
			m.Remember(tt.runs)
			for _, e := range tt.events {
				w := healthy()
				w.active = e.active
				w.db = map[string]string{e.active: status.RolePrimary}
				for _, s := range []string{"brussels", "antwerp"} {
					if s != e.active {
						w.db[s] = status.RoleStandby
					}
				}
				if e.lost != "" {
					w.lost = []string{e.lost}
				}
				now := t0.Add(e.at)
				w.lag.MeasuredAt, w.lag.SeenAt = now, now
				acts := Decide(w.input(now, topo), m)
				got := ""
				for _, a := range acts {
					switch a.(type) {
					case StartFailover:
						got = "failover"
					case Damp:
						got = "damp"
					}
					m.Done(a)
				}
				if got != e.want {
					t.Fatalf("at %s (%s lost, active %s): %q (%s), want %q", e.at, e.lost, e.active, got, describe(acts), e.want)
				}
			}
		})
	}
}

// TestAutomaticFailover is the rule whether the controller may fail a
// group over by itself, as a table.
func TestAutomaticFailover(t *testing.T) {
	pause := status.Pause{Group: "webshop", By: "alice", At: t0, Reason: "kernel upgrade"}
	for _, tt := range []struct {
		name   string
		policy string
		paused map[string]status.Pause
		want   string // "" when it may
	}{
		{"automatic, running", config.PolicyAutomatic, nil, ""},
		{"automatic, another group paused", config.PolicyAutomatic, map[string]status.Pause{"crm": {Group: "crm", By: "bob", At: t0}}, ""},
		{"automatic, paused", config.PolicyAutomatic, map[string]status.Pause{"webshop": pause},
			"group webshop: automatic failover is paused: paused by alice at 2026-12-04T10:00:00Z (kernel upgrade); `siteflip resume webshop` lets it fail over by itself"},
		{"automatic, paused without TLS or reason", config.PolicyAutomatic, map[string]status.Pause{"webshop": {Group: "webshop", At: t0}},
			"group webshop: automatic failover is paused: paused by an anonymous caller at 2026-12-04T10:00:00Z; `siteflip resume webshop` lets it fail over by itself"},
		{"manual", config.PolicyManual, nil, "group webshop: policy is manual"},
		{"manual and paused: the pause is what a person undoes first", config.PolicyManual, map[string]status.Pause{"webshop": pause},
			"group webshop: automatic failover is paused: paused by alice at 2026-12-04T10:00:00Z (kernel upgrade); `siteflip resume webshop` lets it fail over by itself"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &topology(tt.policy, time.Minute).Groups[0]
			got := ""
			if err := AutomaticFailover(g, tt.paused); err != nil {
				got = err.Error()
				if _, paused := tt.paused["webshop"]; paused != errors.Is(err, ErrPaused) {
					t.Errorf("errors.Is(err, ErrPaused) = %v, want %v", !paused, paused)
				}
			}
			if got != tt.want {
				t.Errorf("AutomaticFailover:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}

// TestDecideAfterResume: a paused group whose active site is lost waits
// for a person (once), and fails over by itself at the first decision
// after it is resumed, clearing the decision.
func TestDecideAfterResume(t *testing.T) {
	topo := topology(config.PolicyAutomatic, 10*time.Minute)
	m := NewMemory()
	w := healthy()
	w.lost = []string{"brussels"}
	w.paused = true
	first := Decide(w.input(t0, topo), m)
	if got := describe(first); got != "decide: siteflip failover webshop --to antwerp" {
		t.Fatalf("paused: %q", got)
	}
	if d := first[0].(NeedDecision).Decision; !strings.Contains(d.Reason, "paused by alice") || !strings.Contains(d.Reason, "siteflip resume webshop") {
		t.Errorf("the decision does not say who paused it and how to resume: %q", d.Reason)
	}
	m.Done(first[0])
	w.decision = true
	for i := 1; i <= 3; i++ {
		if again := Decide(w.input(t0.Add(time.Duration(i)*time.Minute), topo), m); len(again) != 0 {
			t.Fatalf("still paused, %d min later: %s", i, describe(again))
		}
	}
	w.paused = false
	got := describe(Decide(w.input(t0.Add(4*time.Minute), topo), m))
	if want := "failover brussels→antwerp rev 42 marked by antwerp,frankfurt; clear decision"; got != want {
		t.Errorf("resumed:\n got  %q\n want %q", got, want)
	}
}
