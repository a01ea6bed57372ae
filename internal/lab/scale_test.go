package lab

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/driver/dns"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// TestScaleLab: the scale lab's data-less groups (a name each, on one DNS
// listener per site) are adopted at brussels, all fail over by themselves
// in one power cut, each name then answered with antwerp's address by the
// surviving agent, and a failback of each takes them home once brussels
// is healed and they are reprotected.
func TestScaleLab(t *testing.T) {
	skipUnlessLab(t)
	const n = 20
	o, _, c := labUpOptions(t, Options{DB: DBNone, Groups: n})
	all := func(site string, protected bool) func(status.Status) bool {
		return func(st status.Status) bool {
			if len(st.Groups) != n {
				return false
			}
			for _, g := range st.Groups {
				if g.ActiveSite != site || g.Run != "" || (protected && g.State != status.StateProtected) {
					return false
				}
			}
			return true
		}
	}
	waitStatus(t, c, 30*time.Second, "every group protected at brussels", all("brussels", true))
	var antIP, serve string
	for _, l := range locations {
		if l.name == "antwerp" {
			antIP, serve = l.ip, l.addr(dnsPort)
		}
	}

	if err := Disaster(o, "brussels"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, 60*time.Second, "every group failed over to antwerp", all("antwerp", false))
	runs, err := c.Runs(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	failovers := 0
	for _, r := range runs {
		if r.Plan.Action == plan.Failover {
			failovers++
			if r.State != plan.RunSucceeded {
				t.Errorf("failover %s: %s: %s", r.ID, r.State, r.Error)
			}
		}
	}
	if failovers != n {
		t.Errorf("%d failovers, want one per group (%d)", failovers, n)
	}
	for i := 1; i <= n; i++ {
		got, _, err := dns.Lookup(t.Context(), serve, scaleName(i))
		if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr(antIP) {
			t.Errorf("%s at %s: %v %v, want %s", scaleName(i), serve, got, err, antIP)
		}
	}

	if err := Heal(context.Background(), o, "brussels"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		for _, action := range []plan.Action{plan.Reprotect, plan.Failback} {
			if action == plan.Failback {
				waitStatus(t, c, 30*time.Second, scaleGroup(i)+" protected at antwerp", func(st status.Status) bool {
					return groupProtectedAt(st, scaleGroup(i), "antwerp")
				})
			}
			if r := runAndWait(t, c, api.RunRequest{Group: scaleGroup(i), Action: action}); r.State != plan.RunSucceeded {
				t.Fatalf("%s of %s: %s: %s", action, scaleGroup(i), r.State, r.Error)
			}
		}
	}
	waitStatus(t, c, 60*time.Second, "every group protected at brussels again", all("brussels", true))
}
