package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/status"
)

// drillLine says in one line how a group's drills stand: the last one,
// the next one, a missed window. Times are in the schedule's zone, named
// once at the end; without a schedule, in this machine's.
func drillLine(d *status.DrillStatus, now time.Time) string {
	if d == nil {
		return "no drill scheduled"
	}
	loc := time.Local
	if d.Timezone != "" {
		if l, err := time.LoadLocation(d.Timezone); err == nil {
			loc = l
		}
	}
	day := func(t time.Time) string { return t.In(loc).Format("2006-01-02 15:04") }
	var parts []string
	switch l := d.Last; {
	case l == nil:
		parts = append(parts, "no drill on record")
	case l.Succeeded():
		s := "last drill: " + day(l.Started) + " succeeded"
		if l.RTOSeconds != nil {
			s += fmt.Sprintf(", RTO %.1fs", *l.RTOSeconds)
		}
		if l.RPOSeconds != nil {
			s += fmt.Sprintf(", RPO %.3fs", *l.RPOSeconds)
		}
		parts = append(parts, s)
	default:
		s := fmt.Sprintf("last drill: %s %s (siteflip report %s)", day(l.Started), strings.ToUpper(l.Result), l.Run)
		if d.LastSuccess.IsZero() {
			s += ", never succeeded"
		} else {
			s += ", last success " + day(d.LastSuccess)
		}
		parts = append(parts, s)
	}
	if d.Every == "" {
		return strings.Join(append(parts, "no drill scheduled"), "; ")
	}
	switch next := d.Next.In(loc); {
	case !next.After(now):
		parts = append(parts, "next: due now")
	case next.Sub(now) < 6*24*time.Hour:
		parts = append(parts, "next: "+next.Format("Mon 15:04"))
	default:
		parts = append(parts, "next: "+next.Format("Mon 2006-01-02 15:04"))
	}
	if !d.Missed.IsZero() {
		parts = append(parts, "MISSED the window of "+d.Missed.In(loc).Format("Mon 2006-01-02 15:04"))
	}
	return strings.Join(parts, "; ") + " (" + loc.String() + ")"
}
