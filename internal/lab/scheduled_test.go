package lab

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// TestScheduledSwitchover: a switchover scheduled an hour ahead is shown
// and cancelled; one scheduled a few seconds ahead is started by the
// controller as lab-admin's run, and the schedule is gone.
func TestScheduledSwitchover(t *testing.T) {
	skipUnlessLab(t)
	_, _, c := labUp(t)
	waitStatus(t, c, 30*time.Second, "lab healthy", func(st status.Status) bool { return unhealthy(st) == "" })
	schedule := func(at time.Time) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if _, err := c.Schedule(ctx, api.ScheduleRequest{Group: demoGroup, To: "antwerp", At: at, Reason: "lab test"}); err != nil {
			t.Fatalf("schedule: %v", err)
		}
	}

	schedule(time.Now().Add(time.Hour))
	waitStatus(t, c, 10*time.Second, "the scheduled switchover shown", func(st status.Status) bool {
		sc := groupOf(st, demoGroup).ScheduledSwitchover
		return sc != nil && sc.To == "antwerp" && sc.By == "lab-admin"
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	res, err := c.CancelScheduled(ctx, demoGroup)
	cancel()
	if err != nil || !res.Cancelled {
		t.Fatalf("cancel: %+v %v", res, err)
	}
	waitStatus(t, c, 10*time.Second, "no scheduled switchover", func(st status.Status) bool {
		return groupOf(st, demoGroup).ScheduledSwitchover == nil
	})

	schedule(time.Now().Add(3 * time.Second))
	var run plan.Run
	waitFor(t, 60*time.Second, "the scheduled switchover to run and end", func() bool {
		runs, err := c.Runs(t.Context(), demoGroup)
		if err != nil {
			return false
		}
		for _, r := range runs {
			if r.Plan.Action == plan.Switchover && r.By == "lab-admin" && strings.HasPrefix(r.Reason, "scheduled for ") && r.Done() {
				run = r
				return true
			}
		}
		return false
	})
	if run.State != plan.RunSucceeded || run.Plan.To != "antwerp" {
		t.Fatalf("scheduled switchover %s to %s: %s", run.State, run.Plan.To, run.Error)
	}
	waitStatus(t, c, 30*time.Second, "webshop at antwerp, nothing scheduled", func(st status.Status) bool {
		g := groupOf(st, demoGroup)
		return g.ActiveSite == "antwerp" && g.ScheduledSwitchover == nil
	})
}
