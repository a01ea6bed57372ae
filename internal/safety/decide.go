// Package safety holds the rules that decide whether two primaries can
// ever exist, as pure functions and state machines: the controller's
// automatic-failover decision (Decide), the serve lease a location holds
// (Lease), the grants and lost-site marks it gives others (Granter), and
// when a controller is evicted (ControllerLost). Nothing here reads a
// clock, the network or etcd: the agent feeds events and the time in and
// carries the returned actions out (docs/design/safety-core.md).
package safety

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// Memory is what the controller remembers between two decisions. It is
// rebuilt from the run history when another location becomes controller
// (Remember), so damping survives a change of controller.
type Memory struct {
	// Lost is, by group, the loss of its active site in progress.
	Lost map[string]Loss
	// Losses is, by site, when each of its recent losses began: the
	// failovers away from it and the losses this controller saw.
	Losses map[string][]time.Time
	// Told is, by group, the decision last recorded for a person.
	Told map[string]string
	// Damped is, by group, the site whose failover is held back as a flap
	// (logged once per loss).
	Damped map[string]string
}

// NewMemory is an empty memory.
func NewMemory() *Memory {
	return &Memory{Lost: map[string]Loss{}, Losses: map[string][]time.Time{}, Told: map[string]string{}, Damped: map[string]string{}}
}

// Loss is a site lost without a break since Since (on the controller's
// clock). Tried says an automatic failover was started in this loss: if
// the site is still active and lost, that failover failed.
type Loss struct {
	Site  string
	Since time.Time
	Tried bool
}

// Remember adds the failovers of a run history to m: each is a loss of
// the site it left.
func (m *Memory) Remember(runs []plan.Run) {
	for _, r := range runs {
		if r.Plan.Action == plan.Failover && r.Plan.From != "" && !slices.ContainsFunc(m.Losses[r.Plan.From], r.Started.Equal) {
			m.Losses[r.Plan.From] = append(m.Losses[r.Plan.From], r.Started)
		}
	}
}

// Action is what Decide asks the agent to do: one of StartFailover,
// NeedDecision, ClearDecision, Damp.
type Action interface{ action() }

// StartFailover starts an automatic failover of Group, in one etcd
// transaction that compares the group's record (Revision) and the marks
// of MarkedBy on From: exactly one location starts it.
type StartFailover struct {
	Group    string
	Request  plan.Request
	Plan     plan.Plan
	From     string
	MarkedBy []string
	Revision int64
	LostFor  time.Duration
	// Incident is filled in by the caller, from what it observed.
	Incident *plan.Incident
}

// NeedDecision records that a group waits for a person, and the command
// that person can run.
type NeedDecision struct{ Decision status.Decision }

// ClearDecision removes a group's recorded decision.
type ClearDecision struct{ Group, Why string }

// Damp holds back a failover that looks like a flap until the site has
// been lost for Confirm without a break.
type Damp struct {
	Group, Site    string
	Previous       time.Time // the site's previous loss
	Confirm, Until time.Duration
}

func (StartFailover) action() {}
func (NeedDecision) action()  {}
func (ClearDecision) action() {}
func (Damp) action()          {}

// Input is everything Decide looks at.
type Input struct {
	Now      time.Time
	Topology *config.Topology
	Snapshot status.Snapshot
	// Status is the snapshot assembled (status.Assemble), at Now.
	Status status.Status
}

