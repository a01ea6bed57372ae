package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
)

// base is what every component of the agent reads and none changes: the
// topology, which location this is, its log, metrics and clock.
type base struct {
	topo    *config.Topology
	site    *config.Site
	log     *slog.Logger
	metrics *metrics
	version string
	// certNotAfter is when the certificate the agent serves with expires
	// (zero without TLS); its view publishes it.
	certNotAfter time.Time
	// started is when this run of the agent started (on its clock); the
	// peers learn it from /healthz.
	started time.Time
	// clockOffset shifts the wall clock (a test hook, below).
	clockOffset time.Duration
}

// scheme is how the agents call each other.
func (b *base) scheme() string {
	if b.topo.TLSEnabled() {
		return "https"
	}
	return "http"
}

// plane reads the control plane for every component: snapshots, with the
// views' ages measured on this machine's clock, and the status assembled
// from them. It writes nothing.
type plane struct {
	*base
	store interface {
		Snapshot(ctx context.Context) (status.Snapshot, error)
	}
	views viewClock
}

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
func (b *base) now() time.Time { return time.Now().Add(b.clockOffset) }

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
func (pl *plane) snapshot(ctx context.Context) (status.Snapshot, error) {
	snap, err := pl.store.Snapshot(ctx)
	if err != nil {
		return snap, err
	}
	snap.ViewAges = pl.views.ages(snap.Views, time.Now())
	// This location's own view from an earlier run of its agent says
	// nothing of what this run found: not reporting yet.
	if v, ok := snap.Views[pl.site.Name]; ok && !v.StartedAt.Equal(pl.started) {
		delete(snap.Views, pl.site.Name)
		delete(snap.ViewAges, pl.site.Name)
	}
	return snap, nil
}

// assembleGroup builds the status of the sites and of group g alone.
func (pl *plane) assembleGroup(snap status.Snapshot, g *config.Group) status.Status {
	return status.AssembleGroup(pl.topo, g, snap, pl.site.Name, pl.now().UTC())
}

// assemble builds the status from a snapshot, as this location answers it.
func (pl *plane) assemble(snap status.Snapshot) status.Status {
	return status.Assemble(pl.topo, snap, pl.site.Name, pl.now().UTC())
}

// withSnapshots calls f every interval with a fresh snapshot of the
// control plane, skipping the ticks when it cannot be read (no quorum:
// nothing is decided then), until ctx ends.
func (pl *plane) withSnapshots(ctx context.Context, interval time.Duration, f func(status.Snapshot)) error {
	return every(ctx, interval, func() {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		snap, err := pl.snapshot(rctx)
		cancel()
		if err == nil {
			f(snap)
		}
	})
}

// every calls f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		f()
	}
}
