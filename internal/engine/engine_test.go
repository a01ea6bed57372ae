package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// fakeStore keeps the last saved run and the group's epoch, and can lose
// the term after a number of saves. history holds the group's other runs,
// which FillDataLost changes as the real store does.
type fakeStore struct {
	mu        sync.Mutex
	saved     []plan.Run
	epoch     int64
	active    string
	loseAfter int // saves before the term is lost; 0: never
	history   []plan.Run
	fills     int  // FillDataLost calls that wrote
	fillLost  bool // FillDataLost finds the term lost
	// verdicts are the approvals given, by step ID; verdictAfter delays
	// each until the run has looked for it that many times.
	verdicts     map[string]status.Approval
	verdictAfter int
	looks        int
	awaiting     []status.Awaiting // every wait recorded
	cleared      int               // DeleteAwaiting calls
}

func (s *fakeStore) PutAwaiting(_ context.Context, a status.Awaiting, _ coord.Fence) (status.Awaiting, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.awaiting = append(s.awaiting, a)
	return a, nil
}

func (s *fakeStore) DeleteAwaiting(context.Context, string, coord.Fence) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleared++
	return nil
}

func (s *fakeStore) Approval(_ context.Context, run, step string) (status.Approval, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.looks++
	if s.looks <= s.verdictAfter {
		return status.Approval{}, false, nil
	}
	a, ok := s.verdicts[step]
	return a, ok, nil
}

func (s *fakeStore) Runs(_ context.Context, group string) ([]plan.Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []plan.Run
	for _, r := range s.history {
		if r.Group == group {
			out = append(out, r)
		}
	}
	if len(s.saved) > 0 {
		out = append(out, s.saved[len(s.saved)-1])
	}
	return out, nil
}

func (s *fakeStore) FillDataLost(_ context.Context, group, id, text, by string, _ coord.Fence) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fillLost {
		return fmt.Errorf("fill: %w", coord.ErrNotElected)
	}
	for i := range s.history {
		r := &s.history[i]
		switch {
		case r.ID != id:
			continue
		case r.Group != group || r.Plan.Action != plan.Failover || !r.Done():
			return fmt.Errorf("run %s is not a finished failover of %s", id, group)
		case r.DataLostBy == by && r.DataLost == text:
			return nil
		case r.DataLostBy != "":
			return coord.ErrDataLostKnown
		}
		r.DataLost, r.DataLostBy = text, by
		s.fills++
		return nil
	}
	return coord.ErrNoRun
}

// failover returns the stored failover of run id, as the store has it now.
func (s *fakeStore) failover(t *testing.T, id string) plan.Run {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.history {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no run %s", id)
	return plan.Run{}
}

func (s *fakeStore) SaveRun(_ context.Context, run plan.Run, _ coord.Fence) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loseAfter > 0 && len(s.saved) >= s.loseAfter {
		return fmt.Errorf("save: %w", coord.ErrNotElected)
	}
	s.saved = append(s.saved, run)
	return nil
}

func (s *fakeStore) Activate(ctx context.Context, run plan.Run, epoch int64, to string, f coord.Fence) (int64, error) {
	s.mu.Lock()
	switch {
	case s.epoch == epoch+1 && s.active == to:
	case s.epoch != epoch:
		s.mu.Unlock()
		return 0, coord.ErrStale
	default:
		s.epoch, s.active = epoch+1, to
	}
	s.mu.Unlock()
	return s.epoch, s.SaveRun(ctx, run, f)
}

func (s *fakeStore) Record(context.Context, string) (status.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return status.Record{Group: "webshop", ActiveSite: s.active, Epoch: s.epoch}, true, nil
}

func (s *fakeStore) last() plan.Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saved[len(s.saved)-1]
}

// fakeAgents records the steps it is sent and fails the ones told to.
type fakeAgents struct {
	mu          sync.Mutex
	calls       []string
	fail        map[string]int // step id → how many attempts fail
	unreachable map[string]int // step id → how many attempts find no agent
	epoch       map[string]int64
	stepID      map[string]string // what the request named the step
	term        map[string]int64
	nothingLost bool // rejoins find nothing that existed only at the rejoined site
}

