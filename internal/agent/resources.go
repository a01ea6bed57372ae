package agent

import (
	"context"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/watchdog"
)

// localResources are the resources of this site: it observes them, keeps
// the local databases and the network resources in line with their
// groups' records between runs, keeps synchronous replication honest, and
// carries out the steps the controller sends (authorized by the API).
type localResources struct {
	*base
	plane *plane
	syncs interface {
		PutSync(ctx context.Context, r status.SyncRecord, recordRevision int64) (bool, error)
	}
	net *driver.Runtime // this site's network resources (BGP speakers, DNS servers)
	// peers reach the other locations' agents: a rejoin here fetches a
	// copy of the primary's server through them.
	peers interface {
		Copy(ctx context.Context, site, group, resource string) (io.ReadCloser, error)
	}
	// guards are the local databases to fence when the lease runs out;
	// locals those on this machine, kept in line with their records.
	guards map[string]watchdog.Target
	locals map[string]resource.Local
	// yields are the services to stop when the lease runs out
	// (services.go); yielded those it stopped, to start again.
	yields  map[string]func(context.Context) error
	yielded map[string]bool
	// leaseValid says whether this site may serve (serveLease.valid);
	// notify asks the presence to publish the view at once.
	leaseValid func() bool
	notify     func()

	mu        sync.Mutex
	locks     map[string]*sync.Mutex // one step at a time per resource
	resources map[string]status.ResourceView
	leftovers map[string][]string // what drills left that the sweep could not remove
	observe   chan struct{}       // observe the resources now (a step changed them)
	// heavy and promotions hold a slot per rejoin or clone, and per
	// promotion, at work (steps.go).
	heavy, promotions chan struct{}
	// publish makes the next round of the databases' observation publish
	// the view when it ends, whatever changed: this site just marked
	// another lost, and a failover that chooses among standbys waits for
	// their positions observed since (safety.Settled).
	publish atomic.Bool
}

// views returns a copy of the last observation of every local resource.
func (lr *localResources) views() map[string]status.ResourceView {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return maps.Clone(lr.resources)
}

// view returns the last observation of one local resource.
func (lr *localResources) view(key string) (status.ResourceView, bool) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	v, ok := lr.resources[key]
	return v, ok
}

// actor is what carries out steps on resource r of group g here.
func (lr *localResources) actor(g *config.Group, r *config.Resource) (resource.Actor, error) {
	a, err := driver.NewActor(lr.net, g, r, lr.site.Name)
	if cf, ok := a.(resource.CopiesFrom); ok && err == nil && lr.peers != nil {
		cf.CopyWith(func(ctx context.Context, site string) (io.ReadCloser, error) {
			return lr.peers.Copy(ctx, site, g.Name, r.Name)
		})
	}
	return a, err
}

// carryOut carries out a step the API authorized, on the resource whose
// lock the caller holds, and has the resources observed again at once.
func (lr *localResources) carryOut(ctx context.Context, g *config.Group, r *config.Resource, o stepOrder) (out map[string]string, err error) {
	defer lr.observeNow()
	switch o.step.Kind {
	case plan.Check:
		return lr.check(ctx, g, r, o)
	case plan.Clone, plan.Start, plan.Teardown:
		return lr.drillStep(ctx, g, r, o)
	}
	actor, err := lr.actor(g, r)
	if err != nil {
		return nil, err
	}
	if ir, ok := actor.(resource.InRun); ok {
		ir.InRun(o.run)
	}
	switch o.step.Kind {
	case plan.Fence:
		return actor.Fence(ctx)
	case plan.CatchUp:
		return nil, actor.CatchUp(ctx, o.input)
	case plan.Promote:
		if err := lr.startForPromote(ctx, g.Name+"/"+r.Name); err != nil {
			return nil, err
		}
		return actor.Promote(ctx)
	case plan.Rejoin:
		return actor.Rejoin(ctx, o.primary)
	case plan.Unfence:
		return nil, actor.Unfence(ctx)
	}
	return nil, fmt.Errorf("unknown step kind %q", o.step.Kind)
}

