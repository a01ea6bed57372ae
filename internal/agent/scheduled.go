package agent

import (
	"context"
	"errors"
	"time"

	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/safety"
	"github.com/siteflip/siteflip/internal/status"
)

// scheduledStore is what the controller changes of scheduled switchovers.
type scheduledStore interface {
	StartScheduled(ctx context.Context, run plan.Run, recordRevision int64, sc status.ScheduledSwitchover) error
	RefuseScheduled(ctx context.Context, sc status.ScheduledSwitchover, f coord.Fence) error
}

// startScheduled starts the scheduled switchovers that are due
// (safety.DueSwitchover), as the runs of the people who scheduled them,
// and records why a due one cannot start. It returns the runs started, as
// stored.
func (ctl *controller) startScheduled(ctx context.Context, snap status.Snapshot, f coord.Fence) []plan.Run {
	if len(snap.Scheduled) == 0 {
		return nil
	}
	now := ctl.now()
	var started []plan.Run
	for group, sc := range snap.Scheduled {
		if now.Before(sc.At) || sc.Missed(now) {
			continue
		}
		g, ok := ctl.topo.Group(group)
		if !ok {
			continue // a group no longer configured: status does not show it; cancel it
		}
		req := plan.Request{Action: plan.Switchover, To: sc.To}
		var p plan.Plan
		var planErr error
		busy := snap.Running[group]
		if busy == "" {
			p, planErr = plan.Build(g, safety.Known(ctl.topo, g, snap, ctl.plane.assembleGroup(snap, g)), req)
		}
		start, refused := safety.DueSwitchover(now, sc, busy, planErr)
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		switch {
		case start:
			run := plan.NewRun(newRunID(group, plan.Switchover), sc.By, req, p, now.UTC())
			run.Role, run.Ticket = sc.Role, sc.Ticket
			run.Reason = "scheduled for " + sc.At.UTC().Format(time.RFC3339)
			if sc.Reason != "" {
				run.Reason += ": " + sc.Reason
			}
			if err := ctl.store.StartScheduled(wctx, run, snap.Records[group].Revision, sc); err != nil {
				if ctx.Err() == nil && !errors.Is(err, coord.ErrStale) {
					ctl.log.Warn("cannot start the scheduled switchover", "group", group, "to", sc.To, "error", err)
				}
			} else {
				ctl.log.Info("scheduled switchover started", "group", group, "to", sc.To, "run", run.ID, "by", sc.By, "at", sc.At)
				started = append(started, run)
			}
		case refused != "":
			sc.Refused, sc.RefusedAt = refused, now.UTC()
			if err := ctl.store.RefuseScheduled(wctx, sc, f); err != nil && ctx.Err() == nil {
				ctl.log.Warn("cannot record why the scheduled switchover does not start", "group", group, "error", err)
			}
			ctl.log.Warn("scheduled switchover due and not started; tried again until its grace ends", "group", group, "to", sc.To,
				"why", refused, "until", sc.At.Add(status.SwitchoverGrace))
		}
		cancel()
	}
	return started
}