func (a *fakeAgents) Step(_ context.Context, site string, req api.StepRequest) (api.StepResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := string(req.Kind) + ":" + req.Resource + "@" + site
	a.calls = append(a.calls, id)
	if a.epoch == nil {
		a.epoch, a.stepID, a.term = map[string]int64{}, map[string]string{}, map[string]int64{}
	}
	a.epoch[id], a.stepID[id], a.term[id] = req.Epoch, req.Step, req.Term
	if a.unreachable[id] > 0 {
		a.unreachable[id]--
		return api.StepResult{}, errors.New("dial tcp: connection refused")
	}
	if a.fail[id] > 0 {
		a.fail[id]--
		return api.StepResult{Error: "injected failure of " + id}, nil
	}
	out := map[string]string{}
	switch req.Kind {
	case plan.Fence:
		out["end_lsn"] = "0/3000060"
	case plan.Rejoin:
		if site == "brussels" && req.Resource == "db" && !a.nothingLost {
			out[plan.OutputDataLost] = "8192 bytes of WAL (0/3000000..0/3002000) existed only there"
		}
	}
	return api.StepResult{Output: out}, nil
}

func group() *config.Group {
	return &config.Group{
		Name: "webshop", PreferredSite: "brussels", Sites: []string{"brussels", "antwerp"},
		MaxDataLoss: new(config.Duration(5 * time.Second)),
		Resources:   []config.Resource{{Name: "db", Type: "postgres", Class: config.ClassData}},
	}
}

func newRun(t *testing.T, action plan.Action, state string, up map[string]bool) plan.Run {
	t.Helper()
	p, err := plan.Build(group(), plan.Known{
		Status:  status.GroupStatus{Name: "webshop", ActiveSite: "brussels", Epoch: 4, State: state},
		SiteUp:  up,
		LastLag: map[string]map[string]status.Lag{"db": {"antwerp": {Seconds: 0.1, Streaming: true}}},
	}, plan.Request{Action: action, To: "antwerp"})
	if err != nil {
		t.Fatal(err)
	}
	return plan.NewRun("r1", "operator", plan.Request{Action: action}, p, time.Unix(1000, 0))
}

func engine(s *fakeStore, a *fakeAgents, up map[string]bool) *Engine {
	now := time.Unix(1000, 0)
	var clock sync.Mutex // the steps of a wave read it at once
	return &Engine{
		Store: s, Agents: a, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Fence: coord.Fence{Key: "controller/1", Term: testTerm},
		SiteLost: func(site string) bool { return !up[site] },
		Now:      func() time.Time { clock.Lock(); defer clock.Unlock(); now = now.Add(10 * time.Millisecond); return now },
		Sleep:    func(context.Context, time.Duration) {},
	}
}

var up = map[string]bool{"brussels": true, "antwerp": true}

// testTerm is the controller's term in these tests.
const testTerm = 41

func TestSwitchover(t *testing.T) {
	s, a := &fakeStore{epoch: 4, active: "brussels"}, &fakeAgents{}
	run, err := engine(s, a, up).Drive(t.Context(), newRun(t, plan.Switchover, status.StateProtected, up))
	if err != nil {
		t.Fatal(err)
	}
	if run.State != plan.RunSucceeded || s.last().State != plan.RunSucceeded {
		t.Fatalf("state %s (saved %s): %s", run.State, s.last().State, run.Error)
	}
	if want := []string{"fence:db@brussels", "catch-up:db@antwerp", "promote:db@antwerp", "rejoin:db@brussels"}; !cmp.Equal(a.calls, want) {
		t.Errorf("calls: %s", cmp.Diff(want, a.calls))
	}
	// Fencing tokens: the old epoch before activation, the new one after.
	if a.epoch["fence:db@brussels"] != 4 || a.epoch["catch-up:db@antwerp"] != 4 || a.epoch["promote:db@antwerp"] != 5 || a.epoch["rejoin:db@brussels"] != 5 {
		t.Errorf("epochs sent: %v", a.epoch)
	}
	// The agent reads what a step acts on from the stored run: the fence's
	// end position is there for the catch-up, and every request names its
	// step and the controller's term.
	if got := run.OutputOf(plan.Fence, "db")["end_lsn"]; got != "0/3000060" {
		t.Errorf("the run does not hold the fence's end LSN for the catch-up: %q", got)
	}
	for id, step := range a.stepID {
		if step != id || a.term[id] != testTerm {
			t.Errorf("request for %s named step %q with term %d, want %q and %d", id, step, a.term[id], id, testTerm)
		}
	}
	if s.epoch != 5 || s.active != "antwerp" {
		t.Errorf("record: epoch %d active %s", s.epoch, s.active)
	}
	if run.RTO() <= 0 {
		t.Errorf("no RTO measured")
	}
	if !strings.Contains(run.DataLost, "8192 bytes") {
		t.Errorf("data lost not reported: %q", run.DataLost)
	}
}

