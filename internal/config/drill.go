package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	// The schedules' time zones are read from the binary's own copy of the
	// zone database: a host without /usr/share/zoneinfo (a slim container)
	// must not lose its drills.
	_ "time/tzdata"

	"go.yaml.in/yaml/v3"
)

// DrillSchedule is when the controller drills a group by itself
// (docs/design/drills.md): a drill is due when no drill succeeded within
// Every, and starts only inside Window. Load fills in Location and MaxAge.
type DrillSchedule struct {
	Every *Duration `yaml:"every"`
	// Window is when a scheduled drill may start, in Timezone.
	Window   Window `yaml:"window"`
	Timezone string `yaml:"timezone"` // IANA name; default UTC
	// Keep is how long each drill stays up after its checks (0: torn
	// down at once).
	Keep *Duration `yaml:"keep"`
	// MaxAge is how old the last successful drill may be before status
	// calls the group unproven; default twice Every.
	MaxAge *Duration `yaml:"max_age"`
	// At is the site to drill at; "" for the first of the group's sites
	// other than the active one.
	At string `yaml:"at"`

	// Location is Timezone, loaded.
	Location *time.Location `yaml:"-"`
}

// Describe says the schedule in words: "every 168h in Sat 02:00-05:00
// Europe/Brussels".
func (s *DrillSchedule) Describe() string {
	return fmt.Sprintf("every %s in %s %s", shortDuration(s.Every.D()), s.Window, s.zone())
}

func (s *DrillSchedule) zone() string {
	if s.Timezone == "" {
		return "UTC"
	}
	return s.Timezone
}

// Zone returns the schedule's time zone, UTC when none is loaded.
func (s *DrillSchedule) Zone() *time.Location {
	if s.Location == nil {
		return time.UTC
	}
	return s.Location
}

// Window is when in a day, on one weekday or on every day, something may
// start: "Sat 02:00-05:00" (or "Saturday …"), "daily 02:00-05:00" or "02:00-05:00" (daily).
// An end at or before the start crosses midnight: "Sat 23:00-01:00" ends on
// Sunday; "00:00-24:00" is the whole day.
type Window struct {
	Daily bool
	Day   time.Weekday
	// Start and End are minutes after midnight; End is 1 to 1440.
	Start, End int
	text       string
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

var weekdayNames = map[time.Weekday]string{
	time.Sunday: "sunday", time.Monday: "monday", time.Tuesday: "tuesday", time.Wednesday: "wednesday",
	time.Thursday: "thursday", time.Friday: "friday", time.Saturday: "saturday",
}

// ParseWindow parses a window as the configuration writes it.
func ParseWindow(s string) (Window, error) {
	bad := func(why string) (Window, error) {
		return Window{}, fmt.Errorf("%q is not a window%s: write it like \"Sat 02:00-05:00\" or \"daily 23:00-01:00\" (a day Mon to Sun, or daily, then a start and an end time; it may cross midnight)", s, why)
	}
	w := Window{Daily: true, text: strings.TrimSpace(s)}
	fields := strings.Fields(s)
	switch len(fields) {
	case 1:
	case 2:
		if d := strings.ToLower(fields[0]); d != "daily" {
			day, ok := weekdays[d]
			if !ok && len(d) > 3 && strings.HasSuffix(d, "day") {
				day, ok = weekdays[d[:3]] // Saturday; but not Satday
				ok = ok && weekdayNames[day] == d
			}
			if !ok {
				return bad(fmt.Sprintf(" (%q is not a day)", fields[0]))
			}
			w.Daily, w.Day = false, day
		}
	default:
		return bad("")
	}
	from, to, ok := strings.Cut(fields[len(fields)-1], "-")
	if !ok {
		return bad("")
	}
	var err error
	if w.Start, err = clock(from, false); err != nil {
		return bad(fmt.Sprintf(" (%v)", err))
	}
	if w.End, err = clock(to, true); err != nil {
		return bad(fmt.Sprintf(" (%v)", err))
	}
	if w.Start == w.End {
		return bad(" (it starts when it ends; for a whole day write 00:00-24:00)")
	}
	return w, nil
}

// clock parses HH:MM into minutes after midnight; 24:00 only as an end.
func clock(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	switch {
	case !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil || mm > 59 || hh < 0 || mm < 0:
		return 0, fmt.Errorf("%q is not HH:MM", s)
	case hh == 24 && mm == 0 && end:
		return 1440, nil
	case hh > 23:
		return 0, fmt.Errorf("%q is past 23:59", s)
	case hh == 0 && mm == 0 && end:
		return 1440, nil // midnight, at the end of the day
	}
	return hh*60 + mm, nil
}

// String is the window as written.
func (w Window) String() string { return w.text }

// IsZero says the window was left out.
func (w Window) IsZero() bool { return w.text == "" }

// Length is how long the window is on a day without a change of clocks.
func (w Window) Length() time.Duration {
	n := w.End - w.Start
	if n <= 0 {
		n += 1440
	}
	return time.Duration(n) * time.Minute
}

// at returns the window's occurrence that starts on the day d days after
// t's day (in loc), and whether there is one that day.
func (w Window) at(t time.Time, loc *time.Location, d int) (start, end time.Time, ok bool) {
	y, m, day := t.In(loc).Date()
	start = time.Date(y, m, day+d, 0, w.Start, 0, 0, loc)
	if !w.Daily && start.Weekday() != w.Day {
		return time.Time{}, time.Time{}, false
	}
	endDay := day + d
	if w.End <= w.Start {
		endDay++
	}
	return start, time.Date(y, m, endDay, 0, w.End, 0, 0, loc), true
}

// Around returns the occurrence of the window that holds t, or else the
// next one, in loc.
func (w Window) Around(t time.Time, loc *time.Location) (start, end time.Time) {
	for d := -1; d <= 8; d++ {
		if s, e, ok := w.at(t, loc, d); ok && e.After(t) {
			return s, e
		}
	}
	panic("config: a window recurs every week") // unreachable
}

// Before returns the last occurrence of the window that ended at or
// before t, in loc.
func (w Window) Before(t time.Time, loc *time.Location) (start, end time.Time) {
	for d := 0; d >= -9; d-- {
		if s, e, ok := w.at(t, loc, d); ok && !e.After(t) {
			return s, e
		}
	}
	panic("config: a window recurs every week") // unreachable
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (w *Window) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseWindow(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{err.Error()}}
	}
	*w = v
	return nil
}

