package whatif

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/geo"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/safety"
	"github.com/siteflip/siteflip/internal/status"
)

// Outcome is what an event does to a group (docs/design/risk.md).
type Outcome string

// Outcomes.
const (
	// Unaffected: the active site keeps serving with all its standbys.
	Unaffected Outcome = "unaffected"
	// Degraded: the active site keeps serving; a standby is lost or cut
	// off, so the group is unprotected until it returns.
	Degraded Outcome = "degraded"
	// AutomaticFailover: the controller fails the group over by itself.
	AutomaticFailover Outcome = "automatic_failover"
	// NeedsDecision: a person must decide (manual policy, pause, lag, an
	// approval step …).
	NeedsDecision Outcome = "needs_decision"
	// NeedsForce: the quorum is lost; a surviving site of the group can
	// be forced (docs/force.md).
	NeedsForce Outcome = "needs_force"
	// Lost: no site of the group survives.
	Lost Outcome = "lost"
)

// History is what the group's past says of how long a recovery takes:
// by group, the measured RTO of each failover that ended and of each
// drill that succeeded.
type History struct {
	Failovers map[string][]time.Duration
	Drills    map[string][]time.Duration
}

// HistoryOf gathers the history from runs (any groups, any order: the
// failovers that ended and recovered, plan.Run.MeasuredRTO, and the
// drills that succeeded) and the drill records kept by group, each drill
// counted once.
func HistoryOf(runs []plan.Run, drills map[string]status.DrillRecord) History {
	h := History{Failovers: map[string][]time.Duration{}, Drills: map[string][]time.Duration{}}
	seen := map[string]bool{}
	drill := func(group string, d status.DrillResult) {
		if seen[d.Run] || d.RTOSeconds == nil || !d.Succeeded() {
			return
		}
		seen[d.Run] = true
		h.Drills[group] = append(h.Drills[group], time.Duration(*d.RTOSeconds*float64(time.Second)))
	}
	for _, r := range runs {
		if !r.Done() {
			continue
		}
		switch r.Plan.Action {
		case plan.Failover:
			if rto := r.MeasuredRTO(); rto > 0 {
				h.Failovers[r.Group] = append(h.Failovers[r.Group], rto)
			}
		case plan.Drill:
			drill(r.Group, safety.DrillResultOf(r))
		}
	}
	for _, g := range slices.Sorted(maps.Keys(drills)) {
		rec := drills[g]
		for _, d := range []*status.DrillResult{rec.Last, rec.LastSuccess} {
			if d != nil {
				drill(g, *d)
			}
		}
	}
	return h
}

// Result is the answer to a what-if.
type Result struct {
	Event Event
	// AnsweredBy is the location whose reading of the control plane the
	// event was played against, ReadAt when it read it.
	AnsweredBy   string
	ReadAt       time.Time
	ControlPlane ControlPlane
	Groups       []Group
}

// ControlPlane is what the event does to the control plane.
type ControlPlane struct {
	// Judged is false when the agents use an existing etcd cluster
	// (coordination.etcd_endpoints), whose members siteflip does not
	// place: Quorum is then not judged.
	Judged bool
	Quorum bool
	// Voters are the locations with a voting etcd member; SurvivingVoters
	// those alive after the event.
	Voters, SurvivingVoters []string
	// Fenced are the surviving sites that see no other location: they
	// fence themselves.
	Fenced []string
	// AlreadyDown are the locations that were down or not reporting
	// before the event.
	AlreadyDown []string
	// Controller lists where a controller could be elected: the surviving
	// locations that reach a majority of the voters.
	Controller []string
	Message    string
}

// Group is what the event does to one group.
type Group struct {
	Name       string
	ActiveSite string
	Outcome    Outcome
	Survives   bool
	// Automatic: the controller acts by itself (it may still wait at an
	// approval step: then the outcome is NeedsDecision).
	Automatic bool
	// To is where the group serves after the event: the active site when
	// it keeps serving, the failover's target, or the site to force.
	To      string
	Reason  string
	Command string
	Fix     string
	RTO     RTO
	Loss    DataLoss
	// Approvals are the approval steps of the failover plan.
	Approvals    []string
	Dependencies []Dependency
}