func TestCatchUpFailureRollsBack(t *testing.T) {
	s := &fakeStore{epoch: 4, active: "brussels"}
	a := &fakeAgents{fail: map[string]int{"catch-up:db@antwerp": 1}}
	run, err := engine(s, a, up).Drive(t.Context(), newRun(t, plan.Switchover, status.StateProtected, up))
	if err != nil {
		t.Fatal(err)
	}
	if run.State != plan.RunRolledBack {
		t.Fatalf("state %s: %s", run.State, run.Error)
	}
	if want := []string{"fence:db@brussels", "catch-up:db@antwerp", "unfence:db@brussels"}; !cmp.Equal(a.calls, want) {
		t.Errorf("calls: %s", cmp.Diff(want, a.calls))
	}
	if s.epoch != 4 || s.active != "brussels" {
		t.Errorf("a rolled-back run changed the record: epoch %d active %s", s.epoch, s.active)
	}
	if !strings.Contains(run.Error, "catch-up:db@antwerp failed") {
		t.Errorf("error: %q", run.Error)
	}
}

func TestPromoteAfterActivationIsNeverGivenUp(t *testing.T) {
	s := &fakeStore{epoch: 4, active: "brussels"}
	a := &fakeAgents{fail: map[string]int{"promote:db@antwerp": 10}}
	run, err := engine(s, a, up).Drive(t.Context(), newRun(t, plan.Switchover, status.StateProtected, up))
	if err != nil || run.State != plan.RunSucceeded {
		t.Fatalf("state %s err %v: %s", run.State, err, run.Error)
	}
	for _, c := range a.calls {
		if strings.HasPrefix(c, "unfence") {
			t.Errorf("rolled back after activation: %v", a.calls)
		}
	}
	if got := strings.Count(strings.Join(a.calls, " "), "promote:db@antwerp"); got != 11 {
		t.Errorf("promote attempts: %d, want 10 failures and a success", got)
	}
}

func TestFailureAfterPromotionFailsForward(t *testing.T) {
	s := &fakeStore{epoch: 4, active: "brussels"}
	a := &fakeAgents{fail: map[string]int{"rejoin:db@brussels": 10}}
	run, err := engine(s, a, up).Drive(t.Context(), newRun(t, plan.Switchover, status.StateProtected, up))
	if err != nil {
		t.Fatal(err)
	}
	if run.State != plan.RunFailed || !strings.Contains(run.Error, "after the point of no return") || !strings.Contains(run.Error, "siteflip reprotect webshop") {
		t.Fatalf("state %s: %s", run.State, run.Error)
	}
	if s.active != "antwerp" || run.WritableAt.IsZero() {
		t.Errorf("the group should be writable at antwerp: active %s writable %v", s.active, run.WritableAt)
	}
}

// TestFencingFailureIsNotSkipped: a best-effort fence whose agent answers
// that it could not stop the primary fails the failover before
// activation; skipping it would leave two writable primaries.
func TestFencingFailureIsNotSkipped(t *testing.T) {
	s := &fakeStore{epoch: 4, active: "brussels"}
	a := &fakeAgents{fail: map[string]int{"fence:db@brussels": 10}}
	run, err := engine(s, a, up).Drive(t.Context(), newRun(t, plan.Failover, status.StateDown, up))
	if err != nil {
		t.Fatal(err)
	}
	if run.State != plan.RunRolledBack || s.epoch != 4 {
		t.Fatalf("state %s epoch %d: %s", run.State, s.epoch, run.Error)
	}
	for _, c := range a.calls {
		if strings.HasPrefix(c, "promote") {
			t.Errorf("promoted although the old primary could not be fenced: %v", a.calls)
		}
	}
}

