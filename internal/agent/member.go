package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/safety"
)

// localMember is the location's embedded etcd member, which a force
// restarts in place; the agent's etcd client reconnects by itself.
type localMember struct {
	cfg     coord.MemberConfig // for a plain start: no Join, no ForceNewCluster
	mu      sync.Mutex
	m       *coord.Member // nil after a restart that failed
	swapped chan struct{} // closed when m is replaced
	err     error         // why m is nil
}

// current returns the running member and a channel closed when it is
// replaced.
func (lm *localMember) current() (*coord.Member, <-chan struct{}, error) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	return lm.m, lm.swapped, lm.err
}

func (lm *localMember) close(timeout time.Duration) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if lm.m != nil {
		lm.m.Close(timeout)
	}
}

func (lm *localMember) hasQuorum(ctx context.Context) bool {
	m, _, _ := lm.current()
	return m != nil && m.HasQuorum(ctx)
}

// restartForced stops the member and starts it again from its data as the
// only member of a new cluster, and waits until it is ready. If that start
// fails, the member is started again as before.
func (lm *localMember) restartForced(log *slog.Logger) error {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if lm.m == nil {
		return fmt.Errorf("the etcd member is not running: %w", lm.err)
	}
	if err := lm.m.CloseToRestart(20 * time.Second); err != nil {
		log.Warn("the etcd member did not stop in time; starting it again all the same", "error", err)
	}
	cfg := lm.cfg
	cfg.ForceNewCluster = true
	m, err := coord.StartMember(cfg)
	if err != nil {
		again, err2 := coord.StartMember(lm.cfg)
		if err2 != nil {
			lm.m, lm.err = nil, fmt.Errorf("restart after a failed forced start: %w", err2)
		} else {
			lm.m = again
		}
		close(lm.swapped)
		lm.swapped = make(chan struct{})
		return err
	}
	lm.m = m
	close(lm.swapped)
	lm.swapped = make(chan struct{})
	select {
	case <-m.Ready():
		log.Warn("etcd member restarted as a new single-member cluster with its data (forced)")
		return nil
	case err := <-m.Err():
		return fmt.Errorf("the forced etcd member failed: %w", err)
	case <-time.After(30 * time.Second):
		return errors.New("the forced etcd member was not ready after 30s; see the etcd lines in this agent's log")
	}
}