// RTO is the expected recovery time.
type RTO struct {
	// Known: Expected is a median of Samples measurements (or 0 when
	// nothing moves).
	Known    bool
	Expected time.Duration
	Samples  int
	Basis    string
	Target   time.Duration
}

// DataLoss is what a failover to the group's new site is expected to lose.
type DataLoss struct {
	// Known: Expected is the lag last measured (0 when synchronous, or
	// when nothing moves); Bound, when BoundKnown, is status.JudgeLag's.
	Known      bool
	Expected   time.Duration
	BoundKnown bool
	Bound      time.Duration
	Basis      string
	// Within says Known and within max_data_loss.
	Within bool
}

// Dependency is an outside service the group's new site cannot reach.
type Dependency struct {
	Name, Site, Why string
}

// Play plays ev against the installation as read (snap, and st assembled
// from it), with the safety core's own rules, and changes nothing
// (docs/design/risk.md, "What-if"):
//
//  1. the event destroys locations and cuts links; a location down or not
//     reporting already stays so;
//  2. two locations see each other after it when both survive, their link
//     is not cut, and each sees the other now;
//  3. the quorum is kept when some surviving voting member sees a majority
//     of the voting members, itself included;
//  4. a surviving site keeps its serve lease when it sees another
//     location, otherwise it fences itself;
//  5. every surviving location marks every location it does not see;
//  6. the snapshot so changed goes through status.Assemble and
//     safety.Decide with an empty memory, past safety.PositionWait.
func Play(t *config.Topology, snap status.Snapshot, st status.Status, hist History, ev Event, now time.Time) Result {
	p := newPlay(t, snap, st, ev, now)
	res := Result{Event: ev, AnsweredBy: st.AnsweredBy, ReadAt: st.Time, ControlPlane: p.controlPlane()}
	p.decide()
	for i := range t.Groups {
		res.Groups = append(res.Groups, p.group(&t.Groups[i], hist))
	}
	return res
}

// play is one what-if being worked out.
type play struct {
	t         *config.Topology
	snap      status.Snapshot
	ev        Event
	now       time.Time
	destroyed map[string]bool
	cut       map[[2]string]bool
	alive     map[string]bool // survives the event, and was up and reporting
	before    map[string]bool // was up and reporting before the event
	// Filled in by controlPlane.
	judged, quorum bool
	// Filled in by decide: the hypothetical snapshot and its status, and
	// Decide's action by group.
	h       status.Snapshot
	hst     status.Status
	actions map[string]safety.Action
}

func newPlay(t *config.Topology, snap status.Snapshot, st status.Status, ev Event, now time.Time) *play {
	p := &play{t: t, snap: snap, ev: ev, now: now,
		destroyed: map[string]bool{}, cut: map[[2]string]bool{}, alive: map[string]bool{}, before: map[string]bool{}}
	for _, l := range ev.Destroyed {
		p.destroyed[l] = true
	}
	for _, l := range ev.Cut {
		p.cut[key(l)] = true
	}
	for _, s := range t.Sites {
		ss, ok := st.Site(s.Name)
		_, reporting := snap.Views[s.Name]
		p.before[s.Name] = ok && ss.Up && reporting
		p.alive[s.Name] = p.before[s.Name] && !p.destroyed[s.Name]
	}
	return p
}

// sees says whether locations a and b see each other after the event.
func (p *play) sees(a, b string) bool {
	if a == b || !p.alive[a] || !p.alive[b] || p.cut[key([2]string{a, b})] {
		return false
	}
	return p.snap.Views[a].Peers[b].Reachable && p.snap.Views[b].Peers[a].Reachable
}

