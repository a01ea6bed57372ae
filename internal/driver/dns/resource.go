package dns

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
)

// Type is the dns resource type: class traffic.
type Type struct{}

var (
	_ resource.Moves     = Type{}
	_ resource.Reachable = Type{}
	_ resource.Drills    = Type{}
)

func (Type) Name() string { return "dns" }

// Config decodes and checks a site's settings.
func (Type) Config() config.ResourceType {
	return config.ResourceType{Class: config.ClassTraffic, New: func() any { return &Settings{} }, Prepare: Prepare, Across: Across, Lint: Lint, Claims: Claims}
}

// Start starts the site's part: its embedded server, if it serves. It
// logs to log (nil: nowhere) as component dns: the name's updates with the
// group and resource, the shared server's answers changing with its
// listen address.
func (Type) Start(g *config.Group, r *config.Resource, site string, log *slog.Logger) (resource.Network, error) {
	return newDNS(g, r, site, log)
}

// Endpoint is where the agent at site answers the name (serve). A
// listener on every address (serve ":53") has no one address to give.
func (Type) Endpoint(r *config.Resource, site string) (string, bool) {
	s, ok := r.Settings[site].(*Settings)
	if !ok || s.Serve == "" {
		return "", false
	}
	ap, err := netip.ParseAddrPort(s.Serve)
	if err != nil || ap.Addr().IsUnspecified() {
		return "", false
	}
	return s.Serve, true
}

// dnsNet is a dns resource at one site: it may answer the group's name
// itself (every agent answers with the active site's addresses), and the
// site that becomes active updates the name at the configured servers.
type dnsNet struct {
	group, resource, site string
	s                     *Settings
	bySite                map[string]*Settings
	log                   *slog.Logger

	mu     sync.Mutex
	server *Server // shared with the other names on serve; nil unless serve is set, and after Close
	active string  // the site the embedded server answers for
}

func newDNS(g *config.Group, r *config.Resource, site string, log *slog.Logger) (resource.Network, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "dns")
	n := &dnsNet{group: g.Name, resource: r.Name, site: site, s: r.Settings[site].(*Settings), bySite: map[string]*Settings{},
		log: log.With("group", g.Name, "resource", r.Name)}
	for sn, s := range r.Settings {
		n.bySite[sn] = s.(*Settings)
	}
	if n.s.Serve != "" {
		// The server answers for every group on its address: its lines
		// carry no group.
		srv, err := acquire(n.s.Serve, n.s.Name, n.owner(), log)
		if err != nil {
			return nil, err
		}
		n.server = srv
	}
	return n, nil
}

func (n *dnsNet) owner() owner { return owner{group: n.group, resource: n.resource} }

func (n *dnsNet) record(site string) Record {
	s := n.bySite[site]
	return Record{Zone: n.s.Apex(), Name: n.s.Name, Addrs: s.Addrs(), TTL: n.s.TTLDuration()}
}

// Follow makes the embedded server answer with the active site's
// addresses.
func (n *dnsNet) Follow(_ context.Context, active string) {
	if active == "" {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.server == nil || n.active == active {
		return
	}
	if _, ok := n.bySite[active]; !ok {
		return
	}
	// Set touches this resource's name only: the server's other names
	// belong to other groups, each following its own active site.
	if err := n.server.Set(n.record(active)); err != nil {
		n.log.Warn("the embedded dns server cannot answer with the active site's addresses", "name", n.s.Name, "active_site", active, "error", err)
		return
	}
	n.active = active
}

// Activate points the name at this site: at the configured servers by a
// signed update, verified by asking each of them, and at the embedded
// server.
func (n *dnsNet) Activate(ctx context.Context) (map[string]string, error) {
	n.Follow(ctx, n.site)
	if len(n.s.Servers) == 0 {
		return map[string]string{"served": n.s.Serve}, nil
	}
	key, err := n.s.Key()
	if err != nil {
		return nil, err
	}
	want := n.s.Addrs()
	for _, server := range n.s.Servers {
		if err := Update(ctx, server, n.s.Zone, n.s.Name, want, n.s.TTLDuration(), key); err != nil {
			return nil, err
		}
		got, _, err := Lookup(ctx, server, n.s.Name)
		if err != nil {
			return nil, fmt.Errorf("check the update at %s: %w", server, err)
		}
		if !sameAddrs(got, want) {
			return nil, fmt.Errorf("%s answers %s with %v after the update, not %v", server, n.s.Name, got, want)
		}
		n.log.Info("dns name updated", "server", server, "name", n.s.Name, "addrs", want)
	}
	return map[string]string{"updated": strconv.Itoa(len(n.s.Servers))}, nil
}

func sameAddrs(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, func(x, y netip.Addr) int { return x.Compare(y) })
	slices.SortFunc(b, func(x, y netip.Addr) int { return x.Compare(y) })
	return slices.Equal(a, b)
}

// Soften and Park do nothing: the name moves when the next site activates.
func (n *dnsNet) Soften(context.Context) error { return nil }
func (n *dnsNet) Park(context.Context) error   { return nil }
func (n *dnsNet) Withdraw()                    {}

// Observe says whether the name points at this site: as the first
// configured server answers it, or as the embedded server does.
func (n *dnsNet) Observe(ctx context.Context) status.ResourceView {
	v := status.ResourceView{Group: n.group, Resource: n.resource, Type: "dns", ObservedAt: time.Now().UTC()}
	var got []netip.Addr
	if len(n.s.Servers) > 0 {
		addrs, _, err := Lookup(ctx, n.s.Servers[0], n.s.Name)
		if err != nil {
			v.Role, v.Error = status.RoleUnknown, err.Error()
			return v
		}
		got = addrs
	} else {
		n.mu.Lock()
		active := n.active
		n.mu.Unlock()
		if active != "" {
			got = n.bySite[active].Addrs()
		}
	}
	v.Up, v.Streaming = true, true
	v.Role = status.RoleStandby
	var answers []string
	for _, a := range got {
		answers = append(answers, a.String())
	}
	v.Target = n.s.Name + " → " + strings.Join(answers, ", ")
	if len(got) == 0 {
		v.Target = n.s.Name + " → no address"
	}
	if len(got) > 0 && sameAddrs(got, n.s.Addrs()) {
		v.Role = status.RolePrimary
	}
	return v
}

// Close stops answering the name; the server stops with its last name.
// A Follow after Close does nothing, so that it cannot bring the name back
// on a server the other groups still use.
func (n *dnsNet) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.server != nil {
		release(n.s.Serve, n.s.Name, n.owner())
		n.server = nil
	}
}
