package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// known is what the planner needs to know about group g, from snap.
func (a *agent) known(g *config.Group, snap status.Snapshot, st status.Status) plan.Known {
	var gs status.GroupStatus
	for _, x := range st.Groups {
		if x.Name == g.Name {
			gs = x
		}
	}
	up := map[string]bool{}
	for _, s := range st.Sites {
		up[s.Name] = s.Up
	}
	rec := snap.Records[g.Name]
	inSync := map[string]bool{}
	for res, r := range snap.Sync[g.Name] {
		if r.State == status.SyncOn && r.Epoch == rec.Epoch {
			inSync[res] = true
		}
	}
	return plan.Known{Status: gs, SiteUp: up, LastLag: snap.Lags[g.Name], ServeLease: a.topo.Coordination.ServeLease.D(), InSync: inSync}
}

// autopilot is the controller's memory for automatic failovers.
type autopilot struct {
	lostSince map[string]time.Time // by group: since when its active site is lost
	lastAuto  map[string]time.Time // by group: the last automatic failover started
	told      map[string]string    // by group: the decision last logged
}

// decide fails over, by itself, every group whose active site is lost, when
// its policy allows it and the failover is safe; otherwise it records that
// the group needs a decision and the command a person can run.
func (a *agent) decide(ctx context.Context, snap status.Snapshot, f coord.Fence, ap *autopilot) {
	locations := a.topo.SiteNames()
	now := a.now()
	var st *status.Status
	for i := range a.topo.Groups {
		g := &a.topo.Groups[i]
		rec, ok := snap.Records[g.Name]
		if !ok || snap.Running[g.Name] != "" {
			continue
		}
		if !snap.Lost(rec.ActiveSite, locations) {
			delete(ap.lostSince, g.Name)
			if _, ok := snap.Decisions[g.Name]; ok {
				a.clearDecision(ctx, g.Name, f, ap, "the active site is no longer lost")
			}
			continue
		}
		if _, ok := ap.lostSince[g.Name]; !ok {
			ap.lostSince[g.Name] = now
		}
		if st == nil {
			s := a.assemble(snap)
			st = &s
		}
		k := a.known(g, snap, *st)
		req, p, err := a.failoverPlan(g, k)
		if g.Policy == config.PolicyManual && err == nil {
			err = fmt.Errorf("group %s: policy is manual", g.Name)
		}
		if err != nil {
			a.needDecision(ctx, g, rec, req, err, f, ap)
			continue
		}
		if last, ok := ap.lastAuto[g.Name]; ok && now.Sub(last) < g.FlapPeriod.D() {
			if lost := now.Sub(ap.lostSince[g.Name]); lost < g.FlapConfirm.D() {
				if ap.told[g.Name] != "flap" {
					ap.told[g.Name] = "flap"
					a.log.Warn("site lost again soon after an automatic failover: confirming before failing over again",
						"group", g.Name, "site", rec.ActiveSite, "last_failover", last.Round(time.Second), "confirm_for", g.FlapConfirm.D())
				}
				continue
			}
		}
		var markedBy []string
		for _, l := range locations {
			if l != rec.ActiveSite {
				markedBy = append(markedBy, l)
			}
		}
		run := plan.NewRun(newRunID(g.Name, plan.Failover), "controller "+a.site.Name+" (automatic)", req, p, now.UTC())
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = a.store.StartFailover(sctx, run, rec.Revision, rec.ActiveSite, markedBy)
		cancel()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, coord.ErrStale) && !errors.Is(err, coord.ErrRunInProgress) {
				a.log.Warn("cannot start automatic failover", "group", g.Name, "error", err)
			}
			continue
		}
		ap.lastAuto[g.Name] = now
		delete(ap.told, g.Name)
		a.metrics.autoFailovers.Inc()
		a.log.Warn("site lost: automatic failover started", "group", g.Name, "from", p.From, "to", p.To, "run", run.ID,
			"lost_for", now.Sub(ap.lostSince[g.Name]).Round(time.Millisecond))
		if _, ok := snap.Decisions[g.Name]; ok {
			a.clearDecision(ctx, g.Name, f, ap, "automatic failover started")
		}
	}
}

// failoverPlan plans the failover of g to the first site that accepts it.
func (a *agent) failoverPlan(g *config.Group, k plan.Known) (plan.Request, plan.Plan, error) {
	var firstErr error
	var firstReq plan.Request
	for _, to := range g.Sites {
		if to == k.Status.ActiveSite {
			continue
		}
		req := plan.Request{Action: plan.Failover, To: to}
		p, err := plan.Build(g, k, req)
		if err == nil {
			return req, p, nil
		}
		if firstErr == nil {
			firstErr, firstReq = err, req
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("group %s has no other site to fail over to", g.Name)
	}
	return firstReq, plan.Plan{}, firstErr
}

// needDecision records, once, that g waits for a person.
func (a *agent) needDecision(ctx context.Context, g *config.Group, rec status.Record, req plan.Request, why error, f coord.Fence, ap *autopilot) {
	cmd := "siteflip failover " + g.Name
	if req.To != "" {
		cmd += " --to " + req.To
	}
	if errors.Is(why, plan.ErrDataLoss) || errors.Is(why, plan.ErrNoLag) {
		cmd += " --accept-data-loss"
	}
	reason := why.Error()
	if i := strings.Index(reason, "; if you accept"); i > 0 {
		reason = reason[:i]
	}
	d := status.Decision{Group: g.Name, Site: rec.ActiveSite, Reason: reason, Command: cmd, Since: a.now().UTC()}
	if ap.told[g.Name] == d.Reason+d.Command {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.store.PutDecision(wctx, d, f); err != nil {
		if ctx.Err() == nil {
			a.log.Warn("cannot record that the group needs a decision", "group", g.Name, "error", err)
		}
		return
	}
	ap.told[g.Name] = d.Reason + d.Command
	a.log.Error("site lost and no automatic failover: a person must decide", "group", g.Name, "site", rec.ActiveSite,
		"reason", d.Reason, "command", d.Command)
}

func (a *agent) clearDecision(ctx context.Context, group string, f coord.Fence, ap *autopilot, why string) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.store.DeleteDecision(wctx, group, f); err == nil {
		delete(ap.told, group)
		a.log.Info("group no longer needs a decision", "group", group, "why", why)
	}
}

// newAutopilot remembers the automatic failovers of the last flap periods
// from the run history, so that a new controller damps flapping too.
func (a *agent) newAutopilot(ctx context.Context) *autopilot {
	ap := &autopilot{lostSince: map[string]time.Time{}, lastAuto: map[string]time.Time{}, told: map[string]string{}}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	runs, err := a.store.Runs(rctx, "")
	if err != nil {
		return ap
	}
	for _, r := range runs {
		if r.Plan.Action == plan.Failover && strings.HasSuffix(r.By, "(automatic)") && r.Started.After(ap.lastAuto[r.Group]) {
			ap.lastAuto[r.Group] = r.Started
		}
	}
	return ap
}
