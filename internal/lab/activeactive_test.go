package lab

import (
	"context"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// groupOf returns the group called name from st (empty when st has none).
func groupOf(st status.Status, name string) status.GroupStatus {
	for _, g := range st.Groups {
		if g.Name == name {
			return g
		}
	}
	return status.GroupStatus{}
}

func groupProtectedAt(st status.Status, name, site string) bool {
	g := groupOf(st, name)
	return g.State == status.StateProtected && g.ActiveSite == site
}

// TestActiveActive: with both of its groups the lab carries production at
// both sites, webshop at brussels and news at antwerp. A power cut at
// brussels fails webshop over and leaves news alone: no run, the same
// epoch, its writes go on at antwerp. Once brussels is healed, news's
// replica there replicates again by itself (before, it stayed read-only
// and not replicating, and news unprotected, until someone ran a
// reprotect of a group that never moved); a reprotect and a failback take
// webshop home, and news never lost a write.
func TestActiveActive(t *testing.T) {
	skipUnlessMariaDBLab(t)
	o, topo, c := labUpOptions(t, Options{DB: DBBoth})
	st := waitStatus(t, c, 60*time.Second, "webshop protected at brussels, news at antwerp", func(st status.Status) bool {
		return groupProtectedAt(st, demoGroup, "brussels") && groupProtectedAt(st, newsGroup, "antwerp")
	})
	newsEpoch := groupOf(st, newsGroup).Epoch
	w := startMDBWriter(t, topo, o.Dir)
	waitFor(t, 10*time.Second, "the news writer to start", func() bool { return w.count() > 20 })

	if err := Disaster(o, "brussels"); err != nil {
		t.Fatal(err)
	}
	waitAutomaticFailoverOf(t, c, demoGroup, "brussels", "antwerp")
	n := w.count()
	waitFor(t, 20*time.Second, "news written at antwerp during the power cut", func() bool { return w.count() > n+20 })

	if err := Heal(context.Background(), o, "brussels"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, 60*time.Second, "news protected at antwerp again, without a run", func(st status.Status) bool {
		return groupProtectedAt(st, newsGroup, "antwerp")
	})
	r := runAndWait(t, c, api.RunRequest{Group: demoGroup, Action: plan.Reprotect})
	if r.State != plan.RunSucceeded {
		t.Fatalf("reprotect webshop: %s: %s", r.State, r.Error)
	}
	waitStatus(t, c, 60*time.Second, "webshop protected at antwerp", func(st status.Status) bool {
		return groupProtectedAt(st, demoGroup, "antwerp")
	})
	r = runAndWait(t, c, api.RunRequest{Group: demoGroup, Action: plan.Failback})
	if r.State != plan.RunSucceeded || r.Plan.To != "brussels" {
		t.Fatalf("failback webshop: %s to %s: %s", r.State, r.Plan.To, r.Error)
	}
	st = waitStatus(t, c, 60*time.Second, "webshop protected at brussels, news at antwerp", func(st status.Status) bool {
		return groupProtectedAt(st, demoGroup, "brussels") && groupProtectedAt(st, newsGroup, "antwerp")
	})

	// news was left alone all along.
	if runs, err := c.Runs(t.Context(), newsGroup); err != nil || len(runs) != 0 {
		t.Errorf("news had %d runs (%v); a power cut at the other site must leave it alone", len(runs), err)
	}
	if e := groupOf(st, newsGroup).Epoch; e != newsEpoch {
		t.Errorf("news epoch %d, was %d: it moved", e, newsEpoch)
	}
	n = w.count()
	waitFor(t, 20*time.Second, "news written at antwerp", func() bool { return w.count() > n+20 })
	w.stop()
	<-w.done
	if lost := w.lost(t, mdbAddr(t, topo, "antwerp")); len(lost) > 0 {
		t.Errorf("news lost %d acknowledged writes: %v", len(lost), lost)
	}
	// The replica at brussels has them too: it replicates again.
	waitFor(t, 20*time.Second, "news's replica at brussels to hold every acknowledged write", func() bool {
		return len(w.lost(t, mdbAddr(t, topo, "brussels"))) == 0
	})
}
