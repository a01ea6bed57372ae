package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
)

// TestDrillSchedule: a schedule as written, with its defaults filled in.
func TestDrillSchedule(t *testing.T) {
	tests := []struct {
		name, block                string
		every, keep, maxAge        time.Duration
		window, zone, at, describe string
		warning                    string
	}{
		{"defaults", `{every: 168h, window: "Sat 02:00-05:00"}`,
			168 * time.Hour, 0, 336 * time.Hour, "Sat 02:00-05:00", "UTC", "", "every 168h in Sat 02:00-05:00 UTC", ""},
		{"everything written", `{every: 24h, window: "daily 23:30-01:00", timezone: Europe/Brussels, keep: 10m, max_age: 72h, at: antwerp}`,
			24 * time.Hour, 10 * time.Minute, 72 * time.Hour, "daily 23:30-01:00", "Europe/Brussels", "antwerp", "every 24h in daily 23:30-01:00 Europe/Brussels", ""},
		{"a full day name", `{every: 1h30m, window: "saturday 00:00-24:00", timezone: America/New_York}`,
			90 * time.Minute, 0, 3 * time.Hour, "saturday 00:00-24:00", "America/New_York", "", "every 1h30m in saturday 00:00-24:00 America/New_York", ""},
		{"max_age shorter than every", `{every: 168h, window: "02:00-05:00", max_age: 24h}`,
			168 * time.Hour, 0, 24 * time.Hour, "02:00-05:00", "UTC", "", "every 168h in 02:00-05:00 UTC",
			"groups[0].drill.max_age: 24h0m0s is shorter than every (168h0m0s): the group shows unproven between two drills"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo, probs := config.Parse("d.yaml", []byte(edited(t, "max_data_loss: 2s", "max_data_loss: 2s\n    drill: "+tt.block)), driver.Types())
			if errs := config.Errors(probs); len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
			var warned string
			for _, p := range probs {
				if strings.Contains(p.Field, "drill") {
					warned = p.Field + ": " + p.Msg
				}
			}
			if warned != tt.warning {
				t.Errorf("warning %q, want %q", warned, tt.warning)
			}
			s := topo.Groups[0].Drill
			if s == nil {
				t.Fatal("no schedule")
			}
			if s.Every.D() != tt.every || s.Keep.D() != tt.keep || s.MaxAge.D() != tt.maxAge {
				t.Errorf("every %s keep %s max_age %s, want %s %s %s", s.Every.D(), s.Keep.D(), s.MaxAge.D(), tt.every, tt.keep, tt.maxAge)
			}
			if s.Window.String() != tt.window || s.Zone().String() != tt.zone || s.At != tt.at || s.Describe() != tt.describe {
				t.Errorf("window %q zone %q at %q %q", s.Window, s.Zone(), s.At, s.Describe())
			}
		})
	}
	topo, _ := config.Parse("d.yaml", []byte(edited(t)), driver.Types())
	if topo.Groups[0].Drill != nil {
		t.Error("a group without a drill block has a schedule")
	}
}

func TestParseWindow(t *testing.T) {
	tests := []struct {
		in         string
		daily      bool
		day        time.Weekday
		start, end int
		length     time.Duration
		err        string
	}{
		{in: "Sat 02:00-05:00", day: time.Saturday, start: 120, end: 300, length: 3 * time.Hour},
		{in: "daily 02:00-05:00", daily: true, start: 120, end: 300, length: 3 * time.Hour},
		{in: "02:00-05:00", daily: true, start: 120, end: 300, length: 3 * time.Hour},
		{in: "SUN 23:00-01:30", day: time.Sunday, start: 1380, end: 90, length: 150 * time.Minute},
		{in: "Friday 22:00-00:00", day: time.Friday, start: 1320, end: 1440, length: 2 * time.Hour},
		{in: "00:00-24:00", daily: true, start: 0, end: 1440, length: 24 * time.Hour},
		{in: "Sat 2:00-5:00", err: `"2:00" is not HH:MM`},
		{in: "Sat 02:00", err: `"Sat 02:00" is not a window: write it like`},
		{in: "Sat 02:00-05:00 UTC", err: "is not a window: write it like"},
		{in: "Satday 02:00-05:00", err: `"Satday" is not a day`},
		{in: "Sat 02:60-05:00", err: `"02:60" is not HH:MM`},
		{in: "Sat 24:00-05:00", err: `"24:00" is past 23:59`},
		{in: "Sat 05:00-05:00", err: "it starts when it ends"},
		{in: "", err: "is not a window"},
	}
	for _, tt := range tests {
		w, err := config.ParseWindow(tt.in)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseWindow(%q): error %v, want one with %q", tt.in, err, tt.err)
			}
		case err != nil:
			t.Errorf("ParseWindow(%q): %v", tt.in, err)
		case w.Daily != tt.daily || (!w.Daily && w.Day != tt.day) || w.Start != tt.start || w.End != tt.end || w.Length() != tt.length:
			t.Errorf("ParseWindow(%q) = %+v (length %s)", tt.in, w, w.Length())
		}
	}
}

