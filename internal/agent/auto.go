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

// known is what the planner needs to know about group g, from snap.
func (a *agent) known(g *config.Group, snap status.Snapshot, st status.Status) plan.Known {
	return safety.Known(a.topo, g, snap, st)
}

// decide carries out the automatic-failover rule (safety.Decide) on a
// fresh snapshot: it starts failovers and records or clears the decisions
// a person must take. It says whether it started a failover.
func (a *agent) decide(ctx context.Context, snap status.Snapshot, f coord.Fence, m *safety.Memory) (started bool) {
	now := a.now()
	in := safety.Input{Now: now, Topology: a.topo, Snapshot: snap}
	for _, g := range a.topo.Groups {
		if rec, ok := snap.Records[g.Name]; ok && snap.Running[g.Name] == "" && snap.Lost(rec.ActiveSite, a.topo.SiteNames()) {
			in.Status = a.assemble(snap) // only when a decision may be needed
			break
		}
	}
	for _, act := range safety.Decide(in, m) {
		if a.carryOut(ctx, act, now, f) {
			m.Done(act)
			_, failover := act.(safety.StartFailover)
			started = started || failover
		}
	}
	return started
}

// carryOut does what Decide asked; it says whether it was done.
func (a *agent) carryOut(ctx context.Context, act safety.Action, now time.Time, f coord.Fence) bool {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	switch act := act.(type) {
	case safety.StartFailover:
		run := plan.NewRun(newRunID(act.Group, plan.Failover), "controller "+a.site.Name+" (automatic)", act.Request, act.Plan, now.UTC())
		err := a.store.StartFailover(wctx, run, act.Revision, act.From, act.MarkedBy)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, coord.ErrStale) && !errors.Is(err, coord.ErrRunInProgress) {
				a.log.Warn("cannot start automatic failover", "group", act.Group, "error", err)
			}
			return false
		}
		a.metrics.autoFailovers.Inc()
		a.log.Warn("site lost: automatic failover started", "group", act.Group, "from", act.Plan.From, "to", act.Plan.To, "run", run.ID,
			"lost_for", act.LostFor.Round(time.Millisecond))
		return true
	case safety.NeedDecision:
		d := act.Decision
		if err := a.store.PutDecision(wctx, d, f); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("cannot record that the group needs a decision", "group", d.Group, "error", err)
			}
			return false
		}
		a.log.Error("site lost and no automatic failover: a person must decide", "group", d.Group, "site", d.Site,
			"reason", d.Reason, "command", d.Command)
		return true
	case safety.ClearDecision:
		if err := a.store.DeleteDecision(wctx, act.Group, f); err != nil {
			return false
		}
		a.log.Info("group no longer needs a decision", "group", act.Group, "why", act.Why)
		return true
	case safety.Damp:
		a.log.Warn("the same site lost again soon after its previous loss: confirming before failing over",
			"group", act.Group, "site", act.Site, "previous_loss", act.Previous.Round(time.Second), "confirm_for", act.Confirm, "left", act.Until.Round(time.Millisecond))
		return true
	}
	return false
}

// newMemory remembers the failovers of the last flap periods from the run
// history, so that a new controller damps flapping too.
func (a *agent) newMemory(ctx context.Context) *safety.Memory {
	m := safety.NewMemory()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if runs, err := a.store.Runs(rctx, ""); err == nil {
		m.Remember(runs)
	}
	return m
}
