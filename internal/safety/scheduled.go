package safety

import (
	"fmt"
	"time"

	"github.com/siteflip/siteflip/internal/status"
)

// DueSwitchover is the rule of scheduled switchovers: what the
// controller does at now with a group's scheduled switchover sc. From its
// time until status.SwitchoverGrace after, it starts it (start) when no
// run is in progress on the group (busy) and the planner accepts it now
// (planErr nil); otherwise it records why not (refused), unless that is
// what sc records already. Before its time, and once missed, nothing. A
// pause does not hold it back: a scheduled switchover is a person's run,
// only started later.
func DueSwitchover(now time.Time, sc status.ScheduledSwitchover, busy string, planErr error) (start bool, refused string) {
	if now.Before(sc.At) || sc.Missed(now) {
		return false, ""
	}
	switch {
	case busy != "":
		refused = fmt.Sprintf("run %s is in progress on the group", busy)
	case planErr != nil:
		refused = planErr.Error()
	default:
		return true, ""
	}
	if refused == sc.Refused {
		return false, ""
	}
	return false, refused
}
