package agent

import (
	"errors"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// stepRun is a switchover of webshop from brussels to antwerp in epoch 4:
// fence, catch-up, activate, promote, rejoin; the fence is done.
func stepRun() *plan.Run {
	p := plan.Plan{Group: "webshop", Action: plan.Switchover, From: "brussels", To: "antwerp", Epoch: 4,
		Steps: []plan.Step{
			{ID: "fence:db@brussels", Kind: plan.Fence, Resource: "db", Site: "brussels", Timeout: time.Second},
			{ID: "catch-up:db@antwerp", Kind: plan.CatchUp, Resource: "db", Site: "antwerp", Timeout: time.Second},
			{ID: "activate@antwerp", Kind: plan.Activate, Site: "antwerp", Timeout: time.Second},
			{ID: "promote:db@antwerp", Kind: plan.Promote, Resource: "db", Site: "antwerp", Timeout: time.Second},
			{ID: "rejoin:db@brussels", Kind: plan.Rejoin, Resource: "db", Site: "brussels", Timeout: time.Second},
		},
		Rollback: []plan.Step{{ID: "unfence:db@brussels", Kind: plan.Unfence, Resource: "db", Site: "brussels", Timeout: time.Second}},
	}
	r := plan.NewRun("r1", "ada", plan.Request{Action: plan.Switchover, To: "antwerp"}, p, time.Unix(0, 0))
	r.Steps[0] = plan.StepState{State: plan.StepDone, Output: map[string]string{"end_lsn": "0/3000100"}}
	return &r
}

// stepCtx is the control plane while step i of the run is running, with
// brussels the controller at term 77.
func stepCtx(run *plan.Run, running int, epoch int64) coord.StepContext {
	if running >= 0 {
		run.Steps[running].State = plan.StepRunning
	}
	return coord.StepContext{
		Record: status.Record{Group: "webshop", ActiveSite: "brussels", Epoch: epoch}, Adopted: true,
		Running: run.ID, Run: run, Controller: &status.Controller{Site: "brussels", Term: 77},
	}
}

func TestAuthorizeStep(t *testing.T) {
	catchUp := api.StepRequest{RunID: "r1", Step: "catch-up:db@antwerp", Group: "webshop", Resource: "db", Kind: plan.CatchUp, Epoch: 4, Term: 77}
	tests := []struct {
		name   string
		sc     func() coord.StepContext
		req    api.StepRequest
		caller string // the location whose certificate sent it
		here   string
		want   error // nil: allowed
	}{
		{"the controller's step of the run in progress", func() coord.StepContext { return stepCtx(stepRun(), 1, 4) }, catchUp, "brussels", "antwerp", nil},
		{"no run in progress: the forged promote of the review", func() coord.StepContext {
			sc := stepCtx(stepRun(), -1, 1)
			sc.Running, sc.Run = "", nil
			return sc
		}, api.StepRequest{Group: "webshop", Resource: "db", Kind: plan.Promote, Epoch: 1}, "frankfurt", "antwerp", errNoSuchStep},
		{"no run in progress, request names one", func() coord.StepContext {
			sc := stepCtx(stepRun(), 1, 4)
			sc.Running = ""
			return sc
		}, catchUp, "brussels", "antwerp", errNoSuchStep},
		{"another run than the one in progress", func() coord.StepContext {
			sc := stepCtx(stepRun(), 1, 4)
			sc.Running = "r2"
			return sc
		}, catchUp, "brussels", "antwerp", errNoSuchStep},
		{"from a location that is not the controller", func() coord.StepContext { return stepCtx(stepRun(), 1, 4) }, catchUp, "frankfurt", "antwerp", errNotController},
		{"from the controller's site with an old term", func() coord.StepContext { return stepCtx(stepRun(), 1, 4) },
			func() api.StepRequest { r := catchUp; r.Term = 76; return r }(), "brussels", "antwerp", errNotController},
		{"no controller elected", func() coord.StepContext {
			sc := stepCtx(stepRun(), 1, 4)
			sc.Controller = nil
			return sc
		}, catchUp, "brussels", "antwerp", errNotController},
		{"a step that is not in the plan", func() coord.StepContext { return stepCtx(stepRun(), 1, 4) },
			func() api.StepRequest { r := catchUp; r.Step = "promote:db@brussels"; r.Kind = plan.Promote; return r }(), "brussels", "brussels", errNoSuchStep},
		{"a step of the plan sent to another site", func() coord.StepContext { return stepCtx(stepRun(), 1, 4) }, catchUp, "brussels", "brussels", errNoSuchStep},
		{"the plan's step ID with another kind", func() coord.StepContext { return stepCtx(stepRun(), 1, 4) },
			func() api.StepRequest { r := catchUp; r.Kind = plan.Promote; return r }(), "brussels", "antwerp", errNoSuchStep},
		{"a step that is not running (replayed after it was done)", func() coord.StepContext { return stepCtx(stepRun(), -1, 4) },
			func() api.StepRequest {
				r := catchUp
				r.Step, r.Kind, r.Resource = "fence:db@brussels", plan.Fence, "db"
				return r
			}(), "brussels", "brussels", errNoSuchStep},
		{"a step that is still pending", func() coord.StepContext { return stepCtx(stepRun(), 0, 4) }, catchUp, "brussels", "antwerp", errNoSuchStep},
		{"the controller's own activate step", func() coord.StepContext { return stepCtx(stepRun(), 2, 4) },
			api.StepRequest{RunID: "r1", Step: "activate@antwerp", Group: "webshop", Kind: plan.Activate, Epoch: 4, Term: 77}, "brussels", "antwerp", errNoSuchStep},
		{"an older epoch in the request", func() coord.StepContext { return stepCtx(stepRun(), 1, 4) },
			func() api.StepRequest { r := catchUp; r.Epoch = 3; return r }(), "brussels", "antwerp", errNoSuchStep},
		{"the record moved on", func() coord.StepContext { return stepCtx(stepRun(), 1, 5) }, catchUp, "brussels", "antwerp", errNoSuchStep},
		{"a promote after activation runs in the next epoch", func() coord.StepContext {
			run := stepRun()
			run.Steps[1].State, run.Steps[2].State = plan.StepDone, plan.StepDone
			sc := stepCtx(run, 3, 5)
			sc.Record.ActiveSite = "antwerp"
			return sc
		}, api.StepRequest{RunID: "r1", Step: "promote:db@antwerp", Group: "webshop", Resource: "db", Kind: plan.Promote, Epoch: 5, Term: 77}, "brussels", "antwerp", nil},
		{"a promote after activation in the old epoch", func() coord.StepContext {
			run := stepRun()
			run.Steps[1].State, run.Steps[2].State = plan.StepDone, plan.StepDone
			return stepCtx(run, 3, 5)
		}, api.StepRequest{RunID: "r1", Step: "promote:db@antwerp", Group: "webshop", Resource: "db", Kind: plan.Promote, Epoch: 4, Term: 77}, "brussels", "antwerp", errNoSuchStep},
		{"a rollback step while the run rolls back", func() coord.StepContext {
			run := stepRun()
			run.State = plan.RunRollingBack
			run.Rollback[0].State = plan.StepRunning
			return stepCtx(run, -1, 4)
		}, api.StepRequest{RunID: "r1", Step: "unfence:db@brussels", Group: "webshop", Resource: "db", Kind: plan.Unfence, Epoch: 4, Term: 77}, "brussels", "brussels", nil},
		{"a rollback step while the run goes forward", func() coord.StepContext { return stepCtx(stepRun(), 1, 4) },
			api.StepRequest{RunID: "r1", Step: "unfence:db@brussels", Group: "webshop", Resource: "db", Kind: plan.Unfence, Epoch: 4, Term: 77}, "brussels", "brussels", errNoSuchStep},
		{"group never adopted", func() coord.StepContext {
			sc := stepCtx(stepRun(), 1, 4)
			sc.Adopted = false
			return sc
		}, catchUp, "brussels", "antwerp", errNoSuchStep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := authorizeStep(tt.sc(), tt.req, tt.caller, tt.here)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("got %v, want %v", err, tt.want)
			case tt.want == nil && o.step.ID != tt.req.Step:
				t.Fatalf("allowed step %q, asked %q", o.step.ID, tt.req.Step)
			}
		})
	}
}

