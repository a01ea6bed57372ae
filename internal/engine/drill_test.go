package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// drillGroup has a database, a name and a check.
func drillGroup() *config.Group {
	g := group()
	g.Resources = []config.Resource{
		{Name: "db", Type: "postgres", Class: config.ClassData, Data: true},
		{Name: "name", Type: "dns", Class: config.ClassTraffic, DependsOn: []string{"db"}},
		{Name: "orders", Type: "check", Class: config.ClassCheck, DependsOn: []string{"db"}},
	}
	return g
}

func drillRun(t *testing.T, keep time.Duration) plan.Run {
	t.Helper()
	st := status.GroupStatus{Name: "webshop", ActiveSite: "brussels", Epoch: 4, State: status.StateProtected,
		Resources: []status.ResourceStatus{{Name: "db", Sites: []status.ResourceSiteStatus{
			{Site: "brussels", Up: true, Role: status.RolePrimary}, {Site: "antwerp", Up: true, Role: status.RoleStandby, Streaming: true}}}}}
	req := plan.Request{Action: plan.Drill, Keep: keep}
	p, err := plan.Build(drillGroup(), plan.Known{Status: st, SiteUp: up}, req)
	if err != nil {
		t.Fatal(err)
	}
	return plan.NewRun("d1", "operator", req, p, time.Unix(1000, 0))
}

