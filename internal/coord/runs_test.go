package coord

import (
	"errors"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// testRuns: one run per group, plans from a stale record refused, writes
// fenced by the controller's term, activation atomic and idempotent.
func testRuns(t *testing.T, c *cluster) {
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
	snap := snapshot(t, stores[1])
	rec := snap.Records["g"]
	p := plan.Plan{Group: "g", Action: plan.Switchover, From: "a", To: "b", Epoch: rec.Epoch,
		Steps: []plan.Step{{ID: "activate@b", Kind: plan.Activate, Site: "b", Timeout: time.Second}}}
	run := plan.NewRun("r1", "operator", plan.Request{Action: plan.Switchover, To: "b"}, p, time.Now().UTC())

	// A stale record revision is refused, and nothing is stored.
	if err := stores[1].StartRun(ctx, run, rec.Revision-1); !errors.Is(err, ErrStale) {
		t.Fatalf("StartRun with a stale revision: %v", err)
	}
	if got := snapshot(t, stores[2]).Running; len(got) != 0 {
		t.Fatalf("a refused run left a lock: %v", got)
	}
	if err := stores[1].StartRun(ctx, run, rec.Revision); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, stores[2]).Running["g"]; got != "r1" {
		t.Fatalf("running: %q", got)
	}
	second := run
	second.ID = "r2"
	if err := stores[2].StartRun(ctx, second, rec.Revision); !errors.Is(err, ErrRunInProgress) {
		t.Fatalf("second run: %v", err)
	}

	// A write under another (wrong) term is refused.
	f := sa.Fence()
	if f.Term != term {
		t.Fatalf("fence term %d, elected %d", f.Term, term)
	}
	if err := stores[1].SaveRun(ctx, run, Fence{Key: f.Key, Term: term + 1000}); !errors.Is(err, ErrNotElected) {
		t.Fatalf("SaveRun under a wrong term: %v", err)
	}

	// Activation: record and run in one transaction; again is a no-op.
	run.Steps[0].State = plan.StepDone
	epoch, err := stores[1].Activate(ctx, run, rec.Epoch, "b", f)
	if err != nil || epoch != rec.Epoch+1 {
		t.Fatalf("Activate: %d %v", epoch, err)
	}
	got := snapshot(t, stores[2]).Records["g"]
	if got.ActiveSite != "b" || got.Epoch != rec.Epoch+1 {
		t.Fatalf("record after activate: %+v", got)
	}
	if epoch, err := stores[0].Activate(ctx, run, rec.Epoch, "b", f); err != nil || epoch != rec.Epoch+1 {
		t.Fatalf("resumed Activate: %d %v", epoch, err)
	}
	if got2 := snapshot(t, stores[2]).Records["g"]; got2.Revision != got.Revision {
		t.Errorf("resumed Activate wrote the record again")
	}
	if _, err := stores[0].Activate(ctx, run, rec.Epoch-1, "b", f); !errors.Is(err, ErrStale) {
		t.Errorf("Activate from an old epoch: %v", err)
	}
	stored, err := stores[2].Run(ctx, "r1")
	if err != nil || stored.Steps[0].State != plan.StepDone {
		t.Fatalf("stored run: %+v %v", stored.Steps, err)
	}

	// Finishing releases the lock; the run stays listed.
	run.State, run.Ended = plan.RunSucceeded, time.Now().UTC()
	if err := stores[0].SaveRun(ctx, run, f); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, stores[2]).Running; len(got) != 0 {
		t.Errorf("a finished run kept its lock: %v", got)
	}
	runs, err := stores[1].Runs(ctx, "g")
	if err != nil || len(runs) != 1 || runs[0].State != plan.RunSucceeded {
		t.Errorf("runs: %+v %v", runs, err)
	}
	if _, err := stores[1].Run(ctx, "nope"); !errors.Is(err, ErrNoRun) {
		t.Errorf("unknown run: %v", err)
	}

	// Lags are kept per group, resource and site.
	l := status.Lag{Seconds: 0.25, Bytes: 512, MeasuredAt: time.Now().UTC().Truncate(time.Second)}
	if err := stores[0].PutLag(ctx, "g", "db", "b", l); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, stores[2]).Lags["g"]["db"]["b"]; got != l {
		t.Errorf("lag: %+v", got)
	}
}
