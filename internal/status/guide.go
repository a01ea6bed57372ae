package status

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
)

// Problem is one thing that keeps a group or the installation from being as
// it should, said in an operator's words, with the command that fixes it.
// Status keeps each problem twice: as a Problem (Issues) for programs, and
// as its Line (Problems) for people and for readers built before Issues.
type Problem struct {
	// Kind names the problem for programs (one of the Kind constants);
	// its wording may change, its kind does not.
	Kind     string `json:"kind"`
	Site     string `json:"site,omitempty"`
	Resource string `json:"resource,omitempty"`
	Message  string `json:"message"`
	// Command is what fixes it, ready to run; "" when no one command does
	// (Message then says what to do). On names the location to run it at
	// when it must run there; "" means wherever siteflip is configured.
	Command string `json:"command,omitempty"`
	On      string `json:"on,omitempty"`
	// Detail is the raw error behind it, as a driver or an agent said it.
	Detail string `json:"detail,omitempty"`
}

// Kinds of problems.
const (
	KindSplitBrain       = "split_brain"        // more than one site claims the primary role
	KindTrafficMoving    = "traffic_moving"     // a run moves the clients: the old site still sends them to itself
	KindRunsTwice        = "runs_twice"         // a service runs at more than one site
	KindActiveUnknown    = "active_unknown"     // the active site's resource is not observed
	KindActiveNotServing = "active_not_serving" // the active site's resource does not serve
	KindStrayPrimary     = "stray_primary"      // a site other than the active one serves
	KindStandbyUnknown   = "standby_unknown"    // a standby site's resource is not observed
	KindStandbyNotReady  = "standby_not_ready"  // a standby is down, or not streaming
	KindLagUnknown       = "lag_unknown"        // a failover would not trust the standby's lag
	KindLagTooFar        = "lag_over_max"       // the standby is further behind than max_data_loss
	KindNotAdopted       = "not_adopted"        // no controller has adopted the group yet
	KindNeedsDecision    = "needs_decision"     // the active site is lost; a person decides
	KindAwaitingApproval = "awaiting_approval"  // a run waits at an approval step
	KindDrillLeftovers   = "drill_leftovers"    // a drill left something its agent could not remove
	KindUnproven         = "unproven"           // no recent successful drill
	KindForced           = "forced"             // a location runs the control plane alone
	KindAgentDown        = "agent_not_reporting"
	KindSiteUnseen       = "site_unseen"      // a reporting location does not reach another's agent
	KindSiteLost         = "site_lost"        // every other location declared the site lost
	KindCertExpiring     = "cert_expiring"    // a location's certificate expires within CertWarning
	KindVersionMismatch  = "version_mismatch" // the agents do not all run the same build
	KindLastRunFailed    = "last_run_failed"  // the group's last run failed
	KindPaused           = "paused"           // a person paused the group: no automatic failover
)

// CertWarning is how long before its certificate expires a location is
// shown as a problem.
const CertWarning = 30 * 24 * time.Hour

// Line is the problem as one line: its message, then the command that
// fixes it.
func (p Problem) Line() string {
	switch {
	case p.Command == "":
		return p.Message
	case p.On != "":
		return p.Message + "; run at " + p.On + ": " + p.Command
	}
	return p.Message + "; run: " + p.Command
}

// note adds p to the group's problems.
func (gs *GroupStatus) note(p Problem) {
	gs.Issues = append(gs.Issues, p)
	gs.Problems = append(gs.Problems, p.Line())
}

// note adds p to the installation's problems.
func (st *Status) note(p Problem) {
	st.Issues = append(st.Issues, p)
	st.Problems = append(st.Problems, p.Line())
}

// siteProblems are what is wrong with the locations themselves, whatever
// their groups: an agent that does not report or that another does not
// reach, a site declared lost, a certificate about to expire, agents of
// different builds. It reads only the assembled sites.
func siteProblems(sites []SiteStatus, now time.Time) []Problem {
	var out []Problem
	for _, s := range sites {
		switch {
		case s.Lost:
			out = append(out, Problem{Kind: KindSiteLost, Site: s.Name,
				Message: fmt.Sprintf("%s is lost: every other location declared it lost (%s), and its primaries fenced themselves", s.Name, strings.Join(s.LostBy, ", "))})
		case !s.Reporting:
			out = append(out, Problem{Kind: KindAgentDown, Site: s.Name,
				Message: fmt.Sprintf("%s's agent is not reporting: start it there, or bring the machine back", s.Name),
				Command: "systemctl start siteflip", On: s.Name})
		case len(s.UnseenBy) > 0:
			out = append(out, Problem{Kind: KindSiteUnseen, Site: s.Name,
				Message: fmt.Sprintf("%s's agent reports, but %s cannot reach it: check the network and firewall between them (its agent and lease ports)", s.Name, strings.Join(s.UnseenBy, ", "))})
		}
		if s.CertNotAfter.IsZero() {
			continue
		}
		switch left := s.CertNotAfter.Sub(now); {
		case left <= 0:
			out = append(out, Problem{Kind: KindCertExpiring, Site: s.Name,
				Message: fmt.Sprintf("%s's certificate expired on %s: the others refuse its agent", s.Name, s.CertNotAfter.UTC().Format(time.DateOnly)),
				Command: "siteflip cert renew " + s.Name})
		case left < CertWarning:
			out = append(out, Problem{Kind: KindCertExpiring, Site: s.Name,
				Message: fmt.Sprintf("%s's certificate expires in %s (%s)", s.Name, daysLeft(left), s.CertNotAfter.UTC().Format(time.DateOnly)),
				Command: "siteflip cert renew " + s.Name})
		}
	}
	if p, ok := versionProblem(sites); ok {
		out = append(out, p)
	}
	return out
}