// serves says whether site keeps its serve lease after the event: it
// survives and sees another location.
func (p *play) serves(site string) bool {
	if !p.alive[site] {
		return false
	}
	for _, o := range p.t.SiteNames() {
		if p.sees(site, o) {
			return true
		}
	}
	return false
}

func (p *play) controlPlane() ControlPlane {
	cp := ControlPlane{Judged: p.t.Embedded(), Voters: []string{}, SurvivingVoters: []string{}, Fenced: []string{}, AlreadyDown: []string{}, Controller: []string{}}
	for _, s := range p.t.Sites {
		if !p.before[s.Name] && !p.destroyed[s.Name] {
			cp.AlreadyDown = append(cp.AlreadyDown, s.Name)
		}
		if s.Role == config.RoleSite && p.alive[s.Name] && !p.serves(s.Name) {
			cp.Fenced = append(cp.Fenced, s.Name)
		}
	}
	if cp.Judged {
		// Every location embeds a voting etcd member (coord.StartMember).
		cp.Voters = p.t.SiteNames()
		for _, v := range cp.Voters {
			if !p.alive[v] {
				continue
			}
			cp.SurvivingVoters = append(cp.SurvivingVoters, v)
			n := 1
			for _, o := range cp.Voters {
				if p.sees(v, o) {
					n++
				}
			}
			if 2*n > len(cp.Voters) {
				cp.Quorum = true
				cp.Controller = append(cp.Controller, v)
			}
		}
	} else {
		cp.Quorum = true // not judged: taken as kept, and said so
		for _, s := range p.t.Sites {
			if p.alive[s.Name] {
				cp.Controller = append(cp.Controller, s.Name)
			}
		}
	}
	p.judged, p.quorum = cp.Judged, cp.Quorum
	var msg []string
	switch {
	case !cp.Judged:
		msg = append(msg, "quorum not judged: the agents use an existing etcd cluster (coordination.etcd_endpoints), whose members siteflip does not place; this answer assumes it keeps its quorum")
	case cp.Quorum:
		msg = append(msg, fmt.Sprintf("quorum kept: %d of %d voters survive (%s); a controller can be elected at %s",
			len(cp.SurvivingVoters), len(cp.Voters), words(cp.SurvivingVoters), orWords(cp.Controller)))
	default:
		msg = append(msg, fmt.Sprintf("QUORUM LOST: %d of %d voters survive (%s) and none sees a majority: no controller, no status, nothing fails over by itself until a person forces a site (docs/force.md)",
			len(cp.SurvivingVoters), len(cp.Voters), words(cp.SurvivingVoters)))
	}
	if len(cp.Fenced) > 0 {
		msg = append(msg, fmt.Sprintf("%s %s no other location and %s itself", words(cp.Fenced), plural(cp.Fenced, "sees", "see"), plural(cp.Fenced, "fences", "fence")))
	}
	if len(cp.AlreadyDown) > 0 {
		msg = append(msg, fmt.Sprintf("%s %s down or not reporting already", words(cp.AlreadyDown), plural(cp.AlreadyDown, "was", "were")))
	}
	cp.Message = strings.Join(msg, "; ")
	return cp
}

// Times of the hypothetical snapshot: the marks at now, the survivors'
// observations just after, and Decide once at once and once past
// PositionWait (a choice among standbys waits for their final positions).
const (
	observedAfter = time.Millisecond
	decideAfter   = 2 * time.Millisecond
)

