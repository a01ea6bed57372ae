// Package engine drives runs: it carries a run's steps out one after the
// other, on the agents of the sites they name, and records every step's
// progress in etcd under the controller's term, so that another controller
// can resume the run where it stopped. Planning is internal/plan's; the
// steps' effects are the drivers'.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// Store is what the engine needs of the control plane.
type Store interface {
	SaveRun(ctx context.Context, run plan.Run, f coord.Fence) error
	Activate(ctx context.Context, run plan.Run, epoch int64, to string, f coord.Fence) (int64, error)
	Record(ctx context.Context, group string) (status.Record, bool, error)
	Runs(ctx context.Context, group string) ([]plan.Run, error)
	FillDataLost(ctx context.Context, group, failoverID, text, by string, f coord.Fence) error
	// Approvals (an approve step).
	PutAwaiting(ctx context.Context, a status.Awaiting, f coord.Fence) (status.Awaiting, error)
	DeleteAwaiting(ctx context.Context, group string, f coord.Fence) error
	Approval(ctx context.Context, run, step string) (status.Approval, bool, error)
}

// Agents carries a step out on a site's agent.
type Agents interface {
	Step(ctx context.Context, site string, req api.StepRequest) (api.StepResult, error)
}

// Engine drives runs for the controller elected with Fence.
type Engine struct {
	Store  Store
	Agents Agents
	Fence  coord.Fence
	Log    *slog.Logger
	// SiteLost says whether a location was declared lost by every other
	// location: its serve lease ran out, so it fenced itself (see
	// docs/design/fencing.md). Best-effort steps at a lost site are skipped;
	// a site that merely does not answer is asked again.
	SiteLost func(site string) bool
	// Now and Sleep are time, replaceable in tests.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration)
	// AfterStep, when set, is called once a step's success is stored: the
	// place where tests inject a controller crash between two steps.
	AfterStep func(run plan.Run, step plan.Step)
	// Preempted says whether a drill must stop (docs/design/drills.md): a
	// reason when it must (a real run on its group, a new epoch, its site
	// lost), and busy while a real run is in progress on the group, which
	// the drill's teardown waits out. Nil: drills are never preempted.
	Preempted func(ctx context.Context, run plan.Run) (reason string, busy bool)
}

// teardownPatience bounds how long an aborted drill's teardown waits for
// the real run that preempted it to end.
const teardownPatience = 2 * time.Minute

// ErrInterrupted wraps a failure to store a run's progress (etcd busy,
// the term lost): the engine stops driving without deciding anything, and
// the run is resumed from its stored state.
var ErrInterrupted = errors.New("run interrupted")

// retryPause is the pause between two attempts of a step; promoteBackoff
// caps the pause between attempts of a promote after activation.
const (
	retryPause     = 300 * time.Millisecond
	promoteBackoff = 5 * time.Second
)

