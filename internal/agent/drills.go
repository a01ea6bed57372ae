package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/resource"
)

// sweepEvery is how often the agent looks for drill leftovers.
const sweepEvery = time.Minute

// bubble is this site's bubble for the drill run.
func (lr *localResources) bubble(run string) (resource.Bubble, error) {
	b := lr.site.Bubble
	if b.Address == "" {
		return resource.Bubble{}, fmt.Errorf("site %s has no bubble for drills: set sites[].bubble.address in %s to an address production clients never use", lr.site.Name, lr.topo.File)
	}
	return resource.Bubble{Run: run, Address: b.Address, Netns: b.Netns}, nil
}

// drillStep carries out a clone, start or teardown of a drill.
func (lr *localResources) drillStep(ctx context.Context, g *config.Group, r *config.Resource, o stepOrder) (map[string]string, error) {
	b, err := lr.bubble(o.drill)
	if err != nil {
		return nil, err
	}
	d, ok, err := driver.NewDrill(g, r, lr.site.Name, b)
	if err != nil {
		return nil, err
	}
	if !ok {
		if r.Data {
			return nil, fmt.Errorf("%s resources cannot be drilled yet", r.Type)
		}
		return map[string]string{"skipped": fmt.Sprintf("%s resources send nobody into a drill's bubble: production's is left as it is", r.Type)}, nil
	}
	if ir, ok := d.(resource.InRun); ok {
		ir.InRun(o.run)
	}
	switch o.step.Kind {
	case plan.Clone:
		return d.Clone(ctx)
	case plan.Start:
		return d.Start(ctx)
	case plan.Teardown:
		return nil, d.Teardown(ctx)
	}
	return nil, fmt.Errorf("unknown drill step kind %q", o.step.Kind)
}

// check runs a check resource here: against the drill's copies in a
// drill, from inside its bubble's namespace when it has one; against
// production's servers here otherwise, from the agent's namespace.
func (lr *localResources) check(ctx context.Context, g *config.Group, r *config.Resource, o stepOrder) (map[string]string, error) {
	if o.drill == "" {
		v, err := driver.NewVerifier(g, r, lr.site.Name)
		if err != nil {
			return nil, err
		}
		return v.Verify(ctx, driver.Targets(lr.net, g, lr.site.Name))
	}
	b, err := lr.bubble(o.drill)
	if err != nil {
		return nil, err
	}
	v, err := driver.NewDrillVerifier(g, r, lr.site.Name, b)
	if err != nil {
		return nil, err
	}
	return v.Verify(ctx, o.targets)
}

// sweepLoop removes drill leftovers at start and every sweepEvery.
func (lr *localResources) sweepLoop(ctx context.Context) error {
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	for {
		if _, err := lr.sweep(ctx, ""); err != nil && ctx.Err() == nil {
			lr.log.Warn("cannot remove drill leftovers", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// sweep tears down, at this site, what every drill left behind that is
// not its group's drill in progress (only in group, unless ""), and says
// what it removed. The leftovers are listed before the control plane is
// read: a drill that began after the read has no remains in the list.
func (lr *localResources) sweep(ctx context.Context, group string) ([]string, error) {
	type part struct {
		g   *config.Group
		r   *config.Resource
		d   resource.Drill
		ids []string
	}
	var parts []part
	for i := range lr.topo.Groups {
		g := &lr.topo.Groups[i]
		if group != "" && g.Name != group {
			continue
		}
		for j := range g.Resources {
			r := &g.Resources[j]
			if _, here := r.Settings[lr.site.Name]; !here {
				continue
			}
			d, ok, err := driver.NewDrill(g, r, lr.site.Name, resource.Bubble{Address: lr.site.Bubble.Address, Netns: lr.site.Bubble.Netns})
			if err != nil || !ok {
				continue
			}
			ids, err := d.Leftovers()
			if err != nil {
				return nil, fmt.Errorf("list the drills of %s/%s: %w", g.Name, r.Name, err)
			}
			if len(ids) > 0 {
				parts = append(parts, part{g, r, d, ids})
			}
		}
	}
	if len(parts) == 0 {
		lr.setLeftovers(group, nil)
		return nil, nil
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	snap, err := lr.plane.snapshot(rctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("read the drills in progress: %w", err)
	}
	var removed []string
	var errs []error
	left := map[string][]string{}
	defer func() { lr.setLeftovers(group, left) }()
	for _, p := range parts {
		for _, id := range p.ids {
			if snap.Drilling[p.g.Name] == id {
				continue
			}
			b := resource.Bubble{Run: id, Address: lr.site.Bubble.Address, Netns: lr.site.Bubble.Netns}
			d, _, err := driver.NewDrill(p.g, p.r, lr.site.Name, b)
			if err == nil {
				// Not while a step of the drill may still run here.
				lock := lr.resourceLock(p.g.Name + "/" + p.r.Name)
				lock.Lock()
				tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				err = d.Teardown(tctx)
				cancel()
				lock.Unlock()
			}
			what := fmt.Sprintf("%s/%s of drill %s", p.g.Name, p.r.Name, id)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", what, err))
				left[p.g.Name+"/"+p.r.Name] = append(left[p.g.Name+"/"+p.r.Name], fmt.Sprintf("drill %s: %v", id, err))
				continue
			}
			lr.log.Warn("removed what a drill left behind", "resource", p.g.Name+"/"+p.r.Name, "drill", id)
			removed = append(removed, what)
		}
	}
	slices.Sort(removed)
	if len(errs) > 0 {
		return removed, errors.Join(errs...)
	}
	return removed, nil
}

// setLeftovers records what the last sweep of group ("" for all) could
// not remove, for the view this site publishes.
func (lr *localResources) setLeftovers(group string, left map[string][]string) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if group == "" {
		lr.leftovers = left
		return
	}
	for k := range lr.leftovers {
		if strings.HasPrefix(k, group+"/") {
			delete(lr.leftovers, k)
		}
	}
	if lr.leftovers == nil {
		lr.leftovers = map[string][]string{}
	}
	maps.Copy(lr.leftovers, left)
}

// drillLeftovers returns a copy of what the last sweeps could not remove.
func (lr *localResources) drillLeftovers() map[string][]string {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if len(lr.leftovers) == 0 {
		return nil
	}
	return maps.Clone(lr.leftovers)
}

// handleDrillCleanup removes, at this site, what the drills of a group
// left behind (`siteflip drill GROUP --cleanup` asks every site).
func (srv *apiServer) handleDrillCleanup(w http.ResponseWriter, r *http.Request) {
	info := requestInfo(r)
	group := r.PathValue("group")
	info.note.Action, info.note.Group = "drill "+group+" --cleanup at "+srv.site.Name, group
	if _, ok := srv.topo.Group(group); !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown group %q (groups: %s)", group, groupNames(srv.topo.Groups)))
		return
	}
	removed, err := srv.local.sweep(r.Context(), group)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("%s: %w", srv.site.Name, err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"site": srv.site.Name, "removed": removed})
}
