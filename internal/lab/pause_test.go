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

// freshReports is how many status reports, each at a later revision of
// the control plane than the last, the paused group must come through
// unmoved once the controller has decided it waits for a person.
const freshReports = 30

// TestPauseHoldsFailover: webshop is paused, then brussels (its active
// site) has a power cut. The controller records that a person must decide
// — saying the group is paused and how to resume it — and starts no
// failover: the group stays at brussels, in epoch 1, without a run,
// through freshReports fresh status reports. Resumed, it fails over to
// antwerp by itself. Paused again, a person's reprotect still runs.
func TestPauseHoldsFailover(t *testing.T) {
	skipUnlessLab(t)
	o, _, c := labUp(t)
	waitStatus(t, c, 30*time.Second, "lab healthy", func(st status.Status) bool { return unhealthy(st) == "" })

	pause := func(reason string) api.PauseResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		res, err := c.Pause(ctx, demoGroup, api.PauseRequest{Reason: reason})
		if err != nil {
			t.Fatalf("pause %s: %v", demoGroup, err)
		}
		return res
	}
	resume := func() api.PauseResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		res, err := c.Resume(ctx, demoGroup, api.ResumeRequest{Reason: "maintenance over"})
		if err != nil {
			t.Fatalf("resume %s: %v", demoGroup, err)
		}
		return res
	}

	if res := pause("lab test: hold the failover"); !res.Changed || !res.Paused || res.Pause == nil || res.Pause.By != "lab-admin" {
		t.Fatalf("pause: %+v", res)
	}
	if res := pause("again"); res.Changed || !res.Paused || res.Pause.Reason != "lab test: hold the failover" {
		t.Fatalf("second pause: %+v; want the first pause kept, nothing changed", res)
	}
	waitStatus(t, c, 10*time.Second, "webshop shown paused by lab-admin", func(st status.Status) bool {
		g := groupOf(st, demoGroup)
		return g.Paused && g.PausedBy == "lab-admin" && g.PauseReason == "lab test: hold the failover" && !g.PausedAt.IsZero()
	})

	if err := Disaster(o, "brussels"); err != nil {
		t.Fatal(err)
	}
	// The controller has looked at the lost site and decided: a person
	// must, since the group is paused.
	st := waitStatus(t, c, 30*time.Second, "brussels lost and webshop waiting for a person because it is paused", func(st status.Status) bool {
		b, _ := st.Site("brussels")
		g := groupOf(st, demoGroup)
		return b.Lost && st.Controller != "" && st.Controller != "brussels" &&
			g.State == status.StateNeedsDecision && g.Decision != nil && strings.Contains(g.Decision.Reason, "paused by lab-admin")
	})
	if d := groupOf(st, demoGroup).Decision; !strings.Contains(d.Reason, "siteflip resume "+demoGroup) || d.Command != "siteflip failover "+demoGroup+" --to antwerp" {
		t.Errorf("decision %+v: want the resume command in the reason and the failover as the command", d)
	}
	// And holds to it: no failover through freshReports fresh reports.
	last, seen := st.Revision, 0
	waitStatus(t, c, 60*time.Second, "fresh status reports of a paused webshop that stays at brussels", func(st status.Status) bool {
		if st.Revision <= last {
			return false
		}
		last = st.Revision
		g := groupOf(st, demoGroup)
		if g.ActiveSite != "brussels" || g.Epoch != 1 || g.Run != "" || !g.Paused {
			t.Fatalf("paused webshop moved: active %s, epoch %d, run %q, paused %v (report %d, revision %d)",
				g.ActiveSite, g.Epoch, g.Run, g.Paused, seen+1, st.Revision)
		}
		seen++
		return seen >= freshReports
	})
	runs, err := c.Runs(t.Context(), demoGroup)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Plan.Action == plan.Failover {
			t.Fatalf("a failover %s (by %s) while paused", r.ID, r.By)
		}
	}

	// Resumed: the automatic failover starts at once.
	if res := resume(); !res.Changed || res.Paused || res.Pause == nil || res.Pause.By != "lab-admin" {
		t.Fatalf("resume: %+v", res)
	}
	if res := resume(); res.Changed || res.Paused {
		t.Fatalf("second resume: %+v; want nothing changed", res)
	}
	waitAutomaticFailoverOf(t, c, demoGroup, "brussels", "antwerp")
	waitStatus(t, c, 30*time.Second, "webshop active at antwerp, not paused, no decision", func(st status.Status) bool {
		g := groupOf(st, demoGroup)
		return g.ActiveSite == "antwerp" && g.Epoch == 2 && !g.Paused && g.Decision == nil
	})

	// A person's run goes on while paused.
	healReporting(t, o, c, "brussels")
	pause("lab test: reprotect by hand")
	if r := runAndWait(t, c, api.RunRequest{Group: demoGroup, Action: plan.Reprotect}); r.State != plan.RunSucceeded {
		t.Fatalf("reprotect while paused: %s: %s", r.State, r.Error)
	}
	waitStatus(t, c, 60*time.Second, "webshop protected at antwerp, still paused", func(st status.Status) bool {
		g := groupOf(st, demoGroup)
		return groupProtectedAt(st, demoGroup, "antwerp") && g.Paused
	})
	resume()
}
