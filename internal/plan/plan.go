// Package plan owns recovery plans: given a group, what is known of it and
// an action (failover, switchover, reprotect, failback, drill), the ordered steps
// that carry the action out. Build is a pure function; running the steps,
// storing runs and talking to agents belong to the engine.
package plan

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
)

// Action is what a person (or the policy) asks of a group.
type Action string

// Actions.
const (
	Failover   Action = "failover"   // unplanned: recover at the other site now
	Switchover Action = "switchover" // planned: no acknowledged write lost
	Reprotect  Action = "reprotect"  // rebuild replication toward the active site
	Failback   Action = "failback"   // a switchover back to the preferred site
	// Drill recovers a copy of the group in a bubble at a site, checks it
	// and tears it down, production and replication untouched
	// (docs/design/drills.md).
	Drill Action = "drill"
)

// Kind is what one step does.
type Kind string

// Step kinds. Each is idempotent: running a step again after it succeeded,
// or after a crash half-way, does the right thing.
const (
	// Fence makes a resource at the old site stop serving, verified: for a
	// database, it accepts no more writes.
	Fence Kind = "fence"
	// CatchUp waits until the standby at the new site has replayed all
	// the fenced primary wrote.
	CatchUp Kind = "catch-up"
	// Activate records the new active site and increments the epoch, in
	// one etcd transaction. It is the run's point of no return: before it,
	// a failed run rolls back; after it, the run only goes forward.
	Activate Kind = "activate"
	// Promote makes the resource at the new site serve (for a database:
	// accept writes, proven by a write).
	Promote Kind = "promote"
	// Rejoin makes the resource at a non-active site follow the active one
	// (for a database: a streaming standby, rewound or recloned if needed;
	// WAL found only there is reported, never dropped silently).
	Rejoin Kind = "rejoin"
	// Unfence puts the old site back in service; only a rollback runs it.
	Unfence Kind = "unfence"
	// Check runs a check resource: against the drill's copies in a drill,
	// against production at the end of a real run (which then ends
	// verified, or with the failing checks named, without failing).
	Check Kind = "check"

	// Approve waits for a person's verdict (an approval resource, class
	// gate): the controller's own step. Without depends_on it comes
	// first, before anything is fenced; with depends_on, among the
	// promotions, after what it depends on and before what depends on
	// it.
	Approve Kind = "approve"

	// Drill steps, all at the drill site.

	// Clone copies the standby's data, its replication untouched.
	Clone Kind = "clone"
	// Start starts the copy in the bubble, an independent primary.
	Start Kind = "start"
	// Keep is the controller's own step: the drill stays up for the
	// requested time before its teardown.
	Keep Kind = "keep"
	// Teardown stops the copy and removes everything the drill made.
	Teardown Kind = "teardown"
)

// Step is one step of a plan.
type Step struct {
	// ID is unique within the plan and stable: the engine stores step state
	// under it and resumes by it.
	ID       string        `json:"id"`
	Kind     Kind          `json:"kind"`
	Resource string        `json:"resource,omitempty"` // "" for Activate
	Site     string        `json:"site"`               // whose agent carries it out; for Activate, the new active site
	Timeout  time.Duration `json:"timeout"`
	// Retries is how many times the engine may retry after a failure.
	Retries int `json:"retries"`
	// BestEffort steps may fail (or be skipped when their site is down)
	// without failing the run: fencing a dead site cannot succeed, and the
	// site is fenced by being dead and by the epoch.
	BestEffort bool `json:"best_effort,omitempty"`
	// Message is what an approval step asks of the person.
	Message string `json:"message,omitempty"`
	// Wave, when not 0, is shared by consecutive steps that run side by
	// side: one priority, no dependency between their resources.
	Wave int `json:"wave,omitempty"`
}

// Plan is the ordered steps of one action on one group.
type Plan struct {
	Group  string `json:"group"`
	Action Action `json:"action"`
	From   string `json:"from"` // active site when the plan was made
	To     string `json:"to"`   // active site when it is done
	Epoch  int64  `json:"epoch"`
	// Why says why To was chosen, when more than one site could have
	// taken over (an automatic failover to the most advanced standby).
	Why   string `json:"why,omitempty"`
	Steps []Step `json:"steps"`
	// Rollback is run, in order, when a step before Activate fails.
	Rollback []Step `json:"rollback,omitempty"`
}

