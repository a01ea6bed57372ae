package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/resource"
)

// Errors of step authorization.
var (
	errNotController = errors.New("not the elected controller")
	errNoSuchStep    = errors.New("not a step of the group's run in progress")
)

// stepOrder is a step the agent may carry out, with what it acts on, read
// from the stored run.
type stepOrder struct {
	step    plan.Step
	primary string            // the site to follow, for a rejoin
	input   map[string]string // the fence step's output, for a catch-up
	// drill is the drill's run ID, for the steps of a drill.
	drill string
	// targets are the drill copies' addresses by resource, for a drill's
	// check (a real run's checks ask production).
	targets map[string]string
	// run is the run the step belongs to, for the actors that pass it on
	// (a script's environment).
	run resource.RunInfo
}

// authorizeStep decides whether the step req, sent by the location
// callerSite to the agent of here, may be carried out, given what the
// control plane holds (sc, read after the resource's lock was taken). It
// is the whole rule of docs/design/safety.md, "A step must belong to the
// run in progress"; the error says which part failed.
func authorizeStep(sc coord.StepContext, req api.StepRequest, callerSite, here string) (stepOrder, error) {
	// A drill is checked against the group's drill in progress, every
	// other run against its run in progress: two locks, so that a drill
	// never stands in a recovery's way.
	inProgress, what := sc.Running, "run"
	drill := sc.Run != nil && sc.Run.Plan.Action == plan.Drill
	if drill {
		inProgress, what = sc.Drilling, "drill"
	}
	switch {
	case !sc.Adopted:
		return stepOrder{}, fmt.Errorf("%w: group %s has no record", errNoSuchStep, req.Group)
	case req.RunID == "" || inProgress == "":
		return stepOrder{}, fmt.Errorf("%w: group %s has no %s in progress", errNoSuchStep, req.Group, what)
	case inProgress != req.RunID:
		return stepOrder{}, fmt.Errorf("%w: run %q is not the group's %s in progress (%s)", errNoSuchStep, req.RunID, what, inProgress)
	case sc.Run == nil || sc.Run.Group != req.Group:
		return stepOrder{}, fmt.Errorf("%w: run %s of group %s is not stored", errNoSuchStep, req.RunID, req.Group)
	case sc.Controller == nil:
		return stepOrder{}, fmt.Errorf("%w: no controller is elected", errNotController)
	case sc.Controller.Site != callerSite:
		return stepOrder{}, fmt.Errorf("%w: the controller is %s (term %d), the step came from %s", errNotController, sc.Controller.Site, sc.Controller.Term, callerSite)
	case sc.Controller.Term != req.Term:
		return stepOrder{}, fmt.Errorf("%w: the step carries term %d, the controller's term is %d", errNotController, req.Term, sc.Controller.Term)
	}
	run := sc.Run
	steps, states := run.Plan.Steps, run.Steps
	rollingBack := run.State == plan.RunRollingBack
	if rollingBack {
		steps, states = run.Plan.Rollback, run.Rollback
	}
	idx := -1
	for i, s := range steps {
		if s.ID == req.Step {
			idx = i
		}
	}
	if idx < 0 || idx >= len(states) {
		where := "plan"
		if rollingBack {
			where = "rollback"
		}
		return stepOrder{}, fmt.Errorf("%w: run %s has no step %q in its %s", errNoSuchStep, run.ID, req.Step, where)
	}
	s := steps[idx]
	switch {
	case s.Kind == plan.Activate || s.Kind == plan.Approve:
		return stepOrder{}, fmt.Errorf("%w: %s is the controller's own step", errNoSuchStep, s.ID)
	case s.Site != here || s.Kind != req.Kind || s.Resource != req.Resource:
		return stepOrder{}, fmt.Errorf("%w: step %s is %s of %s at %s, the request asks %s of %s at %s",
			errNoSuchStep, s.ID, s.Kind, s.Resource, s.Site, req.Kind, req.Resource, here)
	case states[idx].State != plan.StepRunning:
		return stepOrder{}, fmt.Errorf("%w: step %s of run %s is %s, not running", errNoSuchStep, s.ID, run.ID, states[idx].State)
	}
	switch s.Kind {
	case plan.Clone, plan.Start, plan.Teardown, plan.Keep:
		if !drill {
			return stepOrder{}, fmt.Errorf("%w: %s is a drill's step and run %s is a %s", errNoSuchStep, s.ID, run.ID, run.Plan.Action)
		}
	case plan.Check:
	default:
		if drill {
			return stepOrder{}, fmt.Errorf("%w: a drill never runs %s", errNoSuchStep, s.Kind)
		}
	}
	if drill && s.Kind == plan.Teardown {
		// A teardown removes only the drill's own copies: it goes ahead
		// whatever happened to the group meanwhile.
		if req.Epoch != run.Plan.Epoch {
			return stepOrder{}, fmt.Errorf("%w: step %s is of epoch %d, the request says %d", errNoSuchStep, s.ID, run.Plan.Epoch, req.Epoch)
		}
		return stepOrder{step: s, drill: run.ID, run: runInfo(run, s)}, nil
	}
	epoch := run.Plan.Epoch
	if !rollingBack {
		epoch = run.StepEpoch(idx)
	}
	if req.Epoch != epoch || sc.Record.Epoch != epoch {
		return stepOrder{}, fmt.Errorf("%w: step %s runs in epoch %d; the request says %d and group %s is at epoch %d",
			errNoSuchStep, s.ID, epoch, req.Epoch, req.Group, sc.Record.Epoch)
	}
	o := stepOrder{step: s, run: runInfo(run, s)}
	switch s.Kind {
	case plan.Rejoin:
		o.primary = run.Plan.To
	case plan.CatchUp:
		o.input = run.OutputOf(plan.Fence, s.Resource)
	}
	if drill {
		o.drill = run.ID
		o.targets = drillTargets(run)
	}
	return o, nil
}

