package jsonview

import (
	"time"

	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/plan"
)

// Runs is `siteflip runs -o json`: the runs, oldest first, each with
// every field the control plane stores.
type Runs struct {
	Header
	Runs []Run `json:"runs"`
}

// RunDoc is `siteflip run ID -o json`.
type RunDoc struct {
	Header
	Run
}

// Run is one run of a plan.
type Run struct {
	ID     string `json:"id"`
	Group  string `json:"group"`
	Action string `json:"action"`
	From   string `json:"from"`
	To     string `json:"to"`
	Epoch  int64  `json:"epoch"`
	// Why says why To was chosen, when more than one site could have
	// taken over.
	Why     string     `json:"why,omitempty"`
	Request RunRequest `json:"request"`
	By      string     `json:"by"`
	Role    string     `json:"role,omitempty"`
	Reason  string     `json:"reason,omitempty"`
	Ticket  string     `json:"ticket,omitempty"`
	State   string     `json:"state"`
	// StartedAt, EndedAt: the run; WritableAt: the group accepted writes
	// at its new site.
	StartedAt  time.Time `json:"started_at"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	WritableAt time.Time `json:"writable_at,omitzero"`
	// RTOSeconds is WritableAt − StartedAt; MeasuredRTOSeconds the outage
	// as the report gives it (from the incident's start to the group back
	// and checked). Absent while not known.
	RTOSeconds         *float64  `json:"rto_seconds,omitempty"`
	MeasuredRTOSeconds *float64  `json:"measured_rto_seconds,omitempty"`
	Incident           *Incident `json:"incident,omitempty"`
	DataLost           string    `json:"data_lost,omitempty"`
	DataLostBy         string    `json:"data_lost_by,omitempty"`
	Verification       string    `json:"verification,omitempty"`
	Error              string    `json:"error,omitempty"`
	Steps              []Step    `json:"steps"`
	Rollback           []Step    `json:"rollback,omitempty"`
}

// RunRequest is what the run was asked.
type RunRequest struct {
	Action         string  `json:"action"`
	To             string  `json:"to,omitempty"`
	AcceptDataLoss bool    `json:"accept_data_loss"`
	KeepSeconds    float64 `json:"keep_seconds,omitempty"`
}

// Incident is the loss of a site that an automatic failover answered.
type Incident struct {
	Site           string    `json:"site"`
	LastHeardAt    time.Time `json:"last_heard_at,omitzero"`
	DeclaredLostAt time.Time `json:"declared_lost_at,omitzero"`
}

// Step is one step of the plan with its progress.
type Step struct {
	ID             string  `json:"id"`
	Kind           string  `json:"kind"`
	Resource       string  `json:"resource,omitempty"`
	Site           string  `json:"site"`
	TimeoutSeconds float64 `json:"timeout_seconds"`
	Retries        int     `json:"retries"`
	BestEffort     bool    `json:"best_effort,omitempty"`
	Message        string  `json:"message,omitempty"`
	Wave           int     `json:"wave,omitempty"`
	State          string  `json:"state"`
	Attempts       int     `json:"attempts"`
	// StartedAt and EndedAt are its last attempt's.
	StartedAt time.Time         `json:"started_at,omitzero"`
	EndedAt   time.Time         `json:"ended_at,omitzero"`
	Output    map[string]string `json:"output,omitempty"`
	Error     string            `json:"error,omitempty"`
}

// RunsOf is the document of runs.
func RunsOf(runs []plan.Run) Runs {
	out := Runs{Header: header(KindRuns), Runs: []Run{}}
	for _, r := range runs {
		out.Runs = append(out.Runs, runOf(r))
	}
	return out
}

// RunOf is the document of one run.
func RunOf(r plan.Run) RunDoc { return RunDoc{Header: header(KindRun), Run: runOf(r)} }

func runOf(r plan.Run) Run {
	out := Run{
		ID: r.ID, Group: r.Group, Action: string(r.Plan.Action), From: r.Plan.From, To: r.Plan.To, Epoch: r.Plan.Epoch, Why: r.Plan.Why,
		Request: RunRequest{Action: string(r.Request.Action), To: r.Request.To, AcceptDataLoss: r.Request.AcceptDataLoss, KeepSeconds: seconds(r.Request.Keep)},
		By:      r.By, Role: r.Role, Reason: r.Reason, Ticket: r.Ticket, State: r.State,
		StartedAt: utc(r.Started), EndedAt: utc(r.Ended), WritableAt: utc(r.WritableAt),
		RTOSeconds: secondsOf(r.RTO()), MeasuredRTOSeconds: secondsOf(r.MeasuredRTO()),
		DataLost: r.DataLost, DataLostBy: r.DataLostBy, Verification: r.Verification, Error: r.Error,
		Steps: steps(r.Plan.Steps, r.Steps),
	}
	if i := r.Incident; i != nil {
		out.Incident = &Incident{Site: i.Site, LastHeardAt: utc(i.LastHeard), DeclaredLostAt: utc(i.DeclaredLost)}
	}
	if len(r.Plan.Rollback) > 0 {
		out.Rollback = steps(r.Plan.Rollback, r.Rollback)
	}
	return out
}

// steps joins a plan's steps with their progress, index for index.
func steps(plan []plan.Step, states []plan.StepState) []Step {
	out := []Step{}
	for i, s := range plan {
		st := Step{ID: s.ID, Kind: string(s.Kind), Resource: s.Resource, Site: s.Site, TimeoutSeconds: seconds(s.Timeout),
			Retries: s.Retries, BestEffort: s.BestEffort, Message: s.Message, Wave: s.Wave}
		if i < len(states) {
			ss := states[i]
			st.State, st.Attempts, st.StartedAt, st.EndedAt, st.Output, st.Error = ss.State, ss.Attempts, utc(ss.Started), utc(ss.Ended), ss.Output, ss.Error
		}
		out = append(out, st)
	}
	return out
}

// Audit is `siteflip audit -o json`: the records, oldest first.
type Audit struct {
	Header
	Records []AuditRecord `json:"records"`
}

// AuditRecord is one request to an agent and what became of it.
type AuditRecord struct {
	At         time.Time `json:"at"`
	Site       string    `json:"site"`
	Who        string    `json:"who"`
	Role       string    `json:"role"`
	Via        string    `json:"via,omitempty"`
	From       string    `json:"from"`
	Request    string    `json:"request"`
	Action     string    `json:"action,omitempty"`
	Group      string    `json:"group,omitempty"`
	Run        string    `json:"run,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Ticket     string    `json:"ticket,omitempty"`
	Result     string    `json:"result"`
	Code       int       `json:"code"`
	Error      string    `json:"error,omitempty"`
	Suppressed int       `json:"suppressed,omitempty"`
}

// AuditOf is the document of recs.
func AuditOf(recs []audit.Record) Audit {
	out := Audit{Header: header(KindAudit), Records: []AuditRecord{}}
	for _, r := range recs {
		out.Records = append(out.Records, AuditRecord{At: utc(r.At), Site: r.Site, Who: r.Who, Role: r.Role, Via: r.Via, From: r.From, Request: r.Request,
			Action: r.Action, Group: r.Group, Run: r.Run, Reason: r.Reason, Ticket: r.Ticket, Result: r.Result, Code: r.Code, Error: r.Error, Suppressed: r.Suppressed})
	}
	return out
}
