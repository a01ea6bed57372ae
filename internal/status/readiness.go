package status

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/siteflip/siteflip/internal/config"
)

// Readiness verdicts: one per group, the worst of its reasons.
const (
	Ready    = "ready"     // nothing known stands in the way of a failover
	AtRisk   = "at_risk"   // a failover would work, with a weakness named
	NotReady = "not_ready" // a failover would be refused, lose too much, or fail
)

// Severities of a readiness reason: a verdict, or SeverityNote for a
// standing fact of the design (geography) that is shown but does not
// change the verdict.
const SeverityNote = "note"

// Readiness is a group's verdict on whether it can fail over now, with
// every reason found (docs/design/risk.md).
type Readiness struct {
	Verdict string            `json:"verdict"`
	Reasons []ReadinessReason `json:"reasons"`
}

// ReadinessReason is one thing that makes a group less than ready, or a
// note about it.
type ReadinessReason struct {
	// Kind names the rule: protection, lag, synchronous, dependency,
	// drill, check, certificate, clock, geography, pause.
	Kind     string `json:"kind"`
	Severity string `json:"severity"` // AtRisk, NotReady or SeverityNote
	Message  string `json:"message"`
	// Fix is the command or change that removes the reason.
	Fix  string `json:"fix,omitempty"`
	Site string `json:"site,omitempty"`
}

// DependencyStatus is one outside service a group requires, as one site
// of the group last probed it.
type DependencyStatus struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Site     string `json:"site"`
	Critical bool   `json:"critical,omitempty"`
	Target   string `json:"target,omitempty"`
	// Known is false while the site publishes no probe of it (its agent
	// is down, not reporting, or has not probed yet).
	Known     bool      `json:"known"`
	Reachable bool      `json:"reachable"`
	Error     string    `json:"error,omitempty"`
	CheckedAt time.Time `json:"checked_at,omitzero"`
	Since     time.Time `json:"since,omitzero"`
}

// Readiness rules (docs/design/risk.md, "Readiness").
const (
	// CertReadiness is how long before its certificate expires a location
	// makes its groups at risk.
	CertReadiness = 14 * 24 * time.Hour
	// ClockReadiness is how far two locations' clocks may differ before
	// the groups there are at risk: leases and lag staleness are read on
	// several clocks.
	ClockReadiness = time.Second
	// DrillReadiness is how old the last successful drill of a group
	// without a schedule may grow before the group is at risk.
	DrillReadiness = 90 * 24 * time.Hour
)

// Judge gives group g's readiness from what Assemble knows of it: gs, its
// status so far (resources, dependencies, state), the topology t, the
// snapshot (clock offsets in the views), the locations' status and now.
// It is pure.
func Judge(gs GroupStatus, g *config.Group, t *config.Topology, snap Snapshot, sites []SiteStatus, now time.Time) Readiness {
	return newJudge(t, snap, sites, now).group(gs, g)
}

// judge holds what Judge reads of the installation as a whole, worked
// out once for every group of an Assemble.
type judge struct {
	t        *config.Topology
	snap     Snapshot
	now      time.Time
	sites    map[string]SiteStatus
	witness  []string
	warnings map[string][]config.Problem // by group; "" for the installation's
	// clocks are the pairs of locations whose clocks differ by more than
	// ClockReadiness, each once.
	clocks []clockSkew
}

type clockSkew struct {
	a, b     string
	offsetMs float64 // b's clock ahead of a's
}

func newJudge(t *config.Topology, snap Snapshot, sites []SiteStatus, now time.Time) *judge {
	j := &judge{t: t, snap: snap, now: now, sites: make(map[string]SiteStatus, len(sites)), warnings: map[string][]config.Problem{}}
	for _, s := range sites {
		j.sites[s.Name] = s
	}
	for _, s := range t.Sites {
		if s.Role == config.RoleWitness {
			j.witness = append(j.witness, s.Name)
		}
	}
	for _, w := range t.Warnings {
		j.warnings[w.Group] = append(j.warnings[w.Group], w)
	}
	names := t.SiteNames()
	for i, a := range names {
		for _, b := range names[i+1:] {
			off, ok := clockOffset(snap.Views, a, b)
			if ok && math.Abs(off) > float64(ClockReadiness/time.Millisecond) {
				j.clocks = append(j.clocks, clockSkew{a, b, off})
			}
		}
	}
	return j
}