// What a step acts on comes from the stored run, whatever the request says.
func TestAuthorizeStepInputsFromTheRun(t *testing.T) {
	o, err := authorizeStep(stepCtx(stepRun(), 1, 4),
		api.StepRequest{RunID: "r1", Step: "catch-up:db@antwerp", Group: "webshop", Resource: "db", Kind: plan.CatchUp, Epoch: 4, Term: 77}, "brussels", "antwerp")
	if err != nil || o.input["end_lsn"] != "0/3000100" {
		t.Fatalf("catch-up input %v (%v), want the fence's end_lsn", o.input, err)
	}
	run := stepRun()
	for i := range 4 {
		run.Steps[i].State = plan.StepDone
	}
	sc := stepCtx(run, 4, 5)
	o, err = authorizeStep(sc, api.StepRequest{RunID: "r1", Step: "rejoin:db@brussels", Group: "webshop", Resource: "db", Kind: plan.Rejoin, Epoch: 5, Term: 77}, "brussels", "brussels")
	if err != nil || o.primary != "antwerp" {
		t.Fatalf("rejoin follows %q (%v), want the run's target antwerp", o.primary, err)
	}
}

// drillRun is a drill of webshop at antwerp in epoch 4: clone, start,
// check, teardown; the clone is done and the copy started.
func drillRun() *plan.Run {
	p := plan.Plan{Group: "webshop", Action: plan.Drill, From: "brussels", To: "antwerp", Epoch: 4,
		Steps: []plan.Step{
			{ID: "clone:db@antwerp", Kind: plan.Clone, Resource: "db", Site: "antwerp", Timeout: time.Second},
			{ID: "start:db@antwerp", Kind: plan.Start, Resource: "db", Site: "antwerp", Timeout: time.Second},
			{ID: "check:orders@antwerp", Kind: plan.Check, Resource: "orders", Site: "antwerp", Timeout: time.Second},
			{ID: "teardown:db@antwerp", Kind: plan.Teardown, Resource: "db", Site: "antwerp", Timeout: time.Second, BestEffort: true},
		},
		Rollback: []plan.Step{{ID: "teardown:db@antwerp", Kind: plan.Teardown, Resource: "db", Site: "antwerp", Timeout: time.Second, BestEffort: true}},
	}
	r := plan.NewRun("d1", "ada", plan.Request{Action: plan.Drill}, p, time.Unix(0, 0))
	r.Steps[0].State = plan.StepDone
	r.Steps[1] = plan.StepState{State: plan.StepDone, Output: map[string]string{"address": "127.0.2.2:5432"}}
	return &r
}