// watchMember ends the agent when its member fails, and logs when it is
// ready; it follows the member across a forced restart.
func (fc *forcer) watchMember(ctx context.Context) error {
	for {
		m, swapped, err := fc.member.current()
		if m == nil {
			return fmt.Errorf("etcd member of %s is not running: %w; see the etcd lines above in this log", fc.site.Name, err)
		}
		ready := m.Ready()
	watch:
		for {
			select {
			case err := <-m.Err():
				return fmt.Errorf("etcd member of %s failed: %w; see the etcd lines above in this log", fc.site.Name, err)
			case <-ready:
				fc.log.Info("etcd member joined a cluster with quorum")
				fc.markMember()
				ready = nil
			case <-swapped:
				break watch
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// startLocalMember starts the embedded member. A location that was declared
// lost by a force elsewhere must not start from its old data: with another
// such location it would form a quorum of the old cluster and serve the old
// state. So it first asks the other locations for the membership; when one
// that has a quorum no longer lists it, it sets its data aside, joins as a
// learner and is promoted. When no other location answers it cannot tell,
// and starts from its data (docs/force.md, "Limits").
func startLocalMember(ctx context.Context, t *config.Topology, site *config.Site, mc coord.MemberConfig, clientTLS *tls.Config, log *slog.Logger) (*localMember, error) {
	lm := &localMember{cfg: mc, swapped: make(chan struct{})}
	peers := api.NewClientTLS(t, clientTLS)
	defer peers.Close()
	via, state, err := membershipOf(ctx, t, site, peers)
	if err != nil {
		return nil, err
	}
	if state == memberUnknown && !coord.HasMemberData(mc.Dir) {
		if was, err := os.ReadFile(memberMarker(mc.Dir)); err == nil {
			return nil, fmt.Errorf("agent of %s: this location was a member of the control plane (%s: %s), its etcd data in %s is gone, "+
				"and no other location answers to let it join again: starting now would found a new, empty control plane next to the real one. "+
				"Start it again once another location's agent answers (docs/force.md); remove %s only to found a new installation",
				site.Name, memberMarker(mc.Dir), strings.TrimSpace(string(was)), mc.Dir, memberMarker(mc.Dir))
		}
	}
	join := state == memberRemoved || !coord.HasMemberData(mc.Dir)
	if state == memberVotes || state == memberUnknown || !join {
		// A member of the cluster, a location that cannot tell, or a
		// join under way whose data is the new member's.
		m, err := coord.StartMember(mc)
		if err != nil {
			return nil, err
		}
		lm.m = m
		if state == memberVotes || state == memberUnknown {
			return lm, nil
		}
	} else {
		log.Warn("this location was removed from the control plane by a force; joining again as a new member", "via", via.Name)
		if err := setAside(mc.Dir, log, via.Name); err != nil {
			return nil, err
		}
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		added, err := retry(actx, func(ctx context.Context) (api.MemberAdded, error) {
			return peers.AddMember(ctx, via, api.MemberRequest{Site: site.Name})
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("agent of %s: rejoin the control plane through %s: %w; start the agent again to retry (docs/force.md)", site.Name, via.Name, err)
		}
		jc := mc
		jc.Join, jc.Peers = true, added.Peers
		if lm.m, err = coord.StartMember(jc); err != nil {
			return nil, err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	select {
	case <-lm.m.Ready():
	case err := <-lm.m.Err():
		return nil, fmt.Errorf("agent of %s: the joining etcd member failed: %w", site.Name, err)
	case <-rctx.Done():
		lm.m.Close(10 * time.Second)
		return nil, fmt.Errorf("agent of %s: the joining etcd member did not catch up within a minute; start the agent again to retry", site.Name)
	}
	if _, err := retry(rctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, peers.PromoteMember(ctx, via, api.MemberRequest{Site: site.Name})
	}); err != nil {
		lm.m.Close(10 * time.Second)
		return nil, fmt.Errorf("agent of %s: the member joined as a learner but was not promoted through %s: %w; start the agent again to retry", site.Name, via.Name, err)
	}
	log.Warn("this location is back in the control plane as a voting member", "via", via.Name)
	return lm, nil
}

// memberMarker is the file, next to the member's data directory, that says
// the location was a member of its control plane once: an empty data
// directory then means lost data, not a new installation.
func memberMarker(dir string) string { return filepath.Join(filepath.Dir(dir), "etcd-member-of") }

// markMember writes the member marker once the member is ready.
func (fc *forcer) markMember() {
	path := memberMarker(fc.member.cfg.Dir)
	if _, err := os.Stat(path); err == nil {
		return
	}
	line := fmt.Sprintf("installation %s, member %s, ready at %s\n", fc.topo.Name, fc.site.Name, time.Now().UTC().Format(time.RFC3339))
	if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
		fc.log.Warn("cannot write the member marker", "path", path, "error", err)
	}
}

// States of this location's member in the membership another location sees.
const (
	memberUnknown = iota // no location with a quorum answered
	memberVotes
	memberLearner
	memberRemoved
)

// membershipOf asks the other locations, at once and briefly, whether this
// location's member belongs to their cluster; via is the location to join
// through. Answers that contradict each other (one lists it, one does not)
// mean two control planes, and starting is refused.
func membershipOf(ctx context.Context, t *config.Topology, site *config.Site, c *api.Client) (*config.Site, int, error) {
	type answer struct {
		site *config.Site
		m    api.Membership
		err  error
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	answers := make(chan answer)
	n := 0
	for i := range t.Sites {
		s := &t.Sites[i]
		if s.Name == site.Name {
			continue
		}
		n++
		go func() {
			m, err := c.Members(ctx, s)
			answers <- answer{s, m, err}
		}()
	}
	var voting, removed, learner *config.Site
	for range n {
		a := <-answers
		if a.err != nil {
			continue
		}
		switch i := slices.IndexFunc(a.m.Members, func(m api.MemberInfo) bool { return slices.Contains(m.PeerURLs, site.Etcd.PeerURL) }); {
		case i < 0:
			removed = a.site
		case a.m.Members[i].Learner:
			learner = a.site
		default:
			voting = a.site
		}
	}
	switch {
	case voting != nil && removed != nil:
		return nil, 0, fmt.Errorf("agent of %s: %s counts this location's etcd member in its cluster and %s does not: two control planes exist "+
			"(a force left the lost locations' old cluster running); the etcd member was not started. Stop the agents of the locations "+
			"declared lost (`siteflip status` at %s lists them), see docs/force.md", site.Name, voting.Name, removed.Name, removed.Name)
	case removed != nil:
		return removed, memberRemoved, nil
	case learner != nil:
		return learner, memberLearner, nil
	case voting != nil:
		return voting, memberVotes, nil
	}
	return nil, memberUnknown, nil
}

// setAside renames a removed member's data directory, never deleting it.
func setAside(dir string, log *slog.Logger, via string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	aside := dir + ".removed-" + time.Now().UTC().Format("20060102T150405")
	if err := os.Rename(dir, aside); err != nil {
		return fmt.Errorf("set the stale etcd data %s aside before rejoining: %w", dir, err)
	}
	log.Warn("etcd data of the removed member set aside: the control plane lives on at "+via, "from", dir, "to", aside)
	return nil
}

// retry calls f until it succeeds, it is refused (4xx), or ctx ends.
func retry[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	for {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		v, err := f(cctx)
		cancel()
		var re *api.RequestError
		if err == nil || errors.As(err, &re) && re.Status != http.StatusServiceUnavailable {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// raftLeader is the location whose member this one knows as the raft
// leader, "" while it knows none.
func (fc *forcer) raftLeader() string {
	m, _, err := fc.member.current()
	if err != nil || m == nil {
		return ""
	}
	return m.LeaderName()
}

// watchLeader follows the raft leadership of the embedded etcd cluster: the
// view is published again when it moves, and a site whose member holds it
// hands it to the witness while the witness answers
// (safety.LeadFromWitness): the loss of a site then never waits for a new
// raft leader before its marks are stored (docs/design/safety-core.md).
func (fc *forcer) watchLeader(ctx context.Context) error {
	var witness string
	for _, s := range fc.topo.Sites {
		if s.Role == config.RoleWitness {
			witness = s.Name
			break
		}
	}
	var track safety.WitnessTrack
	seen, last := false, ""
	return every(ctx, witnessCheck, func() {
		if l := fc.raftLeader(); l != last {
			last = l
			fc.presence.notify()
		}
		if witness == "" || fc.site.Role != config.RoleSite || failpointKeepRaftLeader() {
			return
		}
		p, known := fc.presence.peer(witness)
		if !known {
			return
		}
		// Since moves only when the witness flips between answering and
		// not: after the first sighting, a move is a loss and a return.
		if !p.Reachable || seen && !p.Since.Equal(track.Since) {
			track.EverLost = true
		}
		seen = true
		track.Reachable, track.Since = p.Reachable, p.Since
		if last == witness || !safety.LeadFromWitness(track, fc.now()) {
			return
		}
		m, _, err := fc.member.current()
		if err != nil || m == nil {
			return
		}
		mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		moved, err := m.HandLeadershipTo(mctx, witness)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			fc.log.Warn("cannot hand the raft leadership to the witness", "witness", witness, "error", err)
		case moved:
			fc.log.Info("raft leadership handed to the witness", "witness", witness)
		}
	})
}

// witnessCheck is how often a site checks whether its member leads: a
// check is a read of the member's own state.
const witnessCheck = 250 * time.Millisecond
