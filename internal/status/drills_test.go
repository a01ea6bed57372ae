package status

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
)

// weekly is the lab's sample: every 168h in Sat 02:00-05:00 at Brussels
// (01:00-04:00 UTC in winter).
func weekly(t *testing.T) *config.DrillSchedule {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Brussels")
	if err != nil {
		t.Fatal(err)
	}
	w, err := config.ParseWindow("Sat 02:00-05:00")
	if err != nil {
		t.Fatal(err)
	}
	return &config.DrillSchedule{Every: new(config.Duration(168 * time.Hour)), Window: w, Timezone: "Europe/Brussels", Location: loc,
		Keep: new(config.Duration(0)), MaxAge: new(config.Duration(336 * time.Hour))}
}

// utc reads a time in UTC; 2026-12-05 is a Saturday.
func utc(s string) time.Time {
	v, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return v
}

func TestDrillTimes(t *testing.T) {
	s := weekly(t)
	tests := []struct {
		name                      string
		lastSuccess, lastTry, now string
		due                       bool
		next, missed, unproven    string
	}{
		{name: "never drilled, before the window", now: "2026-12-03 12:00:00", due: true,
			next: "2026-12-05 01:00:00", missed: "2026-11-28 01:00:00", unproven: "unproven: no successful drill on record"},
		{name: "never drilled, in the window", now: "2026-12-05 02:30:00", due: true,
			next: "2026-12-05 02:30:00", missed: "2026-11-28 01:00:00", unproven: "unproven: no successful drill on record"},
		{name: "drilled last window", lastSuccess: "2026-11-28 01:00:05", lastTry: "2026-11-28 01:00:05", now: "2026-12-03 12:00:00",
			next: "2026-12-05 01:00:00"},
		// A drill late in last week's window does not push this week's
		// out of its window.
		{name: "drilled late last window", lastSuccess: "2026-11-28 03:59:00", lastTry: "2026-11-28 03:59:00", now: "2026-12-05 01:00:00", due: true,
			next: "2026-12-05 01:00:00"},
		{name: "drilled this window", lastSuccess: "2026-12-05 01:00:05", lastTry: "2026-12-05 01:00:05", now: "2026-12-05 02:00:00",
			next: "2026-12-12 01:00:00"},
		// A failed drill is tried again in the next window, not at once.
		{name: "failed this window", lastSuccess: "2026-11-28 01:00:05", lastTry: "2026-12-05 01:00:05", now: "2026-12-05 02:00:00", due: true,
			next: "2026-12-12 01:00:00"},
		{name: "a manual drill on Wednesday moves the next one a week on", lastSuccess: "2026-12-02 10:00:00", lastTry: "2026-12-02 10:00:00", now: "2026-12-03 12:00:00",
			next: "2026-12-12 01:00:00"},
		{name: "last window passed without a drill", lastSuccess: "2026-11-21 01:00:05", lastTry: "2026-11-21 01:00:05", now: "2026-12-03 12:00:00", due: true,
			next: "2026-12-05 01:00:00", missed: "2026-11-28 01:00:00"},
		{name: "a failed drill in the last window is not a missed one", lastSuccess: "2026-11-21 01:00:05", lastTry: "2026-11-28 01:00:05", now: "2026-12-03 12:00:00", due: true,
			next: "2026-12-05 01:00:00"},
		{name: "older than max_age", lastSuccess: "2026-11-14 01:00:05", lastTry: "2026-11-28 01:00:05", now: "2026-12-03 12:00:00", due: true,
			next: "2026-12-05 01:00:00", unproven: "unproven: the last successful drill was 19.5 days ago, more than max_age 14 days"},
	}
	parse := func(s string) time.Time {
		if s == "" {
			return time.Time{}
		}
		return utc(s)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lastSuccess, lastTry, now := parse(tt.lastSuccess), parse(tt.lastTry), parse(tt.now)
			if got := DrillDue(s, lastSuccess, now); got != tt.due {
				t.Errorf("due %v, want %v", got, tt.due)
			}
			if got := NextDrill(s, lastSuccess, lastTry, now); !got.Equal(parse(tt.next)) {
				t.Errorf("next %s, want %s", got.UTC(), tt.next)
			}
			start, _, missed := MissedDrill(s, lastSuccess, lastTry, now)
			if missed != (tt.missed != "") || (missed && !start.Equal(parse(tt.missed))) {
				t.Errorf("missed %v (window %s), want %q", missed, start.UTC(), tt.missed)
			}
			if got := Unproven(s, lastSuccess, now); got != tt.unproven {
				t.Errorf("unproven %q, want %q", got, tt.unproven)
			}
		})
	}
}

func TestDrillRecordWith(t *testing.T) {
	ok1 := DrillResult{Run: "r1", Started: utc("2026-11-28 01:00:00"), Result: "succeeded"}
	failed2 := DrillResult{Run: "r2", Started: utc("2026-12-05 01:00:00"), Result: "failed"}
	ok3 := DrillResult{Run: "r3", Started: utc("2026-12-12 01:00:00"), Result: "succeeded"}
	r := DrillRecord{}.With(ok1).With(failed2)
	if r.Last.Run != "r2" || r.LastSuccess.Run != "r1" {
		t.Errorf("after a success and a failure: %+v %+v", r.Last, r.LastSuccess)
	}
	// An older drill learned later (from the history, at election) does
	// not go back in time.
	if r2 := (DrillRecord{}).With(ok3).Merge(r); r2.Last.Run != "r3" || r2.LastSuccess.Run != "r3" {
		t.Errorf("merged: %+v %+v", r2.Last, r2.LastSuccess)
	}
	if r2 := r.Merge(DrillRecord{Last: &ok1, LastSuccess: &ok1}); r2.Last.Run != "r2" || r2.LastSuccess.Run != "r1" {
		t.Errorf("merged with older: %+v %+v", r2.Last, r2.LastSuccess)
	}
}

