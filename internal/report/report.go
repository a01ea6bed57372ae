// Package report owns run reports: what one run did, step by step, its
// checks, and its measured RTO and RPO judged against the group's targets,
// rendered as markdown, JSON (docs/report.md) or one self-contained HTML
// file. Build is pure; fetching the run is the CLI's business.
//
// It stays light on purpose: plan, config and the standard library only,
// so that nothing that reads a report pulls in drivers or etcd.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
)

// Version is the version of the JSON document; it grows only when a field
// changes meaning or goes away.
const Version = 1

// Step outputs the report reads. They are resource.OutputSeen and
// resource.OutputDataAge, repeated here so that the report does not import
// the resource model (report_test checks that they agree).
const (
	outputSeen    = "seen"
	outputDataAge = "data_age"
)

// Verdict is how a measure compares with its target.
type Verdict string

// Verdicts.
const (
	Pass    Verdict = "pass"
	Fail    Verdict = "fail"
	Unknown Verdict = "unknown" // not measured, or no target to judge by
)

// Check results.
const (
	CheckPassed  = "passed"
	CheckFailed  = "failed"
	CheckNotRun  = "not run"
	CheckSkipped = "skipped"
	CheckRunning = "running"
)

// Report is what one run did and how it measured up.
type Report struct {
	Version int         `json:"version"`
	RunID   string      `json:"run_id"`
	Group   string      `json:"group"`
	Action  plan.Action `json:"action"`
	From    string      `json:"from"`
	To      string      `json:"to"`
	// Target says why To was chosen when another site could have taken
	// over too (plan.Plan.Why); "" otherwise.
	Target string `json:"target"`
	Epoch  int64  `json:"epoch"`
	// By is who or what started the run (a person's certificate name, or
	// the controller); Role, Reason and Ticket as the starter gave them.
	By     string `json:"by"`
	Role   string `json:"role"`
	Reason string `json:"reason"`
	Ticket string `json:"ticket"`

	State        string `json:"state"`
	Error        string `json:"error"`
	Verification string `json:"verification"`

	Started    Time `json:"started"`
	Ended      Time `json:"ended"`
	WritableAt Time `json:"writable_at"`
	// Incident is the site loss an automatic failover answers; nil
	// otherwise.
	Incident *Incident `json:"incident"`
	// IncidentStart is where the outage, and the RTO, begins: the lost
	// site's last sign of life, or the run's start.
	IncidentStart Time `json:"incident_start"`
	// Recovered is where the RTO ends: writable and checked (a drill: its
	// copies started and checked).
	Recovered Time `json:"recovered"`

	RTO        Duration `json:"rto_seconds"`
	RTOTarget  Duration `json:"rto_target_seconds"`
	RTOVerdict Verdict  `json:"rto_verdict"`
	// RTONote says what the RTO measured, or why there is none.
	RTONote string `json:"rto"`

	// RPO is what was lost as a time: a drill's data age, 0 when nothing
	// is known to be lost, unknown when the loss is only said in words.
	RPO         Duration `json:"rpo_seconds"`
	MaxDataLoss Duration `json:"max_data_loss_seconds"`
	RPOVerdict  Verdict  `json:"rpo_verdict"`
	// RPONote says what was lost, in words.
	RPONote string `json:"rpo"`
	// DataLostBy is, for a failover, the run whose rejoin of the old site
	// found what it lost (plan.Run.DataLostBy); "" while none has.
	DataLostBy string `json:"data_lost_by"`

	// Steps are the plan's steps, then the rollback steps that ran.
	Steps  []Step  `json:"steps"`
	Checks []Check `json:"checks"`
	// End is where the timeline ends: the run's end, or its latest known
	// moment while it goes on.
	End Time `json:"-"`
}

// Incident is the loss of a site that an automatic failover answers.
type Incident struct {
	Site         string `json:"site"`
	LastHeard    Time   `json:"last_heard"`
	DeclaredLost Time   `json:"declared_lost"`
}

