// Package bgp owns the building blocks of the bgp and vrf resources: their
// per-site settings, and the Speaker, an embedded GoBGP speaker through
// which a site's agent announces a group's service prefixes to the site's
// routers.
//
// A bgp resource moves clients by announcing the prefixes from the active
// site only; a failover is make-before-break: the new site announces (or
// stops prepending) before the old one withdraws. A vrf resource announces
// the prefixes as VPNv4 routes from both sites, the active site's with the
// production route target and the other's parked under the standby target;
// a failover re-announces each site's routes with the other target, which
// replaces them in one UPDATE each. A third, bubble, target is for drills
// and must never be imported by production.
//
// An agent should run one Speaker per site and announce every group's
// prefixes through it: a router keeps one session per peer address, so two
// speakers towards the same router from one address fight over it, and
// GoBGP keeps its route-selection options in package variables that every
// server's start overwrites.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

var (
	// ErrNotStarted is returned by a Speaker's methods before Start or
	// after Stop.
	ErrNotStarted = errors.New("bgp: speaker not started")
	// ErrStarted is returned by Start on a running Speaker.
	ErrStarted = errors.New("bgp: speaker already started")
	// ErrNoVRF is returned by AnnounceVPN when the settings have no rd.
	ErrNoVRF = errors.New("bgp: no rd in the settings: VPNv4 routes need one")
)

// MaxPrepend is the most times Announce repeats the site's AS number in
// front of its own. A few suffice to make a path lose against an
// unprepended one.
const MaxPrepend = 10

const (
	// connectRetry is how soon the speaker dials a neighbor again; GoBGP
	// waits 120 s by default, and 2 s is its floor.
	connectRetry = 2
	// idleAfterReset is how long a session stays down after the speaker
	// reset it (as BFD does when the router's BFD session goes down);
	// GoBGP waits 30 s by default.
	idleAfterReset = 5
	// BFD timers in microseconds: a dead link is noticed after about
	// 900 ms.
	bfdInterval   = 300_000
	bfdMultiplier = 3
	// importPolicy keeps what the routers send out of the speaker's RIB:
	// the speaker only announces.
	importPolicy = "siteflip-announce-only"
)

// Speaker is an embedded BGP speaker. Its methods are safe for concurrent
// use.
type Speaker struct {
	log *slog.Logger

	mu  sync.Mutex
	srv *server.BgpServer
	set Settings
	rd  rdrt // valid when set.VRF()
}

// NewSpeaker returns a stopped speaker that logs to log (nil: nowhere),
// GoBGP's messages with its own: what happens to sessions at info, GoBGP's
// other chatter at debug (gobgpHandler).
func NewSpeaker(log *slog.Logger) *Speaker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Speaker{log: log}
}

// Start runs the speaker with the settings: it defaults and checks them,
// then peers with every neighbor, connecting out (and accepting sessions
// when listen_port is set). It returns once the speaker runs, without
// waiting for sessions to come up; Status tells when they have.
func (sp *Speaker) Start(ctx context.Context, s Settings) error {
	s.Neighbors = append([]Neighbor(nil), s.Neighbors...)
	s.Prefixes = append([]string(nil), s.Prefixes...)
	s.SetDefaults()
	if errs := s.Check(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Field + ": " + e.Msg
		}
		return fmt.Errorf("bgp: settings: %s", strings.Join(msgs, "; "))
	}
	var rd rdrt
	if s.VRF() {
		rd, _ = parseRDRT(s.RD)
	}

	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.srv != nil {
		return ErrStarted
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// No level variable: it only serves GoBGP's API to change the level,
	// which is not exposed.
	srv := server.NewBgpServer(server.LoggerOption(slog.New(gobgpHandler{h: sp.log.Handler()}), nil))
	go srv.Serve()
	if err := configure(ctx, srv, s); err != nil {
		srv.Stop()
		return fmt.Errorf("bgp: start speaker AS %d: %w", s.ASN, err)
	}
	sp.srv, sp.set, sp.rd = srv, s, rd
	sp.log.Info("bgp speaker started", "asn", s.ASN, "router_id", s.RouterID, "neighbors", len(s.Neighbors), "vrf", s.VRF())
	return nil
}