// Decide is the automatic-failover rule. For every adopted group with no
// run in progress whose active site is lost (every other location marked
// it): fail over at once to the first other site that a plan accepts, if
// AutomaticFailover allows it (the policy is automatic and the group is
// not paused) and the site's loss is not a flap;
// otherwise record that a person must decide, and how. A flap is the same
// site lost again within flap_period of its previous loss: that failover
// waits until the site has been lost for flap_confirm without a break. A
// second disaster at another site is not a flap and is not held back.
//
// Decide updates m's record of losses; the agent reports which actions it
// carried out with m.Done.
func Decide(in Input, m *Memory) []Action {
	t := in.Topology
	locations := t.SiteNames()
	var keep time.Duration
	for _, g := range t.Groups {
		keep = max(keep, g.FlapPeriod.D())
	}
	m.forget(in.Now, keep)
	var out []Action
	for i := range t.Groups {
		g := &t.Groups[i]
		rec, ok := in.Snapshot.Records[g.Name]
		if !ok || in.Snapshot.Running[g.Name] != "" {
			continue
		}
		if !in.Snapshot.Lost(rec.ActiveSite, locations) {
			delete(m.Lost, g.Name)
			delete(m.Damped, g.Name)
			if _, ok := in.Snapshot.Decisions[g.Name]; ok {
				out = append(out, ClearDecision{Group: g.Name, Why: "the active site is no longer lost"})
			}
			continue
		}
		site := rec.ActiveSite
		cur, ok := m.Lost[g.Name]
		if !ok || cur.Site != site {
			cur = Loss{Site: site, Since: in.Now}
			m.Lost[g.Name] = cur
			m.Losses[site] = append(m.Losses[site], in.Now)
		}
		since := cur.Since
		lostFor := in.Now.Sub(since)
		if lostFor < PositionWait && len(Unsettled(g, in.Snapshot, in.Status, site)) > 0 {
			continue // a choice among standbys waits for their final positions
		}
		req, p, err := FailoverPlan(g, Known(t, g, in.Snapshot, in.Status))
		if err == nil {
			err = AutomaticFailover(g, in.Snapshot.Paused)
		}
		if err != nil {
			if a := needDecision(g, site, req, err, in.Now, m); a != nil {
				out = append(out, a)
			}
			continue
		}
		prev, flap := previousLoss(m.Losses[site], since, g.FlapPeriod.D())
		if cur.Tried {
			prev, flap = since, true
		}
		if flap && lostFor < g.FlapConfirm.D() {
			if m.Damped[g.Name] != site {
				out = append(out, Damp{Group: g.Name, Site: site, Previous: prev, Confirm: g.FlapConfirm.D(), Until: g.FlapConfirm.D() - lostFor})
				m.Damped[g.Name] = site
			}
			continue
		}
		var markedBy []string
		for _, l := range locations {
			if l != site {
				markedBy = append(markedBy, l)
			}
		}
		out = append(out, StartFailover{Group: g.Name, Request: req, Plan: p, From: site, MarkedBy: markedBy, Revision: rec.Revision, LostFor: lostFor})
		if _, ok := in.Snapshot.Decisions[g.Name]; ok {
			out = append(out, ClearDecision{Group: g.Name, Why: "automatic failover started"})
		}
	}
	return out
}

// ErrPaused: a person paused the group's automatic actions.
var ErrPaused = errors.New("automatic failover is paused")

// AutomaticFailover says whether the controller may start a failover of
// g by itself, given the pauses in force (by group): not while a person
// paused the group, nor when its policy is manual. It returns nil when it
// may, or why not, in words a person reads in status next to the command
// that recovers the group by hand. A plan that a person may still run
// (switchover, failover, reprotect) is not its concern: pausing stops
// only what siteflip starts on its own.
func AutomaticFailover(g *config.Group, paused map[string]status.Pause) error {
	if p, ok := paused[g.Name]; ok {
		why := ""
		if p.Reason != "" {
			why = " (" + p.Reason + ")"
		}
		return fmt.Errorf("group %s: %w: paused by %s at %s%s; `siteflip resume %s` lets it fail over by itself",
			g.Name, ErrPaused, p.Who(), p.At.UTC().Format(time.RFC3339), why, g.Name)
	}
	if g.Policy == config.PolicyManual {
		return fmt.Errorf("group %s: policy is manual", g.Name)
	}
	return nil
}

// PositionWait is how long, at most, a failover that chooses among
// standbys waits for each of them to report its position since the loss
// (Unsettled); then it chooses with what it has.
const PositionWait = 2 * time.Second

