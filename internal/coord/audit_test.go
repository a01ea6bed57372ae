package coord

import (
	"fmt"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/plan"
)

// testAudit: records are stored in batches, read back in time order from
// a time on, and pruned to the retention (age, then count) — and nothing
// else deletes them.
func testAudit(t *testing.T, c *cluster) {
	ctx := ctxTimeout(t, 30*time.Second)
	s := c.stores(t, installation(t))[0]
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	var recs []audit.Record
	for i := range 30 {
		recs = append(recs, audit.Record{At: t0.Add(time.Duration(i) * time.Minute), Site: "brussels", Who: fmt.Sprintf("p%02d", i), Result: audit.Done})
	}
	// Two locations write records of the same instant: both are kept.
	recs = append(recs, audit.Record{At: t0, Site: "antwerp", Who: "twin", Result: audit.Refused})
	if err := s.PutAudit(ctx, recs[:20]); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAudit(ctx, recs[20:]); err != nil {
		t.Fatal(err)
	}
	all, err := s.Audit(ctx, t0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 31 {
		t.Fatalf("read %d records, want 31", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].At.Before(all[i-1].At) {
			t.Fatalf("records out of time order at %d: %s before %s", i, all[i].At, all[i-1].At)
		}
	}
	since, err := s.Audit(ctx, t0.Add(25*time.Minute), 1000)
	if err != nil || len(since) != 5 || since[0].Who != "p25" {
		t.Fatalf("since 10:25: %d records (%v), first %+v", len(since), err, since)
	}
	newest, err := s.Audit(ctx, t0, 3)
	if err != nil || len(newest) != 3 || newest[2].Who != "p29" || newest[0].Who != "p27" {
		t.Fatalf("limit 3: %+v (%v), want p27..p29", newest, err)
	}
	// Older than 10:10 goes (11 records: p00..p09 and the twin); then the
	// oldest beyond 15.
	n, err := s.PruneAudit(ctx, 15, t0.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	left, err := s.Audit(ctx, t0.Add(-time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if n != 16 || len(left) != 15 || left[0].Who != "p15" {
		t.Fatalf("pruned %d, left %d starting at %+v; want 16 pruned, p15..p29 left", n, len(left), left[0])
	}
	if n, err := s.PruneAudit(ctx, 15, t0); err != nil || n != 0 {
		t.Fatalf("pruning within the retention deleted %d (%v)", n, err)
	}
}

// testStepContext: one read gives the record, the run in progress, the
// named run and the controller with its term.
func testStepContext(t *testing.T, c *cluster) {
	ctx := ctxTimeout(t, 30*time.Second)
	stores := c.stores(t, installation(t))
	sc, err := stores[1].StepContext(ctx, "g", "")
	if err != nil || sc.Adopted || sc.Running != "" || sc.Run != nil || sc.Controller != nil {
		t.Fatalf("empty: %+v %v", sc, err)
	}
	sa := newSession(t, stores[0], "a", sessionTTL)
	term, err := sa.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := stores[0].AdoptGroup(ctx, testRecord("g", "a"), term); !ok || err != nil {
		t.Fatalf("adopt: %v %v", ok, err)
	}
	rec := snapshot(t, stores[1]).Records["g"]
	p := plan.Plan{Group: "g", Action: plan.Switchover, From: "a", To: "b", Epoch: rec.Epoch,
		Steps: []plan.Step{{ID: "fence:db@a", Kind: plan.Fence, Resource: "db", Site: "a", Timeout: time.Second}}}
	run := plan.NewRun("r1", "ada", plan.Request{Action: plan.Switchover, To: "b"}, p, time.Now().UTC())
	if err := stores[1].StartRun(ctx, run, rec.Revision); err != nil {
		t.Fatal(err)
	}
	sc, err = stores[2].StepContext(ctx, "g", "r1")
	switch {
	case err != nil:
		t.Fatal(err)
	case !sc.Adopted || sc.Record.ActiveSite != "a" || sc.Running != "r1":
		t.Fatalf("record %+v running %q", sc.Record, sc.Running)
	case sc.Run == nil || sc.Run.ID != "r1" || len(sc.Run.Plan.Steps) != 1:
		t.Fatalf("run %+v", sc.Run)
	case sc.Controller == nil || sc.Controller.Site != "a" || sc.Controller.Term != term:
		t.Fatalf("controller %+v, want a at term %d", sc.Controller, term)
	}
	if sc, err := stores[2].StepContext(ctx, "g", "nosuch"); err != nil || sc.Run != nil || sc.Running != "r1" {
		t.Fatalf("a run that does not exist: %+v %v", sc.Run, err)
	}
}
