package coord

import (
	"errors"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/status"
)

// TestDrillRecords: what is kept of a group's drills is merged (only what
// is later replaces what is stored), read in every snapshot, and written
// only under the controller's term.
func TestDrillRecords(t *testing.T) {
	c := startCluster(t, false)
	ctx := ctxTimeout(t, 30*time.Second)
	stores := c.stores(t, installation(t))
	se := newSession(t, stores[0], "a", sessionTTL)
	if _, err := se.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	f := se.Fence()
	t0 := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	ok1 := status.DrillResult{Run: "d1", Site: "b", Started: t0, Ended: t0.Add(4 * time.Second), Result: "succeeded"}
	failed2 := status.DrillResult{Run: "d2", Site: "b", Started: t0.Add(168 * time.Hour), Result: "failed", Error: "step clone:db@b failed"}

	if got := snapshot(t, stores[1]).Drills; len(got) != 0 {
		t.Fatalf("drills before any: %+v", got)
	}
	if _, err := stores[1].MergeDrills(ctx, "g", status.DrillRecord{}.With(ok1), f); err != nil {
		t.Fatal(err)
	}
	rec, err := stores[2].MergeDrills(ctx, "g", status.DrillRecord{}.With(failed2), f)
	if err != nil || rec.Last.Run != "d2" || rec.LastSuccess.Run != "d1" {
		t.Fatalf("merged: %+v %v", rec, err)
	}
	// What the history tells at election, older, changes nothing.
	before := snapshot(t, stores[0]).Revision
	if _, err := stores[0].MergeDrills(ctx, "g", status.DrillRecord{}.With(ok1), f); err != nil {
		t.Fatal(err)
	}
	snap := snapshot(t, stores[1])
	if snap.Revision != before {
		t.Errorf("merging nothing new wrote (revision %d → %d)", before, snap.Revision)
	}
	got := snap.Drills["g"]
	if got.Last == nil || got.Last.Run != "d2" || got.Last.Error == "" || got.LastSuccess == nil || got.LastSuccess.Run != "d1" || !got.LastSuccess.Started.Equal(t0) {
		t.Errorf("snapshot's drills: %+v", got)
	}
	// A deposed controller's write does not land.
	if _, err := stores[0].MergeDrills(ctx, "g", status.DrillRecord{}.With(status.DrillResult{Run: "d3", Started: t0.Add(336 * time.Hour), Result: "succeeded"}),
		Fence{Key: f.Key, Term: f.Term + 1000}); !errors.Is(err, ErrNotElected) {
		t.Errorf("MergeDrills under another term: %v", err)
	}
	if got := snapshot(t, stores[2]).Drills["g"]; got.Last.Run != "d2" {
		t.Errorf("after a refused write: %+v", got.Last)
	}
}