// Drive runs run to its end, or until ctx ends or its progress cannot be
// stored (then it returns an error wrapping ErrInterrupted, and the run
// is resumed later, by this controller or the next). It returns the run as
// last saved.
func (e *Engine) Drive(ctx context.Context, run plan.Run) (plan.Run, error) {
	if run.Done() {
		return run, nil
	}
	if run.State == plan.RunRollingBack {
		return e.rollBack(ctx, run, "")
	}
	drill := run.Plan.Action == plan.Drill
	mu := new(sync.Mutex) // the run's state, shared by the steps of a wave
	for i := 0; i < len(run.Plan.Steps); i++ {
		if err := ctx.Err(); err != nil {
			return run, err
		}
		st := &run.Steps[i]
		if st.State == plan.StepDone || st.State == plan.StepSkipped {
			continue
		}
		if drill && run.Plan.Steps[i].Kind != plan.Teardown && e.Preempted != nil {
			if why, _ := e.Preempted(ctx, run); why != "" {
				return e.rollBack(ctx, run, "drill aborted: "+why)
			}
		}
		var err error
		if w := wave(run.Plan.Steps, i); w > i+1 {
			// Steps of one wave (one priority, no dependency between
			// them) run side by side; the first that fails, in plan
			// order, decides as a single step would.
			var failed int
			failed, err = e.wave(ctx, &run, i, w, mu)
			i = w - 1
			if err != nil {
				i = failed
			}
		} else {
			err = e.step(ctx, &run, i, mu)
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil || errors.Is(err, ErrInterrupted) {
			return run, err
		}
		if drill {
			return e.rollBack(ctx, run, fmt.Sprintf("step %s failed: %v", run.Plan.Steps[i].ID, err))
		}
		if !run.Activated() {
			// The run's memory may be behind the record (an activation
			// whose answer was lost): never roll back a moved group.
			if moved, err := e.activatedInRecord(ctx, run); err != nil {
				return run, err
			} else if moved {
				return e.Drive(ctx, markActivated(run))
			}
			return e.rollBack(ctx, run, fmt.Sprintf("step %s failed: %v", run.Plan.Steps[i].ID, err))
		}
		if err := e.tellFailovers(ctx, run); err != nil {
			return run, err
		}
		run.State, run.Ended = plan.RunFailed, e.Now().UTC()
		run.Error = fmt.Sprintf("step %s failed after the point of no return: %v; the group is active at %s and writable there; fix the cause and run `siteflip reprotect %s`",
			run.Plan.Steps[i].ID, err, run.Plan.To, run.Group)
		return run, e.save(ctx, run)
	}
	if err := e.tellFailovers(ctx, run); err != nil {
		return run, err
	}
	run.Succeed(e.Now().UTC())
	return run, e.save(ctx, run)
}

// tellFailovers writes what the run's rejoins found onto the failover
// that left each rejoined site behind (plan.FailoverLoss), before the run
// ends: a resumed run tells again, and telling again changes nothing. It
// is a note, not a step: apart from a lost term (the run is interrupted),
// a failure to tell is logged and the run goes on.
func (e *Engine) tellFailovers(ctx context.Context, run plan.Run) error {
	sites := run.RejoinedSites()
	if len(sites) == 0 {
		return nil
	}
	history, err := e.Store.Runs(ctx, run.Group)
	if err != nil {
		e.Log.Warn("cannot read the group's runs: the failover whose old site this run rejoined does not learn what it lost",
			"run", run.ID, "group", run.Group, "error", err)
		return nil
	}
	for _, site := range sites {
		loss, ok := plan.FailoverLoss(history, run, site)
		if !ok {
			continue
		}
		err := e.Store.FillDataLost(ctx, run.Group, loss.Failover, loss.DataLost, run.ID, e.Fence)
		switch {
		case errors.Is(err, coord.ErrNotElected):
			return fmt.Errorf("%w: %v", ErrInterrupted, err)
		case err != nil:
			e.Log.Warn("cannot tell the failover what it lost", "run", run.ID, "failover", loss.Failover, "rejoined_site", site, "error", err)
		default:
			lost := loss.DataLost
			if lost == "" {
				lost = "nothing"
			}
			e.Log.Info("failover told what it lost", "run", run.ID, "failover", loss.Failover, "rejoined_site", site, "data_lost", lost)
		}
	}
	return nil
}

// activatedInRecord says whether the group's record already shows this
// run's activation.
func (e *Engine) activatedInRecord(ctx context.Context, run plan.Run) (bool, error) {
	rec, ok, err := e.Store.Record(ctx, run.Group)
	if err != nil {
		return false, fmt.Errorf("%w: read the record of %s: %v", ErrInterrupted, run.Group, err)
	}
	return ok && rec.Epoch == run.Plan.Epoch+1 && rec.ActiveSite == run.Plan.To, nil
}

func markActivated(run plan.Run) plan.Run {
	for i, s := range run.Plan.Steps {
		if s.Kind == plan.Activate {
			run.Steps[i].State = plan.StepDone
		}
	}
	return run
}

// wave returns the end (exclusive) of the wave that starts at step i:
// the steps after it with the same non-zero Wave. A step outside any wave
// is a wave of one.
func wave(steps []plan.Step, i int) int {
	j := i + 1
	if steps[i].Wave == 0 {
		return j
	}
	for j < len(steps) && steps[j].Wave == steps[i].Wave {
		j++
	}
	return j
}

// wave runs the steps [from, to) side by side and waits for all of them.
// It returns the first failure in plan order, with its step's index; an
// interruption (the term lost, ctx ended) comes first.
func (e *Engine) wave(ctx context.Context, run *plan.Run, from, to int, mu *sync.Mutex) (int, error) {
	errs := make([]error, to-from)
	var wg sync.WaitGroup
	for i := from; i < to; i++ {
		if st := run.Steps[i].State; st == plan.StepDone || st == plan.StepSkipped {
			continue
		}
		wg.Go(func() { errs[i-from] = e.step(ctx, run, i, mu) })
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil && (ctx.Err() != nil || errors.Is(err, ErrInterrupted)) {
			return from + k, err
		}
	}
	for k, err := range errs {
		if err != nil {
			return from + k, err
		}
	}
	return 0, nil
}

// step carries out step i with its retries and records the outcome. The
// run's state is changed and saved under mu only: the steps of a wave
// share it.
func (e *Engine) step(ctx context.Context, run *plan.Run, i int, mu *sync.Mutex) error {
	s := run.Plan.Steps[i]
	st := &run.Steps[i]
	save := func(change func()) error {
		mu.Lock()
		defer mu.Unlock()
		change()
		return e.save(ctx, *run)
	}
	if s.BestEffort && e.SiteLost != nil && e.SiteLost(s.Site) {
		return save(func() {
			st.State, st.Error = plan.StepSkipped, s.Site+" is lost: its serve lease ran out, so it fenced itself"
		})
	}
	// After activation the group must become writable at the new site: a
	// promote is tried until it succeeds (the run stays in progress and
	// shows its last error), never given up.
	mu.Lock()
	endless := s.Kind == plan.Promote && run.Activated()
	mu.Unlock()
	pause := retryPause
	var err error
	for attempt := 0; endless || attempt <= s.Retries; attempt++ {
		if err := save(func() { st.State, st.Attempts, st.Started = plan.StepRunning, st.Attempts+1, e.Now().UTC() }); err != nil {
			return err
		}
		var out map[string]string
		out, err = e.attempt(ctx, run, i, mu)
		if err == nil {
			done := func() {
				st.Ended = e.Now().UTC()
				st.State, st.Output, st.Error = plan.StepDone, out, ""
				e.noteEffects(run, s, out, st.Ended)
				e.Log.Info("step done", "run", run.ID, "step", s.ID, "took", st.Ended.Sub(st.Started).Round(time.Millisecond))
			}
			if s.Kind == plan.Activate { // Activate saved itself, with the record
				mu.Lock()
				done()
				mu.Unlock()
			} else if err := save(done); err != nil {
				return err
			}
			if e.AfterStep != nil {
				mu.Lock()
				snapshot := *run
				mu.Unlock()
				e.AfterStep(snapshot, s)
			}
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, ErrInterrupted) {
			return err
		}
		mu.Lock()
		st.Ended = e.Now().UTC()
		st.Error = err.Error()
		mu.Unlock()
		e.Log.Warn("step failed", "run", run.ID, "step", s.ID, "attempt", st.Attempts, "error", err)
		if s.BestEffort && unreachable(err) && e.SiteLost != nil && e.SiteLost(s.Site) {
			// Fencing a site that is being lost: as soon as the control
			// plane judges it down it is fenced by being down (and by the
			// epoch when it comes back). An answered failure is not
			// skipped: a site that says it could not stop serving is
			// serving.
			return save(func() { st.State = plan.StepSkipped })
		}
		if endless {
			if err := save(func() {}); err != nil {
				return err
			}
			e.Sleep(ctx, pause)
			pause = min(2*pause, promoteBackoff)
			continue
		}
		if attempt < s.Retries {
			e.Sleep(ctx, retryPause)
		}
	}
	if serr := save(func() { st.State = plan.StepFailed }); serr != nil {
		return serr
	}
	if s.Kind == plan.Check && run.Plan.Action != plan.Drill {
		// A real run's check tells, it does not undo: the group is
		// recovered and the run ends with the failing check named.
		e.Log.Warn("check failed", "run", run.ID, "step", s.ID, "error", err)
		return nil
	}
	return err
}

// attempt performs one attempt of step i. An agent that cannot be reached
// (restarting, or its location cut off for a moment) does not count as a
// failed attempt: it is asked again until the step's timeout has passed,
// unless a best-effort step's site is judged down meanwhile.
func (e *Engine) attempt(ctx context.Context, run *plan.Run, i int, mu *sync.Mutex) (map[string]string, error) {
	s := run.Plan.Steps[i]
	deadline := e.Now().Add(s.Timeout)
	for {
		out, err := e.do(ctx, run, i)
		if err == nil || !unreachable(err) || !e.Now().Before(deadline) || ctx.Err() != nil {
			return out, err
		}
		if s.BestEffort && e.SiteLost != nil && e.SiteLost(s.Site) {
			return nil, err
		}
		mu.Lock()
		run.Steps[i].Error = err.Error()
		mu.Unlock()
		e.Sleep(ctx, retryPause)
	}
}

// do performs one call of step i.
func (e *Engine) do(ctx context.Context, run *plan.Run, i int) (map[string]string, error) {
	s := run.Plan.Steps[i]
	if s.Kind == plan.Keep {
		return e.keep(ctx, run, i)
	}
	if s.Kind == plan.Approve {
		return e.approve(ctx, run, i)
	}
	if s.Kind == plan.Activate {
		run.Steps[i].State = plan.StepDone // stored in the same transaction as the record
		epoch, err := e.Store.Activate(ctx, *run, run.Plan.Epoch, s.Site, e.Fence)
		if err != nil {
			run.Steps[i].State = plan.StepRunning
			if errors.Is(err, coord.ErrNotElected) {
				return nil, fmt.Errorf("%w: %v", ErrInterrupted, err)
			}
			return nil, err
		}
		return map[string]string{"epoch": strconv.FormatInt(epoch, 10)}, nil
	}
	req := api.StepRequest{
		RunID: run.ID, Step: s.ID, Group: run.Group, Resource: s.Resource, Kind: s.Kind,
		Epoch: run.StepEpoch(i), Timeout: s.Timeout, Term: e.Fence.Term,
	}
	return e.call(ctx, s, req)
}

// keep holds a drill up for the requested time after the step before it
// ended (so that a resumed run does not start the wait again), and fails
// when the drill must stop: the drill is then torn down as aborted.
func (e *Engine) keep(ctx context.Context, run *plan.Run, i int) (map[string]string, error) {
	from := run.Started
	if i > 0 && !run.Steps[i-1].Ended.IsZero() {
		from = run.Steps[i-1].Ended
	}
	until := from.Add(run.Request.Keep)
	for e.Now().Before(until) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if e.Preempted != nil {
			if why, _ := e.Preempted(ctx, *run); why != "" {
				// The drill stops here: its teardown waits for the real
				// run, as after any other step.
				return nil, fmt.Errorf("drill aborted while kept up: %s", why)
			}
		}
		e.Sleep(ctx, min(until.Sub(e.Now()), time.Second))
	}
	return map[string]string{"kept": run.Request.Keep.String()}, nil
}

