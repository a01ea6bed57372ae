package agent

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/siteflip/siteflip/internal/status"
)

// No decision of the agent compares times written by two machines
// (docs/design/safety.md). Durations are measured on this machine's
// monotonic clock; wall-clock times written by others are compared only
// with other times written by the same machine.

// clockOffsetEnv names a test hook: the agent's wall clock reads that much
// off ("7s", "-5s"), so that the chaos suite can show a controller whose
// clock is wrong decides as the others would.
const clockOffsetEnv = "SITEFLIP_CLOCK_OFFSET"

func clockOffset() (time.Duration, error) {
	v := os.Getenv(clockOffsetEnv)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %w", clockOffsetEnv, v, err)
	}
	return d, nil
}

// now is the agent's wall clock (with its monotonic reading).
func (a *agent) now() time.Time { return time.Now().Add(a.clockOffset) }

// viewClock measures, on this machine's monotonic clock, how long ago each
// location's published view last changed: whether a location still
// publishes is judged without reading its clock.
type viewClock struct {
	mu   sync.Mutex
	seen map[string]viewSeen
}

type viewSeen struct {
	published time.Time // as the publisher wrote it
	at        time.Time // when this agent first saw it (monotonic)
	// firstSight: it was there when this agent first looked; how long it
	// had been there is unknown.
	firstSight bool
}

// ages notes the views of snap and returns each one's age. A view seen
// for the first time has no known age (it may have been left there long
// ago) and is left out until it changes: a view without an age is not
// fresh.
func (vc *viewClock) ages(views map[string]status.View, now time.Time) map[string]time.Duration {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.seen == nil {
		vc.seen = map[string]viewSeen{}
	}
	out := make(map[string]time.Duration, len(views))
	for site, v := range views {
		s, ok := vc.seen[site]
		switch {
		case !ok:
			vc.seen[site] = viewSeen{published: v.PublishedAt, firstSight: true}
			continue
		case !s.published.Equal(v.PublishedAt):
			s = viewSeen{published: v.PublishedAt, at: now}
			vc.seen[site] = s
		case s.firstSight:
			continue
		}
		out[site] = now.Sub(s.at)
	}
	return out
}

// snapshot reads the control plane, with the views' ages.
func (a *agent) snapshot(ctx context.Context) (status.Snapshot, error) {
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		return snap, err
	}
	snap.ViewAges = a.views.ages(snap.Views, time.Now())
	// This location's own view from an earlier run of its agent says
	// nothing of what this run found: not reporting yet.
	if v, ok := snap.Views[a.site.Name]; ok && !v.StartedAt.Equal(a.started) {
		delete(snap.Views, a.site.Name)
		delete(snap.ViewAges, a.site.Name)
	}
	return snap, nil
}

// assemble builds the status from a snapshot, as this location answers it.
func (a *agent) assemble(snap status.Snapshot) status.Status {
	return status.Assemble(a.topo, snap, a.site.Name, a.now().UTC())
}

// observeNow asks the observation loop to look at the resources at once
// (a step or a fence changed them).
func (a *agent) observeNow() {
	select {
	case a.observe <- struct{}{}:
	default:
	}
}
