package cli

import (
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/status"
)

func TestDrillLine(t *testing.T) {
	// 2026-12-03 is a Thursday; Brussels is UTC+1 in winter.
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	rto, rpo := 2.3, 0.003
	ok := &status.DrillResult{Run: "r1", Started: time.Date(2026, 11, 28, 1, 0, 5, 0, time.UTC), Result: "succeeded", RTOSeconds: &rto, RPOSeconds: &rpo}
	failed := &status.DrillResult{Run: "r2", Started: time.Date(2026, 11, 28, 1, 0, 5, 0, time.UTC), Result: "failed"}
	sched := func(d status.DrillStatus) *status.DrillStatus {
		d.Every, d.Window, d.Timezone = "168h0m0s", "Sat 02:00-05:00", "Europe/Brussels"
		return &d
	}
	tests := []struct {
		name string
		d    *status.DrillStatus
		want string
	}{
		{"nothing", nil, "no drill scheduled"},
		{"scheduled, succeeded", sched(status.DrillStatus{Last: ok, LastSuccess: ok.Started, Next: time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)}),
			"last drill: 2026-11-28 02:00 succeeded, RTO 2.3s, RPO 0.003s; next: Sat 02:00 (Europe/Brussels)"},
		{"scheduled, failed, never succeeded", sched(status.DrillStatus{Last: failed, Next: time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)}),
			"last drill: 2026-11-28 02:00 FAILED (siteflip report r2), never succeeded; next: Sat 02:00 (Europe/Brussels)"},
		{"scheduled, none yet, a window missed", sched(status.DrillStatus{Next: time.Date(2026, 12, 12, 1, 0, 0, 0, time.UTC), Missed: time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)}),
			"no drill on record; next: Sat 2026-12-12 02:00; MISSED the window of Sat 2026-11-28 02:00 (Europe/Brussels)"},
		{"due now", sched(status.DrillStatus{Next: now}), "no drill on record; next: due now (Europe/Brussels)"},
	}
	for _, tt := range tests {
		if got := drillLine(tt.d, now); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
	// Without a schedule, what is on record.
	if got := drillLine(&status.DrillStatus{Last: failed}, now); got[:len("last drill: ")] != "last drill: " || got[len(got)-len("no drill scheduled"):] != "no drill scheduled" {
		t.Errorf("unscheduled: %q", got)
	}
}
