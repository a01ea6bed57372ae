package agent

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/status"
)

// Services between runs (docs/design/stacks.md): a service with
// stop_on_lease_loss is stopped when this site's serve lease runs out, as
// the databases are fenced, since it may act on the data; once the lease
// is back, and the group is still active here with no run in progress,
// the agent starts again what it stopped, as it starts its databases
// again (convergeLocal).

// localServices finds the services this agent stops when its lease runs
// out.
func (lr *localResources) localServices() {
	lr.yields = map[string]func(context.Context) error{}
	for i := range lr.topo.Groups {
		g := &lr.topo.Groups[i]
		for j := range g.Resources {
			r := &g.Resources[j]
			if _, here := r.Settings[lr.site.Name]; !here {
				continue
			}
			if stop, ok := driver.Yield(g, r, lr.site.Name); ok {
				lr.yields[g.Name+"/"+r.Name] = stop
			}
		}
	}
}

// yieldAll stops, in the background, every service to stop when the lease
// runs out, and remembers them to start again.
func (lr *localResources) yieldAll() {
	for _, key := range slices.Sorted(maps.Keys(lr.yields)) {
		stop := lr.yields[key]
		lr.mu.Lock()
		if lr.yielded == nil {
			lr.yielded = map[string]bool{}
		}
		lr.yielded[key] = true
		lr.mu.Unlock()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := stop(ctx); err != nil {
				lr.log.Error("serve lease ran out; stopping the service failed", "resource", key, "error", err)
				return
			}
			lr.log.Warn("serve lease ran out: service stopped", "resource", key)
			lr.observeNow()
		}()
	}
}

// restartYielded starts again the services the lease's loss stopped, once
// the lease is back, where the group is still active here and no run is in
// progress; a service whose group moved meanwhile stays stopped.
func (lr *localResources) restartYielded(ctx context.Context) error {
	if len(lr.yields) == 0 {
		return nil
	}
	return lr.plane.withSnapshots(ctx, lr.topo.Coordination.ProbeInterval.D(), func(snap status.Snapshot) {
		if !lr.leaseValid() || len(snap.Marks[lr.site.Name]) > 0 {
			return
		}
		lr.mu.Lock()
		keys := slices.Sorted(maps.Keys(lr.yielded))
		lr.mu.Unlock()
		for _, key := range keys {
			group, name, _ := strings.Cut(key, "/")
			rec, adopted := snap.Records[group]
			if snap.Running[group] != "" {
				continue // the run's steps move it
			}
			if !adopted || rec.ActiveSite != lr.site.Name {
				lr.forgetYielded(key)
				continue
			}
			g, ok := lr.topo.Group(group)
			if !ok {
				continue
			}
			r, ok := findResource(g, name)
			if !ok {
				continue
			}
			lock := lr.resourceLock(key)
			if !lock.TryLock() {
				continue
			}
			actor, err := lr.actor(g, r)
			if err == nil {
				pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err = actor.Promote(pctx)
				cancel()
			}
			lock.Unlock()
			if err != nil {
				lr.log.Warn("serve lease back; starting the service again failed (tried again)", "resource", key, "error", err)
				continue
			}
			lr.log.Info("serve lease back: service started again", "resource", key)
			lr.forgetYielded(key)
			lr.observeNow()
		}
	})
}

func (lr *localResources) forgetYielded(key string) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	delete(lr.yielded, key)
}
