package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/engine"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/safety"
	"github.com/siteflip/siteflip/internal/status"
)

// controller is the candidacy for controller and, once elected, the
// controller's work: it adopts groups, decides automatic failovers
// (safety.Decide), drives the runs in progress, keeps the standbys' lags,
// prunes the audit trail, and evicts a controller every other location lost.
type controller struct {
	*base
	plane  *plane
	store  controllerStore
	agents engine.Agents // carries the steps out at the sites' agents
}

// controllerStore is what the controller changes in the control plane.
type controllerStore interface {
	engine.Store
	drillStore
	AdoptGroup(ctx context.Context, rec status.Record, term int64) (bool, error)
	PruneAudit(ctx context.Context, keep int, before time.Time) (int64, error)
	PruneRuns(ctx context.Context, keepPerGroup int, before time.Time, f coord.Fence) (int, error)
	EvictController(ctx context.Context, site string, term int64) (bool, error)
	WatchMarks(ctx context.Context) <-chan struct{}
	Marks(ctx context.Context) (map[string]map[string]status.Mark, error)
	StartFailover(ctx context.Context, run plan.Run, recordRevision int64, lost string, markedBy []string) error
	PutDecision(ctx context.Context, d status.Decision, f coord.Fence) error
	DeleteDecision(ctx context.Context, group string, f coord.Fence) error
	Runs(ctx context.Context, group string) ([]plan.Run, error)
	Run(ctx context.Context, id string) (plan.Run, error)
	PutLag(ctx context.Context, group, resource, site string, l status.Lag) error
	scheduledStore
}

// serve is the controller's part of a presence session: it campaigns and,
// while elected, does the controller's work; meanwhile it evicts a
// controller that every other location lost. It returns when ctx ends, or
// with the error of a candidacy that failed.
func (ctl *controller) serve(ctx context.Context, sess *coord.Session) error {
	return alongside(ctx, ctl.watchController, func(ctx context.Context) error { return ctl.campaign(ctx, sess) })
}

// alongside runs side for as long as main runs: it ends side when main
// returns, waits for it, and returns main's error. A candidacy that fails
// must end its session at once, not wait for a side loop that only its
// context stops.
func alongside(ctx context.Context, side func(context.Context), main func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		side(ctx)
	}()
	err := main(ctx)
	cancel()
	<-done
	return err
}

// decide carries out the automatic-failover rule (safety.Decide) on a
// fresh snapshot: it starts failovers and records or clears the decisions
// a person must take. It returns the failovers it started, as stored.
func (ctl *controller) decide(ctx context.Context, snap status.Snapshot, f coord.Fence, m *safety.Memory) (started []plan.Run) {
	now := ctl.now()
	in := safety.Input{Now: now, Topology: ctl.topo, Snapshot: snap}
	for _, g := range ctl.topo.Groups {
		if rec, ok := snap.Records[g.Name]; ok && snap.Running[g.Name] == "" && snap.Lost(rec.ActiveSite, ctl.topo.SiteNames()) {
			in.Status = ctl.plane.assemble(snap) // only when a decision may be needed
			break
		}
	}
	// A lost site may hold hundreds of groups: their actions are carried
	// out side by side (each its own etcd transaction, which etcd batches),
	// a group's own actions in the order Decide gave them.
	var order []string
	byGroup := map[string][]safety.Action{}
	for _, act := range safety.Decide(in, m) {
		if sf, ok := act.(safety.StartFailover); ok {
			sf.Incident = incident(snap, sf.From)
			act = sf
		}
		g := actionGroup(act)
		if _, ok := byGroup[g]; !ok {
			order = append(order, g)
		}
		byGroup[g] = append(byGroup[g], act)
	}
	type result struct {
		act safety.Action
		run *plan.Run // a failover started
		ok  bool
	}
	results := make([][]result, len(order))
	sem := make(chan struct{}, carryParallel)
	var wg sync.WaitGroup
	for i, g := range order {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for _, act := range byGroup[g] {
				run, ok := ctl.carryOut(ctx, act, now, f)
				results[i] = append(results[i], result{act, run, ok})
			}
		})
	}
	wg.Wait()
	for _, rs := range results {
		for _, r := range rs {
			if !r.ok {
				continue
			}
			m.Done(r.act)
			if r.run != nil {
				started = append(started, *r.run)
			}
		}
	}
	return started
}

// carryParallel bounds the groups whose actions are carried out at once,
// driveParallel the runs driven at once.
const (
	carryParallel = 32
	driveParallel = 128
	// slotHold is how long a run keeps its slot at most.
	slotHold = 5 * time.Second
)

// actionGroup is the group an action is about.
func actionGroup(act safety.Action) string {
	switch a := act.(type) {
	case safety.StartFailover:
		return a.Group
	case safety.NeedDecision:
		return a.Decision.Group
	case safety.ClearDecision:
		return a.Group
	case safety.Damp:
		return a.Group
	}
	return ""
}

