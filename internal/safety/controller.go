package safety

import (
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
)

// EvictAfter is how long every other location must have failed to reach
// the controller's agent before its office is revoked.
const EvictAfter = time.Second

// ControllerLost says whether the controller must be evicted (by another
// location, self), and why. Either every other location marked the
// controller's site lost — the marks are the quorum's verdict and the
// site has fenced itself — or every other location publishes a view in
// which the controller's agent has been unreachable for EvictAfter. A
// controller that any location still reaches keeps its office: a cut
// link between two sites is not a lost site. How long is measured without
// comparing clocks: the observer's own PublishedAt − Since, plus the
// view's age on this machine's clock.
func ControllerLost(t *config.Topology, snap status.Snapshot, self string) (bool, string) {
	c := snap.Controller
	if c == nil || c.Site == self {
		return false, ""
	}
	if snap.Lost(c.Site, t.SiteNames()) {
		return true, "every other location marked its site lost"
	}
	for _, s := range t.Sites {
		if s.Name == c.Site {
			continue
		}
		v, ok := snap.Views[s.Name]
		if !ok {
			return false, ""
		}
		p, ok := v.Peers[c.Site]
		if !ok || p.Reachable || v.PublishedAt.Sub(p.Since)+snap.ViewAges[s.Name] < EvictAfter {
			return false, ""
		}
	}
	return true, "every other location has been unable to reach its agent for " + EvictAfter.String()
}

// WitnessSteady is how long a witness that stopped answering must have
// answered again before the raft leadership goes back to it.
const WitnessSteady = 3 * time.Second

// WitnessTrack is what a site's agent knows of the witness's agent, for
// LeadFromWitness: whether it answers now, since when (on this agent's
// clock), and whether it ever stopped answering since this agent started.
type WitnessTrack struct {
	Reachable bool
	Since     time.Time
	EverLost  bool
}

// LeadFromWitness says whether a site whose etcd member holds the raft
// leadership hands it to the witness's member at now: losing a site then
// never waits for a raft election before its marks are stored. At once
// while the witness has answered since this agent started; after
// WitnessSteady once it has come back, so that a flapping witness does
// not move the leadership back and forth.
func LeadFromWitness(w WitnessTrack, now time.Time) bool {
	switch {
	case !w.Reachable:
		return false
	case !w.EverLost:
		return true
	}
	return now.Sub(w.Since) >= WitnessSteady
}