// decide builds the snapshot after the event and runs the safety core's
// rules on it.
func (p *play) decide() {
	h := p.snap
	h.Views = map[string]status.View{}
	h.ViewAges = map[string]time.Duration{}
	observed := p.now.Add(observedAfter)
	names := p.t.SiteNames()
	for _, site := range names {
		v, ok := p.snap.Views[site]
		if !ok || !p.alive[site] {
			continue // destroyed, or gone already: its view vanishes
		}
		v.PublishedAt = observed
		v.Peers = map[string]status.PeerView{}
		for _, o := range names {
			if o == site {
				continue
			}
			pv := p.snap.Views[site].Peers[o]
			if reach := p.sees(site, o); reach != pv.Reachable {
				pv.Reachable, pv.Since = reach, p.now
			}
			v.Peers[o] = pv
		}
		v.Resources = map[string]status.ResourceView{}
		for k, rv := range p.snap.Views[site].Resources {
			rv.ObservedAt = observed
			v.Resources[k] = rv
		}
		h.Views[site] = v
		h.ViewAges[site] = 0
	}
	h.Marks = map[string]map[string]status.Mark{}
	for site, by := range p.snap.Marks {
		h.Marks[site] = maps.Clone(by)
	}
	for _, by := range names {
		if !p.alive[by] {
			continue // the marks of a location gone stay as they are
		}
		for _, site := range names {
			if site == by {
				continue
			}
			if p.sees(by, site) {
				delete(h.Marks[site], by)
				continue
			}
			if _, ok := h.Marks[site][by]; !ok {
				if h.Marks[site] == nil {
					h.Marks[site] = map[string]status.Mark{}
				}
				h.Marks[site][by] = status.Mark{Site: site, By: by, At: p.now, Reason: "what-if: " + p.ev.String()}
			}
		}
	}
	if c := p.snap.Controller; c != nil && !p.alive[c.Site] {
		h.Controller = nil // evicted with its location
	}
	by := ""
	for _, s := range names {
		if p.alive[s] {
			by = s
			break
		}
	}
	p.h = h
	p.actions = map[string]safety.Action{}
	m := safety.NewMemory()
	for _, at := range []time.Time{p.now.Add(decideAfter), p.now.Add(decideAfter + safety.PositionWait)} {
		p.hst = status.Assemble(p.t, h, by, at)
		for _, a := range safety.Decide(safety.Input{Now: at, Topology: p.t, Snapshot: h, Status: p.hst}, m) {
			g := ""
			switch a := a.(type) {
			case safety.StartFailover:
				g = a.Group
			case safety.NeedDecision:
				g = a.Decision.Group
			case safety.Damp:
				g = a.Group
			default:
				continue
			}
			if _, ok := p.actions[g]; !ok {
				p.actions[g] = a
			}
		}
	}
}

// group works out the outcome for g.
func (p *play) group(g *config.Group, hist History) Group {
	rec, adopted := p.snap.Records[g.Name]
	out := Group{Name: g.Name, ActiveSite: rec.ActiveSite, Approvals: []string{}, Dependencies: []Dependency{},
		RTO: RTO{Target: g.RTOTarget.D()}}
	var alive []string
	for _, s := range g.Sites {
		if p.alive[s] {
			alive = append(alive, s)
		}
	}
	if len(alive) == 0 {
		out.Outcome = Lost
		out.Reason = "no site of the group survives: " + p.fate(g.Sites)
		out.RTO.Basis = "not survivable"
		out.Loss.Basis = "not survivable: every copy of the data is gone"
		out.Fix = "move a site further away: no site of the group survives this event (" + p.ev.String() + ")" + p.apart(g.Sites)
		if !slices.ContainsFunc(g.Sites, func(s string) bool { return p.destroyed[s] }) {
			out.Fix = "bring back " + words(g.Sites) + ": no site of the group is up now"
		}
		return out
	}
	out.Survives = true
	if !adopted {
		out.Outcome = NeedsDecision
		out.Reason = "the group has no record yet: no controller has adopted it (status says why); nothing fails it over until it is adopted"
		out.Command = "siteflip status"
		out.RTO.Basis = "unknown: the group was never adopted"
		out.Loss.Basis = "unknown: the group was never adopted"
		return out
	}
	active := rec.ActiveSite
	if p.serves(active) {
		return p.serving(g, out, rec)
	}
	if !p.quorum {
		p.force(g, &out, rec)
	} else {
		p.decided(g, &out, active)
	}
	if out.To != "" {
		out.Loss = p.dataLoss(g, rec, out.To)
		out.Dependencies = p.dependencies(g, out.To)
		if out.Outcome == NeedsForce && !out.Loss.Within && out.To != active {
			out.Command += " --accept-data-loss"
		}
	}
	out.RTO = rtoOf(g, hist, out)
	return out
}