// clockOffset is how far b's clock is ahead of a's, in milliseconds, as
// a's probes of b estimate it, or else b's of a.
func clockOffset(views map[string]View, a, b string) (float64, bool) {
	if p := views[a].Peers[b].ClockOffsetMs; p != nil {
		return *p, true
	}
	if p := views[b].Peers[a].ClockOffsetMs; p != nil {
		return -*p, true
	}
	return 0, false
}

func (j *judge) group(gs GroupStatus, g *config.Group) Readiness {
	var rs []ReadinessReason
	add := func(r ReadinessReason) { rs = append(rs, r) }
	j.protection(gs, add)
	j.lag(gs, g, add)
	synchronous(gs, add)
	dependencies(gs, add)
	j.drill(gs, g, add)
	if gs.Paused {
		why := ""
		if gs.PauseReason != "" {
			why = " (" + gs.PauseReason + ")"
		}
		add(ReadinessReason{Kind: "pause", Severity: AtRisk,
			Message: fmt.Sprintf("%s is paused by %s since %s%s: it does not fail over by itself", g.Name, gs.PausedBy, gs.PausedAt.UTC().Format(time.RFC3339), why),
			Fix:     "siteflip resume " + g.Name})
	}
	concerned := append(slices.Clip(g.Sites), j.witness...)
	j.certificates(concerned, add)
	for _, c := range j.clocks {
		if slices.Contains(concerned, c.a) && slices.Contains(concerned, c.b) {
			add(ReadinessReason{Kind: "clock", Severity: AtRisk,
				Message: fmt.Sprintf("the clocks of %s and %s differ by %s (%s is %s): leases and lag measurements are read on both",
					c.a, c.b, offsetWords(c.offsetMs), c.b, aheadBehind(c.offsetMs)),
				Fix: fmt.Sprintf("synchronise both clocks with NTP (timedatectl status, chronyc tracking at %s and %s)", c.a, c.b)})
		}
	}
	j.checks(g, concerned, add)
	slices.SortStableFunc(rs, func(a, b ReadinessReason) int { return severityRank(a.Severity) - severityRank(b.Severity) })
	r := Readiness{Verdict: Ready, Reasons: rs}
	if r.Reasons == nil {
		r.Reasons = []ReadinessReason{}
	}
	for _, x := range rs {
		if x.Severity != SeverityNote && severityRank(x.Severity) < severityRank(r.Verdict) {
			r.Verdict = x.Severity
		}
	}
	return r
}

// severityRank orders severities, the worst first.
func severityRank(s string) int {
	switch s {
	case NotReady:
		return 0
	case AtRisk:
		return 1
	case Ready:
		return 3
	}
	return 2 // SeverityNote
}

