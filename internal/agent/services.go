package agent

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/status"
)

// Services between runs (docs/design/stacks.md): a service with
// stop_on_lease_loss is stopped when this site's serve lease runs out, as
// the databases are fenced, since it may act on the data; once the lease
// is back, and the group is still active here with no run in progress,
// the agent starts again what it stopped, as it starts its databases
// again (convergeLocal). A service found running where its group is not
// active is stopped (serviceAction).

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

// serviceFacts is what serviceAction decides from, for one service here.
type serviceFacts struct {
	Adopted    bool // the group has a record
	ActiveHere bool // the record names this site
	Moving     bool // a run or a drill of the group is in progress
	Yielded    bool // the lease's loss stopped it
	Observed   bool // it has been observed since the agent started
	Running    bool // by the last observation: it runs (healthy or not)
}

// serviceDo is what to do to a service between runs.
type serviceDo int

const (
	leaveService serviceDo = iota
	startService
	stopService
	forgetYield
)

func (d serviceDo) String() string {
	return [...]string{"leave it", "start it", "stop it", "forget it was stopped"}[d]
}

// serviceAction decides what to do to a service here between runs, and
// why: start again what the lease's loss stopped where its group is still
// active, and stop a service running where its group is not active (a
// service manager, a person or a host that came back started it). A
// service runs at the active site only; one elsewhere may act on data
// that is not the primary's, or answer clients for a site that is not
// active. Runs and drills move services themselves.
func serviceAction(f serviceFacts) (serviceDo, string) {
	switch {
	case !f.Adopted || f.Moving:
		return leaveService, "its group has no record, or a run or drill moves it"
	case f.ActiveHere && f.Yielded && f.Observed && f.Running:
		return forgetYield, "it runs again"
	case f.ActiveHere && f.Yielded:
		return startService, "the serve lease is back and its group is still active here"
	case f.Yielded:
		return forgetYield, "its group moved while it was stopped: it stays stopped"
	case !f.ActiveHere && f.Observed && f.Running:
		return stopService, "it runs at a site that is not its group's active site"
	}
	return leaveService, "in line with its group's record"
}

// convergeServices brings the services here in line with their groups'
// records (serviceAction) while this site holds its serve lease and no
// location marks it lost.
func (lr *localResources) convergeServices(ctx context.Context) error {
	var keys []string
	for i := range lr.topo.Groups {
		g := &lr.topo.Groups[i]
		for _, r := range g.Resources {
			if _, here := r.Settings[lr.site.Name]; here && r.Class == config.ClassService {
				keys = append(keys, g.Name+"/"+r.Name)
			}
		}
	}
	if len(keys) == 0 {
		return nil
	}
	told := map[string]string{}
	return lr.plane.withSnapshots(ctx, lr.topo.Coordination.ProbeInterval.D(), func(snap status.Snapshot) {
		if !lr.leaseValid() || len(snap.Marks[lr.site.Name]) > 0 {
			return
		}
		facts := func(snap status.Snapshot, key string) (serviceFacts, status.Record) {
			group, _, _ := strings.Cut(key, "/")
			rec, adopted := snap.Records[group]
			v, observed := lr.view(key)
			lr.mu.Lock()
			yielded := lr.yielded[key]
			lr.mu.Unlock()
			return serviceFacts{Adopted: adopted, ActiveHere: adopted && rec.ActiveSite == lr.site.Name,
				Moving: snap.Running[group] != "" || snap.Drilling[group] != "", Yielded: yielded, Observed: observed,
				Running: observed && v.Up && (v.Role == status.RolePrimary || v.Role == status.RoleDown)}, rec
		}
		for _, key := range keys {
			group, name, _ := strings.Cut(key, "/")
			f, rec := facts(snap, key)
			do, why := serviceAction(f)
			switch do {
			case leaveService:
				continue
			case forgetYield:
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
				continue // a step is at work on it
			}
			// Another look just before acting, with the lock held: a run
			// may have started, moved the service and let go of it since
			// the snapshot, and the lease may have run out meanwhile.
			fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			fresh, err := lr.plane.snapshot(fctx)
			cancel()
			if err != nil || !lr.leaseValid() || len(fresh.Marks[lr.site.Name]) > 0 {
				lock.Unlock()
				continue
			}
			f, rec = facts(fresh, key)
			if again, _ := serviceAction(f); again != do {
				lock.Unlock()
				continue
			}
			actor, err := lr.actor(g, r)
			if err == nil {
				actx, cancel := context.WithTimeout(ctx, 30*time.Second)
				if do == startService {
					_, err = actor.Promote(actx)
				} else {
					_, err = actor.Fence(actx)
				}
				cancel()
			}
			lock.Unlock()
			if err != nil {
				if told[key] != err.Error() {
					lr.log.Warn("cannot bring the service in line with its group's record (tried again)", "resource", key, "action", do.String(), "why", why, "error", err)
				}
				told[key] = err.Error()
				continue
			}
			delete(told, key)
			lr.log.Warn("service brought in line with its group's record", "resource", key, "action", do.String(), "why", why, "active_site", rec.ActiveSite, "epoch", rec.Epoch)
			if do == startService {
				lr.forgetYielded(key)
			}
			lr.observeNow()
		}
	})
}

func (lr *localResources) forgetYielded(key string) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	delete(lr.yielded, key)
}
