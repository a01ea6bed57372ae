package agent

import (
	"context"
	"errors"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/safety"
	"github.com/siteflip/siteflip/internal/status"
)

// scheduleEvery is how often the controller looks at the drill
// schedules: they count in hours.
const scheduleEvery = 5 * time.Second

// drillStore is what the controller's drills change in the control plane.
type drillStore interface {
	StartAutomaticRun(ctx context.Context, run plan.Run, recordRevision int64) error
	MergeDrills(ctx context.Context, group string, rec status.DrillRecord, f coord.Fence) (status.DrillRecord, error)
}

// drillScheduler starts the scheduled drills (safety.ScheduleDrills) and
// keeps the record of every group's drills, for one controller term. It
// runs beside the run loop, not in it: reading the run history or
// starting a drill never delays a failover. ended may be called from any
// goroutine.
type drillScheduler struct {
	ctl    *controller
	fence  coord.Fence
	memory *safety.DrillMemory
	// recorded says the run history's drills were taken into the drill
	// records in this term (they miss a drill whose end a controller
	// could not record before it lost office).
	recorded bool
	// sites is the drill site of each drill in progress, by run.
	sites map[string]string
	// failed is, by group, the last error starting its drill, logged
	// once.
	failed map[string]string
}

func (ctl *controller) newDrillScheduler(f coord.Fence) *drillScheduler {
	return &drillScheduler{ctl: ctl, fence: f, memory: safety.NewDrillMemory(), sites: map[string]string{}, failed: map[string]string{}}
}