// protection judges the group's state: one a failover cannot start from
// is not ready; a run in progress is at risk until it ends.
func (j *judge) protection(gs GroupStatus, add func(ReadinessReason)) {
	r := ReadinessReason{Kind: "protection", Severity: NotReady}
	switch gs.State {
	case StateProtected:
		if gs.Run == "" {
			return
		}
		r.Severity = AtRisk
	case StateSwitchingOver, StateFailingOver, StateFailingBack, StateReprotecting:
		r.Severity = AtRisk
	}
	if r.Severity == AtRisk {
		r.Message = fmt.Sprintf("run %s is in progress on %s (%s): another failover waits until it ends", gs.Run, gs.Name, strings.ReplaceAll(gs.State, "-", " "))
		r.Fix = "siteflip run " + gs.Run
		add(r)
		return
	}
	r.Message = fmt.Sprintf("%s is %s", gs.Name, stateWords[gs.State])
	if stateWords[gs.State] == "" {
		r.Message = fmt.Sprintf("%s is %s", gs.Name, strings.ReplaceAll(gs.State, "-", " "))
	}
	// The group's first problem says why, and the first command among its
	// problems is what fixes it; a decision waiting names its own.
	// Problems that do not make the state (a pause, drills) are reasons
	// of their own.
	issues := slices.DeleteFunc(slices.Clone(gs.Issues), func(p Problem) bool {
		return p.Kind == KindPaused || p.Kind == KindUnproven || p.Kind == KindDrillLeftovers || p.Kind == KindAwaitingApproval
	})
	if d := gs.Decision; gs.State == StateNeedsDecision && d != nil {
		r.Message += fmt.Sprintf(": %s is lost and %s does not fail over by itself: %s", d.Site, gs.Name, d.Reason)
		r.Fix, r.Site = d.Command, d.Site
	} else if len(issues) > 0 {
		r.Message += ": " + issues[0].Message
		r.Site = issues[0].Site
	}
	for _, p := range issues {
		if r.Fix != "" {
			break
		}
		if p.Command != "" {
			r.Fix = p.Command
			if p.On != "" {
				r.Fix = "at " + p.On + ": " + p.Command
			}
		}
	}
	if r.Fix == "" {
		switch gs.State {
		case StateUnprotected, StateSplitBrain:
			r.Fix = reprotectCommand(gs.Name)
		case StateInitializing:
			r.Fix = "make one site primary for all of the group's data: the controller then adopts it"
		default:
			r.Fix = "siteflip status -v shows the raw errors behind the group's problems"
		}
	}
	add(r)
}

// stateWords are the states a failover cannot start from, as a reason
// says them.
var stateWords = map[string]string{
	StateInitializing:  "not adopted by a controller yet",
	StateUnprotected:   "unprotected",
	StateUnreachable:   "unreachable at its active site",
	StateDown:          "down at its active site",
	StateSplitBrain:    "in split-brain",
	StateNeedsDecision: "waiting for a person's decision",
}

// lag judges each standby of the group's data: one a failover would not
// trust is not ready; one whose bound passed half of max_data_loss is at
// risk.
func (j *judge) lag(gs GroupStatus, g *config.Group, add func(ReadinessReason)) {
	if gs.ActiveSite == "" {
		return // not adopted: protection says so
	}
	maxLoss := g.MaxDataLoss.D()
	for _, res := range gs.Resources {
		for _, s := range res.Sites {
			if s.FailoverReady == nil {
				continue
			}
			r := ReadinessReason{Kind: "lag", Site: s.Site}
			if !*s.FailoverReady {
				r.Severity = NotReady
				_, err := JudgeLag(s.LastKnownLag, gs.Epoch, maxLoss, j.t.Coordination.ServeLease.D())
				why := "its lag is not trusted"
				if err != nil {
					why = err.Error()
				}
				r.Message = fmt.Sprintf("a failover of %s to %s would not go ahead now: %s", res.Name, s.Site, why)
				r.Fix = reprotectCommand(g.Name)
				if errors.Is(err, ErrLagTooFar) {
					r.Fix = fmt.Sprintf("find why %s at %s falls behind (write load, the link from %s), or raise max_data_loss of %s", res.Name, s.Site, gs.ActiveSite, g.Name)
				}
				add(r)
				continue
			}
			bound, _ := time.ParseDuration(s.FailoverBound)
			if s.LagSeconds != nil {
				bound = max(bound, time.Duration(*s.LagSeconds*float64(time.Second)))
			}
			if maxLoss > 0 && bound > maxLoss/2 {
				r.Severity = AtRisk
				r.Message = fmt.Sprintf("a failover of %s to %s may lose up to %s, more than half of max_data_loss %s", res.Name, s.Site, bound.Round(time.Millisecond), maxLoss)
				r.Fix = fmt.Sprintf("find why %s at %s falls behind (write load, the link from %s), or raise max_data_loss of %s", res.Name, s.Site, gs.ActiveSite, g.Name)
				add(r)
			}
		}
	}
}

