package agent

import (
	"context"
	"strings"
	"testing"
	"time"

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
