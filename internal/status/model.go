// Package status owns what siteflip knows about an installation and how it is
// shown: the View each location publishes of itself and of the others, the
// durable Record of each group (active site, epoch), and Status, the picture
// assembled from both that `siteflip status` and GET /v1/status return.
// Assemble is a pure function; nothing here talks to etcd or to a database.
package status

import (
	"errors"
	"fmt"
	"time"
)

// View is what one location observes, published under that location's lease
// so that it vanishes by itself when the location dies.
type View struct {
	Site        string    `json:"site"`
	Role        string    `json:"role"`    // site or witness
	Version     string    `json:"version"` // the agent's build (internal/buildinfo)
	StartedAt   time.Time `json:"started_at"`
	PublishedAt time.Time `json:"published_at"`
	// Peers is this location's view of every other location's agent.
	Peers map[string]PeerView `json:"peers"`
	// Resources are the resources at this location, keyed GROUP/RESOURCE.
	Resources map[string]ResourceView `json:"resources,omitempty"`
	// RaftLeader is the location whose etcd member this location's member
	// knows as the raft leader; empty without an embedded member, or while
	// it knows none.
	RaftLeader string `json:"raft_leader,omitempty"`
	// DrillLeftovers are what drills left at this location that its agent
	// could not remove, keyed GROUP/RESOURCE, each with the drill's run ID
	// and why.
	DrillLeftovers map[string][]string `json:"drill_leftovers,omitempty"`
	// CertNotAfter is when the certificate this location's agent serves
	// with expires; zero without TLS, and in the views of agents built
	// before it was published.
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	// Dependencies are this location's probes of the outside services its
	// groups require (config.Group.Requires), keyed GROUP/DEPENDENCY.
	Dependencies map[string]DependencyView `json:"dependencies,omitempty"`
}

// DependencyView is one location's last probe of an outside service a
// group requires.
type DependencyView struct {
	Group      string `json:"group"`
	Dependency string `json:"dependency"`
	Type       string `json:"type"`
	// Target is what was probed, in its type's terms (host:port, URL,
	// "db.example. A @ 10.0.0.53:53", the database's host).
	Target    string  `json:"target"`
	Reachable bool    `json:"reachable"`
	LatencyMs float64 `json:"latency_ms,omitempty"`
	Error     string  `json:"error,omitempty"`
	// CheckedAt is when the last probe ended, Since when Reachable last
	// changed (on this location's clock).
	CheckedAt time.Time `json:"checked_at"`
	Since     time.Time `json:"since"`
}

// PeerView is one location's view of another location's agent.
type PeerView struct {
	Reachable bool      `json:"reachable"`
	Since     time.Time `json:"since"`            // when Reachable last changed
	RTTMs     float64   `json:"rtt_ms,omitempty"` // last successful probe
	Error     string    `json:"error,omitempty"`  // last failed probe
	// Started is when the other agent started, as its last answer said:
	// a view it published before it last started is not believed.
	Started time.Time `json:"started,omitzero"`
	// ClockOffsetMs is how far the other agent's clock is ahead of this
	// one's (negative: behind), estimated from its last answer as NTP
	// does: its time minus the middle of the round trip. Absent from
	// older agents' views.
	ClockOffsetMs *float64 `json:"clock_offset_ms,omitempty"`
}

// Roles of a replicated resource at one site.
const (
	RolePrimary = "primary"
	RoleStandby = "standby"
	RoleDown    = "down"
	// RoleUnknown is shown where no trustworthy observation exists: the
	// site is unreachable or its agent does not report.
	RoleUnknown = "unknown"
)