// TestWindowOccurrences: the occurrence around a time and the last one
// before it, across midnight, in a time zone and across a change of
// clocks.
func TestWindowOccurrences(t *testing.T) {
	brussels, err := time.LoadLocation("Europe/Brussels")
	if err != nil {
		t.Fatal(err)
	}
	at := func(loc *time.Location, s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		window, now            string
		loc                    *time.Location
		aroundStart, aroundEnd string
		beforeStart, beforeEnd string
	}{
		// 2026-12-05 is a Saturday.
		{"Sat 02:00-05:00", "2026-12-05 03:00", time.UTC, "2026-12-05 02:00", "2026-12-05 05:00", "2026-11-28 02:00", "2026-11-28 05:00"},
		{"Sat 02:00-05:00", "2026-12-05 05:00", time.UTC, "2026-12-12 02:00", "2026-12-12 05:00", "2026-12-05 02:00", "2026-12-05 05:00"},
		{"Sat 02:00-05:00", "2026-12-03 12:00", time.UTC, "2026-12-05 02:00", "2026-12-05 05:00", "2026-11-28 02:00", "2026-11-28 05:00"},
		{"Sat 02:00-05:00", "2026-12-05 01:59", time.UTC, "2026-12-05 02:00", "2026-12-05 05:00", "2026-11-28 02:00", "2026-11-28 05:00"},
		// Across midnight: Saturday 23:00 to Sunday 01:00.
		{"Sat 23:00-01:00", "2026-12-06 00:30", time.UTC, "2026-12-05 23:00", "2026-12-06 01:00", "2026-11-28 23:00", "2026-11-29 01:00"},
		{"daily 23:00-01:00", "2026-12-06 00:30", time.UTC, "2026-12-05 23:00", "2026-12-06 01:00", "2026-12-04 23:00", "2026-12-05 01:00"},
		{"daily 23:00-01:00", "2026-12-06 12:00", time.UTC, "2026-12-06 23:00", "2026-12-07 01:00", "2026-12-05 23:00", "2026-12-06 01:00"},
		{"00:00-24:00", "2026-12-06 12:00", time.UTC, "2026-12-06 00:00", "2026-12-07 00:00", "2026-12-05 00:00", "2026-12-06 00:00"},
		// In Brussels' time: 02:00 there is 01:00 UTC in winter.
		{"Sat 02:00-05:00", "2026-12-05 03:00", brussels, "2026-12-05 02:00", "2026-12-05 05:00", "2026-11-28 02:00", "2026-11-28 05:00"},
		// The clocks go forward on Sunday 2027-03-28 at 02:00: the window is
		// two hours long that night, and still starts at local 03:00 at the latest.
		{"daily 01:00-04:00", "2027-03-28 03:30", brussels, "2027-03-28 01:00", "2027-03-28 04:00", "2027-03-27 01:00", "2027-03-27 04:00"},
	}
	for _, tt := range tests {
		w, err := config.ParseWindow(tt.window)
		if err != nil {
			t.Fatal(err)
		}
		now := at(tt.loc, tt.now)
		s, e := w.Around(now, tt.loc)
		if want := [2]time.Time{at(tt.loc, tt.aroundStart), at(tt.loc, tt.aroundEnd)}; !s.Equal(want[0]) || !e.Equal(want[1]) {
			t.Errorf("%s at %s: around %s–%s, want %s–%s", tt.window, tt.now, s, e, want[0], want[1])
		}
		s, e = w.Before(now, tt.loc)
		if want := [2]time.Time{at(tt.loc, tt.beforeStart), at(tt.loc, tt.beforeEnd)}; !s.Equal(want[0]) || !e.Equal(want[1]) {
			t.Errorf("%s at %s: before %s–%s, want %s–%s", tt.window, tt.now, s, e, want[0], want[1])
		}
	}
	// The same window in two zones is two different instants.
	w, _ := config.ParseWindow("Sat 02:00-05:00")
	now := time.Date(2026, 12, 5, 1, 30, 0, 0, time.UTC)
	if s, _ := w.Around(now, brussels); !s.Equal(time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)) {
		t.Errorf("Brussels' window starts at %s UTC, want 01:00", s.UTC())
	}
	if s, _ := w.Around(now, time.UTC); !s.Equal(time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)) {
		t.Errorf("UTC's window starts at %s, want 02:00", s)
	}
}
