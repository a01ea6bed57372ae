package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
)

// Type is the bgp resource type, or with VRF the vrf type: class traffic.
type Type struct{ VRF bool }

var _ resource.Moves = Type{}

func (t Type) Name() string {
	if t.VRF {
		return "vrf"
	}
	return "bgp"
}

// Config decodes and checks a site's settings.
func (t Type) Config() config.ResourceType {
	return config.ResourceType{
		Class: config.ClassTraffic,
		New:   func() any { return &Settings{} },
		Prepare: func(settings any, _, _ string) []config.FieldError {
			s := settings.(*Settings)
			s.SetDefaults()
			if t.VRF {
				return s.CheckVRF()
			}
			return s.Check()
		},
		Across: Across,
	}
}

// Start starts the site's speaker, which logs to log (nil: nowhere) as
// component bgp with the group and resource.
func (t Type) Start(g *config.Group, r *config.Resource, site string, log *slog.Logger) (resource.Network, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return newBGP(g, r, site, t.VRF, log.With("component", "bgp", "group", g.Name, "resource", r.Name))
}

// softPrepend is how often a site being fenced repeats its AS number:
// still a path for the routers, no longer the best one.
const softPrepend = 3

// bgpNet is a bgp or vrf resource at one site: its own embedded speaker,
// peering with the site's routers. bgp announces the prefixes from the
// active site only (softened with a prepend while it is fenced); vrf
// announces them as VPNv4 routes from every site, under the production
// route target at the active site and the standby target elsewhere.
type bgpNet struct {
	group, resource, typ string
	s                    Settings
	vrf                  bool
	prefixes             []netip.Prefix
	sp                   *Speaker
}

func newBGP(g *config.Group, r *config.Resource, site string, vrf bool, log *slog.Logger) (resource.Network, error) {
	s := *r.Settings[site].(*Settings)
	n := &bgpNet{group: g.Name, resource: r.Name, typ: r.Type, s: s, vrf: vrf, sp: NewSpeaker(log)}
	for _, p := range s.Prefixes {
		pp, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, err
		}
		n.prefixes = append(n.prefixes, pp)
	}
	if err := n.sp.Start(context.Background(), s); err != nil {
		return nil, err
	}
	return n, nil
}

// Activate announces the prefixes as the best path (bgp) or under the
// production target (vrf), and checks that an established session carries
// them.
func (n *bgpNet) Activate(ctx context.Context) (map[string]string, error) {
	var err error
	if n.vrf {
		err = n.sp.AnnounceVPN(ctx, n.prefixes, n.s.ProductionRT)
	} else {
		err = n.sp.Announce(ctx, n.prefixes, 0)
	}
	if err != nil {
		return nil, err
	}
	peers, err := n.verify(ctx, func(r Route) bool {
		return n.vrf && slices.Contains(r.RouteTargets, n.s.ProductionRT) || !n.vrf && r.Prepend == 0
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"announced_to": strconv.Itoa(peers)}, nil
}

// Soften keeps a bgp site's announcement with a prepend, so that the
// routers keep a path until the new site announces. A vrf site moves its
// routes under the standby target at once (one UPDATE): production must
// import the new site's paths only, even when the old site is still there.
func (n *bgpNet) Soften(ctx context.Context) error {
	if n.vrf {
		return n.Park(ctx)
	}
	if !n.announcing(ctx) {
		return nil
	}
	if err := n.sp.Announce(ctx, n.prefixes, softPrepend); err != nil {
		return err
	}
	_, err := n.verify(ctx, func(r Route) bool { return r.Prepend == softPrepend })
	return err
}

// Park withdraws (bgp) or moves the routes under the standby target (vrf).
func (n *bgpNet) Park(ctx context.Context) error {
	if n.vrf {
		if err := n.sp.AnnounceVPN(ctx, n.prefixes, n.s.StandbyRT); err != nil {
			return err
		}
		_, err := n.verify(ctx, func(r Route) bool { return slices.Contains(r.RouteTargets, n.s.StandbyRT) })
		return err
	}
	return n.sp.Withdraw(ctx, n.prefixes)
}

// Withdraw withdraws everything at once: the serve lease ran out.
func (n *bgpNet) Withdraw() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = n.sp.Withdraw(ctx, n.prefixes)
}