// ResourceView is one resource at one site, as its agent observes it.
type ResourceView struct {
	Group    string `json:"group"`
	Resource string `json:"resource"`
	Type     string `json:"type"`
	Up       bool   `json:"up"`
	Role     string `json:"role"`
	Timeline int64  `json:"timeline,omitempty"`
	LSN      string `json:"lsn,omitempty"`
	// Position is, on a standby, how far its data goes, as its type
	// writes positions: what a promotion there would end with
	// (PostgreSQL: the later of the WAL received and replayed). A
	// failover with a choice of standbys takes the most advanced
	// (config.ResourceType.ComparePositions).
	Position   string    `json:"position,omitempty"`
	Streaming  bool      `json:"streaming"`
	Upstream   string    `json:"upstream,omitempty"`
	LastReplay time.Time `json:"last_replay,omitzero"`
	// Standbys is, on a primary, each replica connected to it, with its lag
	// measured by the primary in one snapshot.
	Standbys   []StandbyView `json:"standbys,omitempty"`
	Error      string        `json:"error,omitempty"`
	ObservedAt time.Time     `json:"observed_at"`
	// Target is, for a traffic resource, where it sends the clients from
	// this site, in its type's terms: the addresses a name answers, the
	// routers a route is announced to. Absent from older agents' views.
	Target string `json:"target,omitempty"`
}

// StandbyView is a replica as its primary sees it.
type StandbyView struct {
	Name       string  `json:"name"`           // application_name it connects with
	Site       string  `json:"site,omitempty"` // the site that name belongs to, when known
	State      string  `json:"state"`
	SyncState  string  `json:"sync_state,omitempty"`
	LagBytes   int64   `json:"lag_bytes"`
	LagSeconds float64 `json:"lag_seconds"`
}

// Record is the durable state of a group, kept in etcd. Epoch grows at every
// change of active site and fences actions of older epochs.
type Record struct {
	Group      string    `json:"group"`
	ActiveSite string    `json:"active_site"`
	Epoch      int64     `json:"epoch"`
	UpdatedAt  time.Time `json:"updated_at"`
	Reason     string    `json:"reason,omitempty"`
	// Revision is the etcd revision that last wrote the record: a run
	// planned from it starts only if the record is still that one.
	Revision int64 `json:"-"`
}

// Lag is a standby's lag as last measured by its primary, kept by the
// controller so that it is still known when the primary's site is gone
// (docs/design/safety.md, "Lag a failover can trust").
type Lag struct {
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes"`
	// Epoch is the group's epoch the measurement belongs to: a lag of
	// another epoch describes another replication direction.
	Epoch int64 `json:"epoch"`
	// MeasuredAt is when the primary measured it and SeenAt when the
	// primary's agent last published its view since; both are read on the
	// primary's clock, so SeenAt − MeasuredAt is how stale the measurement
	// was while the primary was still seen, whatever the reader's clock.
	MeasuredAt time.Time `json:"measured_at"`
	SeenAt     time.Time `json:"seen_at"`
	// Streaming is false when the primary, still serving, last saw the
	// standby not streaming: from then on what it lacks is unknown.
	Streaming bool `json:"streaming"`
}

// Staleness is how long the measurement had been standing when the
// primary was last seen.
func (l Lag) Staleness() time.Duration { return max(0, l.SeenAt.Sub(l.MeasuredAt)) }

// Why a lag record cannot be trusted.
var (
	ErrLagUnknown = errors.New("standby lag unknown")
	ErrLagTooFar  = errors.New("standby too far behind")
)

// LagSlack is how far a standby's lag, or the staleness of its
// measurement, may move before the controller writes its record again
// (lagUpdates in the agent): a record is rewritten when it matters, not
// each time the primary publishes its view. JudgeLag adds it to the
// bound, which so stays an upper bound.
const LagSlack = 100 * time.Millisecond

// LagRefresh is how old a lag record may grow, on its primary's clock,
// before it is written again though nothing moved: status shows it.
const LagRefresh = 10 * time.Second