// Request is what Build is asked.
type Request struct {
	Action Action
	// To is the site to move to; "" means the other site of the group.
	To string
	// AcceptDataLoss lets a failover go ahead although the standby's last
	// known lag exceeds the group's max_data_loss.
	AcceptDataLoss bool
	// Keep is how long a drill stays up after its checks, before its
	// teardown (0: at once).
	Keep time.Duration `json:",omitempty"`
}

// Known is what the controller knows of the group when it plans.
type Known struct {
	Status status.GroupStatus
	// SiteUp is the control plane's verdict per location.
	SiteUp map[string]bool
	// LastLag is, per resource and site, the standby's last known lag
	// (kept by the controller while the primary reported it).
	LastLag map[string]map[string]status.Lag
	// ServeLease is how long a cut-off primary may still acknowledge
	// writes before it fences itself: part of what a failover may lose.
	ServeLease time.Duration
	// InSync names the synchronous resources whose standby confirmed
	// every commit of the current epoch, with that standby's site: a
	// failover to it loses nothing, whatever lag was last measured.
	InSync map[string]string
}

// Errors that say why a request cannot be planned. Build wraps them with
// the details a person needs.
var (
	ErrUnknownSite    = errors.New("unknown site")
	ErrAlreadyActive  = errors.New("already active there")
	ErrNotProtected   = errors.New("group is not protected")
	ErrDataLoss       = status.ErrLagTooFar
	ErrNoLag          = status.ErrLagUnknown
	ErrTargetDown     = errors.New("target site is down")
	ErrNotAdopted     = errors.New("group not adopted yet")
	ErrBadAction      = errors.New("unknown action")
	ErrTargetNotReady = errors.New("target not ready")
	ErrNoDrillSite    = errors.New("no site to drill at")
)

// Step timeouts and retries. Fence and promote are short; catch-up is
// bounded by the switchover's patience; rejoin may rewind or reclone.
const (
	fenceTimeout    = 30 * time.Second
	catchUpTimeout  = 10 * time.Second
	activateTimeout = 5 * time.Second
	promoteTimeout  = 30 * time.Second
	rejoinTimeout   = 10 * time.Minute
	checkTimeout    = 30 * time.Second
	cloneTimeout    = 30 * time.Minute
	startTimeout    = time.Minute
	// followTimeout bounds a third site's rejoin in a failover or a
	// switchover: the run holds the group meanwhile, and a reprotect
	// finishes what it could not.
	followTimeout   = 2 * time.Minute
	teardownTimeout = 2 * time.Minute
	// defaultApprovalTimeout is how long a run waits for a person when
	// the approval does not say.
	defaultApprovalTimeout = 30 * time.Minute
)

