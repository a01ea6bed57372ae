package agent

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/depprobe"
	"github.com/siteflip/siteflip/internal/status"
)

// dependencies probes, from this site, the outside services its groups
// require (config.Group.Requires): each dependency's entry for this site,
// every interval, at most probesAtOnce at a time. The view this location
// publishes carries the last results (docs/design/risk.md, "Dependency
// probes").
type dependencies struct {
	*base
	// notify asks for the view to be published now (presence.notify).
	notify func()

	mu    sync.Mutex
	state map[string]depState // by dependencyKey
}

// probesAtOnce bounds the probes in flight across the agent: a hundred
// dependencies must not open a hundred connections at once.
const probesAtOnce = 8

// depState is what the loop keeps of one dependency: what it shows, and
// the failed probes in a row behind it.
type depState struct {
	view     status.DependencyView
	failures int
}

// dependencyKey is the key of a dependency in status.View.Dependencies.
func dependencyKey(group, dependency string) string { return group + "/" + dependency }

// nextDepState folds a probe's result, ended at now, into what was known
// (known: a probe of it ended before). A reachable dependency is shown
// unreachable only after failuresToDown failures in a row, as a peer is:
// one lost packet is not an outage; until then the view stays as it was.
// The first result ever is shown at once. flipped: Reachable changed, or
// this is the first result.
func nextDepState(prev depState, known bool, r depprobe.Result, now time.Time) (next depState, flipped bool) {
	next = prev
	if r.Reachable {
		next.failures = 0
		next.view.Reachable, next.view.Error = true, ""
		next.view.LatencyMs = float64(r.Latency.Microseconds()) / 1000
	} else {
		next.failures++
		if known && prev.view.Reachable && next.failures < failuresToDown {
			return next, false
		}
		next.view.Reachable, next.view.LatencyMs = false, 0
		if r.Err != nil {
			next.view.Error = r.Err.Error()
		}
	}
	next.view.Target, next.view.CheckedAt = r.Target, now
	flipped = !known || prev.view.Reachable != next.view.Reachable
	if flipped {
		next.view.Since = now
	}
	return next, flipped
}

// views returns the last results, keyed GROUP/DEPENDENCY; nil when there
// are none.
func (d *dependencies) views() map[string]status.DependencyView {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.state) == 0 {
		return nil
	}
	out := make(map[string]status.DependencyView, len(d.state))
	for k, s := range d.state {
		out[k] = s.view
	}
	return out
}

// run probes every dependency of this site's groups until ctx ends.
func (d *dependencies) run(ctx context.Context) error {
	slots := make(chan struct{}, probesAtOnce)
	var wg sync.WaitGroup
	for _, g := range d.topo.Groups {
		if !slices.Contains(g.Sites, d.site.Name) {
			continue
		}
		for _, dep := range g.Requires {
			at, ok := dep.Sites[d.site.Name]
			if !ok {
				continue // the validation asks for an entry per site; none: nothing to probe
			}
			wg.Go(func() { d.probeEvery(ctx, g.Name, dep, at, slots) })
		}
	}
	wg.Wait()
	return nil
}

// probeEvery probes one dependency every interval, the first time at a
// random moment within the first interval, so that dependencies declared
// together are not probed together.
func (d *dependencies) probeEvery(ctx context.Context, group string, dep config.Dependency, at config.DependencySite, slots chan struct{}) {
	interval := dep.Interval.D()
	if interval <= 0 {
		interval = config.DefaultDependencyInterval
	}
	first := time.NewTimer(rand.N(interval))
	select {
	case <-ctx.Done():
		first.Stop()
		return
	case <-first.C:
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		r := depprobe.Probe(ctx, dep, at)
		<-slots
		if ctx.Err() != nil {
			return
		}
		d.record(group, dep, r)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// record keeps a probe's result, exports it, and has the view published
// at once when the dependency's reachability changed.
func (d *dependencies) record(group string, dep config.Dependency, r depprobe.Result) {
	key := dependencyKey(group, dep.Name)
	d.mu.Lock()
	prev, known := d.state[key]
	next, flipped := nextDepState(prev, known, r, d.now().UTC())
	next.view.Group, next.view.Dependency, next.view.Type = group, dep.Name, dep.Type
	d.state[key] = next
	d.mu.Unlock()
	d.metrics.dependency(group, dep.Name, d.site.Name, next.view.Reachable, r.Latency)
	if !flipped {
		return
	}
	d.log.Info("dependency reachability changed", "group", group, "dependency", dep.Name, "target", next.view.Target,
		"reachable", next.view.Reachable, "error", next.view.Error)
	d.notify()
}
