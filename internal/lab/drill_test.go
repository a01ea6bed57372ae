package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// TestDrill: a drill of webshop at its standby site, with a writer
// running: the copy is started in antwerp's bubble and checked, then
// removed; production saw nothing (no failed write, no longer gap, no
// lost write, same epoch and active site) and replication kept streaming.
func TestDrill(t *testing.T) {
	skipUnlessLab(t)
	o, topo, c := labUp(t)
	waitStatus(t, c, 60*time.Second, "protected at brussels", protectedAt("brussels"))
	w := startWriter(t, topo)
	waitFor(t, 10*time.Second, "the writer to start", func() bool { return w.count() > 20 })
	// What production looks like without a drill: about as many writes
	// as one takes (a drill lasts 2–3 s, the writer does up to 200/s).
	w.since()
	n0 := w.count()
	waitFor(t, 30*time.Second, "400 writes without a drill", func() bool { return w.count() > n0+400 })
	failedBefore, gapBefore := w.since()

	r := runAndWait(t, c, api.RunRequest{Group: "webshop", Action: plan.Drill})
	if r.State != plan.RunSucceeded || r.Verification != plan.Verified {
		t.Fatalf("drill %s (%s): %s", r.State, r.Verification, r.Error)
	}
	failed, gap := w.since()
	t.Logf("drill in %s, RTO %s; writer: %d failures and longest gap %s during the drill, %d and %s before",
		r.Ended.Sub(r.Started).Round(time.Millisecond), r.MeasuredRTO().Round(time.Millisecond), failed, gap.Round(time.Millisecond), failedBefore, gapBefore.Round(time.Millisecond))
	if failed > 0 {
		t.Errorf("production clients saw %d failures during the drill", failed)
	}
	if gap > gapBefore+time.Second {
		t.Errorf("the longest write gap grew from %s to %s during the drill", gapBefore, gap)
	}
	if r.Plan.To != "antwerp" {
		t.Errorf("drilled at %s, want the standby site antwerp", r.Plan.To)
	}
	want := []string{"clone:db@antwerp", "start:db@antwerp", "start:name@antwerp", "check:recent-orders@antwerp", "check:name-answers@antwerp", "teardown:name@antwerp", "teardown:db@antwerp"}
	var got []string
	for i, s := range r.Plan.Steps {
		got = append(got, s.ID)
		if r.Steps[i].State != plan.StepDone {
			t.Errorf("step %s: %s %s", s.ID, r.Steps[i].State, r.Steps[i].Error)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("steps:\n got %v\nwant %v", got, want)
	}
	if age := r.OutputOf(plan.Clone, "db")["data_age"]; age == "" {
		t.Errorf("the clone gave no data age (the drill's RPO)")
	}
	if addr := r.OutputOf(plan.Start, "db")["address"]; addr != "127.0.2.2:5432" {
		t.Errorf("the copy served at %q, want antwerp's bubble 127.0.2.2:5432", addr)
	}

	st := waitStatus(t, c, 30*time.Second, "protected at brussels, no drill", func(st status.Status) bool {
		return protectedAt("brussels")(st) && group(st).Drill == ""
	})
	if group(st).Epoch != 1 {
		t.Errorf("a drill changed the epoch to %d", group(st).Epoch)
	}
	if lost := w.lost(t); len(lost) > 0 {
		t.Errorf("the drill lost %d acknowledged writes", len(lost))
	}
	noDrillLeft(t, o)

	// A drill while one runs is refused; so is one at the active site.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.StartRun(ctx, api.RunRequest{Group: "webshop", Action: plan.Drill, To: "brussels"}); err == nil || !strings.Contains(err.Error(), "active site") {
		t.Errorf("a drill at the active site: %v", err)
	}
}

// noDrillLeft asserts that no PostgreSQL server and no directory of a drill
// is left in the lab.
func noDrillLeft(t *testing.T, o Options) {
	t.Helper()
	for _, site := range []string{"brussels", "antwerp"} {
		dir := filepath.Join(o.Dir, site, "pg", "data.drills")
		if ps := processesOf(t, dir); len(ps) > 0 {
			t.Errorf("drill processes left at %s: %v", site, ps)
		}
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if len(entries) > 0 {
			t.Errorf("drill directories left at %s: %v", site, entries)
		}
	}
	// The bubble answers nothing any more.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, "host=127.0.2.2 port=5432 user=siteflip dbname=webshop connect_timeout=1"); err == nil {
		conn.Close(context.Background())
		t.Errorf("something still answers at antwerp's bubble 127.0.2.2:5432")
	}
}

// TestDrillWithACheckThatCannotPass: the drill fails, names the check, and
// still leaves nothing; a switchover with the same check still moves the
// group, and says which check failed.
func TestDrillWithACheckThatCannotPass(t *testing.T) {
	skipUnlessLab(t)
	o, _, c := labUpOptions(t, Options{Unpassable: true})
	waitStatus(t, c, 60*time.Second, "protected at brussels", protectedAt("brussels"))
	r := runAndWait(t, c, api.RunRequest{Group: "webshop", Action: plan.Drill})
	if r.State != plan.RunFailed || !strings.Contains(r.Error, "check:never-passes@antwerp failed") || !strings.Contains(r.Error, "everything the drill made was removed") {
		t.Fatalf("drill %s: %s", r.State, r.Error)
	}
	t.Logf("drill: %s", r.Error)
	for i, s := range r.Plan.Rollback {
		if r.Rollback[i].State != plan.StepDone {
			t.Errorf("teardown %s: %s %s", s.ID, r.Rollback[i].State, r.Rollback[i].Error)
		}
	}
	noDrillLeft(t, o)

	waitStatus(t, c, 30*time.Second, "protected at brussels", protectedAt("brussels"))
	r = runAndWait(t, c, api.RunRequest{Group: "webshop", Action: plan.Switchover, To: "antwerp"})
	if r.State != plan.RunSucceeded || !strings.HasPrefix(r.Verification, "checks failed: never-passes") {
		t.Fatalf("switchover %s, verification %q: %s", r.State, r.Verification, r.Error)
	}
	t.Logf("switchover: %s", r.Verification)
}