func configure(ctx context.Context, srv *server.BgpServer, s Settings) error {
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        s.ASN,
		RouterId:   s.RouterID,
		ListenPort: int32(s.ListenPort),
	}}); err != nil {
		return err
	}
	if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name: importPolicy,
		Statements: []*api.Statement{{
			Name:       importPolicy + "-local",
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
		}},
	}}); err != nil {
		return fmt.Errorf("import policy: %w", err)
	}
	if err := srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*api.Policy{{Name: importPolicy}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}}); err != nil {
		return fmt.Errorf("import policy: %w", err)
	}
	families := []*api.Family{{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}}
	if s.VRF() {
		families = append(families, &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_MPLS_VPN})
	}
	hold := uint64(s.HoldTime.D() / time.Second)
	for _, n := range s.Neighbors {
		p := &api.Peer{
			Conf: &api.PeerConf{NeighborAddress: n.Address, PeerAsn: n.ASN},
			Timers: &api.Timers{Config: &api.TimersConfig{
				ConnectRetry:           connectRetry,
				HoldTime:               hold,
				KeepaliveInterval:      max(hold/3, 1),
				IdleHoldTimeAfterReset: idleAfterReset,
			}},
			Transport: &api.Transport{RemotePort: uint32(n.Port)},
		}
		for _, f := range families {
			p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f, Enabled: true}})
		}
		if s.BFD {
			p.Bfd = &api.BfdPeerConfig{
				Enabled:                  true,
				DesiredMinimumTxInterval: bfdInterval,
				RequiredMinimumReceive:   bfdInterval,
				DetectionMultiplier:      bfdMultiplier,
			}
		}
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
			return fmt.Errorf("neighbor %s: %w", n.Address, err)
		}
	}
	return nil
}

// Stop closes every session, which withdraws everything the speaker
// announced, and stops the speaker. It may be called more than once; Start
// may be called again afterwards.
func (sp *Speaker) Stop() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.srv == nil {
		return
	}
	sp.srv.Stop()
	sp.srv = nil
	sp.log.Info("bgp speaker stopped", "asn", sp.set.ASN)
}

func (sp *Speaker) running() (*server.BgpServer, Settings, rdrt, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.srv == nil {
		return nil, Settings{}, rdrt{}, ErrNotStarted
	}
	return sp.srv, sp.set, sp.rd, nil
}