// carryOut does what Decide asked; it says whether it was done, and
// returns the failover it started, as stored.
func (ctl *controller) carryOut(ctx context.Context, act safety.Action, now time.Time, f coord.Fence) (*plan.Run, bool) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	switch act := act.(type) {
	case safety.StartFailover:
		run := plan.NewRun(newRunID(act.Group, plan.Failover), "controller "+ctl.site.Name+" (automatic)", act.Request, act.Plan, now.UTC())
		run.Incident = act.Incident
		err := ctl.store.StartFailover(wctx, run, act.Revision, act.From, act.MarkedBy)
		if err != nil {
			switch {
			case errors.Is(err, coord.ErrPaused):
				// Paused since the snapshot Decide read: the next
				// decision records that a person must decide.
				ctl.log.Info("automatic failover not started: the group was paused meanwhile", "group", act.Group)
			case ctx.Err() == nil && !errors.Is(err, coord.ErrStale) && !errors.Is(err, coord.ErrRunInProgress):
				ctl.log.Warn("cannot start automatic failover", "group", act.Group, "error", err)
			}
			return nil, false
		}
		ctl.metrics.autoFailovers.Inc()
		ctl.log.Warn("site lost: automatic failover started", "group", act.Group, "from", act.Plan.From, "to", act.Plan.To, "run", run.ID,
			"lost_for", act.LostFor.Round(time.Millisecond))
		return &run, true
	case safety.NeedDecision:
		d := act.Decision
		if err := ctl.store.PutDecision(wctx, d, f); err != nil {
			if ctx.Err() == nil {
				ctl.log.Warn("cannot record that the group needs a decision", "group", d.Group, "error", err)
			}
			return nil, false
		}
		ctl.log.Error("site lost and no automatic failover: a person must decide", "group", d.Group, "lost_site", d.Site,
			"reason", d.Reason, "command", d.Command)
		return nil, true
	case safety.ClearDecision:
		if err := ctl.store.DeleteDecision(wctx, act.Group, f); err != nil {
			return nil, false
		}
		ctl.log.Info("group no longer needs a decision", "group", act.Group, "why", act.Why)
		return nil, true
	case safety.Damp:
		ctl.log.Warn("the same site lost again soon after its previous loss: confirming before failing over",
			"group", act.Group, "lost_site", act.Site, "previous_loss", act.Previous.Round(time.Second), "confirm_for", act.Confirm, "left", act.Until.Round(time.Millisecond))
		return nil, true
	}
	return nil, false
}

// incident is what the snapshot tells of the loss of site: when the
// other locations first failed to hear it (the earliest change to
// unreachable in their views), and when the last of them marked it lost.
func incident(snap status.Snapshot, site string) *plan.Incident {
	in := &plan.Incident{Site: site}
	for _, v := range snap.Views {
		if p, ok := v.Peers[site]; ok && v.Site != site && !p.Reachable && !p.Since.IsZero() {
			if in.LastHeard.IsZero() || p.Since.Before(in.LastHeard) {
				in.LastHeard = p.Since.UTC()
			}
		}
	}
	for _, m := range snap.Marks[site] {
		if m.At.After(in.DeclaredLost) {
			in.DeclaredLost = m.At.UTC()
		}
	}
	return in
}

// newMemory remembers the failovers of the last flap periods from the run
// history, so that a new controller damps flapping too; from the same
// read it exports the last runs' metrics.
func (ctl *controller) newMemory(ctx context.Context) *safety.Memory {
	m := safety.NewMemory()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if runs, err := ctl.store.Runs(rctx, ""); err == nil {
		m.Remember(runs)
		ctl.metrics.lastRuns(ctl.topo, runs)
	}
	return m
}

// runEnded counts a run this controller drove to its end (not one that
// had ended before: a controller that stopped before it released the run
// counted it) and exports it as its group's last run of its action. A run
// that rejoined a site may have told what the group's last failover lost
// (the engine wrote it onto the failover): that failover is read again.
func (ctl *controller) runEnded(ctx context.Context, run plan.Run, endedBefore bool) {
	if !run.Done() {
		return
	}
	if !endedBefore {
		ctl.metrics.runEnded(run)
	}
	ctl.metrics.lastRun(ctl.topo, run)
	id, pending := ctl.metrics.lossPending(run.Group)
	if !pending || run.Plan.Action == plan.Failover || len(run.RejoinedSites()) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if f, err := ctl.store.Run(rctx, id); err == nil {
		ctl.metrics.lastRun(ctl.topo, f)
	}
}