// decided is the outcome of a group whose active site no longer serves
// while the quorum is kept: what safety.Decide does.
func (p *play) decided(g *config.Group, out *Group, active string) {
	switch a := p.actions[g.Name].(type) {
	case safety.StartFailover:
		out.Outcome, out.Automatic, out.To = AutomaticFailover, true, a.Request.To
		out.Reason = fmt.Sprintf("%s: the controller fails over to %s by itself", p.why(active), a.Request.To)
		for _, s := range a.Plan.Steps {
			if s.Kind == plan.Approve {
				out.Approvals = append(out.Approvals, s.Resource)
			}
		}
		if len(out.Approvals) > 0 {
			out.Outcome = NeedsDecision
			out.Reason += fmt.Sprintf(", and the run waits at approval step %s for a person", words(out.Approvals))
			out.Command = "siteflip approve RUN (the run's ID, which status shows)"
		}
	case safety.Damp:
		out.Outcome, out.Automatic, out.To = AutomaticFailover, true, p.target(g)
		out.Reason = fmt.Sprintf("%s: %s was lost recently too, so the failover waits %s (flap_confirm) in case it comes back, then goes ahead by itself", p.why(active), active, a.Confirm)
		out.Approvals = gates(g)
	case safety.NeedDecision:
		out.Outcome, out.To = NeedsDecision, p.target(g)
		out.Reason = fmt.Sprintf("%s, and the group does not fail over by itself: %s", p.why(active), a.Decision.Reason)
		out.Command = a.Decision.Command
		out.Approvals = gates(g)
	default:
		out.Outcome = NeedsDecision
		out.To = p.target(g)
		if run := p.snap.Running[g.Name]; run != "" {
			out.Reason = fmt.Sprintf("%s while run %s holds the group: the controller decides nothing about it until the run ends", p.why(active), run)
			out.Command = "siteflip run " + run
			break
		}
		var missing []string
		for _, l := range p.t.SiteNames() {
			if _, ok := p.h.Marks[active][l]; l != active && !ok {
				missing = append(missing, l)
			}
		}
		out.Reason = fmt.Sprintf("%s, but it cannot be declared lost: every other location must mark it, and %s cannot (%s)",
			p.why(active), words(missing), p.fate(missing))
		out.Command = "siteflip status"
	}
}

// serving is the outcome of a group whose active site keeps serving.
func (p *play) serving(g *config.Group, out Group, rec status.Record) Group {
	active := rec.ActiveSite
	out.To = active
	var gone []string
	for _, s := range g.Sites {
		if s != active && !p.sees(active, s) {
			gone = append(gone, s)
		}
	}
	out.Outcome = Unaffected
	out.Reason = fmt.Sprintf("%s keeps serving with every standby", active)
	if len(gone) > 0 {
		out.Outcome = Degraded
		out.Reason = fmt.Sprintf("%s keeps serving; %s: replication there is interrupted and the group is unprotected until %s",
			active, p.fate(gone), plural(gone, "it returns", "they return"))
		var destroyed []string
		for _, s := range gone {
			if p.destroyed[s] {
				destroyed = append(destroyed, s)
			}
		}
		if len(destroyed) == 0 {
			out.Reason += "; replication resumes by itself when the way back is open"
		} else {
			out.Command = "siteflip reprotect " + g.Name + " (once " + words(destroyed) + " " + plural(destroyed, "is", "are") + " rebuilt)"
		}
	}
	if !p.quorum {
		out.Outcome = Degraded
		out.Reason += "; the control plane has no quorum: no failover, switchover or status until it is back"
	}
	out.RTO = RTO{Known: true, Basis: "no outage: " + active + " keeps serving", Target: g.RTOTarget.D()}
	out.Loss = DataLoss{Known: true, Within: true, Basis: "nothing moves"}
	out.Dependencies = p.dependencies(g, active)
	return out
}

