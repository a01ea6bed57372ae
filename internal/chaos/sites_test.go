//go:build chaos

package chaos

import (
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/status"
)

// Three sites and no witness: the sites outvote a lost one among
// themselves (docs/design/sites.md).

// TestThreeSitesActiveIsolated: brussels is cut off from antwerp and
// liege (its clients still reach it). It fences itself, the other two
// mark it lost, and webshop fails over to one of them; the other follows
// the new primary within the run. Never two writable databases; no
// acknowledged write lost beyond the asynchronous bound.
func TestThreeSitesActiveIsolated(t *testing.T) {
	e := start(t, Options{Sites: 3})
	event := time.Now()
	if err := e.Net.Isolate("brussels", netns.Host, "router"); err != nil {
		t.Fatal(err)
	}
	st, err := e.WaitStatus(t.Context(), 45*time.Second, func(st status.Status) bool {
		g := group(st)
		return g.ActiveSite != "brussels" && g.ActiveSite != "" && g.Run == ""
	})
	if err != nil {
		t.Fatalf("no failover away from brussels: %v; last status: %+v", err, group(st))
	}
	to, follower := group(st).ActiveSite, "liege"
	if to == "liege" {
		follower = "antwerp"
	}
	logSteps(t, e, event)
	if _, err := e.WaitStatus(t.Context(), 60*time.Second, func(st status.Status) bool {
		return streamsTo(st, follower)
	}); err != nil {
		t.Errorf("%s does not stream from the new primary at %s: %v", follower, to, err)
	}
	first := writeAtAntwerp(t, e, event) // the first write by another server than brussels
	last, _ := LastAckBy(e.Writer.Acks(), "brussels")
	if last.At.After(first.At) {
		t.Errorf("brussels acknowledged a write (%s) after %s did (%s)", last.At.Format("15:04:05.000"), to, first.At.Format("15:04:05.000"))
	}
	check(t, e, event, 5*time.Second)
	if err := e.Net.HealAll(); err != nil {
		t.Error(err)
	}
}

// TestThreeSitesLinkCut: the link between brussels and antwerp is cut;
// liege still hears both. antwerp alone cannot have brussels declared
// lost, so nothing moves and nobody fences itself: the third site does
// what a witness does for two.
func TestThreeSitesLinkCut(t *testing.T) {
	e := start(t, Options{Sites: 3})
	event := time.Now()
	if err := e.Net.Cut("brussels", "antwerp"); err != nil {
		t.Fatal(err)
	}
	// Writes acknowledged at brussels for 15 s with the link cut: long
	// enough for a mark, a failover and a self-fence, many times over (the
	// serve lease is 400 ms, the fence margin 250 ms).
	waitFor(t, 25*time.Second, "15 s of writes at brussels with the link cut", func() bool {
		last, ok := LastAckBy(e.Writer.Acks(), "brussels")
		return ok && last.At.Sub(event) >= 15*time.Second
	})
	if err := e.Net.Heal("brussels", "antwerp"); err != nil {
		t.Fatal(err)
	}
	t.Logf("brussels–antwerp cut: longest gap between acknowledged writes %s", LongestGap(e.Writer.Acks(), event).Round(time.Millisecond))
	noFailover(t, e)
	if n := e.SelfFences("liege"); n > 0 {
		t.Errorf("liege fenced itself %d times", n)
	}
	check(t, e, event, 0)
}

// streamsTo says that webshop's database at site is a standby streaming
// from the active site, whose primary measures its lag.
func streamsTo(st status.Status, site string) bool {
	for _, r := range group(st).Resources {
		for _, s := range r.Sites {
			if r.Type == "postgres" && s.Site == site && (s.Role != status.RoleStandby || !s.Streaming || s.LagSeconds == nil) {
				return false
			}
		}
	}
	return true
}
