package status

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
)

// Status is the assembled picture of an installation. Its JSON form is the
// stable output of `siteflip status -o json` and GET /v1/status, documented
// in docs/status.md: fields are added, never renamed or removed.
type Status struct {
	Installation string    `json:"installation"`
	AnsweredBy   string    `json:"answered_by"`
	Time         time.Time `json:"time"`
	Revision     int64     `json:"revision"`
	// Controller is the site of the elected controller, "" while none is.
	Controller     string `json:"controller"`
	ControllerTerm int64  `json:"controller_term"`
	// ControllerSince is when the controller won its election.
	ControllerSince time.Time `json:"controller_since,omitzero"`
	// RaftLeader is the location whose etcd member leads the raft cluster,
	// as the answering location's view says; normally the witness
	// (docs/design/control-plane.md).
	RaftLeader string        `json:"raft_leader,omitempty"`
	Sites      []SiteStatus  `json:"sites"`
	Groups     []GroupStatus `json:"groups"`
	// Problems are what is wrong with the locations themselves (an agent
	// not reporting, a certificate about to expire, agents of different
	// versions), one line each ending with the command that fixes it;
	// Issues are the same problems for programs.
	Problems []string  `json:"problems,omitempty"`
	Issues   []Problem `json:"issues,omitempty"`
}

// Site returns the status of the location named name.
func (st Status) Site(name string) (SiteStatus, bool) {
	for _, s := range st.Sites {
		if s.Name == name {
			return s, true
		}
	}
	return SiteStatus{}, false
}

// SiteStatus is one location and how the others see it.
type SiteStatus struct {
	Name      string  `json:"name"`
	Role      string  `json:"role"`
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	// Up is the verdict of the other reporting locations: up when more of
	// them reach its agent than do not; with no other reporter, up when it
	// reports itself.
	Up bool `json:"up"`
	// Reporting says the location's own view is published (its agent holds
	// a live lease in the control plane).
	Reporting bool `json:"reporting"`
	// RaftLeader is the location whose etcd member this location's member
	// knows as the raft leader, as its own view says.
	RaftLeader string   `json:"raft_leader,omitempty"`
	SeenBy     []string `json:"seen_by"`
	UnseenBy   []string `json:"unseen_by"`
	// Sees is this location's own row of the matrix: which other locations
	// its agent reaches. Empty when it is not reporting.
	Sees map[string]bool `json:"sees"`
	// LostBy lists the locations that declared this one lost (its serve
	// lease ran out from where they stand); Lost says every other did.
	LostBy []string `json:"lost_by"`
	Lost   bool     `json:"lost"`
	// Version is the build its agent runs, as its own view says (absent
	// when it is not reporting).
	Version string `json:"version,omitempty"`
	// CertNotAfter is when the certificate its agent serves with expires
	// (absent without TLS, when not reporting, or from an older agent).
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
}

// Group states.
const (
	StateInitializing = "initializing" // no record yet: the controller has not adopted the group
	// StateProtected: the primary serves at the active site, every standby
	// streams, and a failover would go ahead now within max_data_loss.
	StateProtected   = "protected"
	StateUnprotected = "unprotected" // primary serving, some standby missing or not streaming
	StateUnreachable = "unreachable" // the active site is unreachable: whether it serves is unknown
	StateDown        = "down"        // the active site reports that its primary is not serving
	StateSplitBrain  = "split-brain" // more than one site claims the primary role
	// StateNeedsDecision: the active site is lost and the group does not
	// fail over by itself (manual policy, or not safe): Decision says why
	// and what a person can run.
	StateNeedsDecision = "needs-decision"
	// StateFailingOver: a failover runs (the active site is lost, or a
	// person asked for it).
	StateFailingOver = "failing-over"
	// While a run holds the group, its state is the run's phase: the
	// steps it passes through (the old primary fenced before the new one
	// is promoted) are not the group being down.
	StateSwitchingOver = "switching-over"
	StateFailingBack   = "failing-back"
	StateReprotecting  = "reprotecting"
)