// daysLeft writes how long is left as a person counts it.
func daysLeft(d time.Duration) string {
	if n := int(d / (24 * time.Hour)); n != 1 {
		return fmt.Sprintf("%d days", n)
	}
	return "1 day"
}

// versionProblem says, when the reporting agents run different builds,
// which runs which: an upgrade was started and not finished.
func versionProblem(sites []SiteStatus) (Problem, bool) {
	at := map[string][]string{}
	for _, s := range sites {
		if s.Reporting && s.Version != "" {
			at[s.Version] = append(at[s.Version], s.Name)
		}
	}
	if len(at) < 2 {
		return Problem{}, false
	}
	var parts []string
	for _, v := range slices.Sorted(maps.Keys(at)) {
		parts = append(parts, fmt.Sprintf("%s at %s", v, strings.Join(at[v], ", ")))
	}
	return Problem{Kind: KindVersionMismatch,
		Message: "the agents run different versions (" + strings.Join(parts, "; ") + "): finish the upgrade, one location at a time (docs/deploy.md)"}, true
}

// Phase is what a run in progress is doing to its group, as status shows
// it in place of the state its steps pass through.
type Phase struct {
	Run    string `json:"run"`
	Action string `json:"action"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
}

// RunPlan is what status knows of a run in progress: its action and
// direction, read from the run's record.
type RunPlan struct {
	Action string
	From   string
	To     string
}

// runState is the group state while a run of action holds it: the run's
// phase, so that a switchover does not show the group down while its old
// primary is fenced and the new one not yet promoted.
func runState(action string) string {
	switch action {
	case "switchover":
		return StateSwitchingOver
	case "failback":
		return StateFailingBack
	case "reprotect":
		return StateReprotecting
	case "failover":
		return StateFailingOver
	}
	return ""
}

// runAction reads the action from a run ID (TIME-GROUP-ACTION-RANDOM, as
// the agent makes them), for a run whose record was not read.
func runAction(id string) string {
	parts := strings.Split(id, "-")
	if len(parts) < 4 {
		return ""
	}
	return parts[len(parts)-2]
}

// reprotectCommand is what brings every site other than the active one
// back as a standby.
func reprotectCommand(group string) string { return "siteflip reprotect " + group }

// siteProblem is what is wrong with resource r of group g at one site, if
// anything. A resource's raw error (a driver's words) goes in Detail; the
// message says what it means for the group.
func siteProblem(g *config.Group, r config.Resource, gs GroupStatus, rss ResourceSiteStatus, adopted bool, primaries []string) (Problem, bool) {
	if !adopted {
		return Problem{}, false
	}
	traffic := r.Class == config.ClassTraffic
	service := r.Class == config.ClassService
	active := rss.Site == gs.ActiveSite
	p := Problem{Site: rss.Site, Resource: r.Name}
	// Without an observation the error is status's own explanation, in
	// words already; with one, it is the driver's.
	why := rss.Error
	if rss.Observed {
		why, p.Detail = "", rss.Error
	}
	switch {
	case active && rss.Role == RoleUnknown:
		p.Kind = KindActiveUnknown
		if why == "" {
			why = "its agent gets no answer from it"
		}
		p.Message = fmt.Sprintf("%s at active site %s: state unknown, %s; if its clients still reach it, it may still accept writes", r.Name, rss.Site, why)
	case active && rss.Role != RolePrimary && traffic:
		p.Kind = KindActiveNotServing
		p.Message = fmt.Sprintf("%s at active site %s does not send the clients there", r.Name, rss.Site)
	case active && rss.Role != RolePrimary && service:
		p.Kind = KindActiveNotServing
		what := "does not run"
		if rss.Role == RoleDown {
			what = "runs but is unhealthy"
		}
		p.Message = fmt.Sprintf("%s at active site %s %s", r.Name, rss.Site, what)
	case active && rss.Role == RoleDown:
		p.Kind = KindActiveNotServing
		p.Message = fmt.Sprintf("%s at active site %s is down: no database server runs there; start it, or fail the group over", r.Name, rss.Site)
		p.Command = "siteflip failover " + g.Name
	case active && rss.Role != RolePrimary:
		p.Kind = KindActiveNotServing
		p.Message = fmt.Sprintf("%s at active site %s is %s, not primary; the group's last run says why", r.Name, rss.Site, rss.Role)
		p.Command = "siteflip runs " + g.Name
	case !active && rss.Role == RolePrimary:
		// With the active site primary too, this is split-brain.
		if slices.Contains(primaries, gs.ActiveSite) {
			return Problem{}, false
		}
		p.Kind = KindStrayPrimary
		what := "is primary"
		switch {
		case traffic:
			what = "sends the clients there"
		case service:
			what = "runs"
		}
		p.Message = fmt.Sprintf("%s at %s %s but the group's active site is %s", r.Name, rss.Site, what, gs.ActiveSite)
		p.Command = reprotectCommand(g.Name)
	case !active && rss.Role == RoleUnknown:
		p.Kind = KindStandbyUnknown
		if why == "" {
			why = "its agent gets no answer from it"
		}
		p.Message = fmt.Sprintf("%s at %s: state unknown, %s", r.Name, rss.Site, why)
		if why == errNotReporting {
			p.Command, p.On = "systemctl start siteflip", rss.Site
		}
	case !active && !(rss.Role == RoleStandby && rss.Streaming):
		p.Kind = KindStandbyNotReady
		switch {
		case traffic:
			// A route or a name not ready: its session or server, not
			// the group, needs fixing; Detail says which.
			p.Message = fmt.Sprintf("%s at %s is not ready to take the clients", r.Name, rss.Site)
		case service:
			p.Message = fmt.Sprintf("%s at %s is not ready to start", r.Name, rss.Site)
			p.Command = reprotectCommand(g.Name)
		case rss.Role == RoleStandby:
			p.Message = fmt.Sprintf("%s at %s is a standby that is not streaming", r.Name, rss.Site)
			p.Command = reprotectCommand(g.Name)
		case rss.Role == RoleDown:
			p.Message = fmt.Sprintf("%s at %s is down: it is no standby of %s", r.Name, rss.Site, gs.ActiveSite)
			p.Command = reprotectCommand(g.Name)
		default:
			p.Message = fmt.Sprintf("%s at %s is %s", r.Name, rss.Site, rss.Role)
			p.Command = reprotectCommand(g.Name)
		}
	default:
		return Problem{}, false
	}
	return p, true
}

// errNotReporting is why a site's resource is unknown when its agent
// publishes no view.
const errNotReporting = "the site's agent is not reporting"

// lagProblem says why a failover to a healthy-looking standby would not
// go ahead now; err is JudgeLag's.
func lagProblem(group, resource, site string, err error) Problem {
	p := Problem{Kind: KindLagUnknown, Site: site, Resource: resource, Detail: err.Error()}
	switch {
	case errors.Is(err, ErrLagTooFar):
		p.Kind = KindLagTooFar
		p.Message = fmt.Sprintf("%s at %s is further behind than max_data_loss: a failover there would not go ahead now; lighten the write load or raise max_data_loss", resource, site)
	case strings.Contains(err.Error(), "not streaming"):
		p.Message = fmt.Sprintf("%s at %s was not streaming when its primary last saw it: a failover there would not go ahead now", resource, site)
		p.Command = reprotectCommand(group)
	default:
		p.Message = fmt.Sprintf("%s at %s: a failover there would not go ahead now: its lag in this epoch is not measured yet (it is, seconds after a reprotect or a switchover)", resource, site)
	}
	return p
}

// phase is what the run in progress does to group g: from its record
// when status read it, or else from its ID and the group.
func phase(g *config.Group, gs GroupStatus, snap Snapshot) *Phase {
	p := &Phase{Run: gs.Run}
	if rp, ok := snap.RunPlans[g.Name]; ok {
		p.Action, p.From, p.To = rp.Action, rp.From, rp.To
		return p
	}
	p.Action, p.From = runAction(gs.Run), gs.ActiveSite
	switch {
	case p.Action == "failback":
		p.To = g.PreferredSite
	case p.Action == "reprotect":
		p.To = gs.ActiveSite
	case len(g.Sites) == 2:
		for _, s := range g.Sites {
			if s != gs.ActiveSite {
				p.To = s
			}
		}
	}
	return p
}

// lastRunProblem is the group's last run, when it failed and no run has
// ended since: what was left half done is in its steps.
func lastRunProblem(lr LastRun, running string) (Problem, bool) {
	if running != "" || lr.State != "failed" {
		return Problem{}, false
	}
	msg := fmt.Sprintf("the last %s, run %s, failed at %s", lr.Action, lr.ID, lr.Ended.UTC().Format(time.RFC3339))
	if lr.Error != "" {
		msg += ": " + lr.Error
	}
	return Problem{Kind: KindLastRunFailed, Message: msg + "; its steps say what was left done and what not (`siteflip report " + lr.ID + "` for the whole story)",
		Command: "siteflip run " + lr.ID}, true
}