// JudgeLag says whether a failover to the standby with lag record l (nil:
// none) may go ahead in epoch within maxLoss: the writes it may lose are
// bounded by the lag, plus the staleness of the measurement, plus
// serveLease, for which a cut-off primary may still acknowledge writes
// before it fences itself, plus LagSlack, what the record may lag behind
// the last measurement. It returns that bound, and an error wrapping
// ErrLagUnknown or ErrLagTooFar that says why not.
func JudgeLag(l *Lag, epoch int64, maxLoss, serveLease time.Duration) (time.Duration, error) {
	switch {
	case l == nil:
		return 0, fmt.Errorf("%w: it was never measured by its primary", ErrLagUnknown)
	case l.Epoch != epoch:
		return 0, fmt.Errorf("%w: it was last measured in epoch %d, before the active site last changed (epoch %d)", ErrLagUnknown, l.Epoch, epoch)
	case !l.Streaming:
		return 0, fmt.Errorf("%w: it was not streaming from its primary when last seen", ErrLagUnknown)
	}
	lag := time.Duration(l.Seconds * float64(time.Second))
	bound := lag + l.Staleness() + serveLease + LagSlack
	if bound > maxLoss {
		return bound, fmt.Errorf("%w: a failover may lose up to %s (lag %s (%d bytes), measured %s before its primary was last seen, %s of serve lease and %s the record may lag), more than max_data_loss %s",
			ErrLagTooFar, bound.Round(time.Millisecond), lag.Round(time.Millisecond), l.Bytes, l.Staleness().Round(time.Millisecond), serveLease, LagSlack, maxLoss)
	}
	return bound, nil
}

// Controller is the agent currently elected to decide and drive plans.
type Controller struct {
	Site string `json:"site"`
	// Term is the revision at which it was elected; it only grows, and it is
	// the fencing token of the controller's writes.
	Term  int64     `json:"term"`
	Since time.Time `json:"since,omitzero"`
}

// Snapshot is everything stored about an installation, read at one etcd
// revision.
type Snapshot struct {
	Revision   int64
	Views      map[string]View   // by site
	Records    map[string]Record // by group
	Controller *Controller       // nil while none is elected
	// Lags is the last known lag by group, resource and standby site.
	Lags map[string]map[string]map[string]Lag
	// Running is the ID of the run in progress, by group.
	Running map[string]string
	// RunPlans is, by group, the action and direction of the run in
	// progress, read from its record; a group missing here has its
	// action read from its run ID.
	RunPlans map[string]RunPlan
	// LastRuns is each group's last run that ended (not a drill), by
	// group; absent for a group whose runs all ended under agents that did
	// not record it.
	LastRuns map[string]LastRun
	// Drilling is the ID of the drill in progress, by group.
	Drilling map[string]string
	// Marks says which locations declared which site lost: by site, then
	// by the location that marked it.
	Marks map[string]map[string]Mark
	// Decisions are the groups waiting for a person, by group.
	Decisions map[string]Decision
	// Sync is the replication mode of synchronous resources, by group and
	// resource.
	Sync map[string]map[string]SyncRecord
	// Drills is what is kept of each group's drills, by group.
	Drills map[string]DrillRecord
	// Awaiting is the approval each group's run waits for, by group.
	Awaiting map[string]Awaiting
	// Paused is, by group, the groups a person paused: no automatic
	// failover, nor any other automatic run, until resumed.
	Paused map[string]Pause
	// Scheduled is, by group, the switchover a person scheduled.
	Scheduled map[string]ScheduledSwitchover
	// ViewAges is, by location, how long ago the reader saw its view
	// change, on the reader's own monotonic clock. Without it, a view's
	// age is read against its publisher's clock (tests).
	ViewAges map[string]time.Duration
}

// Lost says whether every location of t other than site marked site lost.
func (s Snapshot) Lost(site string, locations []string) bool {
	by := s.Marks[site]
	n := 0
	for _, l := range locations {
		if l == site {
			continue
		}
		if _, ok := by[l]; !ok {
			return false
		}
		n++
	}
	return n > 0
}

// LastRun is how a group's last run ended (drills have their own record,
// DrillRecord): status shows a failed one until another run ends.
type LastRun struct {
	ID     string    `json:"id"`
	Action string    `json:"action"`
	State  string    `json:"state"`
	Ended  time.Time `json:"ended"`
	Error  string    `json:"error,omitempty"`
}