// GroupStatus is one protection group.
type GroupStatus struct {
	Name          string   `json:"name"`
	PreferredSite string   `json:"preferred_site"`
	ActiveSite    string   `json:"active_site"`
	Epoch         int64    `json:"epoch"`
	State         string   `json:"state"`
	Policy        string   `json:"policy"`
	MaxDataLoss   string   `json:"max_data_loss"`
	RTOTarget     string   `json:"rto_target"`
	Problems      []string `json:"problems"`
	// Issues are the problems for programs: each one's kind, where, the
	// command that fixes it and the raw error behind it.
	Issues []Problem `json:"issues,omitempty"`
	// Phase is what the run in progress does to the group (absent when
	// none runs); State is then that phase.
	Phase *Phase `json:"phase,omitempty"`
	// Labels are the group's labels from the topology.
	Labels map[string]string `json:"labels,omitempty"`
	// Run is the ID of the run in progress on the group, if any.
	Run string `json:"run,omitempty"`
	// Drill is the ID of the drill in progress on the group, if any.
	Drill string `json:"drill,omitempty"`
	// Decision is set while the group waits for a person.
	Decision *Decision `json:"decision,omitempty"`
	// Awaiting is set while the group's run waits for an approval.
	Awaiting *Awaiting `json:"awaiting,omitempty"`
	// Paused says a person paused the group's automatic actions
	// (`siteflip pause`): no automatic failover and no scheduled drill
	// starts until `siteflip resume`; a person's runs still do, and a run
	// in progress when the pause was taken goes on. PausedBy, PausedAt
	// and PauseReason say who, when and why.
	Paused      bool      `json:"paused"`
	PausedBy    string    `json:"paused_by,omitempty"`
	PausedAt    time.Time `json:"paused_at,omitzero"`
	PauseReason string    `json:"pause_reason,omitempty"`
	// ScheduledSwitchover is the switchover a person scheduled for later
	// (`siteflip switchover GROUP --to SITE --at TIME`), absent when none.
	ScheduledSwitchover *ScheduledSwitchover `json:"scheduled_switchover,omitempty"`
	// Drills is the group's drill schedule, its last drill and its next;
	// absent when it has neither schedule nor drill on record.
	Drills    *DrillStatus     `json:"drills,omitempty"`
	Resources []ResourceStatus `json:"resources"`
	// Dependencies are the group's outside services, as each of its
	// sites last probed them, in the order of the file and of its sites.
	Dependencies []DependencyStatus `json:"dependencies,omitempty"`
	// Readiness is the group's verdict on failing over now.
	Readiness *Readiness `json:"readiness,omitempty"`
}

// ResourceStatus is one resource of a group at every site of the group.
type ResourceStatus struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Class is what the resource is for (config.Class): "data" has a
	// primary and standbys; "traffic" sends the clients to one site
	// (role primary: clients are sent there; a standby that is streaming
	// is ready to take them).
	Class string `json:"class"`
	// Synchronous is the replication mode recorded for a synchronous
	// resource (any epoch: compare its epoch with the group's).
	Synchronous *SyncRecord          `json:"synchronous,omitempty"`
	Sites       []ResourceSiteStatus `json:"sites"`
}