// force is the outcome of a group whose active site no longer serves
// while the quorum is lost: a person forces a surviving site.
func (p *play) force(g *config.Group, out *Group, rec status.Record) {
	active := rec.ActiveSite
	to := ""
	if p.alive[active] {
		to = active // its own data: nothing lost
	} else {
		for _, s := range g.Sites {
			if p.alive[s] {
				to = s
				break
			}
		}
	}
	out.Outcome, out.To = NeedsForce, to
	out.Reason = fmt.Sprintf("%s, and the control plane loses its quorum: nothing fails over by itself; a person can force %s (docs/force.md)", p.why(active), to)
	if to == active {
		out.Reason = fmt.Sprintf("%s survives but sees no other location, so it fences itself, and the control plane loses its quorum: a person can force it to serve again (docs/force.md)", active)
	}
	out.Command = fmt.Sprintf("siteflip failover %s --force --to %s", g.Name, to)
	if to != active {
		out.Approvals = gates(g)
	}
}

// apart says how far apart the farthest two of sites are, against
// min_site_distance.
func (p *play) apart(sites []string) string {
	var far geo.Distance
	var a, b string
	for i, x := range sites {
		sx, ok := p.t.Site(x)
		for _, y := range sites[i+1:] {
			sy, ok2 := p.t.Site(y)
			if !ok || !ok2 {
				continue
			}
			d := geo.Between(geo.Point{Lat: sx.Location.Latitude, Lon: sx.Location.Longitude}, geo.Point{Lat: sy.Location.Latitude, Lon: sy.Location.Longitude})
			if a == "" || d > far {
				far, a, b = d, x, y
			}
		}
	}
	if a == "" {
		return ""
	}
	least := p.t.MinSiteDistance.M()
	if least == 0 {
		least = config.DefaultMinSiteDistance
	}
	return fmt.Sprintf("; %s and %s are %s apart (min_site_distance %s)", a, b, far, least)
}

// target is where a failover of g would go, as the safety core plans it
// (the site it accepts, or the first it refused).
func (p *play) target(g *config.Group) string {
	req, _, _ := safety.FailoverPlan(g, safety.Known(p.t, g, p.h, p.hst))
	return req.To
}

// why says what becomes of the active site.
func (p *play) why(site string) string {
	switch {
	case p.destroyed[site]:
		return "the active site " + site + " is destroyed"
	case !p.before[site]:
		return "the active site " + site + " is down already"
	case p.alive[site]:
		return "the active site " + site + " sees no other location and fences itself"
	}
	return "the active site " + site + " is lost"
}

// fate says of each of sites why it is out of reach after the event.
func (p *play) fate(sites []string) string {
	var out []string
	for _, s := range sites {
		switch {
		case p.destroyed[s]:
			out = append(out, s+" destroyed")
		case !p.before[s]:
			out = append(out, s+" down already")
		default:
			out = append(out, s+" cut off")
		}
	}
	return strings.Join(out, ", ")
}