// Build returns the plan for req on group g, given what is known of it.
func Build(g *config.Group, k Known, req Request) (Plan, error) {
	switch req.Action {
	case Failover, Switchover, Reprotect, Failback, Drill:
	default:
		return Plan{}, fmt.Errorf("group %s: %w %q: use failover, switchover, reprotect, failback or drill", g.Name, ErrBadAction, req.Action)
	}
	st := k.Status
	if st.ActiveSite == "" {
		return Plan{}, fmt.Errorf("group %s: %w: wait until status shows its active site", g.Name, ErrNotAdopted)
	}
	all, err := Order(g)
	if err != nil {
		return Plan{}, err
	}
	// Checks are run and approvals awaited, never fenced, promoted or
	// rejoined.
	order := slices.DeleteFunc(slices.Clone(all), func(r config.Resource) bool {
		return !r.Class.Stepped()
	})
	from := st.ActiveSite
	to := req.To
	switch req.Action {
	case Failback:
		to = g.PreferredSite
	case Reprotect:
		to = from
	}
	if to == "" && req.Action == Drill {
		to = drillSite(g, st)
		if to == "" {
			return Plan{}, fmt.Errorf("group %s: %w: no site other than the active one (%s) has its resources up as standbys; name one with --at", g.Name, ErrNoDrillSite, from)
		}
	}
	if to == "" {
		to = otherSite(g, from)
	}
	if !slices.Contains(g.Sites, to) {
		return Plan{}, fmt.Errorf("group %s: %w %q (its sites: %s)", g.Name, ErrUnknownSite, to, strings.Join(g.Sites, ", "))
	}
	p := Plan{Group: g.Name, Action: req.Action, From: from, To: to, Epoch: st.Epoch}
	switch req.Action {
	case Switchover, Failback:
		if to == from {
			return Plan{}, fmt.Errorf("group %s is %w at %s", g.Name, ErrAlreadyActive, to)
		}
		if st.State != status.StateProtected {
			return Plan{}, fmt.Errorf("group %s: %w (state %s: %s); a %s needs a streaming standby at %s; run `siteflip reprotect %s` first",
				g.Name, ErrNotProtected, st.State, strings.Join(st.Problems, "; "), req.Action, to, g.Name)
		}
		p.Steps = append(gated(all, planned(g, order, from, to), to), checks(all, to)...)
		p.Steps = follow(g, order, p.Steps, from, to, k.SiteUp)
		p.Rollback = rollback(order, from)
	case Drill:
		if to == from {
			return Plan{}, fmt.Errorf("group %s: %w at %s: it is the active site; a drill copies a standby, so drill at %s",
				g.Name, ErrNoDrillSite, to, otherSite(g, from))
		}
		if err := standbysReady(g, data(order), st, to); err != nil {
			return Plan{}, err
		}
		if !k.SiteUp[to] {
			return Plan{}, fmt.Errorf("group %s: %w: %s is unreachable", g.Name, ErrTargetDown, to)
		}
		p.Steps, p.Rollback = drill(all, to, req.Keep)
	case Failover:
		if to == from {
			return Plan{}, fmt.Errorf("group %s is %w at %s", g.Name, ErrAlreadyActive, to)
		}
		if !k.SiteUp[to] {
			return Plan{}, fmt.Errorf("group %s: %w: %s cannot take over while it is unreachable", g.Name, ErrTargetDown, to)
		}
		if err := standbysReady(g, order, st, to); err != nil {
			return Plan{}, err
		}
		if err := lagWithin(g, order, k, to, req.AcceptDataLoss); err != nil {
			return Plan{}, err
		}
		p.Steps = append(gated(all, unplanned(g, order, from, to, k.SiteUp[from]), to), checks(all, to)...)
		p.Steps = follow(g, order, p.Steps, from, to, k.SiteUp)
		if k.SiteUp[from] {
			// A failed failover puts back what its fences stopped.
			p.Rollback = rollback(order, from)
		}
	case Reprotect:
		p.Steps = append(restart(order, st), reprotect(g, order, from)...)
	}
	return p, nil
}

// planned: fence the old site (dependents first), wait for the standbys to
// catch up, activate, promote (dependencies first), rejoin the old site.
func planned(g *config.Group, order []config.Resource, from, to string) []Step {
	b := newBatcher(g, order)
	var steps []Step
	steps = b.add(steps, true, all, func(r config.Resource) Step { return step(Fence, r.Name, from, fenceTimeout, 1, false) })
	steps = b.add(steps, false, catchesUp, func(r config.Resource) Step { return step(CatchUp, r.Name, to, catchUpTimeout, 0, false) })
	steps = append(steps, step(Activate, "", to, activateTimeout, 3, false))
	steps = b.add(steps, false, all, func(r config.Resource) Step { return step(Promote, r.Name, to, promoteTimeout, 2, false) })
	return b.add(steps, false, all, func(r config.Resource) Step { return step(Rejoin, r.Name, from, rejoinTimeout, 2, false) })
}

// Filters of batcher.add.
func all(config.Resource) bool { return true }

// catchesUp: only data and scripts wait for a standby to catch up;
// a catch-up step of any other resource would be a round trip for
// nothing, in the middle of a switchover's gap. A resource whose class is
// not known (not validated) catches up: a data resource left without
// would be promoted before its standby has all the fenced primary wrote.
func catchesUp(r config.Resource) bool { return r.Data || r.Class == "" || r.Class.CatchesUp() }

// batcher puts the steps of one kind into waves (Step.Wave): in a group
// that uses priorities, the resources of one priority at one depth of the
// dependency graph (so none depends on another) run side by side, the
// priorities one after the other (docs/design/stacks.md). Without
// priorities every resource is a batch of its own, in dependency order.
type batcher struct {
	batches [][]config.Resource
	next    int // the last wave number given
}