// A group's drills are shown with its schedule; unproven is a problem
// that leaves a protected group protected.
func TestDrillsInStatus(t *testing.T) {
	topo := topology()
	topo.Groups[0].Drill = weekly(t)
	now := utc("2026-12-03 12:00:00")
	rto, rpo := 2.3, 0.003
	last := DrillResult{Run: "20261128T010005-webshop-drill-1a2b", Site: "antwerp", Started: utc("2026-11-28 01:00:05"), Ended: utc("2026-11-28 01:00:09"),
		Result: "succeeded", RTOSeconds: &rto, RPOSeconds: &rpo}
	snap := func(drills map[string]DrillRecord) Snapshot {
		return Snapshot{Views: allHealthy, Records: rec, Lags: trusted, Drills: drills}
	}

	st := Assemble(topo, snap(map[string]DrillRecord{"webshop": {Last: &last, LastSuccess: &last}}), "frankfurt", now)
	g := st.Groups[0]
	if g.State != StateProtected || len(g.Problems) != 0 {
		t.Errorf("state %s, problems %q; want protected without problems", g.State, g.Problems)
	}
	got, err := json.MarshalIndent(g.Drills, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "every": "168h0m0s",
  "window": "Sat 02:00-05:00",
  "timezone": "Europe/Brussels",
  "max_age": "336h0m0s",
  "last": {
    "run": "20261128T010005-webshop-drill-1a2b",
    "site": "antwerp",
    "started": "2026-11-28T01:00:05Z",
    "ended": "2026-11-28T01:00:09Z",
    "result": "succeeded",
    "rto_seconds": 2.3,
    "rpo_seconds": 0.003
  },
  "last_success": "2026-11-28T01:00:05Z",
  "next": "2026-12-05T01:00:00Z"
}`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("drills JSON (-want +got):\n%s", diff)
	}

	// None on record: unproven, still protected, and last window missed.
	st = Assemble(topo, snap(nil), "frankfurt", now)
	g = st.Groups[0]
	if g.State != StateProtected {
		t.Errorf("state %s, want protected: unproven is a problem, not a state", g.State)
	}
	if want := []string{"unproven: no successful drill on record; run: siteflip drill webshop"}; !cmp.Equal(g.Problems, want) {
		t.Errorf("problems %q, want %q", g.Problems, want)
	}
	if g.Drills == nil || !g.Drills.Missed.Equal(utc("2026-11-28 01:00:00")) || g.Drills.Last != nil {
		t.Errorf("drills %+v", g.Drills)
	}

	// A drill in progress in its window: the next one is next week's.
	in := snap(map[string]DrillRecord{"webshop": {Last: &last, LastSuccess: &last}})
	in.Drilling = map[string]string{"webshop": "20261205T010000-webshop-drill-9f9f"}
	st = Assemble(topo, in, "frankfurt", utc("2026-12-05 01:00:30"))
	if g := st.Groups[0]; !g.Drills.Next.Equal(utc("2026-12-12 01:00:00")) {
		t.Errorf("next during a drill: %s", g.Drills.Next)
	}

	// Without a schedule: only what is on record, and no problem.
	topo.Groups[0].Drill = nil
	st = Assemble(topo, snap(nil), "frankfurt", now)
	if g := st.Groups[0]; g.Drills != nil || len(g.Problems) != 0 {
		t.Errorf("a group without schedule or drill: drills %+v problems %q", g.Drills, g.Problems)
	}
	st = Assemble(topo, snap(map[string]DrillRecord{"webshop": {Last: &last, LastSuccess: &last}}), "frankfurt", now)
	if g := st.Groups[0]; g.Drills == nil || g.Drills.Last.Run != last.Run || !g.Drills.Next.IsZero() || g.Drills.Every != "" {
		t.Errorf("a group with a drill and no schedule: %+v", g.Drills)
	}
	if b, _ := json.Marshal(st.Groups[0].Drills); strings.Contains(string(b), "next") {
		t.Errorf("no next without a schedule: %s", b)
	}
}

// What a site's agent could not remove of a drill is a problem of the
// group, with the command that removes it; the state does not change.
func TestDrillLeftoversInStatus(t *testing.T) {
	views := map[string]View{}
	for site, v := range allHealthy {
		views[site] = v
	}
	v := views["antwerp"]
	v.DrillLeftovers = map[string][]string{"webshop/db": {"drill 20261204T150000-webshop-drill-1a2b: remove /srv/pg.drills/x: device or resource busy"}}
	views["antwerp"] = v
	st := Assemble(topology(), Snapshot{Views: views, Records: rec, Lags: trusted}, "frankfurt", utc("2026-12-03 12:00:00"))
	g := st.Groups[0]
	want := []string{"drill leftovers at antwerp: db: drill 20261204T150000-webshop-drill-1a2b: remove /srv/pg.drills/x: device or resource busy; run: siteflip drill webshop --cleanup"}
	if g.State != StateProtected || !cmp.Equal(g.Problems, want) {
		t.Errorf("state %s, problems %q; want protected and %q", g.State, g.Problems, want)
	}
}