func (w *Window) check(s string) error {
	_, err := ParseWindow(s)
	return err
}

// MarshalYAML implements yaml.Marshaler.
func (w Window) MarshalYAML() (any, error) { return w.text, nil }

// shortDuration writes 168h rather than 168h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (t *Topology) drillDefaults(g *Group) {
	s := g.Drill
	if s == nil {
		return
	}
	if s.MaxAge == nil && s.Every != nil {
		s.MaxAge = new(Duration(2 * s.Every.D()))
	}
	if s.Keep == nil {
		s.Keep = new(Duration(0))
	}
}

// drill checks a group's schedule.
func (v *validator) drill(f string, g *Group, groupSites map[string]bool) {
	s := g.Drill
	if s == nil {
		return
	}
	f += ".drill"
	switch {
	case s.Every == nil:
		v.add(f+".every", "is missing: say how often the group is drilled, like 168h for once a week")
	case s.Every.D() <= 0:
		v.add(f+".every", "%s: must be above zero, like 168h for once a week", s.Every.D())
	}
	if s.Window.IsZero() {
		v.add(f+".window", `is missing: give the hours a drill may start in, like "Sat 02:00-05:00" or "daily 02:00-05:00": a drill copies the standby's data`)
	}
	switch s.Timezone {
	case "":
		s.Location = time.UTC
	case "Local":
		v.add(f+".timezone", `"Local" differs from machine to machine: name the zone, like Europe/Brussels`)
	default:
		loc, err := time.LoadLocation(s.Timezone)
		if err != nil {
			v.add(f+".timezone", "%q is not a time zone: name one like Europe/Brussels or UTC", s.Timezone)
		}
		s.Location = loc
	}
	if _, written := v.t.pos[f+".max_age"]; written && s.MaxAge.D() <= 0 {
		v.add(f+".max_age", "%s: must be above zero; leave it out for twice every", s.MaxAge.D())
	} else if s.Every.D() > 0 && s.MaxAge.D() > 0 && s.MaxAge.D() < s.Every.D() {
		v.warn(f+".max_age", "%s is shorter than every (%s): the group shows unproven between two drills", s.MaxAge.D(), s.Every.D())
	}
	if s.At != "" && !groupSites[s.At] {
		v.add(f+".at", "%q is not a site of group %q (its sites: %s); leave it out to drill at the standby", s.At, g.Name, strings.Join(g.Sites, ", "))
	}
}
