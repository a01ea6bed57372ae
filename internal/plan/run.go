package plan

import (
	"strings"
	"time"
)

// Retention of the run history: per group the controller keeps the newest
// RunsKept runs, and of the older ones those that ended within RunsMaxAge
// (coord.PruneRuns).
const (
	RunsKept   = 200
	RunsMaxAge = 365 * 24 * time.Hour
)

// Run states.
const (
	RunRunning     = "running"
	RunRollingBack = "rolling-back"
	RunSucceeded   = "succeeded"
	RunFailed      = "failed"
	RunRolledBack  = "rolled-back"
)

// Step states.
const (
	StepPending = "pending"
	StepRunning = "running"
	StepDone    = "done"
	StepFailed  = "failed"
	StepSkipped = "skipped"
)

// Run is one execution of a plan, stored in etcd and driven by the
// controller; a new controller resumes it from its first step not done.
type Run struct {
	ID      string  `json:"id"`
	Group   string  `json:"group"`
	Request Request `json:"request"`
	Plan    Plan    `json:"plan"`
	By      string  `json:"by"` // who started it: the caller's certificate name, or the controller
	// Role is the starter's role (admin, operator) when a person started it.
	Role string `json:"role,omitempty"`
	// Reason and Ticket are why, as the starter gave it.
	Reason  string    `json:"reason,omitempty"`
	Ticket  string    `json:"ticket,omitempty"`
	State   string    `json:"state"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	// Steps and Rollback hold the state of Plan.Steps and Plan.Rollback,
	// index for index.
	Steps    []StepState `json:"steps"`
	Rollback []StepState `json:"rollback,omitempty"`
	// WritableAt is when the group accepted writes at the new site; RTO is
	// WritableAt − Started.
	WritableAt time.Time `json:"writable_at,omitzero"`
	// DataLost describes what was lost, as the rejoin of the old site
	// found it (empty: nothing known to be lost). A failover rejoins
	// nothing: the run that later rejoins its old site fills it in
	// (FailoverLoss), and sets DataLostBy.
	DataLost string `json:"data_lost,omitempty"`
	// DataLostBy is, on a failover, the run whose rejoin of the old site
	// found what the failover lost: DataLost, or nothing when DataLost is
	// empty. Empty while no rejoin has told.
	DataLostBy string `json:"data_lost_by,omitempty"`
	// Incident is, for an automatic failover, the loss of the site that
	// caused it: the outage began before the run did.
	Incident *Incident `json:"incident,omitempty"`
	// Verification is how the group's checks ended at the end of the run:
	// "" when it has none (or has not run them), Verified, or the failing
	// checks named.
	Verification string `json:"verification,omitempty"`
	Error        string `json:"error,omitempty"`
}

// Verified is the Verification of a run whose every check passed.
const Verified = "verified"

// Incident is the loss of a site that an automatic failover answers.
type Incident struct {
	Site string `json:"site"`
	// LastHeard is when the site was last heard from (its last published
	// view); zero when not known.
	LastHeard time.Time `json:"last_heard,omitzero"`
	// DeclaredLost is when every other location had declared it lost.
	DeclaredLost time.Time `json:"declared_lost,omitzero"`
}

// StepState is the progress of one step.
type StepState struct {
	State    string            `json:"state"`
	Attempts int               `json:"attempts"`
	Started  time.Time         `json:"started,omitzero"`
	Ended    time.Time         `json:"ended,omitzero"`
	Output   map[string]string `json:"output,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// NewRun returns a run of p, every step pending.
func NewRun(id, by string, req Request, p Plan, now time.Time) Run {
	r := Run{ID: id, Group: p.Group, Request: req, Plan: p, By: by, State: RunRunning, Started: now}
	r.Steps = make([]StepState, len(p.Steps))
	for i := range r.Steps {
		r.Steps[i].State = StepPending
	}
	r.Rollback = make([]StepState, len(p.Rollback))
	for i := range r.Rollback {
		r.Rollback[i].State = StepPending
	}
	return r
}

// Activated says whether the run passed its point of no return.
func (r *Run) Activated() bool {
	for i, s := range r.Plan.Steps {
		if s.Kind == Activate {
			return r.Steps[i].State == StepDone
		}
	}
	return false
}

// Done says whether the run has ended.
func (r *Run) Done() bool {
	return r.State == RunSucceeded || r.State == RunFailed || r.State == RunRolledBack
}

// RTO is the time from the start of the run to the group accepting writes
// at the new site, or 0 when it has not yet.
func (r *Run) RTO() time.Duration {
	if r.WritableAt.IsZero() {
		return 0
	}
	return r.WritableAt.Sub(r.Started)
}

// IncidentStart is when the outage the run answers began: when the lost
// site was last heard from, for an automatic failover that knows it;
// otherwise the run's start.
func (r *Run) IncidentStart() time.Time {
	if r.Incident != nil && !r.Incident.LastHeard.IsZero() && r.Incident.LastHeard.Before(r.Started) {
		return r.Incident.LastHeard
	}
	return r.Started
}

// Recovered is when the group was back: writable at the new site and its
// checks done (for a drill: the copies started and checked); zero while
// it is not.
func (r *Run) Recovered() time.Time {
	var at time.Time
	if r.Plan.Action != Drill {
		if r.WritableAt.IsZero() {
			return time.Time{}
		}
		at = r.WritableAt
	}
	for i, s := range r.Plan.Steps {
		switch {
		case s.Kind != Check && !(r.Plan.Action == Drill && s.Kind == Start):
		case r.Steps[i].State != StepDone:
			return time.Time{}
		case r.Steps[i].Ended.After(at):
			at = r.Steps[i].Ended
		}
	}
	return at
}

// MeasuredRTO is the outage as the report gives it: from IncidentStart to
// Recovered; 0 while the group is not back.
func (r *Run) MeasuredRTO() time.Duration {
	rec := r.Recovered()
	if rec.IsZero() {
		return 0
	}
	return rec.Sub(r.IncidentStart())
}

// verify says how the run's checks ended, once it is done: Verified, or
// the failing ones named.
func (r *Run) verify() string {
	var failed []string
	ran := false
	for i, s := range r.Plan.Steps {
		if s.Kind != Check {
			continue
		}
		ran = true
		if r.Steps[i].State != StepDone {
			failed = append(failed, s.Resource+" ("+r.Steps[i].Error+")")
		}
	}
	switch {
	case !ran:
		return ""
	case len(failed) == 0:
		return Verified
	}
	return "checks failed: " + strings.Join(failed, "; ")
}

// Succeed ends the run as succeeded at now, with how its checks ended.
func (r *Run) Succeed(now time.Time) {
	r.State, r.Ended = RunSucceeded, now
	r.Verification = r.verify()
}

// StepEpoch is the epoch step i of the plan runs in: the planned one
// before activation, the next one after.
func (r *Run) StepEpoch(i int) int64 {
	for j := 0; j < i && j < len(r.Plan.Steps); j++ {
		if r.Plan.Steps[j].Kind == Activate {
			return r.Plan.Epoch + 1
		}
	}
	return r.Plan.Epoch
}

// OutputOf returns the output of the done step of kind k on resource, or
// nil.
func (r *Run) OutputOf(k Kind, resource string) map[string]string {
	for i, s := range r.Plan.Steps {
		if s.Kind == k && s.Resource == resource && r.Steps[i].State == StepDone {
			return r.Steps[i].Output
		}
	}
	return nil
}

// OutputDataLost is the step output in which a rejoin says, in its
// resource type's own terms, what existed only at the old site and was
// lost (kept aside where it says); the run's DataLost gathers them.
const OutputDataLost = "data_lost"