// runInfo is what a step's actor is told of its run.
func runInfo(run *plan.Run, s plan.Step) resource.RunInfo {
	return resource.RunInfo{Group: run.Group, Action: string(run.Plan.Action), Run: run.ID, From: run.Plan.From, To: run.Plan.To,
		Epoch: run.Plan.Epoch, Site: s.Site, Step: string(s.Kind)}
}

// drillTargets are the addresses where the drill's copies serve, by
// resource, from its done start steps.
func drillTargets(run *plan.Run) map[string]string {
	out := map[string]string{}
	for i, s := range run.Plan.Steps {
		if s.Kind == plan.Start && run.Steps[i].State == plan.StepDone {
			if a := run.Steps[i].Output[resource.OutputAddress]; a != "" {
				out[s.Resource] = a
			}
		}
	}
	return out
}

// handleStep carries out one step on a resource of this site, when
// authorizeStep allows it.
func (srv *apiServer) handleStep(w http.ResponseWriter, r *http.Request) {
	info := requestInfo(r)
	var req api.StepRequest
	if err := decodeJSON(w, r, 1<<16, &req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode step: %w", err))
		return
	}
	info.note.Action, info.note.Group, info.note.Run = fmt.Sprintf("%s of %s at %s (step %s, term %d, epoch %d)", req.Kind, req.Resource, srv.site.Name, req.Step, req.Term, req.Epoch), req.Group, req.RunID
	g, ok := srv.topo.Group(req.Group)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("%s: unknown group %q in %s: the locations' configurations differ", srv.site.Name, req.Group, srv.topo.File))
		return
	}
	res, ok := findResource(g, req.Resource)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("%s: group %s has no resource %q in %s: the locations' configurations differ", srv.site.Name, req.Group, req.Resource, srv.topo.File))
		return
	}
	// One step at a time per resource: a retry must not race the attempt
	// it retries. The checks (the run, the term, the epoch, the serve
	// lease) come after the waits, so that a step that waited behind
	// another is judged by the state it will act in.
	lock := srv.local.resourceLock(g.Name + "/" + res.Name)
	lock.Lock()
	defer lock.Unlock()
	// Then one of the slots of its kind (slots), for the same reason; the
	// answer must get through after the wait.
	queued := time.Now()
	_ = http.NewResponseController(w).SetWriteDeadline(queued.Add(max(req.Timeout, time.Second) + 30*time.Second))
	var waited time.Duration
	if slots := srv.local.slots(req.Kind, res.Data); slots != nil {
		// A reprotect of 30 groups at once had 30 crash recoveries and
		// pg_rewinds running here, and the active site checkpointing and
		// serving 30 copies; 30 promotions at once checkpointed together.
		// The serve lease ran out under the load.
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			waited = time.Since(queued)
		case <-r.Context().Done():
			return // the controller gave up on this request
		}
	}
	if r.Context().Err() != nil {
		return // the controller gave up on this request
	}
	rctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	sc, err := srv.store.StepContext(rctx, g.Name, req.RunID)
	cancel()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s cannot check the step against the control plane: %w", srv.site.Name, err))
		return
	}
	order, err := authorizeStep(sc, req, info.principal.Site, srv.site.Name)
	if err != nil {
		code := http.StatusConflict
		if errors.Is(err, errNotController) {
			code = http.StatusForbidden
		}
		writeError(w, code, fmt.Errorf("step %s of run %q refused at %s: %w", req.Step, req.RunID, srv.site.Name, err))
		return
	}
	s := order.step
	if (s.Kind == plan.Promote || s.Kind == plan.Unfence) && !srv.lease.valid() {
		info.note.Failed = true
		writeJSON(w, http.StatusOK, api.StepResult{Error: fmt.Sprintf("%s of %s at %s: %v: no other location granted it the right to serve within %s",
			s.Kind, s.Resource, srv.site.Name, errNoLease, srv.topo.Coordination.ServeLease.D())})
		return
	}
	timeout := max(s.Timeout, time.Second)
	// A rejoin may take minutes: the answer must still get through.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout + 30*time.Second))
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	start := time.Now()
	out, err := srv.local.carryOut(ctx, g, res, order)
	srv.log.Info("step", "run", req.RunID, "step", s.ID, "epoch", req.Epoch, "took", time.Since(start).Round(time.Millisecond), "error", err)
	if err != nil {
		info.note.Failed = true
		writeJSON(w, http.StatusOK, api.StepResult{Error: fmt.Sprintf("%s of %s at %s: %v", s.Kind, s.Resource, srv.site.Name, err)})
		return
	}
	if waited >= time.Millisecond {
		if out == nil {
			out = map[string]string{}
		}
		out[outputSlotWait] = waited.Round(time.Millisecond).String()
	}
	writeJSON(w, http.StatusOK, api.StepResult{Output: out})
}

// outputSlotWait is the step output that says how long the step waited
// for a slot before it began (slots).
const outputSlotWait = "slot_wait"

// slots returns the slots a step of kind on a database (data) takes one
// of, nil for none. An agent carries out a few promotions of databases at
// once, and a few rejoins and drill clones (which copy or rewrite a whole
// database), as its machine allows,
// whatever the controller asks: max(4, cores) of each. Promotions have
// slots of their own, so that a failover never waits behind a
// reprotect's rejoins.
func (lr *localResources) slots(kind plan.Kind, data bool) chan struct{} {
	if !data {
		return nil // a name, a route, a service: cheap
	}
	switch kind {
	case plan.Rejoin, plan.Clone:
		return lr.heavy
	case plan.Promote:
		return lr.promotions
	}
	return nil
}

// stepSlots is how many steps of one kind an agent carries out at once.
func stepSlots() int { return max(4, runtime.NumCPU()) }

// findResource returns the resource of g named name.
func findResource(g *config.Group, name string) (*config.Resource, bool) {
	for i := range g.Resources {
		if g.Resources[i].Name == name {
			return &g.Resources[i], true
		}
	}
	return nil, false
}