// Step is one step as it ran.
type Step struct {
	ID       string    `json:"id"`
	Kind     plan.Kind `json:"kind"`
	Resource string    `json:"resource"`
	Site     string    `json:"site"`
	// Rollback marks a step of the rollback.
	Rollback bool `json:"rollback"`
	// Wave, when not 0, is shared by the steps that ran side by side.
	Wave     int               `json:"wave,omitempty"`
	State    string            `json:"state"`
	Attempts int               `json:"attempts"`
	Started  Time              `json:"started"`
	Ended    Time              `json:"ended"`
	Took     Duration          `json:"duration_seconds"`
	Output   map[string]string `json:"output"`
	Error    string            `json:"error"`
}

// Check is one check step and what it found.
type Check struct {
	ID       string `json:"id"`
	Resource string `json:"resource"`
	Site     string `json:"site"`
	Result   string `json:"result"`
	Attempts int    `json:"attempts"`
	// Seen is what the check saw (its "seen" output).
	Seen  string `json:"seen"`
	Error string `json:"error"`
}

// Time is a moment; JSON: RFC 3339 in UTC with milliseconds, or null when
// not known.
type Time struct{ time.Time }

// timeFormat is RFC 3339 with exactly three decimals.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func (t Time) String() string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(timeFormat)
}

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.String() + `"`), nil
}

// Duration is a length of time that may not be known; JSON: seconds with
// three decimals, or null.
type Duration struct {
	D     time.Duration
	Known bool
}

func known(d time.Duration) Duration { return Duration{D: d, Known: true} }

// String is for people: "2.345s", "1m3.2s", or "-".
func (d Duration) String() string {
	if !d.Known {
		return "-"
	}
	return d.D.Round(time.Millisecond).String()
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	if !d.Known {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, d.D.Seconds(), 'f', 3, 64), nil
}

// Build assembles the report of run; g is the run's group as configured
// now, nil when the topology no longer has it (then nothing is judged).
func Build(run plan.Run, g *config.Group) Report {
	r := Report{
		Version: Version, RunID: run.ID, Group: run.Group, Action: run.Plan.Action,
		From: run.Plan.From, To: run.Plan.To, Target: run.Plan.Why, Epoch: run.Plan.Epoch,
		By: run.By, Role: run.Role, Reason: run.Reason, Ticket: run.Ticket,
		State: run.State, Error: run.Error, Verification: run.Verification, DataLostBy: run.DataLostBy,
		Started: Time{run.Started}, Ended: Time{run.Ended}, WritableAt: Time{run.WritableAt},
		IncidentStart: Time{run.IncidentStart()}, Recovered: Time{run.Recovered()},
		Steps: []Step{}, Checks: []Check{},
	}
	if in := run.Incident; in != nil {
		r.Incident = &Incident{Site: in.Site, LastHeard: Time{in.LastHeard}, DeclaredLost: Time{in.DeclaredLost}}
	}
	for i, s := range run.Plan.Steps {
		r.Steps = append(r.Steps, step(s, stateAt(run.Steps, i), false))
	}
	for i, s := range run.Plan.Rollback {
		if st := stateAt(run.Rollback, i); st.State != plan.StepPending {
			r.Steps = append(r.Steps, step(s, st, true))
		}
	}
	for i, s := range run.Plan.Steps {
		if s.Kind == plan.Check {
			r.Checks = append(r.Checks, check(s, stateAt(run.Steps, i)))
		}
	}
	if g != nil && g.RTOTarget != nil {
		r.RTOTarget = known(g.RTOTarget.D())
	}
	if g != nil && g.MaxDataLoss != nil {
		r.MaxDataLoss = known(g.MaxDataLoss.D())
	}
	r.RTO, r.RTOVerdict, r.RTONote = rto(&run, r.Checks, r.RTOTarget)
	r.RPO, r.RPOVerdict, r.RPONote = rpo(&run, r.MaxDataLoss)
	r.End = Time{end(run)}
	return r
}

// stateAt is states[i], or a pending state when the run holds fewer
// states than its plan has steps (a malformed or foreign run).
func stateAt(states []plan.StepState, i int) plan.StepState {
	if i < len(states) {
		return states[i]
	}
	return plan.StepState{State: plan.StepPending}
}

