package safety

import (
	"fmt"
	"strconv"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// DrillGroup is what ScheduleDrills knows of one group with a drill
// schedule.
type DrillGroup struct {
	Group *config.Group
	// Active is the group's active site ("" before it is adopted).
	Active string
	// Record is what the control plane keeps of the group's drills.
	Record status.DrillRecord
	// Tried is when this controller last started a scheduled drill of the
	// group (zero: not in its term): a drill whose end did not reach the
	// record yet still counts as this window's.
	Tried time.Time
	// State is the group's state; a drill starts only when it is
	// protected.
	State string
	// Busy is the run or drill in progress on the group, "" when none.
	Busy string
	// Paused is the group's pause, nil when it is not paused: a paused
	// group's scheduled drill does not start.
	Paused *status.Pause
}

// DrillSite is where a group's scheduled drill goes: the schedule's
// site, or the first of the group's sites other than the active one.
func DrillSite(g *config.Group, active string) string {
	if g.Drill != nil && g.Drill.At != "" {
		return g.Drill.At
	}
	for _, s := range g.Sites {
		if s != active {
			return s
		}
	}
	return ""
}

// DrillDecision is what ScheduleDrills says of one group.
type DrillDecision struct {
	Group string
	// Start is the site to start a drill at now; "" when none starts.
	Start string
	// Next is when the next drill is due to start (now, while one is due
	// in its window but cannot start).
	Next time.Time
	// Blocked says why a drill due now, in its window, does not start.
	Blocked string
	// Missed is set when the last window that ended passed with the drill
	// due and no drill started in it: Missed is its start, MissedEnd its
	// end.
	Missed, MissedEnd time.Time
}

// ScheduleDrills is the rule of scheduled drills (docs/design/drills.md).
// A group's drill starts now when, inside its window, it is due (no drill
// succeeded within every), none was tried in this window yet, the group
// is protected, not paused, with no run or drill in progress, and its
// drill site is not its active site and holds no drill of any group —
// counting those this call starts, in the order of groups. drilling is
// the site of every drill in progress, with its group. Groups without a
// schedule are left out of the answer.
func ScheduleDrills(now time.Time, groups []DrillGroup, drilling map[string]string) []DrillDecision {
	busySite := make(map[string]string, len(drilling))
	for site, g := range drilling {
		busySite[site] = g
	}
	var out []DrillDecision
	for _, g := range groups {
		s := g.Group.Drill
		if s == nil {
			continue
		}
		lastSuccess := g.Record.LastSuccessStarted()
		lastTry := g.Record.LastStarted()
		if g.Tried.After(lastTry) {
			lastTry = g.Tried
		}
		d := DrillDecision{Group: g.Group.Name}
		if start, end, missed := status.MissedDrill(s, lastSuccess, lastTry, now); missed {
			d.Missed, d.MissedEnd = start, end
		}
		d.Next = status.NextDrill(s, lastSuccess, lastTry, now)
		start, _ := s.Window.Around(now, s.Zone())
		inWindow := !start.After(now)
		triedHere := !lastTry.IsZero() && !lastTry.Before(start)
		if !inWindow || triedHere || !status.DrillDue(s, lastSuccess, now) {
			out = append(out, d)
			continue
		}
		site := DrillSite(g.Group, g.Active)
		switch {
		case g.Busy != "":
			d.Blocked = fmt.Sprintf("run %s is in progress on the group", g.Busy)
		case g.Paused != nil:
			d.Blocked = fmt.Sprintf("the group is paused (by %s at %s); `siteflip resume %s` lets its scheduled drills start",
				g.Paused.Who(), g.Paused.At.UTC().Format(time.RFC3339), g.Group.Name)
		case g.Active == "":
			d.Blocked = "no controller has adopted the group yet"
		case g.State != status.StateProtected:
			d.Blocked = fmt.Sprintf("the group is %s, not protected", g.State)
		case site == "":
			d.Blocked = "the group has no site to drill at"
		case site == g.Active:
			d.Blocked = fmt.Sprintf("the drill site %s is the group's active site; a drill copies a standby: fail back, or change drill.at", site)
		case busySite[site] != "":
			d.Blocked = fmt.Sprintf("a drill of group %s is in progress at %s", busySite[site], site)
		default:
			d.Start = site
			busySite[site] = g.Group.Name
		}
		out = append(out, d)
	}
	return out
}

// drillDataAge is resource.OutputDataAge, repeated here so that the
// safety rules do not import the resource model (schedule_test checks
// that they agree).
const drillDataAge = "data_age"

// DrillResultOf is how a drill run that ended is kept: its result, its
// measured RTO, and the largest data age of its clones as its RPO.
func DrillResultOf(run plan.Run) status.DrillResult {
	d := status.DrillResult{Run: run.ID, Site: run.Plan.To, Started: run.Started, Ended: run.Ended, Result: run.State, Error: run.Error}
	if rto := run.MeasuredRTO(); rto > 0 && run.State == plan.RunSucceeded {
		secs := rto.Seconds()
		d.RTOSeconds = &secs
	}
	known := false
	var worst float64
	for i, s := range run.Plan.Steps {
		if s.Kind != plan.Clone || i >= len(run.Steps) || run.Steps[i].State != plan.StepDone {
			continue
		}
		secs, err := strconv.ParseFloat(run.Steps[i].Output[drillDataAge], 64)
		if err != nil || secs < 0 {
			known = false // one clone's age unknown: the drill's is
			break
		}
		if !known || secs > worst {
			worst, known = secs, true
		}
	}
	if known {
		d.RPOSeconds = &worst
	}
	return d
}

// DrillHistory is what a run history tells of each group's drills: the
// last drill that ended and the last that succeeded, by group.
func DrillHistory(runs []plan.Run) map[string]status.DrillRecord {
	out := map[string]status.DrillRecord{}
	for _, r := range runs {
		if r.Plan.Action != plan.Drill || !r.Done() {
			continue
		}
		out[r.Group] = out[r.Group].With(DrillResultOf(r))
	}
	return out
}

// DrillMemory is what the controller remembers of scheduled drills in its
// term: the drills it started, why due drills did not start, and the
// missed windows it reported (each once).
type DrillMemory struct {
	// Tried is, by group, when this controller last started its
	// scheduled drill (DrillGroup.Tried).
	Tried    map[string]time.Time
	blocked  map[string]blockedAt
	reported map[string]time.Time
}

type blockedAt struct {
	why string
	at  time.Time
}

// NewDrillMemory is an empty memory, as at the start of a term.
func NewDrillMemory() *DrillMemory {
	return &DrillMemory{Tried: map[string]time.Time{}, blocked: map[string]blockedAt{}, reported: map[string]time.Time{}}
}

// MissedWindow is a window that passed with a group's drill due and no
// drill started in it; Why is the last reason the drill could not start
// in it, or "" when this controller did not see why.
type MissedWindow struct {
	Group      string
	Start, End time.Time
	Why        string
}

// Update takes in the decisions made at now and returns the missed
// windows not reported yet.
func (m *DrillMemory) Update(now time.Time, ds []DrillDecision) []MissedWindow {
	var out []MissedWindow
	for _, d := range ds {
		if d.Start != "" {
			m.Tried[d.Group] = now
		}
		if d.Blocked != "" {
			m.blocked[d.Group] = blockedAt{d.Blocked, now}
		}
		if d.Missed.IsZero() || m.reported[d.Group].Equal(d.Missed) {
			continue
		}
		m.reported[d.Group] = d.Missed
		mw := MissedWindow{Group: d.Group, Start: d.Missed, End: d.MissedEnd}
		if b, ok := m.blocked[d.Group]; ok && !b.at.Before(d.Missed) && b.at.Before(d.MissedEnd) {
			mw.Why = b.why
		}
		out = append(out, mw)
	}
	return out
}
