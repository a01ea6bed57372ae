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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// Forcing (docs/force.md): with only one location left the control plane
// has no quorum and nothing happens by itself; a site that is alone has
// fenced itself, since it cannot tell being cut off from the others being
// dead. A person who knows that the others are gone for good runs
// `siteflip failover GROUP --force` against the survivor. Its agent then
//
//  1. refuses while its etcd member has a quorum (the normal failover is
//     the way) or while another location's agent still answers it;
//  2. restarts its embedded member as a new single-member cluster with its
//     data (etcd's force-new-cluster), without restarting the agent;
//  3. records that it is forced (forced/SITE: who, when, why), declares the
//     other locations lost (their marks, so that failovers away from them
//     proceed) and forgets their sessions; while the record exists its
//     serve lease counts as valid;
//  4. recovers the group here: a failover run when it is active elsewhere,
//     or, when it is active here and its primary fenced itself, a new epoch
//     and a run that starts the primary again.
//
// A location declared lost comes back only as a new member: at start its
// agent asks the others for the membership, and when it was removed it sets
// its old etcd data aside and joins as a learner, then votes (rejoin).

// forceState is whether this location is forced; busy admits one force
// request at a time, and mu orders a force with the loop that follows the
// forced record, whose reads are stale once gen has moved.
type forceState struct {
	busy sync.Mutex
	mu   sync.Mutex
	gen  atomic.Int64
	on   atomic.Bool
}