func step(s plan.Step, st plan.StepState, rollback bool) Step {
	if st.Ended.Before(st.Started) {
		// The end of an earlier attempt: this one goes on.
		st.Ended = time.Time{}
	}
	out := Step{
		ID: s.ID, Kind: s.Kind, Resource: s.Resource, Site: s.Site, Rollback: rollback, Wave: s.Wave,
		State: st.State, Attempts: st.Attempts, Started: Time{st.Started}, Ended: Time{st.Ended},
		Output: map[string]string{}, Error: st.Error,
	}
	if !st.Started.IsZero() && !st.Ended.IsZero() {
		out.Took = known(st.Ended.Sub(st.Started))
	}
	maps.Copy(out.Output, st.Output)
	return out
}

func check(s plan.Step, st plan.StepState) Check {
	c := Check{ID: s.ID, Resource: s.Resource, Site: s.Site, Attempts: st.Attempts, Seen: st.Output[outputSeen], Error: st.Error}
	switch st.State {
	case plan.StepDone:
		c.Result = CheckPassed
	case plan.StepFailed:
		c.Result = CheckFailed
	case plan.StepSkipped:
		c.Result = CheckSkipped
	case plan.StepRunning:
		c.Result = CheckRunning
	default:
		c.Result = CheckNotRun
	}
	return c
}

// rto is the measured RTO (plan.Run.MeasuredRTO) and its verdict, or why
// there is none. A run that ended without the group back failed its RTO.
func rto(run *plan.Run, checks []Check, target Duration) (Duration, Verdict, string) {
	if !run.Recovered().IsZero() {
		from := "the run's start"
		if run.Incident != nil && run.IncidentStart().Before(run.Started) {
			from = "when " + run.Incident.Site + " was last heard from"
		}
		to := "writable at " + run.Plan.To
		if run.Plan.Action == plan.Drill {
			to = "the copies at " + run.Plan.To + " started"
		}
		if len(checks) > 0 {
			to += " and checked"
		}
		d := known(run.MeasuredRTO())
		return d, judge(d, target), "from " + from + " to " + to
	}
	failedChecks := slices.ContainsFunc(checks, func(c Check) bool { return c.Result == CheckFailed })
	switch {
	case run.Plan.Action == plan.Reprotect:
		return Duration{}, Unknown, "none: a reprotect restores protection while the group serves"
	case !run.Done():
		return Duration{}, Unknown, "not recovered yet: the run goes on"
	case failedChecks:
		return Duration{}, Fail, "not recovered: checks failed"
	}
	return Duration{}, Fail, "not recovered: the run " + run.State
}

// rpo is what was lost and its verdict: a drill's largest data age, or a
// real run's DataLost.
func rpo(run *plan.Run, max Duration) (Duration, Verdict, string) {
	if run.Plan.Action == plan.Drill {
		var worst Duration
		var which string
		for i, s := range run.Plan.Steps {
			st := stateAt(run.Steps, i)
			if s.Kind != plan.Clone || st.State != plan.StepDone {
				continue
			}
			secs, err := strconv.ParseFloat(st.Output[outputDataAge], 64)
			if err != nil || secs < 0 {
				return Duration{}, Unknown, fmt.Sprintf("unknown: %s gave no %s", s.ID, outputDataAge)
			}
			if d := time.Duration(secs * float64(time.Second)); !worst.Known || d > worst.D {
				worst, which = known(d), s.ID
			}
		}
		if !worst.Known {
			return Duration{}, Unknown, "unknown: no clone finished"
		}
		return worst, judge(worst, max), "data age of " + which
	}
	found := ""
	if run.DataLostBy != "" {
		found = " (found by run " + run.DataLostBy + ")"
	}
	switch {
	case run.DataLost != "":
		// Said in the resource type's terms, not in seconds: only when
		// nothing may be lost can it be judged.
		v := Unknown
		if max.Known && max.D == 0 {
			v = Fail
		}
		return Duration{}, v, run.DataLost + found
	case run.DataLostBy != "":
		// A failover's old site rejoined, and nothing existed only there.
		d := known(0)
		return d, judge(d, max), "none: nothing existed only at " + run.Plan.From + found
	case run.Plan.Action == plan.Failover && run.Plan.From != run.Plan.To && !rejoined(run) && (run.Activated() || !run.Done()):
		// What existed only at the old site is found when it rejoins; a
		// failover that ended before activation moved nothing.
		return Duration{}, Unknown, "known after reprotect"
	}
	d := known(0)
	return d, judge(d, max), "none known"
}