// startForPromote starts the database key on this machine, before the
// promote step promotes it, when it stopped without a shutdown
// (promoteStart). The boot guard goes first: whatever its state, it comes
// up read-only, so that a promotion cut short becomes a new one rather
// than a crash recovery that serves on the timeline it had.
func (lr *localResources) startForPromote(ctx context.Context, key string) error {
	l, ok := lr.locals[key]
	if !ok {
		return nil // a database elsewhere, or not a database
	}
	if failpointFenceBeforePromote() {
		lr.log.Warn("failpoint: the database is killed as its promotion begins", "resource", key)
		if err := l.Kill(); err != nil {
			return err
		}
	}
	disk, err := l.Disk(ctx)
	if err != nil {
		return fmt.Errorf("read its state on disk before the promotion: %w", err)
	}
	start, err := promoteStart(disk)
	if err != nil || !start {
		return err
	}
	lr.log.Warn("the database to promote stopped without a shutdown (fenced or crashed): starting it behind its boot guard first", "resource", key, "state", disk.State)
	if err := l.EnsureGuard(); err != nil {
		return fmt.Errorf("write its boot guard before starting it: %w", err)
	}
	if err := l.StartStandby(ctx); err != nil {
		return fmt.Errorf("start it behind its boot guard to promote it: %w", err)
	}
	return nil
}

// localDatabases finds the databases this agent fences when its lease runs
// out, and those on its machine that it keeps in line with their records.
// A database it could not fence is an error: the agent does not start.
func (lr *localResources) localDatabases() error {
	lr.guards, lr.locals = map[string]watchdog.Target{}, map[string]resource.Local{}
	for i := range lr.topo.Groups {
		g := &lr.topo.Groups[i]
		for j := range g.Resources {
			r := &g.Resources[j]
			t, ok, err := driver.GuardTarget(g, r, lr.site.Name)
			if err != nil {
				return fmt.Errorf("agent of %s: %w", lr.site.Name, err)
			}
			if !ok {
				continue
			}
			lr.guards[t.Name] = t
			if l, ok := driver.NewLocal(g, r, lr.site.Name); ok {
				lr.locals[t.Name] = l
			}
		}
	}
	return nil
}

// observers returns an observer for every resource that lives at this site.
func (lr *localResources) observers() (map[string]resource.Observer, error) {
	out := map[string]resource.Observer{}
	for i := range lr.topo.Groups {
		g := &lr.topo.Groups[i]
		for j := range g.Resources {
			r := &g.Resources[j]
			if _, here := r.Settings[lr.site.Name]; !here || !r.Class.Observed() {
				continue // a check, a script or an approval is run, not observed
			}
			o, err := driver.NewObserver(lr.net, g, r, lr.site.Name)
			if err != nil {
				return nil, err
			}
			out[g.Name+"/"+r.Name] = o
		}
	}
	return out, nil
}

// observeNow asks the observation loop to look at the resources at once
// (a step or a fence changed them).
func (lr *localResources) observeNow() {
	select {
	case lr.observe <- struct{}{}:
	default:
	}
}

// observeAndPublish has the databases observed at once and the view
// published with what they say.
func (lr *localResources) observeAndPublish() {
	lr.publish.Store(true)
	lr.observeNow()
}