func newBatcher(g *config.Group, order []config.Resource) *batcher {
	b := &batcher{}
	if !g.UsesPriorities() {
		for _, r := range order {
			b.batches = append(b.batches, []config.Resource{r})
		}
		return b
	}
	depth := map[string]int{}
	for _, r := range order { // dependencies come first
		for _, d := range r.DependsOn {
			depth[r.Name] = max(depth[r.Name], depth[d]+1)
		}
	}
	key := func(r config.Resource) [2]int { return [2]int{r.EffectivePriority(), depth[r.Name]} }
	sorted := slices.Clone(order)
	slices.SortStableFunc(sorted, func(a, b config.Resource) int {
		ka, kb := key(a), key(b)
		if ka[0] != kb[0] {
			return ka[0] - kb[0]
		}
		return ka[1] - kb[1]
	})
	for i, r := range sorted {
		if i > 0 && key(sorted[i-1]) == key(r) {
			b.batches[len(b.batches)-1] = append(b.batches[len(b.batches)-1], r)
			continue
		}
		b.batches = append(b.batches, []config.Resource{r})
	}
	return b
}

// add appends to steps one step per resource that keep accepts, batch by
// batch (last batch first when backward: fences go dependents first), the
// steps of a batch of several sharing a new wave number.
func (b *batcher) add(steps []Step, backward bool, keep func(config.Resource) bool, mk func(config.Resource) Step) []Step {
	batches := b.batches
	if backward {
		batches = slices.Clone(batches)
		slices.Reverse(batches)
	}
	for _, batch := range batches {
		batch = slices.DeleteFunc(slices.Clone(batch), func(r config.Resource) bool { return !keep(r) })
		wave := 0
		if len(batch) > 1 {
			b.next++
			wave = b.next
		}
		for _, r := range batch {
			s := mk(r)
			s.Wave = wave
			steps = append(steps, s)
		}
	}
	return steps
}

// rollback undoes the fences of a planned move, dependencies first.
func rollback(order []config.Resource, from string) []Step {
	var steps []Step
	for _, r := range order {
		steps = append(steps, step(Unfence, r.Name, from, promoteTimeout, 2, false))
	}
	return steps
}

// unplanned: fence what can be reached at the old site (best effort; a dead
// site is fenced by being dead, and its agent refuses older epochs when it
// comes back), activate, promote. Rejoining the old site is a reprotect,
// later, once it is back.
func unplanned(g *config.Group, order []config.Resource, from, to string, fromUp bool) []Step {
	b := newBatcher(g, order)
	var steps []Step
	if fromUp {
		steps = b.add(steps, true, all, func(r config.Resource) Step { return step(Fence, r.Name, from, fenceTimeout, 0, true) })
	}
	steps = append(steps, step(Activate, "", to, activateTimeout, 3, false))
	return b.add(steps, false, all, func(r config.Resource) Step { return step(Promote, r.Name, to, promoteTimeout, 2, false) })
}

// checks runs the group's checks at site, in order.
func checks(order []config.Resource, site string) []Step {
	var steps []Step
	for _, r := range order {
		if r.Class == config.ClassCheck {
			steps = append(steps, step(Check, r.Name, site, checkTimeout, 2, false))
		}
	}
	return steps
}

// drill: clone every data resource at site (dependencies first), start
// the copies and the traffic resources in the bubble, run the checks,
// keep it up if asked, and tear down in reverse order. The rollback, run
// when a step fails, is the same teardown: a failed drill leaves nothing.
func drill(order []config.Resource, site string, keep time.Duration) (steps, teardown []Step) {
	for _, r := range order {
		if r.Data {
			steps = append(steps, step(Clone, r.Name, site, cloneTimeout, 1, false))
		}
	}
	for _, r := range order {
		if r.Class.Stepped() { // checks are run; a drill awaits no approval
			steps = append(steps, step(Start, r.Name, site, startTimeout, 1, false))
		}
	}
	for _, r := range order {
		if r.Class == config.ClassCheck {
			// A drill's check is tried until it passes or its retries run
			// out: a copy just started may need a moment.
			steps = append(steps, step(Check, r.Name, site, checkTimeout, 5, false))
		}
	}
	if keep > 0 {
		steps = append(steps, step(Keep, "", site, keep+time.Minute, 0, false))
	}
	for _, r := range slices.Backward(order) {
		if r.Class.Stepped() { // checks are run; a drill awaits no approval
			teardown = append(teardown, step(Teardown, r.Name, site, teardownTimeout, 3, true))
		}
	}
	return append(steps, teardown...), teardown
}

