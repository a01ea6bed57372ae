// Package driver is the table of resource types (internal/resource): one
// row per type, each from the type's own folder. The agent, the watchdog
// and the command line reach the types only through it: a new type is a
// new folder and a row here.
package driver

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver/approval"
	"github.com/siteflip/siteflip/internal/driver/bgp"
	"github.com/siteflip/siteflip/internal/driver/check"
	"github.com/siteflip/siteflip/internal/driver/dns"
	"github.com/siteflip/siteflip/internal/driver/haproxy"
	"github.com/siteflip/siteflip/internal/driver/mariadb"
	"github.com/siteflip/siteflip/internal/driver/postgres"
	"github.com/siteflip/siteflip/internal/driver/script"
	"github.com/siteflip/siteflip/internal/driver/service"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/watchdog"
)

// table is every resource type a topology may use.
var table = []resource.Type{
	postgres.Type{},     // data
	mariadb.Type{},      // data
	bgp.Type{},          // traffic: a service address announced over BGP
	bgp.Type{VRF: true}, // traffic: VPNv4 routes under route targets
	dns.Type{},          // traffic: a name
	haproxy.Type{},      // traffic: a proxy's backend server
	service.Type{},      // service: a program run at the active site only
	script.Type{},       // script: an operator's commands at the steps of a run
	check.Type{},        // check: a question asked of the recovered stack
	approval.Type{},     // gate: a run waits for a person
}

// lookup returns the row of type name.
func lookup(name string) (resource.Type, bool) {
	for _, t := range table {
		if t.Name() == name {
			return t, true
		}
	}
	return nil, false
}

// Types returns the resource types, for config.Load.
func Types() map[string]config.ResourceType {
	out := make(map[string]config.ResourceType, len(table))
	for _, t := range table {
		out[t.Name()] = t.Config()
	}
	return out
}

// capability returns the row of r's type as the capability C, with an
// error that says which type lacks it.
func capability[C any](g *config.Group, r *config.Resource, what string) (C, error) {
	var zero C
	t, ok := lookup(r.Type)
	if !ok {
		return zero, fmt.Errorf("group %s, resource %s: unknown type %q (known: %s)", g.Name, r.Name, r.Type, names())
	}
	c, ok := t.(C)
	if !ok {
		return zero, fmt.Errorf("group %s, resource %s: %s resources have no %s", g.Name, r.Name, r.Type, what)
	}
	return c, nil
}