// TestStoreErrorInterrupts: a failure to store progress is not a step
// failure: the engine stops without rolling back, and a later drive
// resumes.
func TestStoreErrorInterrupts(t *testing.T) {
	s := &fakeStore{epoch: 4, active: "brussels", loseAfter: 3}
	a := &fakeAgents{}
	run, err := engine(s, a, up).Drive(t.Context(), newRun(t, plan.Switchover, status.StateProtected, up))
	if !errors.Is(err, ErrInterrupted) || run.State != plan.RunRunning {
		t.Fatalf("state %s err %v", run.State, err)
	}
	for _, c := range a.calls {
		if strings.HasPrefix(c, "unfence") {
			t.Errorf("rolled back on a store error: %v", a.calls)
		}
	}
}

// TestLostActivationAnswerGoesForward: the record shows the activation
// (its answer was lost) although the run's memory does not: the run goes
// forward instead of rolling the moved group back.
func TestLostActivationAnswerGoesForward(t *testing.T) {
	s := &fakeStore{epoch: 5, active: "antwerp"} // activated, answer lost
	a := &fakeAgents{fail: map[string]int{"catch-up:db@antwerp": 1}}
	run := newRun(t, plan.Switchover, status.StateProtected, up)
	run.Steps[0].State = plan.StepDone // fence done before the crash
	got, err := engine(s, a, up).Drive(t.Context(), run)
	if err != nil || got.State != plan.RunSucceeded {
		t.Fatalf("state %s err %v: %s", got.State, err, got.Error)
	}
	for _, c := range a.calls {
		if strings.HasPrefix(c, "unfence") {
			t.Errorf("rolled back a group the record shows moved: %v", a.calls)
		}
	}
}

func TestRetryThenSuccess(t *testing.T) {
	s := &fakeStore{epoch: 4, active: "brussels"}
	a := &fakeAgents{fail: map[string]int{"promote:db@antwerp": 1}}
	run, err := engine(s, a, up).Drive(t.Context(), newRun(t, plan.Switchover, status.StateProtected, up))
	if err != nil || run.State != plan.RunSucceeded {
		t.Fatalf("state %s err %v: %s", run.State, err, run.Error)
	}
	for i, st := range run.Plan.Steps {
		if st.ID == "promote:db@antwerp" && run.Steps[i].Attempts != 2 {
			t.Errorf("attempts %d", run.Steps[i].Attempts)
		}
	}
}

// TestResumeAfterControllerLoss: the first controller loses its term in
// the middle of the run; the next one resumes from the stored state,
// repeats only the step that was running, and the invariants hold.
func TestResumeAfterControllerLoss(t *testing.T) {
	for cut := 1; cut <= 8; cut++ {
		t.Run(fmt.Sprintf("term lost after %d saves", cut), func(t *testing.T) {
			s := &fakeStore{epoch: 4, active: "brussels", loseAfter: cut}
			a := &fakeAgents{}
			_, err := engine(s, a, up).Drive(t.Context(), newRun(t, plan.Switchover, status.StateProtected, up))
			if !errors.Is(err, ErrInterrupted) {
				t.Fatalf("first controller: want ErrInterrupted, got %v", err)
			}
			stored := s.last()
			s.mu.Lock()
			s.loseAfter = 0
			s.mu.Unlock()
			run, err := engine(s, a, up).Drive(t.Context(), stored)
			if err != nil || run.State != plan.RunSucceeded {
				t.Fatalf("second controller: state %s err %v: %s", run.State, err, run.Error)
			}
			if s.epoch != 5 || s.active != "antwerp" {
				t.Errorf("record after resume: epoch %d active %s", s.epoch, s.active)
			}
			// Every step ran at least once and in order; a step runs twice
			// only when it was running as the term was lost.
			seen := map[string]int{}
			for _, c := range a.calls {
				seen[c]++
			}
			for _, id := range []string{"fence:db@brussels", "catch-up:db@antwerp", "promote:db@antwerp", "rejoin:db@brussels"} {
				if seen[id] < 1 || seen[id] > 2 {
					t.Errorf("%s ran %d times (calls %v)", id, seen[id], a.calls)
				}
			}
		})
	}
}