// approvalPoll is how often a run waiting for a person looks for the
// verdict.
const approvalPoll = 250 * time.Millisecond

// approve waits for a person's verdict on an approval step, until the
// step's timeout (counted from when the run first waited there, so that
// a resumed run does not start the wait again). A rejection or the end of
// the wait fails the step: before activation the run is rolled back,
// after it the run fails, as any step would.
func (e *Engine) approve(ctx context.Context, run *plan.Run, i int) (map[string]string, error) {
	s := run.Plan.Steps[i]
	now := e.Now().UTC()
	a, err := e.Store.PutAwaiting(ctx, status.Awaiting{Group: run.Group, Run: run.ID, Step: s.ID, Message: s.Message, Since: now, Until: now.Add(s.Timeout)}, e.Fence)
	if err != nil {
		if errors.Is(err, coord.ErrNotElected) {
			return nil, fmt.Errorf("%w: %v", ErrInterrupted, err)
		}
		return nil, err
	}
	defer func() {
		if err := e.Store.DeleteAwaiting(context.WithoutCancel(ctx), run.Group, e.Fence); err != nil {
			e.Log.Warn("could not clear the awaited approval", "run", run.ID, "error", err)
		}
	}()
	e.Log.Info("waiting for a person's approval", "run", run.ID, "step", s.ID, "until", a.Until)
	for {
		v, ok, err := e.Store.Approval(ctx, run.ID, s.ID)
		switch {
		case err != nil:
			e.Log.Warn("could not read the verdict", "run", run.ID, "step", s.ID, "error", err)
		case ok && v.Approved:
			return map[string]string{"approved_by": v.By, "approved_at": v.At.Format(time.RFC3339), "reason": v.Reason}, nil
		case ok:
			why := ""
			if v.Reason != "" {
				why = ": " + v.Reason
			}
			return nil, fmt.Errorf("rejected by %s at %s%s", v.By, v.At.Format(time.RFC3339), why)
		}
		if !e.Now().Before(a.Until) {
			return nil, fmt.Errorf("no one approved it within %s (waiting since %s); `siteflip approve %s` lets a run go on", s.Timeout, a.Since.Format(time.RFC3339), run.ID)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e.Sleep(ctx, approvalPoll)
	}
}

// call sends a step to its site's agent. The agent bounds the step by its
// timeout and answers with the failure; the call waits a little longer so
// as to hear that answer.
func (e *Engine) call(ctx context.Context, s plan.Step, req api.StepRequest) (map[string]string, error) {
	sctx, cancel := context.WithTimeout(ctx, s.Timeout+2*time.Second)
	defer cancel()
	res, err := e.Agents.Step(sctx, s.Site, req)
	if err != nil {
		var re *api.RequestError
		if !errors.As(err, &re) && ctx.Err() == nil {
			err = &unreachableError{err}
		}
		return nil, fmt.Errorf("%s at %s: %w", s.ID, s.Site, err)
	}
	if res.Error != "" {
		return nil, errors.New(res.Error)
	}
	return res.Output, nil
}

// unreachableError marks a step that never reached its agent.
type unreachableError struct{ err error }

func (u *unreachableError) Error() string { return u.err.Error() }
func (u *unreachableError) Unwrap() error { return u.err }

func unreachable(err error) bool {
	var u *unreachableError
	return errors.As(err, &u)
}

// noteEffects records what a finished step means for the run as a whole.
func (e *Engine) noteEffects(run *plan.Run, s plan.Step, out map[string]string, at time.Time) {
	switch s.Kind {
	case plan.Promote:
		// Writable once every promote is done.
		for j, o := range run.Plan.Steps {
			if o.Kind == plan.Promote && o.ID != s.ID && run.Steps[j].State != plan.StepDone {
				return
			}
		}
		run.WritableAt = at
	case plan.Rejoin:
		// A resource type says what its rejoin lost, in its own terms.
		if what := out[plan.OutputDataLost]; what != "" {
			lost := fmt.Sprintf("%s at %s: %s", s.Resource, s.Site, what)
			if run.DataLost != "" {
				run.DataLost += "; "
			}
			run.DataLost += lost
		}
	}
}

// rollBack undoes a run that failed before its point of no return: every
// rollback step is retried like a forward one.
func (e *Engine) rollBack(ctx context.Context, run plan.Run, why string) (plan.Run, error) {
	if why != "" {
		run.Error = why
	}
	run.State = plan.RunRollingBack
	if err := e.save(ctx, run); err != nil {
		return run, err
	}
	drill := run.Plan.Action == plan.Drill
	if drill && e.Preempted != nil {
		// The cleanup of an aborted drill must not compete with the
		// recovery that aborted it.
		for waited := time.Duration(0); waited < teardownPatience; waited += time.Second {
			if _, busy := e.Preempted(ctx, run); !busy || ctx.Err() != nil {
				break
			}
			e.Sleep(ctx, time.Second)
		}
	}
	for i, s := range run.Plan.Rollback {
		st := &run.Rollback[i]
		if st.State == plan.StepDone || st.State == plan.StepSkipped {
			continue
		}
		if s.BestEffort && e.SiteLost != nil && e.SiteLost(s.Site) {
			st.State, st.Error = plan.StepSkipped, s.Site+" is lost; its agent removes what is left when it starts again"
			if err := e.save(ctx, run); err != nil {
				return run, err
			}
			continue
		}
		var err error
		for attempt := 0; attempt <= s.Retries; attempt++ {
			st.State, st.Attempts, st.Started = plan.StepRunning, st.Attempts+1, e.Now().UTC()
			if err = e.save(ctx, run); err != nil {
				return run, err
			}
			req := api.StepRequest{RunID: run.ID, Step: s.ID, Group: run.Group, Resource: s.Resource, Kind: s.Kind, Epoch: run.Plan.Epoch, Timeout: s.Timeout, Term: e.Fence.Term}
			deadline := e.Now().Add(s.Timeout)
			for {
				_, err = e.call(ctx, s, req)
				if err == nil || !unreachable(err) || !e.Now().Before(deadline) || ctx.Err() != nil {
					break
				}
				st.Error = err.Error()
				e.Sleep(ctx, retryPause)
			}
			st.Ended = e.Now().UTC()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return run, err
			}
			st.Error = err.Error()
			e.Sleep(ctx, retryPause)
		}
		if err != nil {
			st.State = plan.StepFailed
			run.State, run.Ended = plan.RunFailed, e.Now().UTC()
			if drill {
				run.Error += fmt.Sprintf("; teardown step %s failed too: %v; production is untouched, but the drill left things at %s: run `siteflip drill %s --cleanup`",
					s.ID, err, s.Site, run.Group)
			} else {
				run.Error += fmt.Sprintf("; rollback step %s failed too: %v; the group is still active at %s (epoch %d) but may have no serving primary: check %s and run `siteflip switchover` or `siteflip failover`",
					s.ID, err, run.Plan.From, run.Plan.Epoch, s.Site)
			}
			return run, e.save(ctx, run)
		}
		st.State, st.Error = plan.StepDone, ""
	}
	run.State, run.Ended = plan.RunRolledBack, e.Now().UTC()
	if drill {
		// A drill that did not go through failed, even though it left
		// nothing behind.
		run.State = plan.RunFailed
		run.Error += "; everything the drill made was removed"
	}
	return run, e.save(ctx, run)
}

// save stores the run's progress; a failure interrupts the run rather
// than failing it.
func (e *Engine) save(ctx context.Context, run plan.Run) error {
	if err := e.Store.SaveRun(ctx, run, e.Fence); err != nil {
		return fmt.Errorf("%w: %v", ErrInterrupted, err)
	}
	return nil
}