// forcedHere says whether this location runs the control plane alone by a
// person's decision: its serve lease then counts as valid.
func (a *agent) forcedHere() bool { return a.force.on.Load() }

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
func (a *agent) watchMember(ctx context.Context) error {
	for {
		m, swapped, err := a.member.current()
		if m == nil {
			return fmt.Errorf("etcd member of %s is not running: %w; see the etcd lines above in this log", a.site.Name, err)
		}
		ready := m.Ready()
	watch:
		for {
			select {
			case err := <-m.Err():
				return fmt.Errorf("etcd member of %s failed: %w; see the etcd lines above in this log", a.site.Name, err)
			case <-ready:
				a.log.Info("etcd member joined a cluster with quorum")
				a.markMember()
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
func (a *agent) markMember() {
	path := memberMarker(a.member.cfg.Dir)
	if _, err := os.Stat(path); err == nil {
		return
	}
	line := fmt.Sprintf("installation %s, member %s, ready at %s\n", a.topo.Name, a.site.Name, time.Now().UTC().Format(time.RFC3339))
	if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
		a.log.Warn("cannot write the member marker", "path", path, "error", err)
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

// forceRoutes adds the routes of forcing and of the membership.
func (a *agent) forceRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/force", a.handleForce)
	mux.HandleFunc("GET /v1/members", a.handleMembers)
	mux.HandleFunc("POST /v1/members", a.handleAddMember)
	mux.HandleFunc("POST /v1/members/promote", a.handlePromoteMember)
}

// forceError is a refusal or failure of a force, with its HTTP status.
type forceError struct {
	code int
	err  error
}

func (e *forceError) Error() string { return e.err.Error() }

func refuse(format string, args ...any) error {
	return &forceError{http.StatusConflict, fmt.Errorf(format, args...)}
}

// handleForce forces this location and recovers the group here. Only an
// admin may (access table).
func (a *agent) handleForce(w http.ResponseWriter, r *http.Request) {
	info := requestInfo(r)
	by := info.principal.Name
	var req api.ForceRequest
	if err := decodeJSON(w, r, 4096, &req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode force request: %w", err))
		return
	}
	info.note.Group, info.note.Action = req.Group, fmt.Sprintf("failover %s --force --to %s", req.Group, a.site.Name)
	if req.AcceptDataLoss {
		info.note.Action += " --accept-data-loss"
	}
	info.note.Reason, info.note.Ticket = req.Reason, req.Ticket
	if err := checkWhy(req.Reason, req.Ticket); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	g, ok := a.topo.Group(req.Group)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown group %q (groups: %s); nothing was changed", req.Group, groupNames(a.topo.Groups)))
		return
	}
	if !slices.Contains(g.Sites, a.site.Name) {
		writeError(w, http.StatusConflict, fmt.Errorf("%s is not a site of group %s (its sites: %s): force at one of them with --to; nothing was changed",
			a.site.Name, g.Name, strings.Join(g.Sites, ", ")))
		return
	}
	if a.member == nil {
		writeError(w, http.StatusConflict, fmt.Errorf("%s uses an existing etcd cluster (coordination.etcd_endpoints or --etcd-endpoints), and siteflip can force only "+
			"its own embedded member: recover that cluster with etcd's procedure (restore a snapshot, or --force-new-cluster on its surviving member), "+
			"then run `siteflip failover %s --to %s` without --force; nothing was changed", a.site.Name, g.Name, a.site.Name))
		return
	}
	if !a.force.busy.TryLock() {
		writeError(w, http.StatusConflict, fmt.Errorf("a force is already under way at %s; wait for it to end and look at `siteflip status`", a.site.Name))
		return
	}
	defer a.force.busy.Unlock()
	a.force.mu.Lock()
	defer a.force.mu.Unlock()
	defer a.force.gen.Add(1)
	// The force must not stop half way because the client went away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
	defer cancel()
	res, err := a.forceGroup(ctx, by, g, req)
	if err != nil {
		code := http.StatusInternalServerError
		var fe *forceError
		if errors.As(err, &fe) {
			code = fe.code
		}
		a.log.Warn("force refused or failed", "group", g.Name, "by", by, "error", err)
		writeError(w, code, err)
		return
	}
	code := http.StatusOK
	if res.Run != nil {
		code = http.StatusCreated
	}
	writeJSON(w, code, res)
}

// forceGroup does the force: checks, member restart, record, recovery.
func (a *agent) forceGroup(ctx context.Context, by string, g *config.Group, req api.ForceRequest) (api.ForceResult, error) {
	here := a.site.Name
	forced := a.forcedHere()
	var res api.ForceResult
	if !forced && a.member.hasQuorum(ctx) {
		f, ok, err := a.store.ForcedAt(ctx, here)
		if err != nil {
			return res, &forceError{http.StatusServiceUnavailable, fmt.Errorf("%s: %w; ask again", here, err)}
		}
		if !ok && a.aloneInCluster(ctx) {
			// Forced before, but the record did not land.
			ok = true
			f = status.Forced{Site: here, By: by, At: time.Now().UTC(), Reason: "quorum lost; the record of an earlier force is completed by " + by}
			for _, s := range a.topo.Sites {
				if s.Name != here {
					f.Lost = append(f.Lost, s.Name)
				}
			}
			if err := a.store.PutForce(ctx, coord.Force{Forced: &f}); err != nil {
				return res, &forceError{http.StatusServiceUnavailable, fmt.Errorf("%s: complete the record of an earlier force: %w; ask again", here, err)}
			}
		}
		if !ok {
			return res, refuse("the etcd member of %s has a quorum: the control plane works, so enough of the other locations are alive; "+
				"nothing was changed. --force is only for when the quorum is lost; use `siteflip failover %s --to %s` instead, "+
				"and `siteflip status` to see why the group is not recovered by itself", here, g.Name, here)
		}
		forced = true
		a.force.on.Store(true)
		res.Forced = f
	}
	if !forced {
		if alive := a.reachablePeers(); len(alive) > 0 {
			return res, refuse("%s has no quorum, but the agent of %s still answers it: that location is not gone, and forcing now would make "+
				"two control planes and two primaries; nothing was changed. Find out why etcd has no quorum (the agents' logs), or stop "+
				"that agent for good first", here, strings.Join(alive, " and "))
		}
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	lg, err := a.store.ReadLocalGroup(lctx, g.Name)
	cancel()
	if err != nil {
		return res, &forceError{http.StatusServiceUnavailable, fmt.Errorf("%s cannot read its own etcd member: %w; nothing was changed", here, err)}
	}
	rc, err := a.recoveryOf(g, lg, by, req)
	if err != nil {
		return res, err
	}
	if !forced {
		res.Forced = status.Forced{Site: here, By: by, At: time.Now().UTC(),
			Reason: "quorum lost; " + by + " declared the other locations lost with `siteflip failover " + g.Name + " --force`"}
		for _, s := range a.topo.Sites {
			if s.Name != here {
				res.Forced.Lost = append(res.Forced.Lost, s.Name)
			}
		}
		start := time.Now()
		a.log.Warn("forcing: restarting the etcd member as a new single-member cluster; the other locations are declared lost",
			"by", by, "group", g.Name, "lost", res.Forced.Lost)
		if err := a.member.restartForced(a.log); err != nil {
			return res, fmt.Errorf("force %s: restart the etcd member as a new cluster: %w; look at the etcd lines in the agent log of %s, then run the command again", here, err, here)
		}
		res.Restarted, res.Took = true, time.Since(start)
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := a.recordForce(fctx, res.Forced, lg.Revision, rc)
		cancel()
		var underway *recoveryUnderway
		if errors.As(err, &underway) {
			rc.run, rc.note = nil, fmt.Sprintf("run %s of %s, started by the controller here as the force stored its marks, recovers it: follow it with `siteflip run %s`", underway.run, g.Name, underway.run)
			err = nil
		}
		if err != nil {
			return res, err
		}
		a.log.Warn("forced: this location runs the control plane alone and serves without a serve lease",
			"by", by, "restart_took", res.Took.Round(time.Millisecond))
	} else if rc.run != nil {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := a.startRecovery(fctx, rc)
		cancel()
		if err != nil {
			return res, &forceError{http.StatusConflict, err}
		}
	}
	if res.Forced.Site == "" {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		res.Forced, _, _ = a.store.ForcedAt(rctx, here)
		cancel()
	}
	res.Run, res.Note = rc.run, rc.note
	if rc.run != nil {
		a.log.Warn("forced recovery started", "run", rc.run.ID, "group", g.Name, "from", rc.run.Plan.From, "to", here, "epoch", rc.run.Plan.Epoch, "by", by)
	}
	a.notify()
	return res, nil
}

// aloneInCluster says whether this location's member is the only voting
// member of its cluster while the topology has other locations: the mark
// of a force, even if its record is missing.
func (a *agent) aloneInCluster(ctx context.Context) bool {
	members, _, err := a.store.Members(ctx)
	if err != nil || len(a.topo.Sites) < 2 {
		return false
	}
	for _, m := range members {
		if !m.Learner && !slices.Contains(m.PeerURLs, a.site.Etcd.PeerURL) {
			return false
		}
	}
	return true
}

// reachablePeers lists the other locations whose agents answer the probes.
func (a *agent) reachablePeers() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for name, p := range a.peers {
		if p.Reachable {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// recovery is what a force does for its group.
type recovery struct {
	run      *plan.Run
	record   *status.Record // a new epoch, when the group stays here
	revision int64          // the record's revision it replaces
	from     string         // the active site a failover leaves
	note     string         // why there is nothing to do
}

// recoveryOf decides, before anything is changed, how the group comes back
// here: refusals (a failover that would lose more than max_data_loss, a
// standby here that is not up) come now, while nothing was changed.
func (a *agent) recoveryOf(g *config.Group, lg coord.LocalGroup, by string, req api.ForceRequest) (recovery, error) {
	here := a.site.Name
	if !lg.Adopted {
		return recovery{}, refuse("group %s has no record (it was never adopted), so there is nothing to recover at %s; nothing was changed", g.Name, here)
	}
	rec := lg.Record
	if lg.Running != "" {
		return recovery{note: fmt.Sprintf("run %s of %s is in progress; the controller at %s resumes it: follow it with `siteflip run %s`, "+
			"and run this command again if %s is not active at %s when it ends", lg.Running, g.Name, here, lg.Running, g.Name, here)}, nil
	}
	order, err := plan.Order(g)
	if err != nil {
		return recovery{}, refuse("%v", err)
	}
	preq := plan.Request{Action: plan.Failover, To: here, AcceptDataLoss: req.AcceptDataLoss}
	now := a.now().UTC()
	runBy := by + " (--force)"
	if rec.ActiveSite == here {
		var stopped []string
		a.mu.Lock()
		for _, r := range order {
			if v := a.resources[g.Name+"/"+r.Name]; !v.Up || v.Role != status.RolePrimary {
				stopped = append(stopped, r.Name)
			}
		}
		a.mu.Unlock()
		if len(stopped) == 0 {
			return recovery{note: fmt.Sprintf("%s is active at %s and its primaries serve (epoch %d): nothing to recover", g.Name, here, rec.Epoch)}, nil
		}
		next := rec
		next.Epoch, next.UpdatedAt = rec.Epoch+1, now
		next.Reason = "forced by " + by + " after quorum loss"
		p := plan.Plan{Group: g.Name, Action: plan.Failover, From: here, To: here, Epoch: next.Epoch}
		for _, r := range order {
			p.Steps = append(p.Steps, plan.Step{ID: string(plan.Unfence) + ":" + r.Name + "@" + here, Kind: plan.Unfence, Resource: r.Name, Site: here, Timeout: 30 * time.Second, Retries: 2})
		}
		for _, r := range order {
			p.Steps = append(p.Steps, plan.Step{ID: string(plan.Promote) + ":" + r.Name + "@" + here, Kind: plan.Promote, Resource: r.Name, Site: here, Timeout: 30 * time.Second, Retries: 2})
		}
		run := plan.NewRun(newRunID(g.Name, plan.Failover), runBy, preq, p, now)
		run.Role, run.Reason, run.Ticket = "admin", req.Reason, req.Ticket
		return recovery{run: &run, record: &next, revision: rec.Revision}, nil
	}
	p, err := plan.Build(g, a.localKnown(g, lg), preq)
	if err != nil {
		return recovery{}, refuse("%w; nothing was changed (with the quorum lost, add --force to the command it names)", err)
	}
	run := plan.NewRun(newRunID(g.Name, plan.Failover), runBy, preq, p, now)
	run.Role, run.Reason, run.Ticket = "admin", req.Reason, req.Ticket
	return recovery{run: &run, revision: rec.Revision, from: rec.ActiveSite}, nil
}

// localKnown is what the planner needs, from this location's own
// observation of its resources and the last state its etcd member holds:
// the other locations are declared lost, so nothing else is known.
func (a *agent) localKnown(g *config.Group, lg coord.LocalGroup) plan.Known {
	here := a.site.Name
	gs := status.GroupStatus{Name: g.Name, ActiveSite: lg.Record.ActiveSite, Epoch: lg.Record.Epoch}
	a.mu.Lock()
	for _, r := range g.Resources {
		v, ok := a.resources[g.Name+"/"+r.Name]
		rss := status.ResourceSiteStatus{Site: here, Observed: ok, Up: v.Up, Role: v.Role, Streaming: v.Streaming, Error: v.Error}
		if !ok {
			rss.Role = status.RoleUnknown
		}
		gs.Resources = append(gs.Resources, status.ResourceStatus{Name: r.Name, Type: r.Type, Sites: []status.ResourceSiteStatus{rss}})
	}
	a.mu.Unlock()
	inSync := map[string]bool{}
	for res, r := range lg.Sync {
		if r.State == status.SyncOn && r.Epoch == lg.Record.Epoch {
			inSync[res] = true
		}
	}
	return plan.Known{Status: gs, SiteUp: map[string]bool{here: true}, LastLag: lg.Lags, ServeLease: a.topo.Coordination.ServeLease.D(), InSync: inSync}
}

// recordForce stores the forced record and the marks of the lost
// locations, forgets the lost sessions, starts the recovery and switches
// lease enforcement off.
func (a *agent) recordForce(ctx context.Context, f status.Forced, upTo int64, rc recovery) error {
	here := a.site.Name
	var marks []status.Mark
	var lostSites []string
	for _, lost := range f.Lost {
		s, _ := a.topo.Site(lost)
		if s.Role != config.RoleSite {
			continue
		}
		lostSites = append(lostSites, lost)
		for _, by := range a.topo.SiteNames() {
			if by != lost {
				marks = append(marks, status.Mark{Site: lost, By: by, At: f.At,
					Reason: fmt.Sprintf("declared lost by %s with `siteflip failover --force` at %s after the quorum was lost", f.By, here)})
			}
		}
	}
	// The client reconnects to the restarted member by itself; the first
	// attempts may find it still away. The record has no condition: it
	// must land whatever becomes of the group.
	var err error
	for {
		if err = a.store.PutForce(ctx, coord.Force{Forced: &f, Marks: marks}); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("force %s: its etcd member runs alone now, but recording the force failed: %w; run the command again: it goes on from there", here, err)
	}
	a.lease.mu.Lock()
	for _, s := range lostSites {
		a.lease.granter.Declare(s)
	}
	a.lease.mu.Unlock()
	if n, err := a.store.ForgetSessions(ctx, upTo); err != nil {
		a.log.Warn("cannot forget the sessions of the lost locations; they end after their lease TTL", "error", err)
	} else {
		a.log.Info("forgot the sessions of the lost locations", "leases", n)
	}
	// Lease enforcement goes off only once the group's new epoch and its
	// run are stored: before, a self-fenced primary here would be started
	// again in the old epoch.
	defer a.force.on.Store(true)
	if rc.run != nil {
		if err := a.startRecovery(ctx, rc); err != nil {
			// The marks stored with the force let the controller here
			// start the failover itself, at the same moment: that is the
			// recovery asked for.
			if id, ok := a.failoverUnderway(ctx, err, rc.run.Group); ok {
				return &recoveryUnderway{run: id}
			}
			return &forceError{http.StatusConflict, fmt.Errorf("%s is forced and runs the control plane alone, but the recovery of %s did not start: %w; run the command again once that is resolved", here, rc.run.Group, err)}
		}
	}
	return nil
}

// recoveryUnderway: the recovery a force asked for was started meanwhile
// by the controller here (the run named).
type recoveryUnderway struct{ run string }

func (r *recoveryUnderway) Error() string { return "run " + r.run + " recovers the group already" }

// failoverUnderway says whether err is the refusal of a run because a
// failover of group to this location is in progress, and names that run.
func (a *agent) failoverUnderway(ctx context.Context, err error, group string) (string, bool) {
	if !errors.Is(err, coord.ErrRunInProgress) {
		return "", false
	}
	lg, rerr := a.store.ReadLocalGroup(ctx, group)
	if rerr != nil || lg.Running == "" {
		return "", false
	}
	run, rerr := a.store.Run(ctx, lg.Running)
	if rerr != nil || run.Plan.Action != plan.Failover || run.Plan.To != a.site.Name {
		return "", false
	}
	return run.ID, true
}

// startRecovery stores the recovery run: a failover away from a site that
// every other location marks lost, or a new epoch here and its run.
func (a *agent) startRecovery(ctx context.Context, rc recovery) error {
	if rc.record != nil {
		return a.store.PutForce(ctx, coord.Force{Record: rc.record, RecordRevision: rc.revision, Run: rc.run})
	}
	var markedBy []string
	for _, l := range a.topo.SiteNames() {
		if l != rc.from {
			markedBy = append(markedBy, l)
		}
	}
	if err := a.store.StartFailover(ctx, *rc.run, rc.revision, rc.from, markedBy); err != nil {
		return fmt.Errorf("start the failover of %s to %s: %w (if %s asked for its serve lease meanwhile, it is not gone)", rc.run.Group, a.site.Name, err, rc.from)
	}
	return nil
}

// forcedLoop follows this location's forced record: it switches lease
// enforcement off while the record exists (also after the agent restarts),
// and ends the forced state once another location votes in the control
// plane again and grants this one the serve lease.
func (a *agent) forcedLoop(ctx context.Context) error {
	if a.member == nil {
		return nil
	}
	return every(ctx, time.Second, func() { a.followForced(ctx) })
}

func (a *agent) followForced(ctx context.Context) {
	gen := a.force.gen.Load()
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	f, ok, err := a.store.ForcedAt(rctx, a.site.Name)
	if err != nil {
		return // without a quorum, what is known stands
	}
	a.force.mu.Lock()
	defer a.force.mu.Unlock()
	if a.force.gen.Load() != gen {
		return // a force came in between: the read is stale
	}
	switch was := a.force.on.Swap(ok); {
	case ok && !was:
		a.log.Warn("this location is forced: it serves without a serve lease", "by", f.By, "at", f.At, "lost", f.Lost)
	case !ok && was:
		a.log.Info("the forced state of this location ended")
	}
	if !ok {
		return
	}
	a.lease.mu.Lock()
	granted := a.lease.lease.Valid(time.Now())
	a.lease.mu.Unlock()
	if !granted {
		return
	}
	members, _, err := a.store.Members(rctx)
	if err != nil {
		return
	}
	var voters []string
	for _, m := range members {
		if !m.Learner && !slices.Contains(m.PeerURLs, a.site.Etcd.PeerURL) {
			voters = append(voters, m.Name)
		}
	}
	if len(voters) == 0 {
		return
	}
	if err := a.store.DeleteForced(rctx, a.site.Name); err != nil {
		a.log.Warn("cannot end the forced state", "error", err)
		return
	}
	a.force.on.Store(false)
	a.log.Warn("another location votes in the control plane again and grants the serve lease: the forced state ends, the lease is enforced again", "voting", voters)
}

// noteForced adds the forced locations to a status.
func (a *agent) noteForced(ctx context.Context, st *status.Status) {
	if fs, err := a.store.Forced(ctx); err == nil {
		st.NoteForced(fs)
	}
}

// handleMembers answers with the etcd membership, while this location's
// member has a quorum: a location that comes back asks it before starting
// its own member.
func (a *agent) handleMembers(w http.ResponseWriter, r *http.Request) {
	if a.member == nil {
		writeError(w, http.StatusConflict, fmt.Errorf("%s uses an existing etcd cluster: its members are not the locations'", a.site.Name))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	members, _, err := a.store.Members(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s: %w", a.site.Name, err))
		return
	}
	out := api.Membership{Site: a.site.Name}
	for _, m := range members {
		out.Members = append(out.Members, api.MemberInfo{Name: m.Name, PeerURLs: m.PeerURLs, Learner: m.Learner})
	}
	out.Forced, _ = a.store.Forced(ctx)
	writeJSON(w, http.StatusOK, out)
}

// memberCaller checks a membership request: only the location named may
// ask, with its own certificate, for its own embedded member.
func (a *agent) memberCaller(w http.ResponseWriter, r *http.Request) (*config.Site, bool) {
	info := requestInfo(r)
	if a.member == nil {
		writeError(w, http.StatusConflict, fmt.Errorf("%s uses an existing etcd cluster: locations do not join it through siteflip", a.site.Name))
		return nil, false
	}
	if !a.topo.TLSEnabled() {
		writeError(w, http.StatusForbidden, errors.New("members are added only over mutual TLS: turn TLS on (tls.ca_file)"))
		return nil, false
	}
	var req api.MemberRequest
	if err := decodeJSON(w, r, 4096, &req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode member request: %w", err))
		return nil, false
	}
	info.note.Action = "etcd member of " + req.Site
	s, ok := a.topo.Site(req.Site)
	if !ok || s.Name == a.site.Name {
		writeError(w, http.StatusBadRequest, fmt.Errorf("member request for unknown location %q", req.Site))
		return nil, false
	}
	if p := info.principal; p.Site != s.Name {
		writeError(w, http.StatusForbidden, fmt.Errorf("the member of %s may be added or promoted only by %s itself, not by %s", s.Name, s.Name, p))
		return nil, false
	}
	return s, true
}

// handleAddMember adds a returning location's member as a learner.
func (a *agent) handleAddMember(w http.ResponseWriter, r *http.Request) {
	s, ok := a.memberCaller(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	peers, err := a.store.AddMember(ctx, s.Name, s.Etcd.PeerURL)
	switch {
	case errors.Is(err, coord.ErrMemberExists):
		writeError(w, http.StatusConflict, err)
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		a.log.Warn("location added back to the control plane as a learner", "site", s.Name)
		writeJSON(w, http.StatusOK, api.MemberAdded{Peers: peers})
	}
}

// handlePromoteMember makes a returning location's learner vote once it has
// caught up.
func (a *agent) handlePromoteMember(w http.ResponseWriter, r *http.Request) {
	s, ok := a.memberCaller(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	if err := a.store.PromoteMember(ctx, s.Etcd.PeerURL); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	a.log.Warn("location votes in the control plane again", "site", s.Name)
	writeJSON(w, http.StatusOK, struct{}{})
}