func TestFailoverSkipsFencingADeadSite(t *testing.T) {
	downB := map[string]bool{"brussels": false, "antwerp": true}
	s := &fakeStore{epoch: 4, active: "brussels"}
	a := &fakeAgents{}
	// Planned while brussels was reachable, driven once it is gone: the
	// best-effort fence is skipped, not failed.
	run, err := engine(s, a, downB).Drive(t.Context(), newRun(t, plan.Failover, status.StateDown, up))
	if err != nil || run.State != plan.RunSucceeded {
		t.Fatalf("state %s err %v: %s", run.State, err, run.Error)
	}
	if want := []string{"promote:db@antwerp"}; !cmp.Equal(a.calls, want) {
		t.Errorf("calls: %s", cmp.Diff(want, a.calls))
	}
	if run.Steps[0].State != plan.StepSkipped {
		t.Errorf("fence state %s", run.Steps[0].State)
	}
}

func TestStaleEpochStopsActivation(t *testing.T) {
	// Somebody else moved the group since the plan was made.
	s := &fakeStore{epoch: 6, active: "antwerp"}
	a := &fakeAgents{}
	run, err := engine(s, a, up).Drive(t.Context(), newRun(t, plan.Switchover, status.StateProtected, up))
	if err != nil {
		t.Fatal(err)
	}
	if run.State != plan.RunRolledBack || s.epoch != 6 {
		t.Fatalf("state %s epoch %d: %s", run.State, s.epoch, run.Error)
	}
}

// TestUnreachableAgentDoesNotUseRetries: a step whose agent is down for a
// while (restarting) is asked again until its timeout, without counting
// as failed attempts.
func TestUnreachableAgentDoesNotUseRetries(t *testing.T) {
	s := &fakeStore{epoch: 4, active: "brussels"}
	a := &fakeAgents{unreachable: map[string]int{"promote:db@antwerp": 20}}
	run, err := engine(s, a, up).Drive(t.Context(), newRun(t, plan.Switchover, status.StateProtected, up))
	if err != nil || run.State != plan.RunSucceeded {
		t.Fatalf("state %s err %v: %s", run.State, err, run.Error)
	}
	for i, st := range run.Plan.Steps {
		if st.ID == "promote:db@antwerp" && run.Steps[i].Attempts != 1 {
			t.Errorf("attempts %d, want 1", run.Steps[i].Attempts)
		}
	}
}

// TestFailoverDoesNotWaitForADyingSite: the old site was reachable when the
// failover was planned and dies before its fence runs; as soon as it is
// declared lost (its lease ran out) the fence is skipped instead of waiting
// out its timeout.
func TestFailoverDoesNotWaitForADyingSite(t *testing.T) {
	s := &fakeStore{epoch: 4, active: "brussels"}
	a := &fakeAgents{unreachable: map[string]int{"fence:db@brussels": 1000}}
	var asked int
	e := engine(s, a, up)
	e.SiteLost = func(site string) bool {
		if site != "brussels" {
			return false
		}
		asked++
		return asked >= 3 // declared lost from the third question on
	}
	run, err := e.Drive(t.Context(), newRun(t, plan.Failover, status.StateDown, up))
	if err != nil || run.State != plan.RunSucceeded {
		t.Fatalf("state %s err %v: %s", run.State, err, run.Error)
	}
	if run.Steps[0].State != plan.StepSkipped {
		t.Errorf("fence: %s", run.Steps[0].State)
	}
	if n := strings.Count(strings.Join(a.calls, " "), "fence:db@brussels"); n > 5 {
		t.Errorf("asked the dying site %d times", n)
	}
}

// failedOver is a failover of webshop from brussels to antwerp that
// activated and ended before the reprotects of these tests.
func failedOver(t *testing.T) plan.Run {
	t.Helper()
	f := newRun(t, plan.Failover, status.StateDown, up)
	f.ID, f.Started, f.Ended = "f1", time.Unix(500, 0), time.Unix(510, 0)
	for i := range f.Steps {
		f.Steps[i].State = plan.StepDone
	}
	f.Succeed(f.Ended)
	if !f.Activated() {
		t.Fatal("the failover did not activate")
	}
	return f
}