// campaign waits to be elected controller and then does the controller's
// work for as long as the session lasts.
func (ctl *controller) campaign(ctx context.Context, sess *coord.Session) error {
	term, err := sess.Campaign(ctx)
	if err != nil {
		return err
	}
	ctl.log.Info("elected controller", "term", term)
	ctl.metrics.controller.Set(1)
	defer ctl.metrics.controller.Set(0)
	defer ctl.log.Info("no longer controller", "term", term)
	runsDone := make(chan struct{})
	go func() {
		defer close(runsDone)
		ctl.driveRuns(ctx, sess)
	}()
	defer func() { <-runsDone }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var pruned time.Time
	for {
		ctl.adoptGroups(ctx, term)
		if time.Since(pruned) > time.Minute {
			pruned = time.Now()
			ctl.pruneAudit(ctx)
			ctl.pruneRuns(ctx, sess.Fence())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// pruneAudit keeps the audit trail within its retention (audit.Keep
// records, audit.MaxAge); the controller does it for everybody.
func (ctl *controller) pruneAudit(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := ctl.store.PruneAudit(pctx, audit.Keep, ctl.now().Add(-audit.MaxAge))
	switch {
	case err != nil && ctx.Err() == nil:
		ctl.log.Warn("prune the audit trail", "error", err)
	case n > 0:
		ctl.log.Info("audit trail pruned to its retention", "deleted", n, "keep", audit.Keep, "max_age", audit.MaxAge)
	}
}

// adoptGroups gives every group without a record its first record, at
// the site status.AdoptionSite names; a group it cannot place stays initializing.
func (ctl *controller) adoptGroups(ctx context.Context, term int64) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	snap, err := ctl.plane.snapshot(rctx)
	if err != nil {
		return
	}
	// Judge from the assembled status, which does not trust the lingering
	// view of a site that is down.
	st := ctl.plane.assemble(snap)
	up := map[string]bool{}
	for _, s := range st.Sites {
		up[s.Name] = s.Up
	}
	for i := range ctl.topo.Groups {
		g := &ctl.topo.Groups[i]
		if _, ok := snap.Records[g.Name]; ok {
			continue
		}
		active, why := status.AdoptionSite(g, st.Groups[i], up)
		if active == "" {
			continue
		}
		rec := status.Record{
			Group: g.Name, ActiveSite: active, Epoch: 1, UpdatedAt: ctl.now().UTC(),
			Reason: fmt.Sprintf("adopted by controller %s: %s", ctl.site.Name, why),
		}
		ok, err := ctl.store.AdoptGroup(rctx, rec, term)
		if err != nil {
			if ctx.Err() == nil {
				ctl.log.Warn("adopt group", "group", g.Name, "error", err)
			}
			continue
		}
		if ok {
			ctl.log.Info("adopted group", "group", g.Name, "active_site", rec.ActiveSite, "epoch", rec.Epoch, "why", why)
		}
	}
}

// watchController evicts a controller whose location every other location
// has lost, instead of waiting out its lease (safety.ControllerLost and
// coord.EvictController).
func (ctl *controller) watchController(ctx context.Context) {
	tick := time.NewTicker(ctl.topo.Coordination.ProbeInterval.D())
	defer tick.Stop()
	// The marks on the controller's site evict it the moment they are all
	// there: the failover must not wait for the eviction.
	marks := ctl.store.WatchMarks(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-marks:
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		snap, err := ctl.plane.snapshot(rctx)
		if err == nil && snap.Controller != nil {
			if lost, why := safety.ControllerLost(ctl.topo, snap, ctl.site.Name); lost {
				c := snap.Controller
				if ok, err := ctl.store.EvictController(rctx, c.Site, c.Term); err != nil && ctx.Err() == nil {
					ctl.log.Warn("evict controller", "controller", c.Site, "error", err)
				} else if ok {
					ctl.log.Warn("evicted controller", "controller", c.Site, "term", c.Term, "why", why)
				}
			}
		}
		cancel()
	}
}

// driveRuns is the controller's run loop: every run in progress is driven
// by one goroutine until it ends or the term does.
func (ctl *controller) driveRuns(ctx context.Context, sess *coord.Session) {
	eng := &engine.Engine{
		Store: ctl.store, Agents: ctl.agents, Fence: sess.Fence(), Log: ctl.log,
		SiteLost: ctl.siteLost,
		Now:      time.Now,
		Sleep: func(ctx context.Context, d time.Duration) {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		},
	}
	eng.AfterStep = ctl.failpoint()
	eng.Preempted = ctl.preempted
	driving := map[string]bool{}
	done := make(chan string)
	ap := ctl.newMemory(ctx)
	sched := ctl.newDrillScheduler(sess.Fence())
	defer sched.stop() // after the goroutines below
	defer ctl.metrics.clearLastRuns()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	// A mark stored or removed is decided on at once, not at the next poll.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	marks := ctl.store.WatchMarks(wctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { sched.run(ctx) })
	// Runs start side by side, a bounded number at once: hundreds of
	// runs at once (a site lost with all its groups) make etcd the
	// bottleneck, and every read of the control plane then times out. A
	// run holds its slot for its first slotHold at most: one that waits
	// for a person, retries a promote or rejoins for minutes must not keep
	// the next failover waiting.
	slots := make(chan struct{}, driveParallel)
	drive := func(id string, run *plan.Run) {
		driving[id] = true
		wg.Go(func() {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			release := sync.OnceFunc(func() { <-slots })
			hold := time.AfterFunc(slotHold, release)
			defer func() {
				hold.Stop()
				release()
			}()
			if run == nil {
				// A run this controller did not start (a person's, or one
				// a previous controller left): read it here, not in the
				// loop, so that hundreds are read side by side.
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				r, err := ctl.store.Run(rctx, id)
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						ctl.log.Warn("cannot read a run in progress; it stays locked until it can be read", "run", id, "error", err)
					}
					select {
					case done <- id:
					case <-ctx.Done():
					}
					return
				}
				run = &r
			}
			ctl.log.Info("driving run", "run", run.ID, "group", run.Group, "action", run.Plan.Action)
			endedBefore := run.Done()
			final, err := eng.Drive(ctx, *run)
			hold.Stop()
			release() // before telling the loop, which may be busy a while
			if err != nil && ctx.Err() == nil {
				ctl.log.Warn("run interrupted", "run", run.ID, "error", err)
			} else if err == nil {
				ctl.log.Info("run ended", "run", run.ID, "state", final.State, "rto", final.RTO())
				sched.ended(ctx, final)
				ctl.runEnded(ctx, final, endedBefore)
			}
			select {
			case done <- run.ID:
			case <-ctx.Done():
			}
		})
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		snap, err := ctl.plane.snapshot(rctx)
		cancel()
		if err == nil {
			ctl.recordLags(ctx, snap)
			// A failover just started is driven at once, as it was
			// stored: no read of it, no new snapshot first.
			for _, run := range ctl.decide(ctx, snap, sess.Fence(), ap) {
				drive(run.ID, &run)
			}
			for _, run := range ctl.startScheduled(ctx, snap, sess.Fence()) {
				drive(run.ID, &run)
			}
			for _, id := range slices.Concat(slices.Collect(maps.Values(snap.Running)), slices.Collect(maps.Values(snap.Drilling))) {
				if !driving[id] {
					drive(id, nil)
				}
			}
		}
		// A run that ends needs no new snapshot: the next tick or mark
		// takes one. (A snapshot per ended run made a recovery of
		// hundreds of groups read the whole state hundreds of times.)
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case id := <-done:
				delete(driving, id)
			case <-marks:
				break wait
			case <-tick.C:
				break wait
			}
		}
	}
}