// observeLoop observes the local resources each probe interval. The
// databases and traffic resources are observed one after the other; each
// service in a loop of its own, so that a slow status command or a health
// probe that hangs never makes a database's observation late.
func (lr *localResources) observeLoop(ctx context.Context, observers map[string]resource.Observer) error {
	if len(observers) == 0 {
		return nil
	}
	core := map[string]resource.Observer{}
	var nows []chan struct{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for key, o := range observers {
		if !lr.isService(key) {
			core[key] = o
			continue
		}
		now := make(chan struct{}, 1)
		nows = append(nows, now)
		wg.Go(func() { lr.observeEvery(ctx, map[string]resource.Observer{key: o}, now, nil) })
	}
	lr.observeEvery(ctx, core, lr.observe, &lr.publish, nows...)
	return nil
}

// isService says whether the resource key (GROUP/NAME) is a service.
func (lr *localResources) isService(key string) bool {
	group, name, _ := strings.Cut(key, "/")
	if g, ok := lr.topo.Group(group); ok {
		if r, ok := findResource(g, name); ok {
			return r.Class == config.ClassService
		}
	}
	return false
}

// observeEvery observes observers one after the other each probe
// interval, and at once when told on now (which it passes on to also).
// A round that begins with publish set publishes the view when it ends.
func (lr *localResources) observeEvery(ctx context.Context, observers map[string]resource.Observer, now <-chan struct{}, publish *atomic.Bool, also ...chan struct{}) {
	tick := time.NewTicker(lr.topo.Coordination.ProbeInterval.D())
	defer tick.Stop()
	for {
		published := publish != nil && publish.Swap(false)
		// A few at a time: one after the other, 30 databases on a busy
		// machine took seconds a round, and a standby's lag, measured at
		// the start of the round, was that stale when the view went out.
		sem := make(chan struct{}, observeParallel)
		var wg sync.WaitGroup
		for key, o := range observers {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				lr.observeOne(ctx, key, o)
			})
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		if published {
			lr.notify()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-now:
			for _, c := range also {
				select {
				case c <- struct{}{}:
				default:
				}
			}
		}
	}
}

// observeParallel is how many resources one observation round observes
// at once.
const observeParallel = 8

// observeOne observes one resource and keeps what it saw.
func (lr *localResources) observeOne(ctx context.Context, key string, o resource.Observer) {
	octx, cancel := context.WithTimeout(ctx, lr.topo.Coordination.ProbeTimeout.D())
	v := o.Observe(octx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	// Timed on this agent's clock, as its view's publication is: the
	// controller subtracts the two (lags.go).
	v.ObservedAt = lr.now().UTC()
	lr.metrics.resource(v)
	lr.mu.Lock()
	prev, known := lr.resources[key]
	lr.resources[key] = v
	lr.mu.Unlock()
	if !known || prev.Up != v.Up || prev.Role != v.Role || prev.Streaming != v.Streaming || prev.Timeline != v.Timeline {
		lr.log.Info("resource changed", "resource", key, "up", v.Up, "role", v.Role, "streaming", v.Streaming, "timeline", v.Timeline, "error", v.Error)
		lr.notify()
	}
}

func (lr *localResources) resourceLock(key string) *sync.Mutex {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.locks == nil {
		lr.locks = map[string]*sync.Mutex{}
	}
	if lr.locks[key] == nil {
		lr.locks[key] = &sync.Mutex{}
	}
	return lr.locks[key]
}

// checkServers asks each database of this site, once its server answers,
// whether it is set up as its type needs, and logs what is wrong with the
// statement that fixes it (`siteflip check --servers` asks the same).
func (lr *localResources) checkServers(ctx context.Context) error {
	for i := range lr.topo.Groups {
		g := &lr.topo.Groups[i]
		for j := range g.Resources {
			r := &g.Resources[j]
			if _, here := r.Settings[lr.site.Name]; !here || !r.Data {
				continue
			}
			for attempt := 0; ; attempt++ {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				problems, ok, err := driver.CheckServer(cctx, g, r, lr.site.Name)
				cancel()
				if ctx.Err() != nil {
					return nil
				}
				if err != nil && attempt < 30 {
					select { // not up yet
					case <-ctx.Done():
						return nil
					case <-time.After(2 * time.Second):
					}
					continue
				}
				if err != nil {
					lr.log.Warn("cannot check the database's setup", "resource", g.Name+"/"+r.Name, "error", err)
				}
				for _, p := range problems {
					lr.log.Warn("database set up wrong", "resource", g.Name+"/"+r.Name, "problem", p)
				}
				if ok && err == nil && len(problems) == 0 {
					lr.log.Info("database setup checked: nothing wrong", "resource", g.Name+"/"+r.Name)
				}
				break
			}
		}
	}
	return nil
}
