package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// scheduledFake records what the controller does with scheduled
// switchovers; any other call panics (the embedded interface is nil).
type scheduledFake struct {
	controllerStore
	started  []plan.Run
	refused  []status.ScheduledSwitchover
	startErr error
}

func (f *scheduledFake) StartScheduled(_ context.Context, run plan.Run, _ int64, _ status.ScheduledSwitchover) error {
	if f.startErr != nil {
		return f.startErr
	}
	f.started = append(f.started, run)
	return nil
}

func (f *scheduledFake) RefuseScheduled(_ context.Context, sc status.ScheduledSwitchover, _ coord.Fence) error {
	f.refused = append(f.refused, sc)
	return nil
}

// A due scheduled switchover starts as its scheduler's run; one not due
// yet or missed does not; one that cannot start says why, once.
func TestScheduledSwitchoverStarts(t *testing.T) {
	topo, snap := scheduleWorld(t)
	now := time.Now()
	sc := status.ScheduledSwitchover{Group: "webshop", To: "antwerp", By: "alice", Role: "operator", Reason: "upgrade", Ticket: "CHG-9", Revision: 7}

	for _, tt := range []struct {
		name    string
		at      time.Time
		busy    string
		started int
		refused string
	}{
		{"not due", now.Add(time.Hour), "", 0, ""},
		{"missed", now.Add(-time.Hour), "", 0, ""},
		{"a run in progress", now.Add(-time.Second), "r1", 0, "run r1 is in progress on the group"},
		{"due", now.Add(-time.Second), "", 1, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := &scheduledFake{}
			ctl := scheduleController(topo, &drillFake{})
			ctl.store = store
			s := sc
			s.At = tt.at
			snap.Scheduled = map[string]status.ScheduledSwitchover{"webshop": s}
			snap.Running = map[string]string{}
			if tt.busy != "" {
				snap.Running["webshop"] = tt.busy
			}
			got := ctl.startScheduled(t.Context(), snap, coord.Fence{})
			if len(got) != tt.started || len(store.started) != tt.started {
				t.Fatalf("started %d (%d stored), want %d; refused %+v", len(got), len(store.started), tt.started, store.refused)
			}
			if tt.started == 1 {
				r := got[0]
				if r.Plan.Action != plan.Switchover || r.Plan.To != "antwerp" || r.By != "alice" || r.Role != "operator" || r.Ticket != "CHG-9" ||
					!strings.HasPrefix(r.Reason, "scheduled for ") || !strings.HasSuffix(r.Reason, ": upgrade") {
					t.Errorf("run %+v", r)
				}
			}
			switch {
			case tt.refused == "" && len(store.refused) != 0:
				t.Errorf("refusal recorded: %+v", store.refused)
			case tt.refused != "" && (len(store.refused) != 1 || store.refused[0].Refused != tt.refused || store.refused[0].Revision != 7):
				t.Errorf("refusals %+v, want one: %q", store.refused, tt.refused)
			}
		})
	}
}

// scheduleAPIFake keeps scheduled switchovers as the control plane does.
type scheduleAPIFake struct {
	apiStore
	scheduled map[string]status.ScheduledSwitchover
}

func (f *scheduleAPIFake) Schedule(_ context.Context, sc status.ScheduledSwitchover) (status.ScheduledSwitchover, error) {
	if cur, ok := f.scheduled[sc.Group]; ok {
		return cur, fmt.Errorf("group %s: %w", sc.Group, coord.ErrScheduled)
	}
	f.scheduled[sc.Group] = sc
	return sc, nil
}

func (f *scheduleAPIFake) CancelScheduled(_ context.Context, group string) (status.ScheduledSwitchover, bool, error) {
	sc, ok := f.scheduled[group]
	delete(f.scheduled, group)
	return sc, ok, nil
}

// Scheduling: operators may, viewers may not; the site must be the
// group's and the time ahead; one per group; cancelling twice is no
// error.
func TestScheduleEndpoints(t *testing.T) {
	a, _ := guarded(t)
	a.topo.Groups = []config.Group{{Name: "webshop", Sites: []string{"brussels", "antwerp"}}}
	store := &scheduleAPIFake{scheduled: map[string]status.ScheduledSwitchover{}}
	a.api.store = store
	mux, _, err := a.api.routes()
	if err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	body := func(to, at string) string {
		return fmt.Sprintf(`{"group":"webshop","to":%q,"at":%q,"reason":"before the upgrade"}`, to, at)
	}
	for i, s := range []struct {
		who, method, path, body string
		code                    int
		says                    string
	}{
		{"vera", "POST", "/v1/scheduled", body("antwerp", soon), http.StatusForbidden, "needs the operator role"},
		{"otto", "POST", "/v1/scheduled", body("paris", soon), http.StatusBadRequest, `is not a site of group webshop`},
		{"otto", "POST", "/v1/scheduled", body("antwerp", "2020-01-01T00:00:00Z"), http.StatusBadRequest, "is not in the future"},
		{"otto", "POST", "/v1/scheduled", body("antwerp", soon), http.StatusCreated, ""},
		{"ada", "POST", "/v1/scheduled", body("antwerp", soon), http.StatusConflict, "already scheduled"},
		{"vera", "DELETE", "/v1/scheduled/webshop", "", http.StatusForbidden, "needs the operator role"},
		{"otto", "DELETE", "/v1/scheduled/webshop", "", http.StatusOK, `"cancelled": true`},
		{"otto", "DELETE", "/v1/scheduled/webshop", "", http.StatusOK, `"cancelled": false`},
	} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, as(s.who, s.method, s.path, s.body))
		if w.Code != s.code || !strings.Contains(w.Body.String(), s.says) {
			t.Errorf("step %d: %s %s %s: %d %s; want %d saying %q", i, s.who, s.method, s.path, w.Code, w.Body, s.code, s.says)
		}
		if i == 3 {
			sc := store.scheduled["webshop"]
			if sc.By != "otto" || sc.Role != "operator" || sc.To != "antwerp" || sc.Reason != "before the upgrade" || sc.At.Format(time.RFC3339) != soon {
				t.Errorf("stored %+v", sc)
			}
		}
	}
}
