package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	clientv3 "go.etcd.io/etcd/client/v3"

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
	// Status learns how the group's last run ended.
	if got, want := snapshot(t, stores[2]).LastRuns["g"], (status.LastRun{ID: "r1", Action: string(run.Plan.Action), State: plan.RunSucceeded, Ended: run.Ended}); !got.Ended.Equal(want.Ended) || got.ID != want.ID || got.State != want.State || got.Action != want.Action {
		t.Errorf("last run %+v, want %+v", got, want)
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

// putRuns stores runs as they are, a hundred to a transaction.
func putRuns(t *testing.T, ctx context.Context, s *Store, runs ...plan.Run) {
	t.Helper()
	for batch := range slices.Chunk(runs, 100) {
		var ops []clientv3.Op
		for _, r := range batch {
			data, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, clientv3.OpPut(s.runsKey()+r.ID, string(data)))
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// endedRun is a finished run of group, started at start and ended a
// minute later.
func endedRun(id, group string, action plan.Action, start time.Time) plan.Run {
	p := plan.Plan{Group: group, Action: action, From: "a", To: "b"}
	r := plan.NewRun(id, "operator", plan.Request{Action: action}, p, start)
	r.State, r.Ended = plan.RunSucceeded, start.Add(time.Minute)
	return r
}

// testFillDataLost: what a failover lost is written onto it under the
// controller's term, once; the same finding again is a no-op, another one
// is refused.
func testFillDataLost(t *testing.T, c *cluster) {
	ctx := ctxTimeout(t, 30*time.Second)
	s := c.stores(t, installation(t))[0]
	se := newSession(t, s, "a", sessionTTL)
	if _, err := se.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	f := se.Fence()
	t0 := time.Now().UTC().Add(-time.Hour)
	failover := endedRun("f1", "g", plan.Failover, t0)
	going := endedRun("f2", "g", plan.Failover, t0)
	going.State, going.Ended = plan.RunRunning, time.Time{}
	putRuns(t, ctx, s, failover, going, endedRun("s1", "g", plan.Switchover, t0))
	const lost = "db at a: 8192 bytes of WAL existed only there"

	if err := s.FillDataLost(ctx, "g", "f1", lost, "r2", Fence{Key: f.Key, Term: f.Term + 1000}); !errors.Is(err, ErrNotElected) {
		t.Fatalf("FillDataLost under a wrong term: %v", err)
	}
	if got, err := s.Run(ctx, "f1"); err != nil || got.DataLostBy != "" {
		t.Fatalf("a refused fill wrote: %+v %v", got, err)
	}
	if err := s.FillDataLost(ctx, "g", "f1", lost, "r2", f); err != nil {
		t.Fatal(err)
	}
	got, err := s.Run(ctx, "f1")
	if err != nil || got.DataLost != lost || got.DataLostBy != "r2" {
		t.Fatalf("filled failover: %q by %q (%v)", got.DataLost, got.DataLostBy, err)
	}
	want := failover
	want.DataLost, want.DataLostBy = lost, "r2"
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("the fill changed more than what was lost (-want +got):\n%s", diff)
	}
	rev := func() int64 {
		resp, err := s.cli.Get(ctx, s.runsKey()+"f1")
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("read f1: %v", err)
		}
		return resp.Kvs[0].ModRevision
	}
	before := rev()
	if err := s.FillDataLost(ctx, "g", "f1", lost, "r2", f); err != nil || rev() != before {
		t.Errorf("the same fill again: %v, written again: %v", err, rev() != before)
	}
	if err := s.FillDataLost(ctx, "g", "f1", "", "r3", f); !errors.Is(err, ErrDataLostKnown) {
		t.Errorf("another run's fill: %v", err)
	}
	for _, tt := range []struct{ group, id string }{{"g", "f2"}, {"g", "s1"}, {"other", "f1"}} {
		if err := s.FillDataLost(ctx, tt.group, tt.id, "", "r2", f); err == nil || !strings.Contains(err.Error(), "not a finished failover") {
			t.Errorf("fill %s of group %s: %v", tt.id, tt.group, err)
		}
	}
	if err := s.FillDataLost(ctx, "g", "nope", "", "r2", f); !errors.Is(err, ErrNoRun) {
		t.Errorf("unknown run: %v", err)
	}
}

// testPruneRuns: per group the newest runs stay, and of the older ones
// those that ended within the retention, those in progress, and the
// newest failover and drill; the rest goes, under the controller's term.
func testPruneRuns(t *testing.T, c *cluster) {
	ctx := ctxTimeout(t, 60*time.Second)
	s := c.stores(t, installation(t))[0]
	se := newSession(t, s, "a", sessionTTL)
	if _, err := se.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	f := se.Fence()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	hour := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Hour) }
	// Group g: 250 runs an hour apart; the first 100 ended before the cut.
	var runs []plan.Run
	for i := range 250 {
		runs = append(runs, endedRun(fmt.Sprintf("g-%03d", i), "g", plan.Switchover, hour(i)))
	}
	runs[3].State, runs[3].Ended = plan.RunRunning, time.Time{} // in progress, locked
	runs[4].Plan.Action = plan.Drill                            // a drill in progress, locked
	runs[4].State, runs[4].Ended = plan.RunRunning, time.Time{}
	runs[5].Plan.Action = plan.Drill                              // the group's newest drill
	runs[2].Plan.Action = plan.Drill                              // an older one
	runs[10].Plan.Action = plan.Failover                          // the group's newest failover
	runs[12].State = plan.RunFailed                               // finished, whatever how
	runs[20].Ended = time.Time{}                                  // finished, its end not recorded: judged by its start
	runs[40].Ended = hour(120)                                    // started before the cut, ended after it
	runs[30].State, runs[30].Ended = plan.RunRunning, time.Time{} // not finished, lock or not
	// Group h: fewer runs than the share, all old.
	for i := range 10 {
		runs = append(runs, endedRun(fmt.Sprintf("h-%03d", i), "h", plan.Switchover, hour(i)))
	}
	putRuns(t, ctx, s, runs...)
	if _, err := s.cli.Txn(ctx).Then(
		clientv3.OpPut(s.runningKey()+"g", "g-003"),
		clientv3.OpPut(s.drillingKey()+"g", "g-004"),
		clientv3.OpPut(s.runsKey()+"garbled", "{"),
	).Commit(); err != nil {
		t.Fatal(err)
	}
	stored := func() []string {
		resp, err := s.cli.Get(ctx, s.runsKey(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, kv := range resp.Kvs {
			ids = append(ids, strings.TrimPrefix(string(kv.Key), s.runsKey()))
		}
		return ids
	}
	cut := hour(100)

	if n, err := s.PruneRuns(ctx, 200, cut, Fence{Key: f.Key, Term: f.Term + 1000}); !errors.Is(err, ErrNotElected) || n != 0 {
		t.Fatalf("PruneRuns under a wrong term = %d, %v; want 0, ErrNotElected", n, err)
	}
	if got := len(stored()); got != 261 {
		t.Fatalf("a refused prune deleted runs: %d left of 261", got)
	}
	if n, err := s.PruneRuns(ctx, 1000, cut, f); n != 0 || err != nil {
		t.Fatalf("PruneRuns keeping more than there are = %d, %v", n, err)
	}

	n, err := s.PruneRuns(ctx, 200, cut, f)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[int]bool{3: true, 4: true, 5: true, 10: true, 30: true, 40: true}
	var want []string
	for i := range 250 {
		if i >= 50 || kept[i] {
			want = append(want, fmt.Sprintf("g-%03d", i))
		}
	}
	for i := range 10 {
		want = append(want, fmt.Sprintf("h-%03d", i))
	}
	want = append(want, "garbled")
	slices.Sort(want)
	got := stored()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("runs left (-want +got):\n%s", diff)
	}
	if n != 261-len(want) {
		t.Errorf("PruneRuns said %d deleted, %d were", n, 261-len(got))
	}
	if n, err := s.PruneRuns(ctx, 200, cut, f); n != 0 || err != nil {
		t.Errorf("pruning again = %d, %v; want nothing deleted", n, err)
	}
	// A smaller share and a later cut: everything beyond the newest 100
	// goes but what is in progress and the newest failover and drill.
	if n, err := s.PruneRuns(ctx, 100, hour(1000), f); err != nil || n != 101 {
		t.Errorf("PruneRuns(100, a later cut) = %d, %v; want 101 deleted (g-040, g-050..g-149)", n, err)
	}
	want = []string{"garbled", "g-003", "g-004", "g-005", "g-010", "g-030"}
	for i := 150; i < 250; i++ {
		want = append(want, fmt.Sprintf("g-%03d", i))
	}
	for i := range 10 {
		want = append(want, fmt.Sprintf("h-%03d", i))
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, stored()); diff != "" {
		t.Errorf("runs left (-want +got):\n%s", diff)
	}
}

