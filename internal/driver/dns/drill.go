package dns

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/resource"
)

// A drill gets an answer of its own at its site: a server on the bubble
// address, at the port of the site's production listener (serve), that
// answers the group's name with the bubble address, where the drill's
// copies listen. Production's listeners and what they answer are left
// alone. The server lives in the agent's process, so the drill servers
// that run are kept here, by group, resource and run.

// skipServers is why a drill leaves RFC 2136 servers alone: updating
// them would move production's clients.
const skipServers = "RFC 2136 servers are updated only for a configured drill zone; none is configured"

// drillKey names one drill's server.
type drillKey struct{ group, resource, run string }

// drillServers are the drill servers running in this process.
var drillServers = struct {
	sync.Mutex
	m map[drillKey]*drillServer
}{m: map[drillKey]*drillServer{}}

type drillServer struct {
	srv *Server
	out map[string]string // Start's output
}

// drill is one dns resource's part of one drill at one site.
type drill struct {
	key  drillKey
	site string
	s    *Settings
	b    resource.Bubble
}

// Drill returns the part of resource r of group g in the drill at site in
// bubble b.
func (Type) Drill(g *config.Group, r *config.Resource, site string, b resource.Bubble) (resource.Drill, error) {
	s, ok := r.Settings[site].(*Settings)
	if !ok {
		return nil, fmt.Errorf("group %s, resource %s: no settings at site %s", g.Name, r.Name, site)
	}
	return &drill{key: drillKey{g.Name, r.Name, b.Run}, site: site, s: s, b: b}, nil
}

// Clone does nothing: a name holds no data.
func (d *drill) Clone(context.Context) (map[string]string, error) { return map[string]string{}, nil }

// Start starts the drill's server, or says why there is none: an RFC
// 2136 resource has nothing in the agent to start.
func (d *drill) Start(context.Context) (map[string]string, error) {
	if d.s.Serve == "" {
		return map[string]string{"skipped": skipServers}, nil
	}
	if d.key.run == "" {
		return nil, fmt.Errorf("%s: a drill's server needs the drill's run ID", d.what())
	}
	addr, err := d.listenAddr()
	if err != nil {
		return nil, err
	}
	drillServers.Lock()
	defer drillServers.Unlock()
	if ds, ok := drillServers.m[d.key]; ok {
		return maps.Clone(ds.out), nil
	}
	for k := range drillServers.m {
		if k.group == d.key.group && k.resource == d.key.resource {
			return nil, fmt.Errorf("%s: the server of drill %s still runs on the bubble: tear that drill down first (the agent removes drill leftovers every minute)", d.what(), k.run)
		}
	}
	srv, err := listenIn(d.b.Netns, addr.String())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.what(), err)
	}
	rec := Record{Zone: d.s.Apex(), Name: d.s.Name, Addrs: []netip.Addr{addr.Addr()}, TTL: d.s.TTLDuration()}
	if err := srv.Set(rec); err != nil {
		srv.Close()
		return nil, fmt.Errorf("%s: %w", d.what(), err)
	}
	out := map[string]string{resource.OutputAddress: addr.String()}
	if len(d.s.Servers) > 0 {
		out["servers"] = "not updated: " + skipServers
	}
	drillServers.m[d.key] = &drillServer{srv: srv, out: out}
	return maps.Clone(out), nil
}

// listenAddr is where the drill's server listens: the bubble address, at
// the port of production's listener.
func (d *drill) listenAddr() (netip.AddrPort, error) {
	if d.b.Address == "" {
		return netip.AddrPort{}, fmt.Errorf("%s: site %s has no bubble address: set sites[].bubble.address to an address production clients never use", d.what(), d.site)
	}
	bubble, err := netip.ParseAddr(d.b.Address)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s: bubble address %q is not an IP address", d.what(), d.b.Address)
	}
	bubble = bubble.Unmap()
	host, portText, err := net.SplitHostPort(d.s.Serve)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s: serve %q is not host:port", d.what(), d.s.Serve)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s: serve %q has no port", d.what(), d.s.Serve)
	}
	if d.b.Netns == "" {
		prod, err := netip.ParseAddr(host)
		switch {
		case host == "" || (err == nil && prod.IsUnspecified()):
			return netip.AddrPort{}, fmt.Errorf("%s: production's listener takes port %s on every address (serve %q), so the bubble's server cannot listen on %s: set serve to one address of the agent, or give the site's bubble a netns", d.what(), portText, d.s.Serve, bubble)
		case err == nil && prod.Unmap() == bubble:
			return netip.AddrPort{}, fmt.Errorf("%s: the bubble address %s is production's listener (serve %q): give the site's bubble an address production clients never use, or a netns", d.what(), bubble, d.s.Serve)
		}
	}
	return netip.AddrPortFrom(bubble, uint16(port)), nil
}

// Teardown stops the drill's server, if it runs.
func (d *drill) Teardown(context.Context) error {
	drillServers.Lock()
	ds, ok := drillServers.m[d.key]
	delete(drillServers.m, d.key)
	drillServers.Unlock()
	if !ok {
		return nil
	}
	if err := ds.srv.Close(); err != nil {
		return fmt.Errorf("%s: stop the drill's server: %w", d.what(), err)
	}
	return nil
}

// Leftovers lists the runs whose server for this resource still runs in
// this process.
func (d *drill) Leftovers() ([]string, error) {
	drillServers.Lock()
	defer drillServers.Unlock()
	var runs []string
	for k := range drillServers.m {
		if k.group == d.key.group && k.resource == d.key.resource {
			runs = append(runs, k.run)
		}
	}
	slices.Sort(runs)
	return runs, nil
}

func (d *drill) what() string {
	w := fmt.Sprintf("group %s, resource %s", d.key.group, d.key.resource)
	if d.key.run != "" {
		w += ", drill " + d.key.run
	}
	return w + " at " + d.site
}

// listenIn starts a Server on addr inside the network namespace ns, as
// `ip netns` names it, or in the agent's own when ns is "". The sockets
// stay in the namespace they were made in; the goroutines that serve them
// may run anywhere.
func listenIn(ns, addr string) (*Server, error) {
	if ns == "" {
		return Listen(addr, nil)
	}
	var srv *Server
	err := netns.Do(ns, func() error {
		var err error
		srv, err = Listen(addr, nil)
		return err
	})
	if err != nil && srv != nil {
		srv.Close()
		srv = nil
	}
	return srv, err
}
