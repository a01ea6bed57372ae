package coord

import (
	"errors"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// testScheduled: one scheduled switchover per group, read in every
// snapshot; started once, in the transaction that removes it, and only
// if it is still the one read; cancelled once.
func testScheduled(t *testing.T, c *cluster) {
	ctx := ctxTimeout(t, 30*time.Second)
	stores := c.stores(t, installation(t))
	sa := newSession(t, stores[0], "a", sessionTTL)
	term, err := sa.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := stores[0].AdoptGroup(ctx, testRecord("g", "a"), term); !ok || err != nil {
		t.Fatalf("adopt: %v %v", ok, err)
	}
	at := time.Date(2026, 12, 5, 7, 0, 0, 0, time.UTC)
	sc := status.ScheduledSwitchover{Group: "g", To: "b", At: at, By: "alice", Role: "operator", Reason: "move before the upgrade", Since: at.Add(-time.Hour)}
	stored, err := stores[1].Schedule(ctx, sc)
	if err != nil || stored.Revision == 0 {
		t.Fatalf("Schedule: %+v %v", stored, err)
	}
	if cur, err := stores[2].Schedule(ctx, status.ScheduledSwitchover{Group: "g", To: "a", At: at, By: "bob"}); !errors.Is(err, ErrScheduled) || cur.By != "alice" {
		t.Fatalf("a second schedule: %+v %v; want alice's kept and ErrScheduled", cur, err)
	}
	snap := snapshot(t, stores[2])
	got := snap.Scheduled["g"]
	if got.To != "b" || !got.At.Equal(at) || got.By != "alice" || got.Revision != stored.Revision {
		t.Fatalf("snapshot's schedule: %+v, want %+v", got, stored)
	}

	// Refused once due: recorded under the term; the version read before
	// no longer starts.
	refused := got
	refused.Refused, refused.RefusedAt = "a run is in progress", at
	if err := stores[0].RefuseScheduled(ctx, refused, sa.Fence()); err != nil {
		t.Fatal(err)
	}
	rec := snap.Records["g"]
	p := plan.Plan{Group: "g", Action: plan.Switchover, From: "a", To: "b", Epoch: rec.Epoch}
	run := plan.NewRun("s1", "alice (scheduled)", plan.Request{Action: plan.Switchover, To: "b"}, p, at)
	if err := stores[0].StartScheduled(ctx, run, rec.Revision, got); !errors.Is(err, ErrStale) {
		t.Fatalf("StartScheduled from a stale read: %v", err)
	}
	now := snapshot(t, stores[0])
	if now.Scheduled["g"].Refused != "a run is in progress" || len(now.Running) != 0 {
		t.Fatalf("after a stale start: scheduled %+v, running %v", now.Scheduled["g"], now.Running)
	}
	if err := stores[0].StartScheduled(ctx, run, rec.Revision, now.Scheduled["g"]); err != nil {
		t.Fatal(err)
	}
	now = snapshot(t, stores[1])
	if now.Running["g"] != "s1" || len(now.Scheduled) != 0 {
		t.Fatalf("after the start: running %v, scheduled %v", now.Running, now.Scheduled)
	}

	// Cancel: once, then nothing to cancel.
	if _, err := stores[1].Schedule(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if gone, was, err := stores[2].CancelScheduled(ctx, "g"); err != nil || !was || gone.By != "alice" {
		t.Fatalf("cancel: %+v %v %v", gone, was, err)
	}
	if _, was, err := stores[2].CancelScheduled(ctx, "g"); err != nil || was {
		t.Fatalf("second cancel: %v %v", was, err)
	}
}
