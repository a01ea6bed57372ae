package haproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
)

// Type is the haproxy resource type: class traffic.
type Type struct{}

var _ resource.Moves = Type{}

func (Type) Name() string { return "haproxy" }

// Config decodes and checks a site's settings.
func (Type) Config() config.ResourceType {
	return config.ResourceType{Class: config.ClassTraffic, New: func() any { return new(Settings) }, Prepare: Prepare, Across: Across}
}

// Start reaches the site's HAProxy.
func (Type) Start(g *config.Group, r *config.Resource, site string, _ *slog.Logger) (resource.Network, error) {
	return newHAProxy(g, r, site)
}

// haproxyNet is an haproxy resource at one site: its server in a backend.
// The active site's server is ready and every other site's in maintenance,
// saved to the state file so that a reload keeps it.
type haproxyNet struct {
	group, resource, site string
	s                     *Settings
	others                []*Settings // the other sites' servers
}

func newHAProxy(g *config.Group, r *config.Resource, site string) (resource.Network, error) {
	n := &haproxyNet{group: g.Name, resource: r.Name, site: site, s: r.Settings[site].(*Settings)}
	sites := make([]string, 0, len(r.Settings))
	for sn := range r.Settings {
		sites = append(sites, sn)
	}
	sort.Strings(sites)
	for _, sn := range sites {
		if sn != site {
			n.others = append(n.others, r.Settings[sn].(*Settings))
		}
	}
	return n, nil
}

// Activate makes this site's server ready and the others' maint (those
// whose HAProxy answers: one at a lost site does not), and saves the
// state. Each call checks the state HAProxy reports.
func (n *haproxyNet) Activate(ctx context.Context) (map[string]string, error) {
	if _, err := Enable(ctx, n.s); err != nil {
		return nil, err
	}
	var off []string
	for _, o := range n.others {
		if _, err := Disable(ctx, o); err != nil {
			if errors.Is(err, ErrUnreachable) && o.RuntimeAPI != n.s.RuntimeAPI {
				continue // that site's own HAProxy is gone with it
			}
			return nil, err
		}
		off = append(off, o.Server)
		if o.RuntimeAPI != n.s.RuntimeAPI {
			if _, err := SaveState(ctx, o); err != nil && !errors.Is(err, ErrUnreachable) {
				return nil, err
			}
		}
	}
	if _, err := SaveState(ctx, n.s); err != nil {
		return nil, err
	}
	return map[string]string{"ready": n.s.Server, "maint": strings.Join(off, ",")}, nil
}

// Soften does nothing: the next site's activation moves the traffic.
func (n *haproxyNet) Soften(context.Context) error { return nil }

// Park puts this site's server in maintenance and saves the state.
func (n *haproxyNet) Park(ctx context.Context) error {
	if _, err := Disable(ctx, n.s); err != nil {
		return err
	}
	_, err := SaveState(ctx, n.s)
	return err
}

// Withdraw puts this site's server in maintenance, best effort.
func (n *haproxyNet) Withdraw() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = Disable(ctx, n.s)
}

func (n *haproxyNet) Follow(context.Context, string) {}

// Observe reports primary while this site's server serves.
func (n *haproxyNet) Observe(ctx context.Context) status.ResourceView {
	v := status.ResourceView{Group: n.group, Resource: n.resource, Type: "haproxy", ObservedAt: time.Now().UTC()}
	st, err := State(ctx, n.s)
	if err != nil {
		v.Role, v.Error = status.RoleUnknown, err.Error()
		return v
	}
	v.Up, v.Streaming, v.Role = true, true, status.RoleStandby
	v.Target = target(st)
	if st.Serving() {
		v.Role = status.RolePrimary
	}
	return v
}

func (n *haproxyNet) Close() {}

// target says where the proxy sends this site's share of the clients: its
// server, its address and whether it takes traffic.
func target(st ServerState) string {
	addr := st.Addr
	if st.Port != 0 {
		addr = net.JoinHostPort(st.Addr, strconv.Itoa(st.Port))
	}
	how := "takes no traffic"
	if st.Serving() {
		how = "serves"
	}
	return fmt.Sprintf("%s/%s → %s %s", st.Backend, st.Server, addr, how)
}
