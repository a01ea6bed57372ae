package coord

import (
	"errors"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// testPause: a pause is stored once (pausing again keeps the first, who
// and why), read in every snapshot, keeps the automatic runs from
// starting however recent the controller's snapshot, leaves a person's
// runs alone, and is lifted once.
func testPause(t *testing.T, c *cluster) {
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
	if err := stores[1].PutMark(ctx, status.Mark{Site: "a", By: "b", At: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if err := stores[2].PutMark(ctx, status.Mark{Site: "a", By: "c", At: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	// The controller's snapshot, taken before the pause.
	before := snapshot(t, stores[0])
	if len(before.Paused) != 0 {
		t.Fatalf("paused before any pause: %v", before.Paused)
	}

	at := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	alice := status.Pause{Group: "g", By: "alice", Role: "operator", At: at, Reason: "kernel upgrade"}
	got, stored, err := stores[1].Pause(ctx, alice)
	if err != nil || !stored || got != alice {
		t.Fatalf("Pause = %+v, %v, %v; want %+v, stored", got, stored, err, alice)
	}
	bob := status.Pause{Group: "g", By: "bob", At: at.Add(time.Hour), Reason: "other"}
	got, stored, err = stores[2].Pause(ctx, bob)
	if err != nil || stored || got != alice {
		t.Fatalf("Pause of a paused group = %+v, %v, %v; want alice's pause, not stored", got, stored, err)
	}
	if p := snapshot(t, stores[2]).Paused["g"]; p != alice {
		t.Fatalf("snapshot's pause: %+v, want %+v", p, alice)
	}

	// An automatic failover planned from the snapshot before the pause is
	// refused, and leaves nothing behind.
	rec := before.Records["g"]
	p := plan.Plan{Group: "g", Action: plan.Failover, From: "a", To: "b", Epoch: rec.Epoch}
	auto := plan.NewRun("f1", "controller a (automatic)", plan.Request{Action: plan.Failover, To: "b"}, p, time.Now().UTC())
	if err := stores[0].StartFailover(ctx, auto, rec.Revision, "a", []string{"b", "c"}); !errors.Is(err, ErrPaused) {
		t.Fatalf("StartFailover of a paused group: %v, want %v", err, ErrPaused)
	}
	drill := plan.NewRun("d1", "controller a (scheduled)", plan.Request{Action: plan.Drill, To: "b"},
		plan.Plan{Group: "g", Action: plan.Drill, From: "a", To: "b", Epoch: rec.Epoch}, time.Now().UTC())
	if err := stores[0].StartAutomaticRun(ctx, drill, rec.Revision); !errors.Is(err, ErrPaused) {
		t.Fatalf("StartAutomaticRun of a paused group: %v, want %v", err, ErrPaused)
	}
	if snap := snapshot(t, stores[1]); len(snap.Running) != 0 || len(snap.Drilling) != 0 {
		t.Fatalf("refused runs left locks: running %v, drilling %v", snap.Running, snap.Drilling)
	}

	// A person's run goes ahead while paused.
	person := plan.NewRun("s1", "alice", plan.Request{Action: plan.Failover, To: "b"}, p, time.Now().UTC())
	if err := stores[1].StartRun(ctx, person, rec.Revision); err != nil {
		t.Fatalf("a person's run while paused: %v", err)
	}
	run, err := stores[1].Run(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	run.State, run.Ended = plan.RunSucceeded, time.Now().UTC()
	if err := stores[0].SaveRun(ctx, run, sa.Fence()); err != nil {
		t.Fatal(err)
	}

	// Resume lifts alice's pause, once.
	lifted, was, err := stores[2].Resume(ctx, "g")
	if err != nil || !was || lifted != alice {
		t.Fatalf("Resume = %+v, %v, %v; want alice's pause lifted", lifted, was, err)
	}
	if lifted, was, err := stores[0].Resume(ctx, "g"); err != nil || was {
		t.Fatalf("Resume of a running group = %+v, %v, %v; want nothing lifted, no error", lifted, was, err)
	}
	if paused := snapshot(t, stores[0]).Paused; len(paused) != 0 {
		t.Fatalf("paused after resume: %v", paused)
	}
	// Now the automatic failover starts.
	if err := stores[0].StartFailover(ctx, auto, rec.Revision, "a", []string{"b", "c"}); err != nil {
		t.Fatalf("StartFailover once resumed: %v", err)
	}
	if got := snapshot(t, stores[1]).Running["g"]; got != "f1" {
		t.Fatalf("running once resumed: %q, want f1", got)
	}
}