// rejoined says whether the run rejoined its old site: then its DataLost
// is what that found.
func rejoined(run *plan.Run) bool {
	for i, s := range run.Plan.Steps {
		if s.Kind == plan.Rejoin && s.Site == run.Plan.From && stateAt(run.Steps, i).State == plan.StepDone {
			return true
		}
	}
	return false
}

func judge(got, target Duration) Verdict {
	switch {
	case !got.Known || !target.Known:
		return Unknown
	case got.D <= target.D:
		return Pass
	}
	return Fail
}

// end is where the run's timeline ends: its end, or while it goes on the
// latest moment it holds.
func end(run plan.Run) time.Time {
	if !run.Ended.IsZero() {
		return run.Ended
	}
	at := run.Started
	for _, states := range [][]plan.StepState{run.Steps, run.Rollback} {
		for _, st := range states {
			at = latest(at, st.Started, st.Ended)
		}
	}
	return latest(at, run.WritableAt)
}

func latest(ts ...time.Time) time.Time {
	return slices.MaxFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
}

// Title says what the run was, in words.
func (r Report) Title() string {
	switch {
	case r.Action == plan.Reprotect:
		return fmt.Sprintf("reprotect of %s: the other sites rejoin %s", r.Group, r.To)
	case r.Action == plan.Drill:
		return fmt.Sprintf("drill of %s at %s", r.Group, r.To)
	case r.Incident != nil:
		return fmt.Sprintf("automatic %s of %s from %s to %s", r.Action, r.Group, r.From, r.To)
	}
	return fmt.Sprintf("%s of %s from %s to %s", r.Action, r.Group, r.From, r.To)
}

// StartedBy is who started the run, with their role.
func (r Report) StartedBy() string {
	if r.Role == "" {
		return r.By
	}
	return r.By + " (" + r.Role + ")"
}

// VerificationText says how the checks ended: as the run recorded it, or
// as its check steps show (a failed run records none).
func (r Report) VerificationText() string {
	if r.Verification != "" {
		return r.Verification
	}
	var failed []string
	all := true
	for _, c := range r.Checks {
		switch c.Result {
		case CheckFailed:
			failed = append(failed, c.Resource)
		case CheckPassed:
		default:
			all = false
		}
	}
	switch {
	case len(r.Checks) == 0:
		return "no checks"
	case len(failed) > 0:
		return "checks failed: " + strings.Join(failed, ", ")
	case !all:
		return "not every check ran"
	}
	return plan.Verified
}

// VerificationVerdict judges the checks: pass when every one passed.
func (r Report) VerificationVerdict() Verdict {
	if len(r.Checks) == 0 {
		return Unknown
	}
	for _, c := range r.Checks {
		switch c.Result {
		case CheckPassed:
		case CheckFailed:
			return Fail
		default:
			return Unknown
		}
	}
	return Pass
}

// Detail is a step's error, or else its output.
func (s Step) Detail() string {
	if s.Error != "" {
		return s.Error
	}
	return strings.Join(sortedOutput(s.Output), " ")
}

// Detail is what a check saw, and its error when it failed.
func (c Check) Detail() string {
	switch {
	case c.Error != "" && c.Seen != "":
		return c.Seen + ": " + c.Error
	case c.Error != "":
		return c.Error
	}
	return c.Seen
}

// JSON writes the report as the document docs/report.md describes.
func JSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// sortedOutput is a step's output as "key=value" in key order.
func sortedOutput(out map[string]string) []string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(out)) {
		kv = append(kv, k+"="+out[k])
	}
	return kv
}