// drillCtx is the control plane while step i of the drill runs, the
// drill holding the group's drill lock (not its run lock).
func drillCtx(run *plan.Run, running int, epoch int64) coord.StepContext {
	sc := stepCtx(run, running, epoch)
	sc.Running, sc.Drilling = "", run.ID
	return sc
}

func TestAuthorizeDrillStep(t *testing.T) {
	check := api.StepRequest{RunID: "d1", Step: "check:orders@antwerp", Group: "webshop", Resource: "orders", Kind: plan.Check, Epoch: 4, Term: 77}
	teardown := api.StepRequest{RunID: "d1", Step: "teardown:db@antwerp", Group: "webshop", Resource: "db", Kind: plan.Teardown, Epoch: 4, Term: 77}
	tests := []struct {
		name string
		sc   func() coord.StepContext
		req  api.StepRequest
		want error
	}{
		{"the drill's check, under the drill lock", func() coord.StepContext { return drillCtx(drillRun(), 2, 4) }, check, nil},
		{"a drill step under the run lock only", func() coord.StepContext {
			sc := drillCtx(drillRun(), 2, 4)
			sc.Running, sc.Drilling = "d1", ""
			return sc
		}, check, errNoSuchStep},
		{"another drill in progress", func() coord.StepContext {
			sc := drillCtx(drillRun(), 2, 4)
			sc.Drilling = "d2"
			return sc
		}, check, errNoSuchStep},
		{"the drill's check after the group moved on", func() coord.StepContext { return drillCtx(drillRun(), 2, 5) }, check, errNoSuchStep},
		{"the teardown after the group moved on", func() coord.StepContext { return drillCtx(drillRun(), 3, 5) }, teardown, nil},
		{"the teardown with another epoch in the request", func() coord.StepContext { return drillCtx(drillRun(), 3, 4) },
			func() api.StepRequest { r := teardown; r.Epoch = 5; return r }(), errNoSuchStep},
		{"the teardown from a location that is not the controller", func() coord.StepContext {
			sc := drillCtx(drillRun(), 3, 4)
			sc.Controller.Site = "frankfurt"
			return sc
		}, teardown, errNotController},
		{"a promote smuggled into a drill's plan", func() coord.StepContext {
			run := drillRun()
			run.Plan.Steps[2] = plan.Step{ID: "promote:db@antwerp", Kind: plan.Promote, Resource: "db", Site: "antwerp"}
			return drillCtx(run, 2, 4)
		}, api.StepRequest{RunID: "d1", Step: "promote:db@antwerp", Group: "webshop", Resource: "db", Kind: plan.Promote, Epoch: 4, Term: 77}, errNoSuchStep},
		{"a clone step in a switchover", func() coord.StepContext {
			run := stepRun()
			run.Plan.Steps[1] = plan.Step{ID: "clone:db@antwerp", Kind: plan.Clone, Resource: "db", Site: "antwerp"}
			return stepCtx(run, 1, 4)
		}, api.StepRequest{RunID: "r1", Step: "clone:db@antwerp", Group: "webshop", Resource: "db", Kind: plan.Clone, Epoch: 4, Term: 77}, errNoSuchStep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := authorizeStep(tt.sc(), tt.req, "brussels", "antwerp")
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("got %v, want %v", err, tt.want)
			case tt.want == nil && (o.step.ID != tt.req.Step || o.drill != "d1"):
				t.Fatalf("allowed step %q of drill %q, asked %q", o.step.ID, o.drill, tt.req.Step)
			}
			if tt.want == nil && tt.req.Kind == plan.Check && o.targets["db"] != "127.0.2.2:5432" {
				t.Errorf("the check's targets are not the drill's copies: %v", o.targets)
			}
		})
	}
}

// A reprotect or 30 promotions at once ran this site's serve lease out:
// databases' promotions, and their rejoins and clones, take slots; a
// name's promotion, or a fence, does not wait for any.
func TestStepSlots(t *testing.T) {
	lr := &localResources{heavy: make(chan struct{}, 1), promotions: make(chan struct{}, 1)}
	for _, tc := range []struct {
		kind plan.Kind
		data bool
		want chan struct{}
	}{
		{plan.Promote, true, lr.promotions},
		{plan.Rejoin, true, lr.heavy},
		{plan.Clone, true, lr.heavy},
		{plan.Promote, false, nil},
		{plan.Rejoin, false, nil},
		{plan.Fence, true, nil},
		{plan.CatchUp, true, nil},
		{plan.Check, true, nil},
	} {
		if got := lr.slots(tc.kind, tc.data); got != tc.want {
			t.Errorf("slots(%s, data %v): wrong slots", tc.kind, tc.data)
		}
	}
	if stepSlots() < 4 {
		t.Errorf("stepSlots() = %d, want at least 4", stepSlots())
	}
}