// dataLoss is what a failover of g to site to is expected to lose.
func (p *play) dataLoss(g *config.Group, rec status.Record, to string) DataLoss {
	if to == rec.ActiveSite {
		return DataLoss{Known: true, Within: true, Basis: "the active site keeps its own data"}
	}
	inSync := safety.Known(p.t, g, p.snap, p.hst).InSync
	out := DataLoss{Known: true, BoundKnown: true, Within: true}
	var basis []string
	data := 0
	for _, r := range g.Resources {
		if !r.Data {
			continue
		}
		data++
		if inSync[r.Name] == to {
			basis = append(basis, r.Name+" synchronous")
			continue
		}
		var lag *status.Lag
		if l, ok := p.snap.Lags[g.Name][r.Name][to]; ok {
			lag = &l
		}
		bound, err := status.JudgeLag(lag, rec.Epoch, g.MaxDataLoss.D(), p.t.Coordination.ServeLease.D())
		if lag == nil || errors.Is(err, status.ErrLagUnknown) {
			out.Known, out.BoundKnown, out.Within = false, false, false
			basis = append(basis, fmt.Sprintf("%s at %s: %v", r.Name, to, err))
			continue
		}
		out.Expected = max(out.Expected, time.Duration(lag.Seconds*float64(time.Second)))
		out.Bound = max(out.Bound, bound)
		b := fmt.Sprintf("%s at %s: last lag %s, at most %s", r.Name, to, secs(time.Duration(lag.Seconds*float64(time.Second))), secs(bound))
		if err != nil {
			out.Within = false
			b += fmt.Sprintf(", more than max_data_loss %s", secs(g.MaxDataLoss.D()))
		}
		basis = append(basis, b)
	}
	switch {
	case data == 0:
		return DataLoss{Known: true, Within: true, Basis: "no data resource"}
	case !out.Known:
		out.Expected, out.Bound = 0, 0
	case len(basis) == data && !slices.ContainsFunc(basis, func(b string) bool { return !strings.HasSuffix(b, " synchronous") }):
		out.BoundKnown = false // all synchronous: no lag bound
		basis = []string{"synchronous"}
	}
	out.Basis = strings.Join(basis, "; ")
	return out
}

// dependencies lists the outside services of g that site cannot reach
// after the event: unreachable from it now, not probed, or hosted at a
// location that is gone.
func (p *play) dependencies(g *config.Group, site string) []Dependency {
	out := []Dependency{}
	for _, d := range g.Requires {
		dep := Dependency{Name: d.Name, Site: site}
		at := d.Sites[site].At
		dv, probed := p.snap.Views[site].Dependencies[g.Name+"/"+d.Name]
		switch {
		case at != "" && p.destroyed[at]:
			dep.Why = "its host " + at + " is destroyed"
		case at != "" && at != site && !p.before[at]:
			dep.Why = "its host " + at + " is down already"
		case !probed:
			dep.Why = "not known: " + site + " publishes no probe of it"
		case !dv.Reachable:
			dep.Why = "its probe fails there now"
			if dv.Error != "" {
				dep.Why += ": " + dv.Error
			}
		default:
			continue
		}
		out = append(out, dep)
	}
	return out
}

// rtoOf is the expected RTO of a group that moves: the median of its
// measured failovers and drills.
func rtoOf(g *config.Group, hist History, out Group) RTO {
	r := RTO{Target: g.RTOTarget.D()}
	f, d := hist.Failovers[g.Name], hist.Drills[g.Name]
	all := append(slices.Clone(f), d...)
	r.Samples = len(all)
	if len(all) == 0 {
		r.Basis = fmt.Sprintf("unknown: no failover or drill of %s measured yet; rto_target is %s", g.Name, secs(r.Target))
	} else {
		r.Known, r.Expected = true, median(all)
		r.Basis = "median of " + count(len(f), "failover", "failovers") + " and " + count(len(d), "drill", "drills")
	}
	switch {
	case out.Outcome == NeedsForce:
		r.Basis += ", plus the time a person takes to decide and the restart of the control plane"
	case out.Outcome == NeedsDecision:
		r.Basis += ", plus the time a person takes to decide"
	case len(out.Approvals) > 0:
		r.Basis += ", plus the approval"
	}
	return r
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// gates are the approval resources of g: every failover plan waits at
// each (plan.Build).
func gates(g *config.Group) []string {
	out := []string{}
	for _, r := range g.Resources {
		if r.Class == config.ClassGate {
			out = append(out, r.Name)
		}
	}
	return out
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func plural(names []string, one, many string) string {
	if len(names) == 1 {
		return one
	}
	return many
}

func orWords(names []string) string {
	if len(names) < 2 {
		return words(names)
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// secs writes d in seconds as people read them: "2.1 s".
func secs(d time.Duration) string {
	return strconv.FormatFloat(math.Round(d.Seconds()*1000)/1000, 'f', -1, 64) + " s"
}
