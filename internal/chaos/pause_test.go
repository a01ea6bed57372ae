//go:build chaos

package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// pausedReports is how many fresh status reports the paused group must
// come through unmoved while its active site is cut off.
const pausedReports = 10

// TestPausedActiveSiteIsolated: webshop is paused for maintenance when
// brussels, its active site, is cut off from antwerp and frankfurt while
// its clients still reach it. The pause holds: no failover starts, a
// person is asked to decide, and brussels still fences itself when its
// serve lease runs out, so no two databases ever accept writes. Resumed,
// the group fails over to antwerp by itself, losing no write acknowledged
// more than max_data_loss before the cut.
func TestPausedActiveSiteIsolated(t *testing.T) {
	e := start(t, Options{})
	res, err := e.Client.Pause(t.Context(), e.Group, api.PauseRequest{Reason: "chaos: maintenance"})
	if err != nil || !res.Paused {
		t.Fatalf("pause: %+v %v", res, err)
	}
	event := time.Now()
	if err := e.Net.Isolate("brussels", netns.Host, "router"); err != nil {
		t.Fatal(err)
	}
	st, err := e.WaitStatus(t.Context(), 30*time.Second, func(st status.Status) bool {
		g := group(st)
		return g.State == status.StateNeedsDecision && g.Decision != nil && strings.Contains(g.Decision.Reason, "paused")
	})
	if err != nil {
		t.Fatalf("no decision asked of a person for the paused group: %v; last: %+v", err, group(st))
	}
	last, seen := st.Revision, 0
	if _, err := e.WaitStatus(t.Context(), 60*time.Second, func(st status.Status) bool {
		if st.Revision <= last {
			return false
		}
		last = st.Revision
		if g := group(st); g.ActiveSite != "brussels" || g.Epoch != 1 || g.Run != "" || !g.Paused {
			t.Fatalf("the paused group moved: active %s, epoch %d, run %q, paused %v", g.ActiveSite, g.Epoch, g.Run, g.Paused)
		}
		seen++
		return seen >= pausedReports
	}); err != nil {
		t.Fatalf("%d of %d fresh status reports of the paused group: %v", seen, pausedReports, err)
	}
	if n := e.SelfFences("brussels"); n == 0 {
		t.Errorf("brussels, cut off, did not fence itself while the group was paused")
	}
	if lastAck, ok := LastAckBy(e.Writer.Acks(), "brussels"); ok {
		t.Logf("cut → last write acknowledged at brussels %s", lastAck.At.Sub(event).Round(time.Millisecond))
	}

	if res, err := e.Client.Resume(t.Context(), e.Group, api.ResumeRequest{Reason: "chaos: maintenance over"}); err != nil || res.Paused {
		t.Fatalf("resume: %+v %v", res, err)
	}
	waitFailover(t, e, "antwerp")
	first := writeAtAntwerp(t, e, event)
	t.Logf("cut → first write acknowledged at antwerp %s (after the resume)", first.At.Sub(event).Round(time.Millisecond))
	runs, err := e.Client.Runs(t.Context(), e.Group)
	if err != nil {
		t.Fatal(err)
	}
	failovers := 0
	for _, r := range runs {
		if r.Plan.Action == plan.Failover {
			failovers++
		}
	}
	if failovers != 1 {
		t.Errorf("%d failovers, want the one after the resume", failovers)
	}
	logSteps(t, e, event)
	check(t, e, event, 5*time.Second)
}