func TestRunIDGroup(t *testing.T) {
	tests := []struct {
		id, group string
		ok        bool
	}{
		{"20261204T220635-svc-0999-reprotect-42a2", "svc-0999", true},
		{"20261204T220635-svc-failover-0ed5", "svc", true},
		{"20261204T220635-x-failover-reprotect-0ed5", "x-failover", true},
		{"20261204T220635-webshop-drill-ffff", "webshop", true},
		{"r1", "", false},
		{"20261204T220635-webshop-restart-0ed5", "", false}, // not an action
		{"20261204T220635-webshop-failover-0ED5", "", false},
	}
	for _, tt := range tests {
		if g, ok := runIDGroup(tt.id); g != tt.group || ok != tt.ok {
			t.Errorf("runIDGroup(%q) = %q, %v; want %q, %v", tt.id, g, ok, tt.group, tt.ok)
		}
	}
}

// testRunsOfAGroup: a group's runs are told from those of a group whose
// name begins alike, and runs whose ID does not name a group are read.
func testRunsOfAGroup(t *testing.T, c *cluster) {
	ctx := ctxTimeout(t, 30*time.Second)
	s := c.stores(t, installation(t))[0]
	t0 := time.Now().UTC().Add(-time.Hour)
	putRuns(t, ctx, s,
		endedRun("20261204T220635-svc-failover-0001", "svc", plan.Failover, t0),
		endedRun("20261204T220636-svc-0001-failover-0002", "svc-0001", plan.Failover, t0.Add(time.Second)),
		endedRun("legacy", "svc", plan.Reprotect, t0.Add(2*time.Second)),
		endedRun("other", "crm", plan.Reprotect, t0.Add(3*time.Second)))
	for group, want := range map[string][]string{
		"svc":      {"20261204T220635-svc-failover-0001", "legacy"},
		"svc-0001": {"20261204T220636-svc-0001-failover-0002"},
		"crm":      {"other"},
		"":         {"20261204T220635-svc-failover-0001", "20261204T220636-svc-0001-failover-0002", "legacy", "other"},
	} {
		runs, err := s.Runs(ctx, group)
		var got []string
		for _, r := range runs {
			got = append(got, r.ID)
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Runs(%q) = %v, %v; want %v", group, got, err, want)
		}
	}
}