// reprotectRun is the reprotect of webshop, active at antwerp after the
// failover: brussels rejoins.
func reprotectRun(t *testing.T) plan.Run {
	t.Helper()
	p, err := plan.Build(group(), plan.Known{
		Status: status.GroupStatus{Name: "webshop", ActiveSite: "antwerp", Epoch: 5, State: status.StateUnprotected},
		SiteUp: up,
	}, plan.Request{Action: plan.Reprotect})
	if err != nil {
		t.Fatal(err)
	}
	return plan.NewRun("r1", "operator", plan.Request{Action: plan.Reprotect}, p, time.Unix(1000, 0))
}

// TestReprotectTellsTheFailover: the reprotect that rejoins the failover's
// old site writes what it found onto the failover, once, and says so
// when it found nothing too.
func TestReprotectTellsTheFailover(t *testing.T) {
	for _, tt := range []struct {
		name        string
		nothingLost bool
		want        string
	}{
		{"lost", false, "db at brussels: 8192 bytes of WAL (0/3000000..0/3002000) existed only there"},
		{"nothing lost", true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &fakeStore{epoch: 5, active: "antwerp", history: []plan.Run{failedOver(t)}}
			a := &fakeAgents{nothingLost: tt.nothingLost}
			run, err := engine(s, a, up).Drive(t.Context(), reprotectRun(t))
			if err != nil || run.State != plan.RunSucceeded {
				t.Fatalf("state %s err %v: %s", run.State, err, run.Error)
			}
			if want := []string{"rejoin:db@brussels"}; !cmp.Equal(a.calls, want) {
				t.Errorf("calls: %s", cmp.Diff(want, a.calls))
			}
			if run.DataLost != tt.want {
				t.Errorf("the reprotect's data lost: %q, want %q", run.DataLost, tt.want)
			}
			f := s.failover(t, "f1")
			if f.DataLost != tt.want || f.DataLostBy != "r1" {
				t.Errorf("the failover's data lost: %q by %q, want %q by r1", f.DataLost, f.DataLostBy, tt.want)
			}
			// A new controller resuming the run before it was stored as
			// ended tells the failover again, which changes nothing.
			resumed := s.last()
			resumed.State, resumed.Ended = plan.RunRunning, time.Time{}
			if again, err := engine(s, a, up).Drive(t.Context(), resumed); err != nil || again.State != plan.RunSucceeded {
				t.Fatalf("resumed: state %s err %v: %s", again.State, err, again.Error)
			}
			if s.fills != 1 {
				t.Errorf("the failover was written %d times, want once", s.fills)
			}
		})
	}
}

// TestTellingTheFailoverNeedsTheTerm: a controller that lost its term
// while telling the failover stops (the run is resumed), rather than end
// the run without telling.
func TestTellingTheFailoverNeedsTheTerm(t *testing.T) {
	s := &fakeStore{epoch: 5, active: "antwerp", history: []plan.Run{failedOver(t)}, fillLost: true}
	run, err := engine(s, &fakeAgents{}, up).Drive(t.Context(), reprotectRun(t))
	if !errors.Is(err, ErrInterrupted) || s.last().State != plan.RunRunning {
		t.Fatalf("state %s (saved %s) err %v", run.State, s.last().State, err)
	}
	if f := s.failover(t, "f1"); f.DataLostBy != "" {
		t.Errorf("the failover was told under a lost term: %+v", f)
	}
}

// TestSwitchoverTellsNoFailover: a switchover's rejoin of the site it left
// finds nothing of an earlier failover (that site was active since).
func TestSwitchoverTellsNoFailover(t *testing.T) {
	s := &fakeStore{epoch: 4, active: "brussels", history: []plan.Run{failedOver(t)}}
	run, err := engine(s, &fakeAgents{}, up).Drive(t.Context(), newRun(t, plan.Switchover, status.StateProtected, up))
	if err != nil || run.State != plan.RunSucceeded {
		t.Fatalf("state %s err %v: %s", run.State, err, run.Error)
	}
	if f := s.failover(t, "f1"); f.DataLostBy != "" || s.fills != 0 {
		t.Errorf("a switchover told the failover: %+v", f)
	}
}