// synchronous judges the synchronous resources: degraded in this epoch,
// a commit may be acknowledged that the standby does not hold.
func synchronous(gs GroupStatus, add func(ReadinessReason)) {
	for _, res := range gs.Resources {
		sr := res.Synchronous
		if sr == nil || sr.Epoch != gs.Epoch || sr.State != SyncDegraded {
			continue
		}
		why := ""
		if sr.Reason != "" {
			why = " (" + sr.Reason + ")"
		}
		at := "its standby"
		if sr.Standby != "" {
			at = "the standby at " + sr.Standby
		}
		add(ReadinessReason{Kind: "synchronous", Severity: AtRisk, Site: sr.Standby,
			Message: fmt.Sprintf("%s is synchronous but degraded since %s%s: commits do not wait for %s", res.Name, sr.Since.UTC().Format(time.RFC3339), why, at),
			Fix:     fmt.Sprintf("bring %s back to streaming; siteflip makes it synchronous again by itself (siteflip reprotect %s if it does not stream)", at, gs.Name)})
	}
}

// dependencies judges the group's outside services from each of its
// sites: unreachable from a standby site, a critical one is not ready.
func dependencies(gs GroupStatus, add func(ReadinessReason)) {
	for _, d := range gs.Dependencies {
		what := cmp.Or(d.Target, d.Type)
		r := ReadinessReason{Kind: "dependency", Severity: AtRisk, Site: d.Site}
		switch {
		case !d.Known:
			r.Message = fmt.Sprintf("%s (%s) is not probed from %s: its agent publishes no result", d.Name, what, d.Site)
			r.Fix = fmt.Sprintf("check that siteflip's agent at %s runs and reports (siteflip status), at a version that probes dependencies", d.Site)
		case !d.Reachable:
			why := ""
			if d.Error != "" {
				why = ": " + d.Error
			}
			r.Message = fmt.Sprintf("%s (%s) is unreachable from %s%s", d.Name, what, d.Site, why)
			if !d.Since.IsZero() {
				r.Message += fmt.Sprintf(" (since %s)", d.Since.UTC().Format(time.RFC3339))
			}
			if d.Critical && d.Site != gs.ActiveSite {
				r.Severity = NotReady
				r.Message += "; it is critical: " + gs.Name + " cannot run there"
			}
			r.Fix = fmt.Sprintf("start %s where %s reaches it (%s), or open the way from %s to it", d.Name, d.Site, what, d.Site)
		default:
			continue
		}
		add(r)
	}
}

// drill judges the group's drills, when it has a schedule or a record.
func (j *judge) drill(gs GroupStatus, g *config.Group, add func(ReadinessReason)) {
	rec, known := j.snap.Drills[g.Name]
	s := g.Drill
	if s == nil && !known {
		return
	}
	fix := "siteflip drill " + g.Name
	if last := rec.Last; last != nil && !last.Succeeded() {
		why := ""
		if last.Error != "" {
			why = ": " + last.Error
		}
		add(ReadinessReason{Kind: "drill", Severity: AtRisk, Site: last.Site,
			Message: fmt.Sprintf("the last drill of %s, run %s at %s, %s%s", g.Name, last.Run, last.Site, last.Result, why),
			Fix:     fmt.Sprintf("see what failed (siteflip run %s), fix it, then %s", last.Run, fix)})
	}
	success := rec.LastSuccessStarted()
	maxAge, rule := DrillReadiness, "90 days without a drill schedule"
	if s != nil {
		maxAge = s.MaxAge.D()
		if maxAge == 0 {
			maxAge = 2 * s.Every.D()
		}
		rule = fmt.Sprintf("the schedule's max_age %s", approx(maxAge))
	}
	switch age := j.now.Sub(success); {
	case success.IsZero() && s != nil:
		add(ReadinessReason{Kind: "drill", Severity: AtRisk,
			Message: fmt.Sprintf("%s has a drill schedule (every %s) and no successful drill on record", g.Name, approx(s.Every.D())), Fix: fix})
	case !success.IsZero() && age > maxAge:
		add(ReadinessReason{Kind: "drill", Severity: AtRisk,
			Message: fmt.Sprintf("the last successful drill of %s started %s ago, more than %s", g.Name, approx(age.Round(time.Minute)), rule), Fix: fix})
	}
}