// ResourceSiteStatus is one resource at one site. LagBytes and LagSeconds
// are set for a standby whose primary reports it, and null otherwise.
type ResourceSiteStatus struct {
	Site     string `json:"site"`
	Observed bool   `json:"observed"`
	Up       bool   `json:"up"`
	Role     string `json:"role"`
	Timeline int64  `json:"timeline,omitempty"`
	// Position is what a standby reports of how far its data goes
	// (ResourceView.Position).
	Position  string `json:"position,omitempty"`
	Streaming bool   `json:"streaming"`
	// Target is, for a traffic resource, where it sends the clients from
	// this site (ResourceView.Target).
	Target     string   `json:"target,omitempty"`
	LagBytes   *int64   `json:"lag_bytes"`
	LagSeconds *float64 `json:"lag_seconds"`
	// LagUnknown says, for a standby of a resource that holds data, why
	// no current lag is shown: its primary is not observed serving now
	// (dead, unreachable, not reporting). LastKnownLag is then what was
	// last measured, and when.
	LagUnknown string `json:"lag_unknown,omitempty"`
	// SenderState is the state the primary reports for this standby
	// (pg_stat_replication.state: streaming, catchup, …); empty when the
	// primary does not list it.
	SenderState string `json:"sender_state,omitempty"`
	// LastKnownLag is the lag the controller last recorded for this
	// standby: what a failover would lose, still known when the primary's
	// site is gone.
	LastKnownLag *Lag `json:"last_known_lag,omitempty"`
	// FailoverReady says, for a standby that holds data, whether a
	// failover to it would go ahead now within max_data_loss (JudgeLag,
	// or a synchronous record of this epoch); FailoverBound is the most it
	// may lose when that comes from the lag.
	FailoverReady *bool  `json:"failover_ready,omitempty"`
	FailoverBound string `json:"failover_bound,omitempty"`
	Error         string `json:"error,omitempty"`
}

// Assemble builds the Status of topology t from a snapshot of the control
// plane, as answered by the location answeredBy at time now.
func Assemble(t *config.Topology, snap Snapshot, answeredBy string, now time.Time) Status {
	return assemble(t, snap, answeredBy, now, nil)
}

// AssembleGroup is Assemble with the status of group g alone among the
// groups: what a request about one group needs, without the work of
// every group's status (a thousand groups made each such request slow).
func AssembleGroup(t *config.Topology, g *config.Group, snap Snapshot, answeredBy string, now time.Time) Status {
	return assemble(t, snap, answeredBy, now, g)
}

// assemble builds the status of every group, or of only when set.
func assemble(t *config.Topology, snap Snapshot, answeredBy string, now time.Time, only *config.Group) Status {
	st := Status{
		Installation: t.Name,
		AnsweredBy:   answeredBy,
		Time:         now,
		Revision:     snap.Revision,
		Sites:        []SiteStatus{},
		Groups:       []GroupStatus{},
	}
	if c := snap.Controller; c != nil {
		st.Controller, st.ControllerTerm, st.ControllerSince = c.Site, c.Term, c.Since
	}
	if v, ok := snap.Views[answeredBy]; ok {
		st.RaftLeader = v.RaftLeader
	}
	down := map[string]bool{}
	for _, s := range t.Sites {
		ss := siteStatus(t, s, snap.Views)
		for _, o := range t.Sites {
			if _, ok := snap.Marks[s.Name][o.Name]; ok {
				ss.LostBy = append(ss.LostBy, o.Name)
			}
		}
		ss.Lost = snap.Lost(s.Name, t.SiteNames())
		st.Sites = append(st.Sites, ss)
		down[s.Name] = !ss.Up
	}
	for _, p := range siteProblems(st.Sites, now) {
		st.note(p)
	}
	// Views are republished every third of the lease TTL; one that missed
	// two publications is no longer being kept up to date.
	ttl := t.Coordination.LeaseTTL.D()
	if ttl == 0 {
		ttl = 3 * time.Second
	}
	fresh := func(v View) bool {
		age := now.Sub(v.PublishedAt)
		if snap.ViewAges != nil {
			// The reader's own measure: no other clock involved.
			a, ok := snap.ViewAges[v.Site]
			if !ok {
				return false
			}
			age = a
		}
		return age <= 2*ttl/3+250*time.Millisecond
	}
	// A site judged down is believed only from a view it published after
	// the others lost it (it still republishes: alive and connected to the
	// quorum); its last view from before, however recent, is the last word
	// of an agent that may be dead. A site judged up keeps its view
	// believed between publications, but only a view of the agent's
	// current run, as the others' probes tell it: one left by a run that has since ended (a power cut,
	// then the agent started again) says nothing of what the new run
	// found.
	believe := func(site string, v View) bool {
		if down[site] {
			return fresh(v) && publishedSinceLost(t, snap, site, v)
		}
		return currentRun(t, snap.Views, site, v)
	}
	// What readiness reads of the whole installation, once for every group.
	judging := newJudge(t, snap, st.Sites, now)
	for i := range t.Groups {
		g := &t.Groups[i]
		if only != nil && g.Name != only.Name {
			continue
		}
		live := func(site string) bool {
			v, ok := snap.Views[site]
			// Without the reader's own ages (tests), a believed view is
			// taken as current.
			return ok && !down[site] && (snap.ViewAges == nil || fresh(v))
		}
		gs := groupStatus(g, snap, down, believe, live, t.Coordination.ServeLease.D())
		drills(&gs, g, snap, now)
		scheduled(&gs, g, snap, now)
		gs.Dependencies = dependencyStatus(g, snap, believe)
		r := judging.group(gs, g)
		gs.Readiness = &r
		st.Groups = append(st.Groups, gs)
	}
	return st
}

