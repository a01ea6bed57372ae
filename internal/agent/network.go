package agent

import (
	"context"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/status"
)

// convergeLoop keeps this site's network resources in line with the
// groups' records while no run is in progress (runs move them step by
// step): the active site, holding its serve lease, sends clients to
// itself; the others park. It also tells every resource which site is
// active, for the parts that answer for all sites (docs/design/network.md).
func (lr *localResources) convergeLoop(ctx context.Context) error {
	keys := lr.net.Keys()
	if len(keys) == 0 {
		return nil
	}
	applied := map[string]string{}
	followed := map[string]bool{}
	return lr.plane.withSnapshots(ctx, lr.topo.Coordination.ProbeInterval.D(), func(snap status.Snapshot) {
		for _, key := range keys {
			group, _, _ := strings.Cut(key, "/")
			rec, ok := snap.Records[group]
			n, here := lr.net.Get(key)
			if !ok || !here {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if followRecord(snap.Running[group] != "", followed[key]) {
				n.Follow(sctx, rec.ActiveSite)
				followed[key] = true
			}
			if snap.Running[group] != "" {
				delete(applied, key) // the run moves it
				cancel()
				continue
			}
			want := "park"
			if rec.ActiveSite == lr.site.Name && lr.leaseValid() {
				want = "active"
			}
			v, _ := lr.view(key)
			isActive := v.Up && v.Role == status.RolePrimary
			if applied[key] == want && isActive == (want == "active") {
				cancel()
				continue
			}
			var err error
			if want == "active" {
				_, err = n.Activate(sctx)
			} else {
				err = n.Park(sctx)
			}
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					lr.log.Warn("cannot bring a network resource in line with the group's record", "resource", key, "want", want, "error", err)
				}
				continue
			}
			if applied[key] != want {
				lr.log.Info("network resource in line with the group's record", "resource", key, "state", want, "active_site", rec.ActiveSite)
			}
			applied[key] = want
			lr.observeNow()
		}
	})
}

// followRecord says whether the parts of a traffic resource that answer
// for every site (the DNS server in every agent) follow the group's record
// now. During a run they do not: the record names the new site from the
// activation on, but clients must reach it only once what they depend on
// serves there, which the run's promote step of the resource says (it
// makes the new site's agent follow at once); the old site's follows at
// its rejoin step, the others when the run has ended. An agent that never followed (it just started) follows
// the record all the same: it has nothing better to answer.
func followRecord(runInProgress, followedBefore bool) bool {
	return !runInProgress || !followedBefore
}
