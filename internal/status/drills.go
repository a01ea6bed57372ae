package status

import (
	"fmt"
	"time"

	"github.com/siteflip/siteflip/internal/config"
)

// DrillResult is how one drill ended, as the control plane keeps it and
// status shows it.
type DrillResult struct {
	Run     string    `json:"run"`
	Site    string    `json:"site"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	Result  string    `json:"result"` // the run's state: succeeded or failed
	// RTOSeconds is the drill's measured RTO (its copies started and
	// checked); absent when it did not get that far.
	RTOSeconds *float64 `json:"rto_seconds,omitempty"`
	// RPOSeconds is the largest data age of its clones; absent when not
	// known.
	RPOSeconds *float64 `json:"rpo_seconds,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// Succeeded says whether the drill went through.
func (d *DrillResult) Succeeded() bool { return d != nil && d.Result == "succeeded" }

// DrillRecord is what the control plane keeps of a group's drills
// (drills/GROUP): the last one, and the last one that succeeded. It
// outlives the run history's pruning.
type DrillRecord struct {
	Last        *DrillResult `json:"last,omitempty"`
	LastSuccess *DrillResult `json:"last_success,omitempty"`
}

// With returns r with d, a drill that ended, taken in: the last drill
// unless a later one is known, and the last success if it succeeded.
func (r DrillRecord) With(d DrillResult) DrillRecord {
	if r.Last == nil || !d.Started.Before(r.Last.Started) {
		r.Last = &d
	}
	if d.Succeeded() && (r.LastSuccess == nil || !d.Started.Before(r.LastSuccess.Started)) {
		r.LastSuccess = &d
	}
	return r
}

// Merge returns r with what o knows that is later.
func (r DrillRecord) Merge(o DrillRecord) DrillRecord {
	if o.Last != nil {
		r = r.With(*o.Last)
	}
	if o.LastSuccess != nil {
		r = r.With(*o.LastSuccess)
	}
	return r
}

// LastStarted is when the last drill started; zero when none is known.
func (r DrillRecord) LastStarted() time.Time {
	if r.Last == nil {
		return time.Time{}
	}
	return r.Last.Started
}

// LastSuccessStarted is when the last successful drill started; zero when
// none is known.
func (r DrillRecord) LastSuccessStarted() time.Time {
	if r.LastSuccess == nil {
		return time.Time{}
	}
	return r.LastSuccess.Started
}

// DrillStatus is a group's drills as status shows them: its schedule,
// the last drill, and when the next one is due.
type DrillStatus struct {
	// The schedule, when the group has one.
	Every    string `json:"every,omitempty"`
	Window   string `json:"window,omitempty"`
	Timezone string `json:"timezone,omitempty"`
	At       string `json:"at,omitempty"`
	MaxAge   string `json:"max_age,omitempty"`
	// Last is the last drill that ended.
	Last *DrillResult `json:"last,omitempty"`
	// LastSuccess is when the last successful drill started.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// Next is when the next scheduled drill is due to start; Missed is
	// the start of the last window that passed with the drill due and no
	// drill started in it.
	Next   time.Time `json:"next,omitzero"`
	Missed time.Time `json:"missed,omitzero"`
}

// The rules of a schedule (docs/design/drills.md). Times are wall-clock
// times from the controllers' clocks: a schedule counts in hours, so the
// seconds two clocks may disagree by do not matter.

// DrillDue says whether, at t, a drill of schedule s is due: no drill
// that succeeded started within every before t, give or take the
// window's length (so that a drill late in one window does not push the
// next one out of its window: every 168h with a weekly window is one
// drill a week).
func DrillDue(s *config.DrillSchedule, lastSuccess, t time.Time) bool {
	return lastSuccess.IsZero() || !lastSuccess.After(t.Add(-s.Every.D()+s.Window.Length()))
}

// NextDrill is when the next drill of schedule s is due to start, from
// now: the first moment, inside a window, at which it is due, in a window
// where no drill started since lastTry (a scheduled drill is tried once
// per window).
func NextDrill(s *config.DrillSchedule, lastSuccess, lastTry, now time.Time) time.Time {
	t := now
	if !lastSuccess.IsZero() {
		if from := lastSuccess.Add(s.Every.D() - s.Window.Length()); from.After(t) {
			t = from
		}
	}
	for range 2 {
		start, end := s.Window.Around(t, s.Zone())
		if !lastTry.IsZero() && !lastTry.Before(start) {
			t = end // tried in this window already
			continue
		}
		if start.After(t) {
			return start
		}
		return t
	}
	start, _ := s.Window.Around(t, s.Zone())
	return start
}

// MissedDrill returns the last window of schedule s that ended by now,
// and whether it was missed: the drill was due in it and no drill started
// in it (or since).
func MissedDrill(s *config.DrillSchedule, lastSuccess, lastTry, now time.Time) (start, end time.Time, missed bool) {
	start, end = s.Window.Before(now, s.Zone())
	tried := !lastTry.IsZero() && !lastTry.Before(start)
	return start, end, !tried && DrillDue(s, lastSuccess, end.Add(-time.Nanosecond))
}

// Unproven says why a group with schedule s is unproven at now — its
// last successful drill is older than max_age, or it has none — or "".
func Unproven(s *config.DrillSchedule, lastSuccess, now time.Time) string {
	maxAge := s.MaxAge.D()
	if maxAge == 0 {
		maxAge = 2 * s.Every.D()
	}
	switch age := now.Sub(lastSuccess); {
	case lastSuccess.IsZero():
		return "unproven: no successful drill on record"
	case age > maxAge:
		return fmt.Sprintf("unproven: the last successful drill was %s ago, more than max_age %s", approx(age), approx(maxAge))
	}
	return ""
}

// approx writes a duration as a person reads it: 15 days, 5h12m, 3m.
func approx(d time.Duration) string {
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return d.Round(time.Second).String()
}

// drills fills in the group's drills and their problem. A group's state
// does not depend on its drills: an unproven group that is protected
// stays protected.
func drills(gs *GroupStatus, g *config.Group, snap Snapshot, now time.Time) {
	for _, site := range g.Sites {
		for _, r := range g.Resources {
			for _, what := range snap.Views[site].DrillLeftovers[g.Name+"/"+r.Name] {
				gs.note(Problem{Kind: KindDrillLeftovers, Site: site, Resource: r.Name,
					Message: fmt.Sprintf("drill leftovers at %s: %s: %s", site, r.Name, what), Command: "siteflip drill " + g.Name + " --cleanup"})
			}
		}
	}
	rec, known := snap.Drills[g.Name]
	s := g.Drill
	if s == nil && !known {
		return
	}
	d := &DrillStatus{Last: rec.Last, LastSuccess: rec.LastSuccessStarted()}
	gs.Drills = d
	if s == nil {
		return
	}
	d.Every, d.Window, d.Timezone, d.At, d.MaxAge = s.Every.D().String(), s.Window.String(), s.Zone().String(), s.At, s.MaxAge.D().String()
	lastTry := rec.LastStarted()
	if gs.Drill != "" {
		lastTry = now // the drill in progress is this window's
	}
	d.Next = NextDrill(s, d.LastSuccess, lastTry, now).UTC()
	if start, _, missed := MissedDrill(s, d.LastSuccess, rec.LastStarted(), now); missed {
		d.Missed = start.UTC()
	}
	if why := Unproven(s, d.LastSuccess, now); why != "" && gs.ActiveSite != "" {
		gs.note(Problem{Kind: KindUnproven, Message: why, Command: "siteflip drill " + g.Name})
	}
}