// preempted says whether a drill must stop, from a fresh snapshot
// (engine.Engine.Preempted): a real run on its group, a new epoch, its
// site or the active site lost. Without a snapshot it goes on.
func (ctl *controller) preempted(ctx context.Context, run plan.Run) (why string, busy bool) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	snap, err := ctl.plane.snapshot(rctx)
	if err != nil {
		return "", false
	}
	rec := snap.Records[run.Group]
	sites := ctl.topo.SiteNames()
	switch id := snap.Running[run.Group]; {
	case id != "":
		return fmt.Sprintf("run %s started on group %s", id, run.Group), true
	case rec.Epoch != run.Plan.Epoch:
		return fmt.Sprintf("group %s moved to epoch %d (active at %s)", run.Group, rec.Epoch, rec.ActiveSite), false
	case snap.Lost(rec.ActiveSite, sites):
		return fmt.Sprintf("the active site %s is lost: its recovery comes first", rec.ActiveSite), true
	case snap.Lost(run.Plan.To, sites):
		return fmt.Sprintf("the drill site %s is lost", run.Plan.To), false
	}
	return "", false
}

// siteLost says, from a fresh snapshot, whether every other location
// marked site lost. Without a snapshot it is not known to be lost.
func (ctl *controller) siteLost(site string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	marks, err := ctl.store.Marks(ctx)
	if err != nil {
		return false
	}
	return status.Snapshot{Marks: marks}.Lost(site, ctl.topo.SiteNames())
}

// recordLags keeps the last lag each primary reported for its standbys,
// so that it is still known when the primary's site is gone (lags.go).
func (ctl *controller) recordLags(ctx context.Context, snap status.Snapshot) {
	for _, u := range lagUpdates(ctl.topo, snap) {
		if err := ctl.store.PutLag(ctx, u.group, u.resource, u.site, u.lag); err != nil && ctx.Err() == nil {
			ctl.log.Warn("record lag", "group", u.group, "resource", u.resource, "standby", u.site, "error", err)
		}
	}
}