// publishedSinceLost tells whether the reader saw v, site's view, change
// after every location that cannot reach site lost it. Each observer's
// time since it lost site is its own publication time less the moment it
// lost it, plus its view's age here: no two clocks are compared. Without
// ages (a reader that does not measure them) it says yes.
func publishedSinceLost(t *config.Topology, snap Snapshot, site string, v View) bool {
	if snap.ViewAges == nil {
		return true
	}
	age, ok := snap.ViewAges[site]
	if !ok {
		return false
	}
	for _, o := range t.Sites {
		ov, ok := snap.Views[o.Name]
		if o.Name == site || !ok {
			continue
		}
		p, ok := ov.Peers[site]
		if !ok || p.Reachable || p.Since.IsZero() {
			continue
		}
		if lostFor := ov.PublishedAt.Sub(p.Since) + snap.ViewAges[o.Name]; age >= lostFor {
			return false
		}
	}
	return true
}

// currentRun tells whether v, site's view, was published by the run of
// its agent that the other locations reach now: none of them that reaches
// it has had an answer from an agent started at another time.
func currentRun(t *config.Topology, views map[string]View, site string, v View) bool {
	for _, o := range t.Sites {
		ov, ok := views[o.Name]
		if o.Name == site || !ok {
			continue
		}
		p := ov.Peers[site]
		if p.Reachable && !p.Started.IsZero() && !p.Started.Equal(v.StartedAt) {
			return false
		}
	}
	return true
}

func siteStatus(t *config.Topology, s config.Site, views map[string]View) SiteStatus {
	ss := SiteStatus{
		Name: s.Name, Role: s.Role,
		Latitude: s.Location.Latitude, Longitude: s.Location.Longitude,
		SeenBy: []string{}, UnseenBy: []string{}, Sees: map[string]bool{}, LostBy: []string{},
	}
	own, reporting := views[s.Name]
	ss.Reporting = reporting
	if reporting {
		ss.RaftLeader = own.RaftLeader
		ss.Version, ss.CertNotAfter = own.Version, own.CertNotAfter
		for _, o := range t.Sites {
			if o.Name != s.Name {
				ss.Sees[o.Name] = own.Peers[o.Name].Reachable
			}
		}
	}
	for _, o := range t.Sites {
		v, ok := views[o.Name]
		if o.Name == s.Name || !ok {
			continue
		}
		if v.Peers[s.Name].Reachable {
			ss.SeenBy = append(ss.SeenBy, o.Name)
		} else {
			ss.UnseenBy = append(ss.UnseenBy, o.Name)
		}
	}
	switch seen, unseen := len(ss.SeenBy), len(ss.UnseenBy); {
	case seen > unseen:
		ss.Up = true
	case seen < unseen:
		ss.Up = false
	default:
		ss.Up = reporting
	}
	return ss
}