// testRecentRuns: the newest runs of every group, newest first, at most
// as many as asked.
func testRecentRuns(t *testing.T, c *cluster) {
	ctx := ctxTimeout(t, 30*time.Second)
	s := c.stores(t, installation(t))[0]
	if runs, err := s.RecentRuns(ctx, 3); err != nil || len(runs) != 0 {
		t.Fatalf("RecentRuns without runs = %v, %v", runs, err)
	}
	t0 := time.Now().UTC().Add(-time.Hour)
	putRuns(t, ctx, s,
		endedRun("20261204T220635-svc-failover-0001", "svc", plan.Failover, t0),
		endedRun("20261204T220636-crm-switchover-0002", "crm", plan.Switchover, t0.Add(time.Second)),
		endedRun("20261204T220637-svc-reprotect-0003", "svc", plan.Reprotect, t0.Add(2*time.Second)),
		endedRun("20261204T220638-crm-drill-0004", "crm", plan.Drill, t0.Add(3*time.Second)))
	for n, want := range map[int][]string{
		2:  {"20261204T220638-crm-drill-0004", "20261204T220637-svc-reprotect-0003"},
		10: {"20261204T220638-crm-drill-0004", "20261204T220637-svc-reprotect-0003", "20261204T220636-crm-switchover-0002", "20261204T220635-svc-failover-0001"},
	} {
		runs, err := s.RecentRuns(ctx, n)
		var got []string
		for _, r := range runs {
			got = append(got, r.ID)
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("RecentRuns(%d) = %v, %v; want %v", n, got, err, want)
		}
	}
}
