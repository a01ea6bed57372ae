package safety

import (
	"errors"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/status"
)

func TestDueSwitchover(t *testing.T) {
	at := time.Date(2026, 12, 5, 7, 0, 0, 0, time.UTC)
	sc := status.ScheduledSwitchover{Group: "webshop", To: "antwerp", At: at, By: "alice"}
	refusedBefore := sc
	refusedBefore.Refused = "run r1 is in progress on the group"
	noStandby := errors.New("group webshop: antwerp's db is not streaming")
	for _, tt := range []struct {
		name    string
		now     time.Time
		sc      status.ScheduledSwitchover
		busy    string
		planErr error
		start   bool
		refused string
	}{
		{"before its time", at.Add(-time.Second), sc, "", nil, false, ""},
		{"at its time", at, sc, "", nil, true, ""},
		{"a little late (a controller elected meanwhile)", at.Add(time.Minute), sc, "", nil, true, ""},
		{"a run in progress", at, sc, "r1", nil, false, "run r1 is in progress on the group"},
		{"a run in progress, said already", at.Add(time.Second), refusedBefore, "r1", nil, false, ""},
		{"the run ended: it starts", at.Add(2 * time.Second), refusedBefore, "", nil, true, ""},
		{"the planner refuses", at, sc, "", noStandby, false, noStandby.Error()},
		{"the last moment", at.Add(status.SwitchoverGrace), sc, "", nil, true, ""},
		{"missed: never by surprise later", at.Add(status.SwitchoverGrace + time.Second), sc, "", nil, false, ""},
		{"missed while refused", at.Add(time.Hour), refusedBefore, "r1", nil, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start, refused := DueSwitchover(tt.now, tt.sc, tt.busy, tt.planErr)
			if start != tt.start || refused != tt.refused {
				t.Errorf("DueSwitchover = %v, %q; want %v, %q", start, refused, tt.start, tt.refused)
			}
		})
	}
}