// Unsettled lists the sites of g that a failover away from lost could
// choose and whose standbys' positions may not be final yet: up, but
// without an observation of every data resource made after the site
// marked lost (on the site's own clock, as its views are timed). Once a
// site marked the lost one, no WAL or transaction comes from it any more
// (the mark needs its resources unreachable from there), so what it
// observes after its mark is all it has. A group with one site to go to
// chooses nothing and never waits.
func Unsettled(g *config.Group, snap status.Snapshot, st status.Status, lost string) []string {
	if len(g.Sites) < 3 {
		return nil
	}
	up := map[string]bool{}
	for _, s := range st.Sites {
		up[s.Name] = s.Up
	}
	var out []string
	for _, site := range g.Sites {
		mark, marked := snap.Marks[lost][site]
		if site == lost || !up[site] || !marked {
			continue
		}
		view := snap.Views[site]
		for _, r := range g.Resources {
			if !r.Data || r.ComparePositions == nil {
				continue
			}
			if v, ok := view.Resources[g.Name+"/"+r.Name]; !ok || !v.ObservedAt.After(mark.At) {
				out = append(out, site)
				break
			}
		}
	}
	return out
}

// Done tells m that an action was carried out.
func (m *Memory) Done(a Action) {
	switch a := a.(type) {
	case NeedDecision:
		m.Told[a.Decision.Group] = a.Decision.Reason + a.Decision.Command
	case ClearDecision:
		delete(m.Told, a.Group)
	case StartFailover:
		// If this failover fails, the next attempt in the same loss waits
		// as a flap would.
		delete(m.Told, a.Group)
		delete(m.Damped, a.Group)
		if l, ok := m.Lost[a.Group]; ok && l.Site == a.From {
			l.Tried = true
			m.Lost[a.Group] = l
		}
	}
}

// previousLoss is the latest loss in losses that began before since and
// less than period before it. A period of 0 turns damping off.
func previousLoss(losses []time.Time, since time.Time, period time.Duration) (time.Time, bool) {
	var prev time.Time
	found := false
	for _, l := range losses {
		if l.Before(since) && since.Sub(l) < period && (!found || l.After(prev)) {
			prev, found = l, true
		}
	}
	return prev, found
}

// forget drops the losses older than keep before now.
func (m *Memory) forget(now time.Time, keep time.Duration) {
	for site, ls := range m.Losses {
		ls = slices.DeleteFunc(ls, func(l time.Time) bool { return now.Sub(l) > keep })
		if len(ls) == 0 {
			delete(m.Losses, site)
		} else {
			m.Losses[site] = ls
		}
	}
}

// needDecision is the decision a person must take for g, or nothing when
// the same one was already recorded.
func needDecision(g *config.Group, site string, req plan.Request, why error, now time.Time, m *Memory) Action {
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
	d := status.Decision{Group: g.Name, Site: site, Reason: reason, Command: cmd, Since: now.UTC()}
	if m.Told[g.Name] == d.Reason+d.Command {
		return nil
	}
	return NeedDecision{Decision: d}
}

// FailoverPlan plans the failover of g to the site that accepts it and
// whose standbys are the most advanced (MostAdvanced), the group's order
// of sites breaking ties; otherwise it returns the first refusal and the
// request refused.
func FailoverPlan(g *config.Group, k plan.Known) (plan.Request, plan.Plan, error) {
	var firstErr error
	var firstReq plan.Request
	var sites, refused []string
	plans := map[string]plan.Plan{}
	for _, to := range g.Sites {
		if to == k.Status.ActiveSite {
			continue
		}
		req := plan.Request{Action: plan.Failover, To: to}
		p, err := plan.Build(g, k, req)
		if err == nil {
			sites = append(sites, to)
			plans[to] = p
			continue
		}
		if firstErr == nil {
			firstErr, firstReq = err, req
		}
		why, _, _ := strings.Cut(strings.TrimPrefix(err.Error(), "group "+g.Name+": "), "; if you accept")
		refused = append(refused, why)
	}
	if len(sites) == 0 {
		if firstErr == nil {
			firstErr = fmt.Errorf("group %s has no other site to fail over to", g.Name)
		}
		return firstReq, plan.Plan{}, firstErr
	}
	to, why := MostAdvanced(g, k.Status, sites)
	p := plans[to]
	switch {
	case len(sites) > 1:
		p.Why = why
	case len(refused) > 0:
		p.Why = to + ": the only site that can take over"
	}
	if len(refused) > 0 {
		p.Why += "; refused: " + strings.Join(refused, "; ")
	}
	return plan.Request{Action: plan.Failover, To: to}, p, nil
}