// Mark is one location's declaration that a site is lost: it granted the
// site no serve lease for longer than the lease and its margin, and none of
// the site's resources answered (docs/design/fencing.md).
type Mark struct {
	Site   string    `json:"site"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Decision is a group that lost its active site and waits for a person:
// its policy is manual, or failing over automatically is not safe.
type Decision struct {
	Group   string    `json:"group"`
	Site    string    `json:"site"` // the lost active site
	Reason  string    `json:"reason"`
	Command string    `json:"command"` // what a person can run
	Since   time.Time `json:"since"`
}

// Approval is a person's verdict on an approval step of a run.
type Approval struct {
	Run  string `json:"run"`
	Step string `json:"step"`
	// Approved: the run goes on; otherwise it was rejected.
	Approved bool      `json:"approved"`
	By       string    `json:"by"` // the certificate name of who decided
	At       time.Time `json:"at"`
	Reason   string    `json:"reason,omitempty"`
}

// Awaiting is a run waiting at an approval step for a person.
type Awaiting struct {
	Group   string    `json:"group"`
	Run     string    `json:"run"`
	Step    string    `json:"step"`
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since"`
	// Until is when the wait runs out: before activation the run is then
	// rolled back, after it the run fails.
	Until time.Time `json:"until"`
}

// Replication modes of a synchronous resource.
const (
	SyncOn       = "sync"     // the standby confirms every commit
	SyncDegraded = "degraded" // commits no longer wait for the standby
)

// SyncRecord is the replication mode of a synchronous resource in one
// epoch of its group. Commits are acknowledged without the standby only
// after a record saying so was stored (with the quorum's agreement).
type SyncRecord struct {
	Group    string    `json:"group"`
	Resource string    `json:"resource"`
	Epoch    int64     `json:"epoch"`
	State    string    `json:"state"`
	Standby  string    `json:"standby,omitempty"` // site of the confirming standby
	Since    time.Time `json:"since"`
	Reason   string    `json:"reason,omitempty"`
}

// Pause is a person's pause of a group's automatic actions (`siteflip
// pause`), kept in etcd until `siteflip resume`: while it lasts the
// controller starts no automatic failover and no scheduled drill for the
// group, and the agents do not start its stopped databases on their own;
// a person's runs go on as ever, and so does a run already in progress
// (docs/design/maintenance.md).
type Pause struct {
	Group string `json:"group"`
	// By is the certificate name of who paused it ("" with TLS off), Role
	// their role.
	By     string    `json:"by"`
	Role   string    `json:"role,omitempty"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// Who is who paused, as status shows it.
func (p Pause) Who() string {
	if p.By == "" {
		return "an anonymous caller"
	}
	return p.By
}

// ScheduledSwitchover is a switchover a person asked for at a later time
// (`siteflip switchover GROUP --to SITE --at TIME`), kept in etcd so that
// whichever location is controller then starts it, as that person's run.
// One per group; cancelled with `siteflip switchover GROUP --cancel`.
type ScheduledSwitchover struct {
	Group  string    `json:"group"`
	To     string    `json:"to"`
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	Role   string    `json:"role,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Ticket string    `json:"ticket,omitempty"`
	// Since is when it was scheduled.
	Since time.Time `json:"since"`
	// Refused is, once it is due, why the controller could not start it
	// yet (the plan refused it, a run was in progress), and RefusedAt
	// when it last tried; it is tried again until SwitchoverGrace after
	// At.
	Refused   string    `json:"refused,omitempty"`
	RefusedAt time.Time `json:"refused_at,omitzero"`
	// Revision is the etcd revision that last wrote it: it is started
	// only if it is still the one the controller read.
	Revision int64 `json:"-"`
}

// SwitchoverGrace is how long after its time a scheduled switchover may
// still start: one that could not start by then is missed, and never
// starts by surprise later; a person cancels it or schedules it again.
const SwitchoverGrace = 5 * time.Minute

// Missed says whether s can no longer start at now.
func (s ScheduledSwitchover) Missed(now time.Time) bool { return now.After(s.At.Add(SwitchoverGrace)) }
