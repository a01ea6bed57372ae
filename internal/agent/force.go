package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
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

// forcer is forcing and the embedded etcd member it restarts (member.go):
// whether this location runs the control plane alone by a person's
// decision, the force endpoint, and the membership endpoints that let a
// location declared lost come back.
type forcer struct {
	*base
	store  forceStore
	member *localMember // nil with an existing etcd cluster
	// lease learns the sites a force declared lost and whether the lease
	// is granted again; presence which peers still answer; local what the
	// resources here are doing.
	lease    *serveLease
	presence *presence
	local    *localResources

	// busy admits one force request at a time; mu orders a force with the
	// loop that follows the forced record, whose reads are stale once gen
	// has moved; on is whether this location is forced.
	busy sync.Mutex
	mu   sync.Mutex
	gen  atomic.Int64
	on   atomic.Bool
}

// forceStore is what forcing reads and changes in the control plane.
type forceStore interface {
	ForcedAt(ctx context.Context, site string) (status.Forced, bool, error)
	Forced(ctx context.Context) ([]status.Forced, error)
	PutForce(ctx context.Context, f coord.Force) error
	DeleteForced(ctx context.Context, site string) error
	ReadLocalGroup(ctx context.Context, group string) (coord.LocalGroup, error)
	ForgetSessions(ctx context.Context, upTo int64) (int, error)
	Run(ctx context.Context, id string) (plan.Run, error)
	StartFailover(ctx context.Context, run plan.Run, recordRevision int64, lost string, markedBy []string) error
	Members(ctx context.Context) ([]coord.MemberInfo, uint64, error)
	AddMember(ctx context.Context, name, peerURL string) (map[string]string, error)
	PromoteMember(ctx context.Context, peerURL string) error
}