func TestApproval(t *testing.T) {
	gated := func(dependsOn ...string) *config.Group {
		g := group()
		g.Resources = append(g.Resources, config.Resource{Name: "ok", Type: "approval", Class: config.ClassGate, DependsOn: dependsOn})
		return g
	}
	approved := status.Approval{Approved: true, By: "alice", At: time.Unix(2000, 0)}
	rejected := status.Approval{By: "bob", At: time.Unix(2000, 0), Reason: "storage still read-only"}
	tests := []struct {
		name      string
		g         *config.Group
		verdict   *status.Approval
		after     int // looks before the verdict shows
		state     string
		calls     []string
		errorHas  string
		activated bool
	}{
		{name: "approved after a wait: the run goes on", g: gated(), verdict: &approved, after: 3, state: plan.RunSucceeded,
			calls: []string{"fence:db@brussels", "catch-up:db@antwerp", "promote:db@antwerp", "rejoin:db@brussels"}, activated: true},
		// The rollback's unfence finds nothing fenced (unfence is idempotent).
		{name: "rejected before activation: rolled back, nothing fenced", g: gated(), verdict: &rejected, state: plan.RunRolledBack,
			calls: []string{"unfence:db@brussels"}, errorHas: "rejected by bob at 1970-01-01T00:33:20Z: storage still read-only"},
		{name: "nobody answers: rolled back when the wait runs out", g: gated(), state: plan.RunRolledBack, calls: []string{"unfence:db@brussels"}, errorHas: "no one approved it within 30m0s"},
		{name: "rejected after activation: the run fails and names reprotect", g: gated("db"), verdict: &rejected, state: plan.RunFailed,
			calls: []string{"fence:db@brussels", "catch-up:db@antwerp", "promote:db@antwerp"}, errorHas: "siteflip reprotect webshop", activated: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &fakeStore{epoch: 4, active: "brussels", verdicts: map[string]status.Approval{}, verdictAfter: tc.after}
			p, err := plan.Build(tc.g, plan.Known{
				Status: status.GroupStatus{Name: "webshop", ActiveSite: "brussels", Epoch: 4, State: status.StateProtected},
				SiteUp: up,
			}, plan.Request{Action: plan.Switchover, To: "antwerp"})
			if err != nil {
				t.Fatal(err)
			}
			if tc.verdict != nil {
				v := *tc.verdict
				v.Run, v.Step = "r1", "approve:ok@antwerp"
				s.verdicts[v.Step] = v
			}
			a := &fakeAgents{}
			e := engine(s, a, up)
			now := time.Unix(1000, 0)
			e.Now = func() time.Time { return now }
			e.Sleep = func(_ context.Context, d time.Duration) { now = now.Add(d) }
			run, err := e.Drive(t.Context(), plan.NewRun("r1", "operator", plan.Request{Action: plan.Switchover}, p, now))
			if err != nil {
				t.Fatal(err)
			}
			if run.State != tc.state || !strings.Contains(run.Error, tc.errorHas) {
				t.Fatalf("state %s error %q, want %s and %q", run.State, run.Error, tc.state, tc.errorHas)
			}
			if len(a.calls)+len(tc.calls) > 0 && !cmp.Equal(a.calls, tc.calls) {
				t.Errorf("calls: %s", cmp.Diff(tc.calls, a.calls))
			}
			if run.Activated() != tc.activated {
				t.Errorf("activated %v, want %v", run.Activated(), tc.activated)
			}
			if len(s.awaiting) != 1 || s.cleared != 1 || s.awaiting[0].Until.Sub(s.awaiting[0].Since) != 30*time.Minute || s.awaiting[0].Step != "approve:ok@antwerp" {
				t.Errorf("waits recorded %+v, cleared %d: want one of 30m, cleared once", s.awaiting, s.cleared)
			}
			if tc.state == plan.RunSucceeded && run.OutputOf(plan.Approve, "ok")["approved_by"] != "alice" {
				t.Errorf("the step does not say who approved: %v", run.OutputOf(plan.Approve, "ok"))
			}
		})
	}
}

// meetingAgents answers a step only once every step of wave is in flight:
// steps that were sent one after the other would wait for ever (until the
// test's deadline).
type meetingAgents struct {
	fakeAgents
	wave    map[string]bool // step ids that must meet
	arrived chan string
	all     chan struct{}
	once    sync.Once
}