func TestDrill(t *testing.T) {
	s, a := &fakeStore{epoch: 4, active: "brussels"}, &fakeAgents{}
	run, err := engine(s, a, up).Drive(t.Context(), drillRun(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	if run.State != plan.RunSucceeded || run.Verification != plan.Verified {
		t.Fatalf("state %s, verification %q: %s", run.State, run.Verification, run.Error)
	}
	want := []string{"clone:db@antwerp", "start:db@antwerp", "start:name@antwerp", "check:orders@antwerp", "teardown:name@antwerp", "teardown:db@antwerp"}
	if !cmp.Equal(a.calls, want) {
		t.Errorf("calls: %s", cmp.Diff(want, a.calls))
	}
	if s.epoch != 4 || s.active != "brussels" {
		t.Errorf("a drill changed the record: epoch %d active %s", s.epoch, s.active)
	}
	for id, e := range a.epoch {
		if e != 4 {
			t.Errorf("%s sent in epoch %d, want the group's 4", id, e)
		}
	}
	if run.MeasuredRTO() <= 0 {
		t.Errorf("no RTO for the drill")
	}
}

func TestDrillCheckFailsTearsDown(t *testing.T) {
	s := &fakeStore{epoch: 4, active: "brussels"}
	a := &fakeAgents{fail: map[string]int{"check:orders@antwerp": 99}}
	run, err := engine(s, a, up).Drive(t.Context(), drillRun(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	if run.State != plan.RunFailed || !strings.Contains(run.Error, "check:orders@antwerp failed") || !strings.Contains(run.Error, "removed") {
		t.Fatalf("state %s: %q", run.State, run.Error)
	}
	calls := strings.Join(a.calls, " ")
	if !strings.HasSuffix(calls, "teardown:name@antwerp teardown:db@antwerp") || strings.Count(calls, "check:orders@antwerp") != 6 {
		t.Errorf("calls: %s", calls)
	}
}

func TestDrillPreemptedByARealRun(t *testing.T) {
	s, a := &fakeStore{epoch: 4, active: "brussels"}, &fakeAgents{}
	e := engine(s, a, up)
	busyFor := 3 // the real run ends after the teardown asked three times
	e.Preempted = func(_ context.Context, run plan.Run) (string, bool) {
		for i, st := range run.Steps {
			if run.Plan.Steps[i].Kind == plan.Start && st.State == plan.StepDone {
				busyFor--
				return "run f1 started on group webshop", busyFor > 0
			}
		}
		return "", false
	}
	run, err := e.Drive(t.Context(), drillRun(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	if run.State != plan.RunFailed || !strings.Contains(run.Error, "drill aborted: run f1 started") {
		t.Fatalf("state %s: %q", run.State, run.Error)
	}
	want := []string{"clone:db@antwerp", "start:db@antwerp", "teardown:name@antwerp", "teardown:db@antwerp"}
	if !cmp.Equal(a.calls, want) {
		t.Errorf("calls: %s", cmp.Diff(want, a.calls))
	}
	if busyFor > 0 {
		t.Errorf("the teardown did not wait for the real run to end")
	}
}

func TestDrillTeardownSkipsALostSite(t *testing.T) {
	s := &fakeStore{epoch: 4, active: "brussels"}
	lost := map[string]bool{"brussels": true, "antwerp": false}
	a := &fakeAgents{fail: map[string]int{"check:orders@antwerp": 99}}
	run, err := engine(s, a, lost).Drive(t.Context(), drillRun(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range run.Rollback {
		if st.State != plan.StepSkipped || !strings.Contains(st.Error, "removes what is left") {
			t.Errorf("teardown %s at a lost site: %s %q", run.Plan.Rollback[i].ID, st.State, st.Error)
		}
	}
}

func TestDrillKeep(t *testing.T) {
	s, a := &fakeStore{epoch: 4, active: "brussels"}, &fakeAgents{}
	e := engine(s, a, up)
	var slept time.Duration
	now := time.Unix(1000, 0)
	e.Now = func() time.Time { return now }
	e.Sleep = func(_ context.Context, d time.Duration) { slept += d; now = now.Add(d) }
	run, err := e.Drive(t.Context(), drillRun(t, 90*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if run.State != plan.RunSucceeded || slept != 90*time.Second {
		t.Fatalf("state %s, kept %s: %s", run.State, slept, run.Error)
	}
}

func TestRealRunCheckFailureDoesNotFail(t *testing.T) {
	g := drillGroup()
	st := status.GroupStatus{Name: "webshop", ActiveSite: "brussels", Epoch: 4, State: status.StateProtected}
	p, err := plan.Build(g, plan.Known{Status: st, SiteUp: up}, plan.Request{Action: plan.Switchover, To: "antwerp"})
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeStore{epoch: 4, active: "brussels"}
	a := &fakeAgents{fail: map[string]int{"check:orders@antwerp": 99}}
	run, err := engine(s, a, up).Drive(t.Context(), plan.NewRun("r2", "operator", plan.Request{Action: plan.Switchover}, p, time.Unix(1000, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if run.State != plan.RunSucceeded || !strings.HasPrefix(run.Verification, "checks failed: orders (injected failure") {
		t.Fatalf("state %s, verification %q: %s", run.State, run.Verification, run.Error)
	}
	if s.active != "antwerp" {
		t.Errorf("the switchover did not move the group")
	}
}

func TestDrillPreemptedWhileKept(t *testing.T) {
	s, a := &fakeStore{epoch: 4, active: "brussels"}, &fakeAgents{}
	e := engine(s, a, up)
	now := time.Unix(1000, 0)
	e.Now = func() time.Time { return now }
	e.Sleep = func(_ context.Context, d time.Duration) { now = now.Add(d) }
	lostAt := now.Add(30 * time.Second)
	e.Preempted = func(context.Context, plan.Run) (string, bool) {
		if now.After(lostAt) {
			return "the active site brussels is lost: its recovery comes first", false
		}
		return "", false
	}
	run, err := e.Drive(t.Context(), drillRun(t, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if run.State != plan.RunFailed || !strings.Contains(run.Error, "drill aborted while kept up: the active site brussels is lost") {
		t.Fatalf("state %s: %q", run.State, run.Error)
	}
	if now.Sub(lostAt) > 2*time.Second {
		t.Errorf("the drill was kept %s after the loss", now.Sub(lostAt))
	}
	if calls := strings.Join(a.calls, " "); !strings.HasSuffix(calls, "teardown:name@antwerp teardown:db@antwerp") {
		t.Errorf("calls: %s", calls)
	}
}