// MostAdvanced picks, of sites (in the group's order of preference), the
// one whose standbys hold the most data: the first that no other site is
// ahead of for any data resource, by the positions the standbys report
// (status.ResourceSiteStatus.Position, compared by the resource type's
// ComparePositions on one timeline). Positions that are unknown or cannot
// be compared rank nobody; when every site is behind another for some
// resource (each ahead on a different one), the first site wins. why
// says what the choice rests on.
func MostAdvanced(g *config.Group, st status.GroupStatus, sites []string) (site, why string) {
	type pos struct {
		timeline int64
		at       string
	}
	behind := map[string][]string{} // site → why it is behind
	var compared []string
	for _, r := range g.Resources {
		if !r.Data || r.ComparePositions == nil {
			continue
		}
		at := map[string]pos{}
		for _, rs := range st.Resources {
			if rs.Name != r.Name {
				continue
			}
			for _, ss := range rs.Sites {
				if ss.Position != "" {
					at[ss.Site] = pos{ss.Timeline, ss.Position}
				}
			}
		}
		var known []string
		for _, s := range sites {
			if p, ok := at[s]; ok {
				known = append(known, s+" "+p.at)
			}
		}
		if len(known) > 0 {
			compared = append(compared, r.Name+" at "+strings.Join(known, ", "))
		}
		for _, a := range sites {
			for _, b := range sites {
				pa, okA := at[a]
				pb, okB := at[b]
				if a == b || !okA || !okB || pa.timeline != pb.timeline {
					continue
				}
				if c, ok := r.ComparePositions(pa.at, pb.at); ok && c < 0 {
					behind[a] = append(behind[a], fmt.Sprintf("%s is behind %s", r.Name, b))
				}
			}
		}
	}
	site = sites[0]
	for _, s := range sites {
		if len(behind[s]) == 0 {
			site = s
			break
		}
	}
	switch {
	case len(compared) == 0:
		return site, fmt.Sprintf("%s: the first of the group's sites that can take over (no standby positions to compare)", site)
	case len(behind[site]) > 0:
		return site, fmt.Sprintf("%s: the first of the group's sites that can take over; no site is ahead on every resource (%s)", site, strings.Join(compared, "; "))
	}
	var others []string
	for _, s := range sites {
		if s != site && len(behind[s]) > 0 {
			others = append(others, s+" ("+strings.Join(behind[s], ", ")+")")
		}
	}
	if len(others) == 0 {
		return site, fmt.Sprintf("%s: the first of the group's sites that can take over; its standbys are as advanced as the others (%s)", site, strings.Join(compared, "; "))
	}
	return site, fmt.Sprintf("%s: the most advanced standby; behind it: %s (%s)", site, strings.Join(others, ", "), strings.Join(compared, "; "))
}

// Known is what the planner needs to know about group g.
func Known(t *config.Topology, g *config.Group, snap status.Snapshot, st status.Status) plan.Known {
	var gs status.GroupStatus
	for i := range st.Groups { // by index: a GroupStatus is large, and Decide asks for every group
		if st.Groups[i].Name == g.Name {
			gs = st.Groups[i]
			break
		}
	}
	up := map[string]bool{}
	for _, s := range st.Sites {
		up[s.Name] = s.Up
	}
	rec := snap.Records[g.Name]
	inSync := map[string]string{}
	for res, r := range snap.Sync[g.Name] {
		if r.State == status.SyncOn && r.Epoch == rec.Epoch {
			inSync[res] = r.Standby
		}
	}
	return plan.Known{Status: gs, SiteUp: up, LastLag: snap.Lags[g.Name], ServeLease: t.Coordination.ServeLease.D(), InSync: inSync}
}