func (m *meetingAgents) Step(ctx context.Context, site string, req api.StepRequest) (api.StepResult, error) {
	id := string(req.Kind) + ":" + req.Resource + "@" + site
	if m.wave[id] {
		m.arrived <- id
		select {
		case <-m.all:
		case <-ctx.Done():
			return api.StepResult{}, ctx.Err()
		}
	}
	return m.fakeAgents.Step(ctx, site, req)
}

func TestWaveRunsSideBySide(t *testing.T) {
	g := group()
	g.Resources = []config.Resource{
		{Name: "db", Type: "postgres", Class: config.ClassData, Data: true, Priority: 1},
		{Name: "app-a", Type: "service", Class: config.ClassService, Priority: 2, DependsOn: []string{"db"}},
		{Name: "app-b", Type: "service", Class: config.ClassService, Priority: 2, DependsOn: []string{"db"}},
		{Name: "app-c", Type: "service", Class: config.ClassService, Priority: 2, DependsOn: []string{"db"}},
	}
	p, err := plan.Build(g, plan.Known{
		Status: status.GroupStatus{Name: "webshop", ActiveSite: "brussels", Epoch: 4, State: status.StateUnreachable},
		SiteUp: map[string]bool{"brussels": false, "antwerp": true},
		LastLag: map[string]map[string]status.Lag{"db": {"antwerp": {Seconds: 0.1, Streaming: true, Epoch: 4,
			MeasuredAt: time.Unix(1000, 0), SeenAt: time.Unix(1000, 0)}}},
		ServeLease: 500 * time.Millisecond,
	}, plan.Request{Action: plan.Failover, AcceptDataLoss: true})
	if err != nil {
		t.Fatal(err)
	}
	wave := map[string]bool{"promote:app-a@antwerp": true, "promote:app-b@antwerp": true, "promote:app-c@antwerp": true}
	m := &meetingAgents{wave: wave, arrived: make(chan string, len(wave)), all: make(chan struct{})}
	go func() {
		for range len(wave) {
			<-m.arrived
		}
		close(m.all)
	}()
	s := &fakeStore{epoch: 4, active: "brussels"}
	e := engine(s, &m.fakeAgents, map[string]bool{"antwerp": true})
	e.Agents = m
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	e.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(10 * time.Millisecond); return now }
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	run, err := e.Drive(ctx, plan.NewRun("r1", "policy", plan.Request{Action: plan.Failover}, p, time.Unix(1000, 0)))
	if err != nil {
		t.Fatalf("%v (the steps of the wave were not in flight together?)", err)
	}
	if run.State != plan.RunSucceeded {
		t.Fatalf("state %s: %s", run.State, run.Error)
	}
	if len(m.calls) != 4 || m.calls[0] != "promote:db@antwerp" {
		t.Errorf("calls %v: want the database first, then the three apps", m.calls)
	}
	if run.WritableAt.IsZero() {
		t.Error("no writable time once every promote was done")
	}
	// A failure in a wave before the activation rolls the run back, as a
	// single step's would, naming the step.
	sp, err := plan.Build(g, plan.Known{
		Status: status.GroupStatus{Name: "webshop", ActiveSite: "brussels", Epoch: 4, State: status.StateProtected},
		SiteUp: up,
	}, plan.Request{Action: plan.Switchover, To: "antwerp"})
	if err != nil {
		t.Fatal(err)
	}
	s2 := &fakeStore{epoch: 4, active: "brussels"}
	a2 := &fakeAgents{fail: map[string]int{"fence:app-b@brussels": 5}}
	run2, err := engine(s2, a2, up).Drive(ctx, plan.NewRun("r2", "operator", plan.Request{Action: plan.Switchover}, sp, time.Unix(1000, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if run2.State != plan.RunRolledBack || !strings.Contains(run2.Error, "step fence:app-b@brussels failed") {
		t.Errorf("state %s error %q: want rolled back, naming fence:app-b@brussels", run2.State, run2.Error)
	}
	if s2.epoch != 4 {
		t.Errorf("the record moved: epoch %d", s2.epoch)
	}
}
