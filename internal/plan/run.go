package plan

import "time"

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
	// found it (empty: nothing known to be lost).
	DataLost string `json:"data_lost,omitempty"`
	Error    string `json:"error,omitempty"`
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