// certificates judges the certificates of the locations in names: one
// expired is refused by the others.
func (j *judge) certificates(names []string, add func(ReadinessReason)) {
	for _, n := range names {
		na := j.sites[n].CertNotAfter
		if na.IsZero() {
			continue
		}
		r := ReadinessReason{Kind: "certificate", Site: n, Fix: "siteflip cert renew " + n}
		switch left := na.Sub(j.now); {
		case left <= 0:
			r.Severity = NotReady
			r.Message = fmt.Sprintf("%s's certificate expired on %s: the other locations refuse its agent", n, na.UTC().Format(time.DateOnly))
		case left < CertReadiness:
			r.Severity = AtRisk
			r.Message = fmt.Sprintf("%s's certificate expires in %s (%s)", n, daysLeft(left), na.UTC().Format(time.DateOnly))
		default:
			continue
		}
		add(r)
	}
}

// checks lists the topology's lint warnings about the group, or about the
// installation and locations of concern to it; geography ones as notes.
func (j *judge) checks(g *config.Group, concerned []string, add func(ReadinessReason)) {
	warn := func(w config.Problem) {
		r := ReadinessReason{Kind: "check", Severity: AtRisk, Message: w.Msg,
			Fix: fmt.Sprintf("change %s as `siteflip check` says", w.Field)}
		if w.Field == "" {
			r.Fix = "change the topology as `siteflip check` says"
		}
		if len(w.Sites) == 1 {
			r.Site = w.Sites[0]
		}
		if w.Kind == config.KindGeography {
			r.Kind, r.Severity = "geography", SeverityNote
			r.Fix = "place the sites further apart (siteflip check, siteflip whatif)"
		}
		add(r)
	}
	for _, w := range j.warnings[g.Name] {
		warn(w)
	}
	for _, w := range j.warnings[""] {
		if len(w.Sites) == 0 || slices.ContainsFunc(w.Sites, func(s string) bool { return slices.Contains(concerned, s) }) {
			warn(w)
		}
	}
}

// offsetWords writes a clock offset in milliseconds as a person reads it.
func offsetWords(ms float64) string {
	return (time.Duration(math.Abs(ms)) * time.Millisecond).Round(time.Millisecond).String()
}

func aheadBehind(ms float64) string {
	if ms < 0 {
		return "behind"
	}
	return "ahead"
}

// dependencyStatus is each dependency of group g, in the order of the
// file, at each site of the group, in its order: what the site's view
// says of it, when the view is there, believed (believe), and has it.
func dependencyStatus(g *config.Group, snap Snapshot, believe func(string, View) bool) []DependencyStatus {
	if len(g.Requires) == 0 {
		return nil
	}
	out := make([]DependencyStatus, 0, len(g.Requires)*len(g.Sites))
	for _, d := range g.Requires {
		key := g.Name + "/" + d.Name
		for _, site := range g.Sites {
			ds := DependencyStatus{Name: d.Name, Type: d.Type, Site: site, Critical: d.Critical, Target: dependencyTarget(d.Type, d.Sites[site])}
			v, ok := snap.Views[site]
			if dv, has := v.Dependencies[key]; ok && has && believe(site, v) {
				ds.Known, ds.Reachable, ds.Error, ds.CheckedAt, ds.Since = true, dv.Reachable, dv.Error, dv.CheckedAt, dv.Since
				if dv.Target != "" {
					ds.Target = dv.Target
				}
			}
			out = append(out, ds)
		}
	}
	return out
}

// dependencyTarget is where a site reaches a dependency of type typ, as
// the file says it and as its probe writes it (depprobe.Result.Target),
// for when the site has not probed it: never a DSN, which may hold a
// password.
func dependencyTarget(typ string, s config.DependencySite) string {
	switch typ {
	case config.DependencyHTTP:
		return "GET " + s.URL
	case config.DependencyDNS:
		return fmt.Sprintf("dns %s %s @ %s", dns.Fqdn(s.Query), cmp.Or(s.QType, "A"), s.Address)
	case config.DependencySQL:
		if s.DSNEnv != "" {
			return s.Engine + " $" + s.DSNEnv
		}
		return s.Engine
	}
	return "tcp " + s.Address
}