func (n *bgpNet) Follow(context.Context, string) {}

func (n *bgpNet) route(nb NeighborStatus, p netip.Prefix) (Route, bool) {
	if n.vrf {
		return nb.VPN(p)
	}
	return nb.Unicast(p)
}

// verify waits briefly until an established session carries every prefix
// as ok wants, and returns on how many sessions it does.
func (n *bgpNet) verify(ctx context.Context, ok func(Route) bool) (int, error) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		st, err := n.sp.Status(ctx)
		if err != nil {
			return 0, err
		}
		peers, established := 0, 0
		for _, nb := range st.Neighbors {
			if !nb.Established() {
				continue
			}
			established++
			all := true
			for _, p := range n.prefixes {
				r, found := n.route(nb, p)
				all = all && found && ok(r)
			}
			if all {
				peers++
			}
		}
		if peers > 0 {
			return peers, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if established == 0 {
				return 0, fmt.Errorf("%s/%s: no BGP session to a router is established (neighbors %v): check the routers' configuration and reachability", n.group, n.resource, st.Neighbors)
			}
			return 0, fmt.Errorf("%s/%s: the established sessions do not carry %v as asked", n.group, n.resource, n.prefixes)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// announcing says whether the prefixes are announced on some session.
func (n *bgpNet) announcing(ctx context.Context) bool {
	st, err := n.sp.Status(ctx)
	if err != nil {
		return false
	}
	for _, nb := range st.Neighbors {
		if _, ok := n.route(nb, n.prefixes[0]); ok && nb.Established() {
			return true
		}
	}
	return false
}

// Observe reports primary while an established session carries the
// prefixes as the best path this site offers (bgp: no prepend; vrf: the
// production target), standby otherwise; ready while a session is up.
func (n *bgpNet) Observe(ctx context.Context) status.ResourceView {
	v := status.ResourceView{Group: n.group, Resource: n.resource, Type: n.typ, ObservedAt: time.Now().UTC(), Role: status.RoleStandby}
	st, err := n.sp.Status(ctx)
	if err != nil {
		v.Role, v.Error = status.RoleUnknown, err.Error()
		return v
	}
	var best, backup []string
	for _, nb := range st.Neighbors {
		if !nb.Established() {
			continue
		}
		v.Up, v.Streaming = true, true
		r, ok := n.route(nb, n.prefixes[0])
		switch {
		case ok && (n.vrf && slices.Contains(r.RouteTargets, n.s.ProductionRT) || !n.vrf && r.Prepend == 0):
			v.Role = status.RolePrimary
			best = append(best, nb.Address.String())
		case ok:
			backup = append(backup, nb.Address.String())
		}
	}
	v.Target = announced(n.prefixes[0], best, backup)
	if !v.Up {
		v.Error = "no BGP session to a router is established"
	}
	return v
}

func (n *bgpNet) Close() { n.sp.Stop() }

// announced says where a route is announced from this site: to which
// routers as the path to take, and to which as a backup only.
func announced(p netip.Prefix, best, backup []string) string {
	switch {
	case len(best) > 0 && len(backup) > 0:
		return fmt.Sprintf("%s announced to %s, as a backup to %s", p, strings.Join(best, ", "), strings.Join(backup, ", "))
	case len(best) > 0:
		return fmt.Sprintf("%s announced to %s", p, strings.Join(best, ", "))
	case len(backup) > 0:
		return fmt.Sprintf("%s announced as a backup to %s", p, strings.Join(backup, ", "))
	}
	return fmt.Sprintf("%s not announced", p)
}