// groupStatus assembles one group. A site judged down keeps its lingering
// view until its lease expires; what that view says is believed only while
// the site still republishes it (fresh), since then the site is alive and
// connected to the quorum even if the other agents cannot reach it.
//
// live says whether a site's agent publishes now: a standby's lag is shown
// only from a primary observed serving at a site that does.
func groupStatus(g *config.Group, snap Snapshot, siteDown map[string]bool, believe func(string, View) bool, live func(string) bool, serveLease time.Duration) GroupStatus {
	gs := GroupStatus{
		Name: g.Name, PreferredSite: g.PreferredSite, Policy: g.Policy, Labels: g.Labels,
		MaxDataLoss: g.MaxDataLoss.D().String(), RTOTarget: g.RTOTarget.D().String(),
		Problems: []string{}, Resources: []ResourceStatus{},
	}
	gs.Run, gs.Drill = snap.Running[g.Name], snap.Drilling[g.Name]
	rec, adopted := snap.Records[g.Name]
	if adopted {
		gs.ActiveSite, gs.Epoch = rec.ActiveSite, rec.Epoch
	}
	var unreachable, down, unprotected, split bool
	var notReady []Problem
	// from is the site a run in progress moves the group from, once the
	// record names the site it moves to: until the old site's agent
	// follows the move (its rejoin step, or the run's end), that site's
	// own DNS server still answers with its own addresses (network.go in
	// the agent, followRecord). Unknown without the run's record.
	from := ""
	if rp, ok := snap.RunPlans[g.Name]; ok && adopted && gs.Run != "" && rp.From != rp.To && rp.To == gs.ActiveSite {
		from = rp.From
	}
	for _, r := range g.Resources {
		rs := ResourceStatus{Name: r.Name, Type: r.Type, Class: string(r.Class), Sites: []ResourceSiteStatus{}}
		if !r.Class.Observed() {
			// A check, a script or an approval is not observed: it runs in
			// runs and drills, and the runs show what it did.
			gs.Resources = append(gs.Resources, rs)
			continue
		}
		service := r.Class == config.ClassService
		if sr, ok := snap.Sync[g.Name][r.Name]; ok {
			rs.Synchronous = &sr
		}
		key := g.Name + "/" + r.Name
		var primaries []string
		var primary *ResourceView
		primarySite := ""
		for _, site := range g.Sites {
			rss := ResourceSiteStatus{Site: site, Role: RoleUnknown}
			view, reporting := snap.Views[site]
			v, observed := view.Resources[key]
			switch {
			case observed && believe(site, view):
				rss.Observed, rss.Up, rss.Role = true, v.Up, v.Role
				rss.Timeline, rss.Streaming, rss.Error, rss.Target = v.Timeline, v.Streaming, v.Error, v.Target
				if v.Role == RoleStandby {
					rss.Position = v.Position
				}
				if v.Role == RolePrimary {
					primaries = append(primaries, site)
					if primary == nil || site == gs.ActiveSite {
						primary, primarySite = &v, site
					}
				}
			case siteDown[site]:
				rss.Error = "the site is unreachable"
			case observed:
				rss.Error = "the site's agent started again and has not reported yet"
			case !reporting:
				rss.Error = errNotReporting
			default:
				rss.Error = "the site's agent does not report this resource"
			}
			rs.Sites = append(rs.Sites, rss)
		}
		// A lag is current only from a primary that serves now, at a site
		// that publishes now: a dead primary's last word is not a lag.
		serving := primary != nil && primary.Up && (!adopted || primarySite == gs.ActiveSite) && live(primarySite)
		for i := range rs.Sites {
			rss := &rs.Sites[i]
			if l, ok := snap.Lags[g.Name][r.Name][rss.Site]; ok && rss.Site != gs.ActiveSite {
				rss.LastKnownLag = &l
			}
			if adopted && r.Data && rss.Site != gs.ActiveSite {
				ready := true
				if sr, ok := snap.Sync[g.Name][r.Name]; !ok || sr.State != SyncOn || sr.Epoch != rec.Epoch {
					bound, err := JudgeLag(rss.LastKnownLag, rec.Epoch, g.MaxDataLoss.D(), serveLease)
					if ready = err == nil; ready {
						rss.FailoverBound = bound.Round(time.Millisecond).String()
					} else if rss.Role == RoleStandby && rss.Streaming {
						// A standby that looks healthy but that a failover
						// would not trust: not protected.
						notReady = append(notReady, lagProblem(g.Name, r.Name, rss.Site, err))
					}
				}
				rss.FailoverReady = &ready
			}
			if r.Data && rss.Role == RoleStandby && !serving {
				at := gs.ActiveSite
				if !adopted {
					at = primarySite
				}
				switch {
				case at == "":
					rss.LagUnknown = "no primary is observed"
				default:
					rss.LagUnknown = fmt.Sprintf("its primary at %s is not observed serving now", at)
				}
			}
			if rss.Role != RoleStandby || !serving {
				continue
			}
			for _, sb := range primary.Standbys {
				if sb.Site == rss.Site {
					rss.SenderState = sb.State
				}
				// A negative lag is the driver's "not measured yet".
				if sb.Site == rss.Site && sb.LagBytes >= 0 {
					lb := sb.LagBytes
					rss.LagBytes = &lb
				}
				if sb.Site == rss.Site && sb.LagSeconds >= 0 {
					ls := sb.LagSeconds
					rss.LagSeconds = &ls
				}
			}
		}
		switch {
		case len(primaries) > 1 && moving(r, primaries, gs.ActiveSite, from):
			// No data is written through a traffic resource: clients sent
			// to the old site meet its fenced database there. Any second
			// primary of the data is judged on its own resource.
			gs.note(Problem{Kind: KindTrafficMoving, Site: from, Resource: r.Name,
				Message: fmt.Sprintf("%s at %s still sends the clients there while run %s moves the group to %s: its agent follows %s at the run's rejoin step, or when the run ends",
					r.Name, from, gs.Run, gs.ActiveSite, gs.ActiveSite)})
		case len(primaries) > 1 && service:
			// A program running at two sites is not two writable
			// databases, but it is not where it should be.
			unprotected = true
			gs.note(Problem{Kind: KindRunsTwice, Resource: r.Name,
				Message: fmt.Sprintf("%s runs at %d sites (%s); it should run only at the active site", r.Name, len(primaries), strings.Join(primaries, ", ")),
				Command: reprotectCommand(g.Name)})
		case len(primaries) > 1:
			split = true
			p := Problem{Kind: KindSplitBrain, Resource: r.Name,
				Message: fmt.Sprintf("%s: %d sites claim the primary role: %v", r.Name, len(primaries), primaries)}
			if adopted {
				// The record says which site serves: the others rejoin it
				// as standbys, and what they took since is set aside.
				p.Message += fmt.Sprintf("; clients may be writing at each: only %s, the active site, keeps its writes", gs.ActiveSite)
				p.Command = reprotectCommand(g.Name)
			}
			gs.note(p)
		}
		for _, rss := range rs.Sites {
			if p, ok := siteProblem(g, r, gs, rss, adopted, primaries); ok {
				switch p.Kind {
				case KindActiveUnknown:
					unreachable = true
				case KindActiveNotServing:
					down = true
				case KindStandbyUnknown, KindStandbyNotReady:
					unprotected = true
				}
				gs.note(p)
			}
		}
		gs.Resources = append(gs.Resources, rs)
	}
	if !adopted {
		up := map[string]bool{}
		for _, site := range g.Sites {
			up[site] = !siteDown[site]
		}
		if at, why := AdoptionSite(g, gs, up); at != "" {
			gs.note(Problem{Kind: KindNotAdopted, Site: at, Message: fmt.Sprintf("no controller has adopted the group yet; it will be adopted at %s: %s", at, why)})
		} else {
			gs.note(Problem{Kind: KindNotAdopted, Message: "no controller has adopted the group yet: " + why + "; make one site primary for all of its data, or check the controller's log"})
		}
	}
	if len(notReady) > 0 {
		unprotected = true
		for _, p := range notReady {
			gs.note(p)
		}
	}
	if p, ok := lastRunProblem(snap.LastRuns[g.Name], gs.Run); ok {
		gs.note(p)
	}
	if d, ok := snap.Decisions[g.Name]; ok && adopted && d.Site == rec.ActiveSite {
		gs.Decision = &d
		gs.note(Problem{Kind: KindNeedsDecision, Site: d.Site,
			Message: fmt.Sprintf("%s is lost and %s does not fail over by itself: %s", d.Site, g.Name, d.Reason), Command: d.Command})
	}
	if a, ok := snap.Awaiting[g.Name]; ok && a.Run == gs.Run {
		gs.Awaiting = &a
		msg := ""
		if a.Message != "" {
			msg = ": " + a.Message
		}
		gs.note(Problem{Kind: KindAwaitingApproval,
			Message: fmt.Sprintf("run %s waits for a person's approval at step %s since %s%s; `siteflip reject %s` stops it",
				a.Run, a.Step, a.Since.UTC().Format(time.RFC3339), msg, a.Run),
			Command: "siteflip approve " + a.Run})
	}
	if p, ok := snap.Paused[g.Name]; ok {
		gs.Paused, gs.PausedBy, gs.PausedAt, gs.PauseReason = true, p.Who(), p.At, p.Reason
		why := ""
		if p.Reason != "" {
			why = " (" + p.Reason + ")"
		}
		gs.note(Problem{Kind: KindPaused,
			Message: fmt.Sprintf("paused by %s at %s%s: no automatic failover and no scheduled drill until it is resumed",
				p.Who(), p.At.UTC().Format(time.RFC3339), why),
			Command: "siteflip resume " + g.Name})
	}
	lost := adopted && len(snap.Marks[rec.ActiveSite]) > 0 && siteDown[rec.ActiveSite]
	if gs.Run != "" {
		gs.Phase = phase(g, gs, snap)
	}
	switch {
	case split:
		gs.State = StateSplitBrain
	case !adopted:
		gs.State = StateInitializing
	case gs.Decision != nil:
		gs.State = StateNeedsDecision
	case gs.Phase != nil && runState(gs.Phase.Action) != "":
		gs.State = runState(gs.Phase.Action)
	case lost && gs.Run != "":
		gs.State = StateFailingOver
	case unreachable:
		gs.State = StateUnreachable
	case down:
		gs.State = StateDown
	case unprotected:
		gs.State = StateUnprotected
	default:
		gs.State = StateProtected
	}
	return gs
}

