package coord

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// What a force stores, around a member forced to run alone: the group as
// the survivor last knew it (read without a quorum), the lost sessions
// forgotten at once, the forced record with the marks and a new epoch in
// one transaction, and the membership of one.
func TestForcedStore(t *testing.T) {
	t.Parallel()
	l := startLocations(t)
	const a, b, c = 0, 1, 2
	sa, sb := l.store(t, a), l.store(t, b)
	rec := testRecord("g", "a")
	if err := putRecord(ctxTimeout(t, 5*time.Second), sa, rec); err != nil {
		t.Fatal(err)
	}
	if err := sa.PutLag(ctxTimeout(t, 5*time.Second), "g", "db", "b", status.Lag{Seconds: 0.01, Streaming: true}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		s    *Store
		site string
	}{{sa, "a"}, {sb, "b"}} {
		se, err := x.s.NewSession(ctxTimeout(t, 5*time.Second), x.site, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := se.PublishView(ctxTimeout(t, 5*time.Second), status.View{Site: x.site}); err != nil {
			t.Fatal(err)
		}
	}
	sb.Close()
	l.stopSome(b, c)

	lg, err := sa.ReadLocalGroup(ctxTimeout(t, 5*time.Second), "g")
	if err != nil {
		t.Fatalf("ReadLocalGroup without a quorum: %v", err)
	}
	if !lg.Adopted || lg.Record.Epoch != rec.Epoch || lg.Lags["db"]["b"].Seconds != 0.01 || lg.Running != "" {
		t.Errorf("ReadLocalGroup: %+v", lg)
	}

	start := time.Now()
	if err := l.member(a).CloseToRestart(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("closed for a restart in %v", time.Since(start).Round(time.Millisecond))
	l.mustStart(t, a, func(c *MemberConfig) { c.ForceNewCluster = true })
	l.ready(t, a)

	n, err := sa.ForgetSessions(ctxTimeout(t, 5*time.Second), lg.Revision)
	if err != nil || n != 2 {
		t.Errorf("ForgetSessions: %d leases, %v; want the 2 sessions of a and b", n, err)
	}
	snap, err := sa.Snapshot(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Views) != 0 {
		t.Errorf("views left after ForgetSessions: %v", snap.Views)
	}

	f := status.Forced{Site: "a", By: "operator", At: time.Now().UTC().Truncate(time.Second), Reason: "test", Lost: []string{"b", "c"}}
	marks := []status.Mark{{Site: "b", By: "a", Reason: "forced"}, {Site: "b", By: "c", Reason: "forced"}}
	if err := sa.PutMark(ctxTimeout(t, 5*time.Second), status.Mark{Site: "a", By: "b"}); err != nil {
		t.Fatal(err)
	}
	next := rec
	next.Epoch++
	run := plan.NewRun("r1", "operator (--force)", plan.Request{Action: plan.Failover, To: "a"}, plan.Plan{Group: "g", Action: plan.Failover, From: "a", To: "a", Epoch: next.Epoch}, time.Now().UTC())
	if err := sa.PutForce(ctxTimeout(t, 5*time.Second), Force{Forced: &f, Marks: marks}); err != nil {
		t.Fatal(err)
	}
	stale := Force{Record: &next, RecordRevision: lg.Record.Revision - 1, Run: &run}
	if err := sa.PutForce(ctxTimeout(t, 5*time.Second), stale); !errors.Is(err, ErrStale) {
		t.Errorf("PutForce from a stale record: %v, want %v", err, ErrStale)
	}
	good := Force{Record: &next, RecordRevision: lg.Record.Revision, Run: &run}
	if err := sa.PutForce(ctxTimeout(t, 5*time.Second), good); err != nil {
		t.Fatal(err)
	}
	if err := sa.PutForce(ctxTimeout(t, 5*time.Second), good); !errors.Is(err, ErrRunInProgress) {
		t.Errorf("PutForce again: %v, want %v", err, ErrRunInProgress)
	}

	got, ok, err := sa.ForcedAt(ctxTimeout(t, 5*time.Second), "a")
	if err != nil || !ok {
		t.Fatalf("ForcedAt: %v, %v", ok, err)
	}
	if diff := cmp.Diff(f, got); diff != "" {
		t.Errorf("forced record (-want +got):\n%s", diff)
	}
	snap, err = sa.Snapshot(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Lost("b", []string{"a", "b", "c"}) || len(snap.Marks["a"]) != 0 {
		t.Errorf("marks: %v; want b lost by a and c, and none on a", snap.Marks)
	}
	if r := snap.Records["g"]; r.Epoch != next.Epoch || snap.Running["g"] != "r1" {
		t.Errorf("record epoch %d, running %q; want %d and r1", r.Epoch, snap.Running["g"], next.Epoch)
	}
	members, _, err := sa.Members(ctxTimeout(t, 5*time.Second))
	if err != nil || len(members) != 1 || members[0].Name != "a" || members[0].Learner {
		t.Errorf("members: %+v, %v", members, err)
	}
	if err := sa.DeleteForced(ctxTimeout(t, 5*time.Second), "a"); err != nil {
		t.Fatal(err)
	}
	if fs, err := sa.Forced(ctxTimeout(t, 5*time.Second)); err != nil || len(fs) != 0 {
		t.Errorf("forced after DeleteForced: %v, %v", fs, err)
	}
}