// Announce announces the prefixes as IPv4 unicast routes to every
// neighbor, with the site's AS number repeated prepend more times (0 to
// MaxPrepend; 0 is the best path the site can offer). Announcing a prefix
// again replaces its route in one UPDATE.
func (sp *Speaker) Announce(ctx context.Context, prefixes []netip.Prefix, prepend int) error {
	srv, s, _, err := sp.running()
	if err != nil {
		return err
	}
	if prepend < 0 || prepend > MaxPrepend {
		return fmt.Errorf("bgp: announce: prepend %d: want 0 to %d", prepend, MaxPrepend)
	}
	if err := checkPrefixes(prefixes); err != nil {
		return fmt.Errorf("bgp: announce: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	paths := make([]*apiutil.Path, 0, len(prefixes))
	for _, p := range prefixes {
		path, err := unicastPath(s, p, prepend, false)
		if err != nil {
			return fmt.Errorf("bgp: announce %s: %w", p, err)
		}
		paths = append(paths, path)
	}
	if _, err := srv.AddPath(apiutil.AddPathRequest{Paths: paths}); err != nil {
		return fmt.Errorf("bgp: announce %v: %w", prefixes, err)
	}
	sp.log.Debug("bgp announce", "prefixes", prefixes, "prepend", prepend)
	return nil
}

// AnnounceVPN announces the prefixes as VPNv4 routes with the settings' rd
// and the single route target rt (e.g. the production_rt, standby_rt or
// bubble_rt of the settings). A route already announced with another
// target is replaced in one UPDATE, so a router never sees the prefix
// under both targets or under none.
func (sp *Speaker) AnnounceVPN(ctx context.Context, prefixes []netip.Prefix, rt string) error {
	srv, s, rd, err := sp.running()
	if err != nil {
		return err
	}
	if !s.VRF() {
		return ErrNoVRF
	}
	target, err := parseRDRT(rt)
	if err != nil {
		return fmt.Errorf("bgp: announce vpn: route target %w", err)
	}
	if err := checkPrefixes(prefixes); err != nil {
		return fmt.Errorf("bgp: announce vpn: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	paths := make([]*apiutil.Path, 0, len(prefixes))
	for _, p := range prefixes {
		path, err := vpnPath(s, rd, p, &target, false)
		if err != nil {
			return fmt.Errorf("bgp: announce vpn %s: %w", p, err)
		}
		paths = append(paths, path)
	}
	if _, err := srv.AddPath(apiutil.AddPathRequest{Paths: paths}); err != nil {
		return fmt.Errorf("bgp: announce vpn %v: %w", prefixes, err)
	}
	sp.log.Debug("bgp announce vpn", "prefixes", prefixes, "rd", rd, "rt", target)
	return nil
}

// Withdraw withdraws the prefixes' unicast routes and, with an rd, their
// VPNv4 routes. Withdrawing a prefix that is not announced does nothing.
func (sp *Speaker) Withdraw(ctx context.Context, prefixes []netip.Prefix) error {
	srv, s, rd, err := sp.running()
	if err != nil {
		return err
	}
	if err := checkPrefixes(prefixes); err != nil {
		return fmt.Errorf("bgp: withdraw: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	paths := make([]*apiutil.Path, 0, 2*len(prefixes))
	for _, p := range prefixes {
		path, err := unicastPath(s, p, 0, true)
		if err != nil {
			return fmt.Errorf("bgp: withdraw %s: %w", p, err)
		}
		paths = append(paths, path)
		if s.VRF() {
			path, err := vpnPath(s, rd, p, nil, true)
			if err != nil {
				return fmt.Errorf("bgp: withdraw vpn %s: %w", p, err)
			}
			paths = append(paths, path)
		}
	}
	if err := srv.DeletePath(apiutil.DeletePathRequest{Paths: paths}); err != nil {
		return fmt.Errorf("bgp: withdraw %v: %w", prefixes, err)
	}
	sp.log.Debug("bgp withdraw", "prefixes", prefixes)
	return nil
}

func checkPrefixes(prefixes []netip.Prefix) error {
	if len(prefixes) == 0 {
		return errors.New("no prefixes")
	}
	for _, p := range prefixes {
		switch {
		case !p.IsValid():
			return fmt.Errorf("invalid prefix %v", p)
		case !p.Addr().Is4():
			return fmt.Errorf("%s is not IPv4: only IPv4 prefixes are supported", p)
		case p.Masked() != p:
			return fmt.Errorf("%s has host bits set: want %s", p, p.Masked())
		}
	}
	return nil
}

// nextHop is the settings' next hop, or 0.0.0.0, which GoBGP replaces with
// its own address on each session.
func nextHop(s Settings) netip.Addr {
	if a, err := netip.ParseAddr(s.NextHop); err == nil {
		return a
	}
	return netip.IPv4Unspecified()
}

func asPath(asn uint32, prepend int) *gobgp.PathAttributeAsPath {
	if prepend == 0 {
		return gobgp.NewPathAttributeAsPath(nil)
	}
	seq := make([]uint32, prepend)
	for i := range seq {
		seq[i] = asn
	}
	return gobgp.NewPathAttributeAsPath([]gobgp.AsPathParamInterface{
		gobgp.NewAs4PathParam(gobgp.BGP_ASPATH_ATTR_TYPE_SEQ, seq),
	})
}

func unicastPath(s Settings, p netip.Prefix, prepend int, withdraw bool) (*apiutil.Path, error) {
	nlri, err := gobgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, err
	}
	nh, err := gobgp.NewPathAttributeNextHop(nextHop(s))
	if err != nil {
		return nil, err
	}
	return &apiutil.Path{
		Family: gobgp.RF_IPv4_UC,
		Nlri:   nlri,
		Attrs: []gobgp.PathAttributeInterface{
			gobgp.NewPathAttributeOrigin(gobgp.BGP_ORIGIN_ATTR_TYPE_IGP),
			nh,
			asPath(s.ASN, prepend),
		},
		Withdrawal: withdraw,
	}, nil
}

// vpnPath builds the VPNv4 route of p; target may be nil for a withdrawal.
func vpnPath(s Settings, rd rdrt, p netip.Prefix, target *rdrt, withdraw bool) (*apiutil.Path, error) {
	nlri, err := gobgp.NewLabeledVPNIPAddrPrefix(p, *gobgp.NewMPLSLabelStack(s.Label), rd.distinguisher())
	if err != nil {
		return nil, err
	}
	mp, err := gobgp.NewPathAttributeMpReachNLRI(gobgp.RF_IPv4_VPN, []gobgp.PathNLRI{{NLRI: nlri}}, nextHop(s))
	if err != nil {
		return nil, err
	}
	attrs := []gobgp.PathAttributeInterface{
		gobgp.NewPathAttributeOrigin(gobgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		mp,
		asPath(s.ASN, 0),
	}
	if target != nil {
		attrs = append(attrs, gobgp.NewPathAttributeExtendedCommunities([]gobgp.ExtendedCommunityInterface{target.target()}))
	}
	return &apiutil.Path{
		Family:     gobgp.RF_IPv4_VPN,
		Nlri:       nlri,
		Attrs:      attrs,
		Withdrawal: withdraw,
	}, nil
}