// moving says whether primaries, the sites that claim resource r, are
// the active site and the site from, which a run in progress moves the
// group from: a traffic resource that holds no data, not yet followed at
// the old site. Any other claimant, or none of the run's, is a split.
func moving(r config.Resource, primaries []string, active, from string) bool {
	return r.Class == config.ClassTraffic && !r.Data && from != "" && len(primaries) == 2 &&
		slices.Contains(primaries, active) && slices.Contains(primaries, from)
}

func because(err string) string {
	if err == "" {
		return ""
	}
	return " (" + err + ")"
}

// scheduled shows the group's scheduled switchover, and a problem line
// when it cannot start yet or was missed; neither changes the state.
func scheduled(gs *GroupStatus, g *config.Group, snap Snapshot, now time.Time) {
	if sc, ok := snap.Scheduled[g.Name]; ok {
		gs.ScheduledSwitchover = &sc
		switch {
		case sc.Missed(now):
			why := ""
			if sc.Refused != "" {
				why = ": " + sc.Refused
			}
			gs.Problems = append(gs.Problems, fmt.Sprintf("the switchover to %s scheduled for %s did not start within %s%s; `siteflip switchover %s --cancel` removes it",
				sc.To, sc.At.UTC().Format(time.RFC3339), SwitchoverGrace, why, g.Name))
		case sc.Refused != "":
			gs.Problems = append(gs.Problems, fmt.Sprintf("the switchover to %s scheduled for %s cannot start yet: %s; it is tried until %s, or `siteflip switchover %s --cancel`",
				sc.To, sc.At.UTC().Format(time.RFC3339), sc.Refused, sc.At.Add(SwitchoverGrace).UTC().Format(time.RFC3339), g.Name))
		}
	}
}