// run looks at the schedules at once and every scheduleEvery, until ctx
// ends.
func (ds *drillScheduler) run(ctx context.Context) {
	tick := time.NewTicker(scheduleEvery)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		snap, err := ds.ctl.plane.snapshot(rctx)
		cancel()
		if err == nil {
			ds.check(ctx, snap)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// check starts the drills that are due and logs each missed window once.
func (ds *drillScheduler) check(ctx context.Context, snap status.Snapshot) {
	ctl := ds.ctl
	now := ctl.now()
	if !ds.recorded {
		if !ds.recordHistory(ctx, &snap) {
			return // not before the record is whole: a drill could start twice in its window
		}
		ds.recorded = true
	}
	for _, g := range ctl.topo.Groups {
		if rec, ok := snap.Drills[g.Name]; ok {
			ctl.metrics.drill(g.Name, rec)
		}
	}
	var groups []safety.DrillGroup
	var st status.Status
	for i := range ctl.topo.Groups {
		g := &ctl.topo.Groups[i]
		if g.Drill == nil {
			continue
		}
		if len(groups) == 0 {
			st = ctl.plane.assemble(snap)
		}
		busy := snap.Running[g.Name]
		if busy == "" {
			busy = snap.Drilling[g.Name]
		}
		dg := safety.DrillGroup{
			Group: g, Active: snap.Records[g.Name].ActiveSite, Record: snap.Drills[g.Name],
			Tried: ds.memory.Tried[g.Name], State: st.Groups[i].State, Busy: busy,
		}
		if p, ok := snap.Paused[g.Name]; ok {
			dg.Paused = &p
		}
		groups = append(groups, dg)
	}
	if len(groups) == 0 {
		return
	}
	decisions := safety.ScheduleDrills(now, groups, ds.drilling(ctx, snap))
	for i, d := range decisions {
		if d.Start == "" {
			continue
		}
		g, _ := ctl.topo.Group(d.Group)
		err := ds.start(ctx, g, d.Start, snap, st, now)
		if err == nil {
			delete(ds.failed, d.Group)
			continue
		}
		// Not started: tried again at the next check, and reported with
		// the window if it never starts.
		decisions[i].Start, decisions[i].Blocked = "", err.Error()
		raced := errors.Is(err, coord.ErrRunInProgress) || errors.Is(err, coord.ErrDrillInProgress) || errors.Is(err, coord.ErrStale) || errors.Is(err, coord.ErrPaused)
		if ctx.Err() == nil && !raced && ds.failed[d.Group] != err.Error() {
			ds.failed[d.Group] = err.Error()
			ctl.log.Warn("cannot start the scheduled drill; trying again every few seconds while its window lasts", "group", d.Group, "target_site", d.Start, "error", err)
		}
	}
	for _, mw := range ds.memory.Update(now, decisions) {
		g, _ := ctl.topo.Group(mw.Group)
		why := mw.Why
		if why == "" {
			why = "not seen by this controller, elected since"
		}
		ctl.log.Warn("drill window missed: the drill was due and none started in its window", "group", mw.Group,
			"window", mw.Start.In(g.Drill.Zone()).Format("Mon 2006-01-02 15:04")+" to "+mw.End.In(g.Drill.Zone()).Format("15:04 MST"),
			"schedule", g.Drill.Describe(), "why", why)
	}
}

// start starts a scheduled drill of g at site, as a person's `siteflip
// drill` would: planned from the snapshot, stored only if the group's
// record is still the one it was planned from.
func (ds *drillScheduler) start(ctx context.Context, g *config.Group, site string, snap status.Snapshot, st status.Status, now time.Time) error {
	ctl := ds.ctl
	req := plan.Request{Action: plan.Drill, To: site, Keep: g.Drill.Keep.D()}
	p, err := plan.Build(g, safety.Known(ctl.topo, g, snap, st), req)
	if err != nil {
		return err
	}
	run := plan.NewRun(newRunID(g.Name, plan.Drill), "controller "+ctl.site.Name+" (scheduled)", req, p, now.UTC())
	run.Reason = "scheduled: " + g.Drill.Describe()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// Stored only while the group is not paused: a pause taken since the
	// snapshot holds the drill back too.
	if err := ctl.store.StartAutomaticRun(wctx, run, snap.Records[g.Name].Revision); err != nil {
		return err
	}
	ds.sites[run.ID] = site
	ctl.log.Info("scheduled drill started", "group", g.Name, "target_site", site, "run", run.ID, "schedule", g.Drill.Describe())
	return nil
}

// drilling returns the site of every drill in progress, with its group.
// A drill whose run cannot be read is left out: the engine reports it.
func (ds *drillScheduler) drilling(ctx context.Context, snap status.Snapshot) map[string]string {
	out := map[string]string{}
	live := map[string]bool{}
	for group, id := range snap.Drilling {
		live[id] = true
		site, ok := ds.sites[id]
		if !ok {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			run, err := ds.ctl.store.Run(rctx, id)
			cancel()
			if err != nil {
				continue
			}
			site = run.Plan.To
			ds.sites[id] = site
		}
		out[site] = group
	}
	for id := range ds.sites {
		if !live[id] {
			delete(ds.sites, id)
		}
	}
	return out
}

// recordHistory takes the drills of the run history into the drill
// records, once a term, and updates snap's. It says whether it could.
func (ds *drillScheduler) recordHistory(ctx context.Context, snap *status.Snapshot) bool {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	runs, err := ds.ctl.store.Runs(rctx, "")
	if err != nil {
		if ctx.Err() == nil {
			ds.ctl.log.Warn("cannot read the run history for the drill records; trying again", "error", err)
		}
		return false
	}
	if snap.Drills == nil {
		snap.Drills = map[string]status.DrillRecord{}
	}
	for group, h := range safety.DrillHistory(runs) {
		if _, ok := ds.ctl.topo.Group(group); !ok {
			continue // a group no longer configured
		}
		if cur := snap.Drills[group]; sameDrills(cur.Merge(h), cur) {
			continue
		}
		rec, err := ds.ctl.store.MergeDrills(rctx, group, h, ds.fence)
		if err != nil {
			if ctx.Err() == nil {
				ds.ctl.log.Warn("cannot record the group's drills from the run history; trying again", "group", group, "error", err)
			}
			return false
		}
		snap.Drills[group] = rec
	}
	return true
}

// sameDrills says whether two records name the same drills.
func sameDrills(a, b status.DrillRecord) bool {
	run := func(d *status.DrillResult) string {
		if d == nil {
			return ""
		}
		return d.Run
	}
	return run(a.Last) == run(b.Last) && run(a.LastSuccess) == run(b.LastSuccess)
}

// ended records a drill that ended in its group's drill record, and in
// the metrics.
func (ds *drillScheduler) ended(ctx context.Context, run plan.Run) {
	if run.Plan.Action != plan.Drill || !run.Done() {
		return
	}
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var rec status.DrillRecord
		rec, err = ds.ctl.store.MergeDrills(wctx, run.Group, status.DrillRecord{}.With(safety.DrillResultOf(run)), ds.fence)
		cancel()
		if err == nil {
			ds.ctl.metrics.drill(run.Group, rec)
			return
		}
		if errors.Is(err, coord.ErrNotElected) {
			break
		}
	}
	if ctx.Err() == nil {
		ds.ctl.log.Warn("cannot record the drill's end; the next controller takes it from the run history", "run", run.ID, "group", run.Group, "error", err)
	}
}

// stop ends the term's drill metrics: the next controller exports them.
func (ds *drillScheduler) stop() { ds.ctl.metrics.clearDrills() }
