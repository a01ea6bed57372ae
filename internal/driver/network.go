package driver

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
)

// Runtime holds this site's network resources, which live in the agent
// (BGP speakers, DNS servers) as long as it runs.
type Runtime struct {
	mu   sync.Mutex
	nets map[string]resource.Network // by group/resource
}

// NewRuntime builds the network resources of site in t, which log to log
// (nil: nowhere).
func NewRuntime(t *config.Topology, site string, log *slog.Logger) (*Runtime, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rt := &Runtime{nets: map[string]resource.Network{}}
	for i := range t.Groups {
		g := &t.Groups[i]
		for j := range g.Resources {
			r := &g.Resources[j]
			row, _ := lookup(r.Type)
			m, moves := row.(resource.Moves)
			if _, here := r.Settings[site]; !moves || !here {
				continue
			}
			n, err := m.Start(g, r, site, log)
			if err != nil {
				rt.Close()
				return nil, fmt.Errorf("group %s, resource %s at %s: %w", g.Name, r.Name, site, err)
			}
			rt.nets[g.Name+"/"+r.Name] = n
		}
	}
	return rt, nil
}

// Get returns the network resource group/resource, if it lives here.
func (rt *Runtime) Get(key string) (resource.Network, bool) {
	if rt == nil {
		return nil, false
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	n, ok := rt.nets[key]
	return n, ok
}

// Keys lists the network resources here, sorted.
func (rt *Runtime) Keys() []string {
	if rt == nil {
		return nil
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]string, 0, len(rt.nets))
	for k := range rt.nets {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// WithdrawAll withdraws every network resource here at once.
func (rt *Runtime) WithdrawAll() {
	for _, k := range rt.Keys() {
		if n, ok := rt.Get(k); ok {
			n.Withdraw()
		}
	}
}

// Close stops every network resource here.
func (rt *Runtime) Close() {
	if rt == nil {
		return
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, n := range rt.nets {
		n.Close()
	}
	rt.nets = map[string]resource.Network{}
}

// netActor carries out plan steps on a network resource.
type netActor struct{ n resource.Network }

func (a netActor) Fence(ctx context.Context) (map[string]string, error) {
	return nil, a.n.Soften(ctx)
}
func (a netActor) CatchUp(context.Context, map[string]string) error { return nil }
func (a netActor) Promote(ctx context.Context) (map[string]string, error) {
	return a.n.Activate(ctx)
}

// Rejoin parks this site, and has the parts that answer for every site
// answer for primary, the run's new site, promoted by now: waiting for
// the run's end, the old site's DNS server sent clients to itself, and
// status saw two sites claim the name.
func (a netActor) Rejoin(ctx context.Context, primary string) (map[string]string, error) {
	a.n.Follow(ctx, primary)
	return nil, a.n.Park(ctx)
}
func (a netActor) Unfence(ctx context.Context) error {
	_, err := a.n.Activate(ctx)
	return err
}

// netObserver adapts a Network to the Observer interface.
type netObserver struct{ n resource.Network }

func (o netObserver) Observe(ctx context.Context) status.ResourceView { return o.n.Observe(ctx) }
func (o netObserver) Close()                                          {}