// gated places the approvals of order into steps: one without depends_on
// before every step (nothing is fenced before a person agreed), one with
// depends_on right after the last promotion it depends on (directly or
// through others), or, when it depends only on resources that are not
// promoted, right after the activation.
func gated(order []config.Resource, steps []Step, to string) []Step {
	var first []Step
	for _, r := range order {
		if r.Class != config.ClassGate {
			continue
		}
		a := step(Approve, r.Name, to, approvalTimeout(r, to), 0, false)
		a.Message = approvalMessage(r, to)
		if len(r.DependsOn) == 0 {
			first = append(first, a)
			continue
		}
		deps := dependencies(order, r.Name)
		at := slices.IndexFunc(steps, func(s Step) bool { return s.Kind == Activate })
		for i, s := range steps {
			if s.Kind == Promote && deps[s.Resource] {
				at = i
			}
		}
		if at < 0 {
			// No activation in this plan (a drill): nothing to place.
			continue
		}
		steps = slices.Insert(slices.Clone(steps), at+1, a)
	}
	return append(first, steps...)
}

// dependencies returns every resource name of order that name depends on,
// directly or through others.
func dependencies(order []config.Resource, name string) map[string]bool {
	by := map[string][]string{}
	for _, r := range order {
		by[r.Name] = r.DependsOn
	}
	seen := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		for _, d := range by[n] {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(name)
	return seen
}

// Gate is what an approval resource's settings tell the plan.
type Gate interface {
	// ApprovalTimeout is how long a run waits for the verdict.
	ApprovalTimeout() time.Duration
	// ApprovalMessage is what the person is asked.
	ApprovalMessage() string
}

func approvalTimeout(r config.Resource, site string) time.Duration {
	if g, ok := r.Settings[site].(Gate); ok && g.ApprovalTimeout() > 0 {
		return g.ApprovalTimeout()
	}
	return defaultApprovalTimeout
}

func approvalMessage(r config.Resource, site string) string {
	if g, ok := r.Settings[site].(Gate); ok {
		return g.ApprovalMessage()
	}
	return ""
}

// restart promotes, at the active site, every service that does not run
// there: a run that failed after its activation (an approval rejected or
// timed out, a service that would not start) leaves them stopped, and
// reprotect brings the whole group back in line.
func restart(order []config.Resource, st status.GroupStatus) []Step {
	var steps []Step
	for _, r := range order {
		if r.Class != config.ClassService {
			continue
		}
		for _, rs := range st.Resources {
			if rs.Name != r.Name {
				continue
			}
			for _, s := range rs.Sites {
				if s.Site == st.ActiveSite && s.Up && s.Role != status.RolePrimary {
					steps = append(steps, step(Promote, r.Name, st.ActiveSite, promoteTimeout, 2, false))
				}
			}
		}
	}
	return steps
}

// drillSite is where a drill goes by default: the group's first site,
// other than the active one, where every data resource is an up standby.
func drillSite(g *config.Group, st status.GroupStatus) string {
	for _, site := range g.Sites {
		if site == st.ActiveSite {
			continue
		}
		if standbysReady(g, data(g.Resources), st, site) == nil {
			return site
		}
	}
	return ""
}

// data returns the resources of rs that hold data.
func data(rs []config.Resource) []config.Resource {
	var out []config.Resource
	for _, r := range rs {
		if r.Data {
			out = append(out, r)
		}
	}
	return out
}

// follow: in a group of more than two sites, every site up other than
// the old and the new active one rejoins the new one once it is primary
// and checked, so that its standbys replicate from it (a standby of the
// old primary would otherwise follow nobody). Best effort: the group is
// recovered already, and a reprotect rejoins what failed; a site that is
// down rejoins at the reprotect too.
// The steps are appended to steps, in waves of their own.
func follow(g *config.Group, order []config.Resource, steps []Step, from, to string, up map[string]bool) []Step {
	b := newBatcher(g, order)
	for _, s := range steps {
		b.next = max(b.next, s.Wave)
	}
	for _, site := range g.Sites {
		if site == from || site == to || !up[site] {
			continue
		}
		steps = b.add(steps, false, all, func(r config.Resource) Step { return step(Rejoin, r.Name, site, followTimeout, 1, true) })
	}
	return steps
}

// reprotect: every non-active site rejoins the active one.
func reprotect(g *config.Group, order []config.Resource, active string) []Step {
	b := newBatcher(g, order)
	var steps []Step
	for _, site := range g.Sites {
		if site == active {
			continue
		}
		steps = b.add(steps, false, all, func(r config.Resource) Step { return step(Rejoin, r.Name, site, rejoinTimeout, 2, false) })
	}
	return steps
}

func step(k Kind, resource, site string, timeout time.Duration, retries int, bestEffort bool) Step {
	id := string(k) + "@" + site
	if resource != "" {
		id = string(k) + ":" + resource + "@" + site
	}
	return Step{ID: id, Kind: k, Resource: resource, Site: site, Timeout: timeout, Retries: retries, BestEffort: bestEffort}
}

// standbysReady refuses a failover to a site whose resources are not all
// up standbys: promoting there would fail, after the old site was fenced.
func standbysReady(g *config.Group, order []config.Resource, st status.GroupStatus, site string) error {
	for _, r := range order {
		for _, rs := range st.Resources {
			if rs.Name != r.Name {
				continue
			}
			for _, s := range rs.Sites {
				if s.Site == site && !(s.Up && s.Role == status.RoleStandby) {
					return fmt.Errorf("group %s: %w: %s at %s is %s, not an up standby, so a failover there would leave no primary; bring it back first",
						g.Name, ErrTargetNotReady, r.Name, site, s.Role)
				}
			}
		}
	}
	return nil
}

// lagWithin refuses a failover to site when what it may lose is unknown or
// more than the group's max_data_loss (status.JudgeLag): a standby never
// measured, measured in another epoch, not streaming when last seen, or
// too far behind.
func lagWithin(g *config.Group, order []config.Resource, k Known, site string, accept bool) error {
	if accept {
		return nil
	}
	for _, r := range order {
		if k.InSync[r.Name] == site || !r.Data {
			continue // nothing to lose: synchronous, or no data at all
		}
		var lag *status.Lag
		if l, ok := k.LastLag[r.Name][site]; ok {
			lag = &l
		}
		if _, err := status.JudgeLag(lag, k.Status.Epoch, g.MaxDataLoss.D(), k.ServeLease); err != nil {
			return fmt.Errorf("group %s: %s at %s: %w; if you accept that, run `siteflip failover %s --to %s --accept-data-loss`",
				g.Name, r.Name, site, err, g.Name, site)
		}
	}
	return nil
}

func otherSite(g *config.Group, from string) string {
	for _, s := range g.Sites {
		if s != from {
			return s
		}
	}
	return from
}

// Order returns the group's resources so that every resource comes after
// those it depends on (Kahn's algorithm, stable in file order). The
// configuration is validated to be acyclic; a cycle here is an error all
// the same.
func Order(g *config.Group) ([]config.Resource, error) {
	indegree := map[string]int{}
	dependents := map[string][]string{}
	byName := map[string]config.Resource{}
	for _, r := range g.Resources {
		byName[r.Name] = r
		indegree[r.Name] += 0
		for _, d := range r.DependsOn {
			indegree[r.Name]++
			dependents[d] = append(dependents[d], r.Name)
		}
	}
	var out []config.Resource
	done := map[string]bool{}
	for len(out) < len(g.Resources) {
		progressed := false
		for _, r := range g.Resources {
			if done[r.Name] || indegree[r.Name] > 0 {
				continue
			}
			done[r.Name] = true
			out = append(out, r)
			for _, dep := range dependents[r.Name] {
				indegree[dep]--
			}
			progressed = true
			break
		}
		if !progressed {
			return nil, fmt.Errorf("group %s: resources depend on each other in a cycle", g.Name)
		}
	}
	return out, nil
}