// forced says whether this location runs the control plane alone by a
// person's decision: its serve lease then counts as valid.
func (fc *forcer) forced() bool { return fc.on.Load() }

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
func (fc *forcer) handleForce(w http.ResponseWriter, r *http.Request) {
	info := requestInfo(r)
	by := info.principal.Name
	var req api.ForceRequest
	if err := decodeJSON(w, r, 4096, &req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode force request: %w", err))
		return
	}
	info.note.Group, info.note.Action = req.Group, fmt.Sprintf("failover %s --force --to %s", req.Group, fc.site.Name)
	if req.AcceptDataLoss {
		info.note.Action += " --accept-data-loss"
	}
	info.note.Reason, info.note.Ticket = req.Reason, req.Ticket
	if err := checkWhy(req.Reason, req.Ticket); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	g, ok := fc.topo.Group(req.Group)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown group %q (groups: %s); nothing was changed", req.Group, groupNames(fc.topo.Groups)))
		return
	}
	if !slices.Contains(g.Sites, fc.site.Name) {
		writeError(w, http.StatusConflict, fmt.Errorf("%s is not a site of group %s (its sites: %s): force at one of them with --to; nothing was changed",
			fc.site.Name, g.Name, strings.Join(g.Sites, ", ")))
		return
	}
	if fc.member == nil {
		writeError(w, http.StatusConflict, fmt.Errorf("%s uses an existing etcd cluster (coordination.etcd_endpoints or --etcd-endpoints), and siteflip can force only "+
			"its own embedded member: recover that cluster with etcd's procedure (restore a snapshot, or --force-new-cluster on its surviving member), "+
			"then run `siteflip failover %s --to %s` without --force; nothing was changed", fc.site.Name, g.Name, fc.site.Name))
		return
	}
	if !fc.busy.TryLock() {
		writeError(w, http.StatusConflict, fmt.Errorf("a force is already under way at %s; wait for it to end and look at `siteflip status`", fc.site.Name))
		return
	}
	defer fc.busy.Unlock()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	defer fc.gen.Add(1)
	// The force must not stop half way because the client went away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
	defer cancel()
	res, err := fc.forceGroup(ctx, by, g, req)
	if err != nil {
		code := http.StatusInternalServerError
		var fe *forceError
		if errors.As(err, &fe) {
			code = fe.code
		}
		fc.log.Warn("force refused or failed", "group", g.Name, "by", by, "error", err)
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
func (fc *forcer) forceGroup(ctx context.Context, by string, g *config.Group, req api.ForceRequest) (api.ForceResult, error) {
	here := fc.site.Name
	forced := fc.forced()
	var res api.ForceResult
	if !forced && fc.member.hasQuorum(ctx) {
		f, ok, err := fc.store.ForcedAt(ctx, here)
		if err != nil {
			return res, &forceError{http.StatusServiceUnavailable, fmt.Errorf("%s: %w; ask again", here, err)}
		}
		if !ok && fc.aloneInCluster(ctx) {
			// Forced before, but the record did not land.
			ok = true
			f = status.Forced{Site: here, By: by, At: time.Now().UTC(), Reason: "quorum lost; the record of an earlier force is completed by " + by}
			for _, s := range fc.topo.Sites {
				if s.Name != here {
					f.Lost = append(f.Lost, s.Name)
				}
			}
			if err := fc.store.PutForce(ctx, coord.Force{Forced: &f}); err != nil {
				return res, &forceError{http.StatusServiceUnavailable, fmt.Errorf("%s: complete the record of an earlier force: %w; ask again", here, err)}
			}
		}
		if !ok {
			return res, refuse("the etcd member of %s has a quorum: the control plane works, so enough of the other locations are alive; "+
				"nothing was changed. --force is only for when the quorum is lost; use `siteflip failover %s --to %s` instead, "+
				"and `siteflip status` to see why the group is not recovered by itself", here, g.Name, here)
		}
		forced = true
		fc.on.Store(true)
		res.Forced = f
	}
	if !forced {
		if alive := fc.presence.reachablePeers(); len(alive) > 0 {
			return res, refuse("%s has no quorum, but the agent of %s still answers it: that location is not gone, and forcing now would make "+
				"two control planes and two primaries; nothing was changed. Find out why etcd has no quorum (the agents' logs), or stop "+
				"that agent for good first", here, strings.Join(alive, " and "))
		}
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	lg, err := fc.store.ReadLocalGroup(lctx, g.Name)
	cancel()
	if err != nil {
		return res, &forceError{http.StatusServiceUnavailable, fmt.Errorf("%s cannot read its own etcd member: %w; nothing was changed", here, err)}
	}
	rc, err := fc.recoveryOf(g, lg, by, req)
	if err != nil {
		return res, err
	}
	if !forced {
		res.Forced = status.Forced{Site: here, By: by, At: time.Now().UTC(),
			Reason: "quorum lost; " + by + " declared the other locations lost with `siteflip failover " + g.Name + " --force`"}
		for _, s := range fc.topo.Sites {
			if s.Name != here {
				res.Forced.Lost = append(res.Forced.Lost, s.Name)
			}
		}
		start := time.Now()
		fc.log.Warn("forcing: restarting the etcd member as a new single-member cluster; the other locations are declared lost",
			"by", by, "group", g.Name, "lost", res.Forced.Lost)
		if err := fc.member.restartForced(fc.log); err != nil {
			return res, fmt.Errorf("force %s: restart the etcd member as a new cluster: %w; look at the etcd lines in the agent log of %s, then run the command again", here, err, here)
		}
		res.Restarted, res.Took = true, time.Since(start)
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := fc.recordForce(fctx, res.Forced, lg.Revision, rc)
		cancel()
		var underway *recoveryUnderway
		if errors.As(err, &underway) {
			rc.run, rc.note = nil, fmt.Sprintf("run %s of %s, started by the controller here as the force stored its marks, recovers it: follow it with `siteflip run %s`", underway.run, g.Name, underway.run)
			err = nil
		}
		if err != nil {
			return res, err
		}
		fc.log.Warn("forced: this location runs the control plane alone and serves without a serve lease",
			"by", by, "restart_took", res.Took.Round(time.Millisecond))
	} else if rc.run != nil {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := fc.startRecovery(fctx, rc)
		cancel()
		if err != nil {
			return res, &forceError{http.StatusConflict, err}
		}
	}
	if res.Forced.Site == "" {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		res.Forced, _, _ = fc.store.ForcedAt(rctx, here)
		cancel()
	}
	res.Run, res.Note = rc.run, rc.note
	if rc.run != nil {
		fc.log.Warn("forced recovery started", "run", rc.run.ID, "group", g.Name, "from", rc.run.Plan.From, "to", here, "epoch", rc.run.Plan.Epoch, "by", by)
	}
	fc.presence.notify()
	return res, nil
}

// aloneInCluster says whether this location's member is the only voting
// member of its cluster while the topology has other locations: the mark
// of a force, even if its record is missing.
func (fc *forcer) aloneInCluster(ctx context.Context) bool {
	members, _, err := fc.store.Members(ctx)
	if err != nil || len(fc.topo.Sites) < 2 {
		return false
	}
	for _, m := range members {
		if !m.Learner && !slices.Contains(m.PeerURLs, fc.site.Etcd.PeerURL) {
			return false
		}
	}
	return true
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
func (fc *forcer) recoveryOf(g *config.Group, lg coord.LocalGroup, by string, req api.ForceRequest) (recovery, error) {
	here := fc.site.Name
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
	// Checks are run, never unfenced or promoted; a forced recovery waits
	// for no approval: the admin who forces it is the person.
	order = slices.DeleteFunc(order, func(r config.Resource) bool { return !r.Class.Stepped() })
	preq := plan.Request{Action: plan.Failover, To: here, AcceptDataLoss: req.AcceptDataLoss}
	now := fc.now().UTC()
	runBy := by + " (--force)"
	if rec.ActiveSite == here {
		var stopped []string
		for _, r := range order {
			if r.Class == config.ClassScript {
				continue // not observed: its promote runs with the others
			}
			if v, _ := fc.local.view(g.Name + "/" + r.Name); !v.Up || v.Role != status.RolePrimary {
				stopped = append(stopped, r.Name)
			}
		}
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
	p, err := plan.Build(g, fc.localKnown(g, lg), preq)
	if err != nil {
		return recovery{}, refuse("%w; nothing was changed (with the quorum lost, add --force to the command it names)", err)
	}
	p.Steps = slices.DeleteFunc(p.Steps, func(s plan.Step) bool { return s.Kind == plan.Approve })
	run := plan.NewRun(newRunID(g.Name, plan.Failover), runBy, preq, p, now)
	run.Role, run.Reason, run.Ticket = "admin", req.Reason, req.Ticket
	return recovery{run: &run, revision: rec.Revision, from: rec.ActiveSite}, nil
}

// localKnown is what the planner needs, from this location's own
// observation of its resources and the last state its etcd member holds:
// the other locations are declared lost, so nothing else is known.
func (fc *forcer) localKnown(g *config.Group, lg coord.LocalGroup) plan.Known {
	here := fc.site.Name
	gs := status.GroupStatus{Name: g.Name, ActiveSite: lg.Record.ActiveSite, Epoch: lg.Record.Epoch}
	for _, r := range g.Resources {
		v, ok := fc.local.view(g.Name + "/" + r.Name)
		rss := status.ResourceSiteStatus{Site: here, Observed: ok, Up: v.Up, Role: v.Role, Streaming: v.Streaming, Error: v.Error}
		if !ok {
			rss.Role = status.RoleUnknown
		}
		gs.Resources = append(gs.Resources, status.ResourceStatus{Name: r.Name, Type: r.Type, Sites: []status.ResourceSiteStatus{rss}})
	}
	inSync := map[string]string{}
	for res, r := range lg.Sync {
		if r.State == status.SyncOn && r.Epoch == lg.Record.Epoch {
			inSync[res] = r.Standby
		}
	}
	return plan.Known{Status: gs, SiteUp: map[string]bool{here: true}, LastLag: lg.Lags, ServeLease: fc.topo.Coordination.ServeLease.D(), InSync: inSync}
}

// recordForce stores the forced record and the marks of the lost
// locations, forgets the lost sessions, starts the recovery and switches
// lease enforcement off.
func (fc *forcer) recordForce(ctx context.Context, f status.Forced, upTo int64, rc recovery) error {
	here := fc.site.Name
	var marks []status.Mark
	var lostSites []string
	for _, lost := range f.Lost {
		s, _ := fc.topo.Site(lost)
		if s.Role != config.RoleSite {
			continue
		}
		lostSites = append(lostSites, lost)
		for _, by := range fc.topo.SiteNames() {
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
		if err = fc.store.PutForce(ctx, coord.Force{Forced: &f, Marks: marks}); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("force %s: its etcd member runs alone now, but recording the force failed: %w; run the command again: it goes on from there", here, err)
	}
	fc.lease.declare(lostSites)
	if n, err := fc.store.ForgetSessions(ctx, upTo); err != nil {
		fc.log.Warn("cannot forget the sessions of the lost locations; they end after their lease TTL", "error", err)
	} else {
		fc.log.Info("forgot the sessions of the lost locations", "leases", n)
	}
	// Lease enforcement goes off only once the group's new epoch and its
	// run are stored: before, a self-fenced primary here would be started
	// again in the old epoch.
	defer fc.on.Store(true)
	if rc.run != nil {
		if err := fc.startRecovery(ctx, rc); err != nil {
			// The marks stored with the force let the controller here
			// start the failover itself, at the same moment: that is the
			// recovery asked for.
			if id, ok := fc.failoverUnderway(ctx, err, rc.run.Group); ok {
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
func (fc *forcer) failoverUnderway(ctx context.Context, err error, group string) (string, bool) {
	if !errors.Is(err, coord.ErrRunInProgress) {
		return "", false
	}
	lg, rerr := fc.store.ReadLocalGroup(ctx, group)
	if rerr != nil || lg.Running == "" {
		return "", false
	}
	run, rerr := fc.store.Run(ctx, lg.Running)
	if rerr != nil || run.Plan.Action != plan.Failover || run.Plan.To != fc.site.Name {
		return "", false
	}
	return run.ID, true
}

// startRecovery stores the recovery run: a failover away from a site that
// every other location marks lost, or a new epoch here and its run.
func (fc *forcer) startRecovery(ctx context.Context, rc recovery) error {
	if rc.record != nil {
		return fc.store.PutForce(ctx, coord.Force{Record: rc.record, RecordRevision: rc.revision, Run: rc.run})
	}
	var markedBy []string
	for _, l := range fc.topo.SiteNames() {
		if l != rc.from {
			markedBy = append(markedBy, l)
		}
	}
	if err := fc.store.StartFailover(ctx, *rc.run, rc.revision, rc.from, markedBy); err != nil {
		return fmt.Errorf("start the failover of %s to %s: %w (if %s asked for its serve lease meanwhile, it is not gone)", rc.run.Group, fc.site.Name, err, rc.from)
	}
	return nil
}

// forcedLoop follows this location's forced record: it switches lease
// enforcement off while the record exists (also after the agent restarts),
// and ends the forced state once another location votes in the control
// plane again and grants this one the serve lease.
func (fc *forcer) forcedLoop(ctx context.Context) error {
	if fc.member == nil {
		return nil
	}
	return every(ctx, time.Second, func() { fc.followForced(ctx) })
}

func (fc *forcer) followForced(ctx context.Context) {
	gen := fc.gen.Load()
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	f, ok, err := fc.store.ForcedAt(rctx, fc.site.Name)
	if err != nil {
		return // without a quorum, what is known stands
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.gen.Load() != gen {
		return // a force came in between: the read is stale
	}
	switch was := fc.on.Swap(ok); {
	case ok && !was:
		fc.log.Warn("this location is forced: it serves without a serve lease", "by", f.By, "at", f.At, "lost", f.Lost)
	case !ok && was:
		fc.log.Info("the forced state of this location ended")
	}
	if !ok {
		return
	}
	if !fc.lease.granted() {
		return
	}
	members, _, err := fc.store.Members(rctx)
	if err != nil {
		return
	}
	var voters []string
	for _, m := range members {
		if !m.Learner && !slices.Contains(m.PeerURLs, fc.site.Etcd.PeerURL) {
			voters = append(voters, m.Name)
		}
	}
	if len(voters) == 0 {
		return
	}
	if err := fc.store.DeleteForced(rctx, fc.site.Name); err != nil {
		fc.log.Warn("cannot end the forced state", "error", err)
		return
	}
	fc.on.Store(false)
	fc.log.Warn("another location votes in the control plane again and grants the serve lease: the forced state ends, the lease is enforced again", "voting", voters)
}

// noteForced adds the forced locations to a status.
func (fc *forcer) noteForced(ctx context.Context, st *status.Status) {
	if fs, err := fc.store.Forced(ctx); err == nil {
		st.NoteForced(fs)
	}
}

// handleMembers answers with the etcd membership, while this location's
// member has a quorum: a location that comes back asks it before starting
// its own member.
func (fc *forcer) handleMembers(w http.ResponseWriter, r *http.Request) {
	if fc.member == nil {
		writeError(w, http.StatusConflict, fmt.Errorf("%s uses an existing etcd cluster: its members are not the locations'", fc.site.Name))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	members, _, err := fc.store.Members(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s: %w", fc.site.Name, err))
		return
	}
	out := api.Membership{Site: fc.site.Name}
	for _, m := range members {
		out.Members = append(out.Members, api.MemberInfo{Name: m.Name, PeerURLs: m.PeerURLs, Learner: m.Learner})
	}
	out.Forced, _ = fc.store.Forced(ctx)
	writeJSON(w, http.StatusOK, out)
}

// memberCaller checks a membership request: only the location named may
// ask, with its own certificate, for its own embedded member.
func (fc *forcer) memberCaller(w http.ResponseWriter, r *http.Request) (*config.Site, bool) {
	info := requestInfo(r)
	if fc.member == nil {
		writeError(w, http.StatusConflict, fmt.Errorf("%s uses an existing etcd cluster: locations do not join it through siteflip", fc.site.Name))
		return nil, false
	}
	if !fc.topo.TLSEnabled() {
		writeError(w, http.StatusForbidden, errors.New("members are added only over mutual TLS: turn TLS on (tls.ca_file)"))
		return nil, false
	}
	var req api.MemberRequest
	if err := decodeJSON(w, r, 4096, &req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode member request: %w", err))
		return nil, false
	}
	info.note.Action = "etcd member of " + req.Site
	s, ok := fc.topo.Site(req.Site)
	if !ok || s.Name == fc.site.Name {
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
func (fc *forcer) handleAddMember(w http.ResponseWriter, r *http.Request) {
	s, ok := fc.memberCaller(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	peers, err := fc.store.AddMember(ctx, s.Name, s.Etcd.PeerURL)
	switch {
	case errors.Is(err, coord.ErrMemberExists):
		writeError(w, http.StatusConflict, err)
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		fc.log.Warn("location added back to the control plane as a learner", "peer", s.Name)
		writeJSON(w, http.StatusOK, api.MemberAdded{Peers: peers})
	}
}

// handlePromoteMember makes a returning location's learner vote once it has
// caught up.
func (fc *forcer) handlePromoteMember(w http.ResponseWriter, r *http.Request) {
	s, ok := fc.memberCaller(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	if err := fc.store.PromoteMember(ctx, s.Etcd.PeerURL); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	fc.log.Warn("location votes in the control plane again", "peer", s.Name)
	writeJSON(w, http.StatusOK, struct{}{})
}