func names() string {
	var out []string
	for _, t := range table {
		out = append(out, t.Name())
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// NewObserver returns the observer of resource r of group g at site;
// traffic resources are found in rt, which runs them.
func NewObserver(rt *Runtime, g *config.Group, r *config.Resource, site string) (resource.Observer, error) {
	if IsTraffic(r.Type) {
		n, ok := rt.Get(g.Name + "/" + r.Name)
		if !ok {
			return nil, fmt.Errorf("group %s, resource %s: not running at %s", g.Name, r.Name, site)
		}
		return netObserver{n}, nil
	}
	o, err := capability[resource.Observes](g, r, "observation")
	if err != nil {
		return nil, err
	}
	return o.Observer(g, r, site)
}

// NewActor returns the actor of resource r of group g at site; traffic
// resources are found in rt, which runs them.
func NewActor(rt *Runtime, g *config.Group, r *config.Resource, site string) (resource.Actor, error) {
	if IsTraffic(r.Type) {
		n, ok := rt.Get(g.Name + "/" + r.Name)
		if !ok {
			return nil, fmt.Errorf("group %s, resource %s: not running at %s", g.Name, r.Name, site)
		}
		return netActor{n}, nil
	}
	s, err := capability[resource.Steps](g, r, "recovery actions")
	if err != nil {
		return nil, err
	}
	return s.Actor(g, r, site)
}

// GuardTarget is how the agent or its watchdog fences resource r of group
// g at site at once when the site's serve lease runs out: every database
// the agent could have let write, whatever it last observed
// (docs/design/safety.md). ok is false for resources that hold no data. A
// database the agent cannot stop is an error, and the agent refuses to
// start.
func GuardTarget(g *config.Group, r *config.Resource, site string) (t watchdog.Target, ok bool, err error) {
	if !r.Data {
		return t, false, nil
	}
	h, err := capability[resource.HardFence](g, r, "hard fence")
	if err != nil {
		return t, false, err
	}
	return h.GuardTarget(g, r, site)
}

// FenceNow fences t at once, without asking the resource (the agent's
// self-fence and the watchdog's): killed says a server ran and was killed.
func FenceNow(t watchdog.Target) (killed bool, err error) {
	row, ok := lookup(t.Kind)
	h, fences := row.(resource.HardFence)
	if !ok || !fences {
		return false, fmt.Errorf("%s: cannot fence %s resources", t.Name, t.Kind)
	}
	return h.FenceNow(t)
}

// Endpoint is the network address where the database r serves at site,
// which the other locations check before declaring the site lost; ok is
// false when r holds no data or has no address there. Only databases
// count: a DNS listener runs in the agent itself, and its answering says
// nothing of whether the site's data is still written.
func Endpoint(r *config.Resource, site string) (addr string, ok bool) {
	row, known := lookup(r.Type)
	if !known || row.Config().Class != config.ClassData {
		return "", false
	}
	return reach(r, site)
}

// reach is the host:port where resource r serves at site (Reachable).
func reach(r *config.Resource, site string) (addr string, ok bool) {
	row, known := lookup(r.Type)
	if h, reachable := row.(resource.Reachable); known && reachable {
		return h.Endpoint(r, site)
	}
	return "", false
}

// Targets gives, for every resource of g with an address of its own at
// site (a database's server, a DNS listener), its host:port: what the
// checks of g ask after a real run (resource.Verifier). The addresses
// come from the topology; rt, which may be nil, is not needed for them
// yet.
func Targets(rt *Runtime, g *config.Group, site string) map[string]string {
	out := map[string]string{}
	for i := range g.Resources {
		if addr, ok := reach(&g.Resources[i], site); ok {
			out[g.Resources[i].Name] = addr
		}
	}
	return out
}

// NewVerifier returns the check r of group g at site (class check).
func NewVerifier(g *config.Group, r *config.Resource, site string) (resource.Verifier, error) {
	v, err := capability[resource.Verifies](g, r, "check to run")
	if err != nil {
		return nil, err
	}
	return v.Verifier(g, r, site)
}

// NewDrillVerifier returns check r of group g at site as it runs in a
// drill with bubble b: from inside the bubble's network namespace, when it
// has one.
func NewDrillVerifier(g *config.Group, r *config.Resource, site string, b resource.Bubble) (resource.Verifier, error) {
	v, err := NewVerifier(g, r, site)
	if err != nil || b.Netns == "" {
		return v, err
	}
	bv, ok := v.(resource.BubbleVerifier)
	if !ok {
		return nil, fmt.Errorf("group %s, check %s at %s: %s checks cannot run inside the bubble's network namespace %s", g.Name, r.Name, site, r.Type, b.Netns)
	}
	return bv.InBubble(b), nil
}

// Yield returns how to stop resource r of group g at site when the site's
// serve lease runs out (a service with stop_on_lease_loss); ok is false
// for the others.
func Yield(g *config.Group, r *config.Resource, site string) (stop func(ctx context.Context) error, ok bool) {
	row, known := lookup(r.Type)
	if y, yields := row.(resource.Yields); known && yields {
		return y.Yield(g, r, site)
	}
	return nil, false
}

// NewLocal returns resource r of group g at site as a Local, when it is a
// database on this machine.
func NewLocal(g *config.Group, r *config.Resource, site string) (resource.Local, bool) {
	row, known := lookup(r.Type)
	if k, keeps := row.(resource.Keeps); known && keeps {
		return k.Local(g, r, site)
	}
	return nil, false
}

// NewSync returns the synchronous mode of resource r of group g from its
// primary at site.
func NewSync(g *config.Group, r *config.Resource, site string) (resource.Synchronous, error) {
	s, err := capability[resource.Synchronizes](g, r, "synchronous mode")
	if err != nil {
		return nil, err
	}
	return s.Sync(g, r, site)
}

// IsTraffic says whether resources of type t move clients rather than
// hold data: they run in the agent and do not decide which site a group is
// active at.
func IsTraffic(t string) bool {
	row, ok := lookup(t)
	_, moves := row.(resource.Moves)
	return ok && moves
}

// CheckServer asks the server of resource r of group g at site whether it
// is set up as its type needs: each problem with its fix. ok is false
// when the type has no such check.
func CheckServer(ctx context.Context, g *config.Group, r *config.Resource, site string) (problems []string, ok bool, err error) {
	row, known := lookup(r.Type)
	c, checks := row.(resource.Checks)
	if !known || !checks {
		return nil, false, nil
	}
	problems, err = c.CheckServer(ctx, g, r, site)
	return problems, true, err
}

// Copy writes a copy of the server of resource r of group g at site, on
// this machine, to w (Clones): what another site's rejoin reclones from.
func Copy(ctx context.Context, g *config.Group, r *config.Resource, site string, w io.Writer) error {
	c, err := capability[resource.Clones](g, r, "copies")
	if err != nil {
		return err
	}
	return c.Copy(ctx, g, r, site, w)
}
