package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Status is what a speaker is doing: its sessions and, on each established
// one, the routes it is announcing.
type Status struct {
	ASN       uint32           `json:"asn"`
	RouterID  string           `json:"router_id"`
	Neighbors []NeighborStatus `json:"neighbors"`
}

// NeighborStatus is one session.
type NeighborStatus struct {
	Address netip.Addr `json:"address"`
	ASN     uint32     `json:"asn"`
	// State is the session's BGP state: idle, connect, active, opensent,
	// openconfirm or established.
	State string `json:"state"`
	// Since is when the session last came up (when established) or went
	// down; zero if it never did.
	Since time.Time `json:"since,omitzero"`
	// HoldTime is the negotiated hold time of an established session.
	HoldTime time.Duration `json:"hold_time,omitempty"`
	// BFD is the state of the session's BFD session (up, init, down or
	// admin-down), "" when bfd is off.
	BFD string `json:"bfd,omitempty"`
	// Advertised is the adj-rib-out: the routes the speaker announces on
	// this session, empty unless established.
	Advertised []Route `json:"advertised,omitempty"`
}

// Established says whether the session is up.
func (n NeighborStatus) Established() bool { return n.State == stateEstablished }

// Unicast returns the unicast route of the prefix announced on the
// session.
func (n NeighborStatus) Unicast(p netip.Prefix) (Route, bool) {
	for _, r := range n.Advertised {
		if r.RD == "" && r.Prefix == p {
			return r, true
		}
	}
	return Route{}, false
}

// VPN returns the VPNv4 route of the prefix announced on the session.
func (n NeighborStatus) VPN(p netip.Prefix) (Route, bool) {
	for _, r := range n.Advertised {
		if r.RD != "" && r.Prefix == p {
			return r, true
		}
	}
	return Route{}, false
}

// Route is one route as sent to a neighbor.
type Route struct {
	Prefix netip.Prefix `json:"prefix"`
	// RD and RouteTargets are set on VPNv4 routes only, written like
	// 65000:100.
	RD           string     `json:"rd,omitempty"`
	RouteTargets []string   `json:"route_targets,omitempty"`
	NextHop      netip.Addr `json:"next_hop"`
	ASPath       []uint32   `json:"as_path"`
	// Prepend is how many extra times the site's AS number leads the AS
	// path, as asked of Announce.
	Prepend int `json:"prepend"`
}

func (r Route) String() string {
	var b strings.Builder
	if r.RD != "" {
		b.WriteString(r.RD + ":")
	}
	fmt.Fprintf(&b, "%s via %s as-path %v", r.Prefix, r.NextHop, r.ASPath)
	if len(r.RouteTargets) > 0 {
		fmt.Fprintf(&b, " rt %s", strings.Join(r.RouteTargets, ","))
	}
	return b.String()
}

const stateEstablished = "established"

var bfdStates = map[api.BfdSessionState]string{
	api.BfdSessionState_BFD_SESSION_STATE_UP:         "up",
	api.BfdSessionState_BFD_SESSION_STATE_INIT:       "init",
	api.BfdSessionState_BFD_SESSION_STATE_DOWN:       "down",
	api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN: "admin-down",
}

var sessionStates = map[api.PeerState_SessionState]string{
	api.PeerState_SESSION_STATE_IDLE:        "idle",
	api.PeerState_SESSION_STATE_CONNECT:     "connect",
	api.PeerState_SESSION_STATE_ACTIVE:      "active",
	api.PeerState_SESSION_STATE_OPENSENT:    "opensent",
	api.PeerState_SESSION_STATE_OPENCONFIRM: "openconfirm",
	api.PeerState_SESSION_STATE_ESTABLISHED: stateEstablished,
}

// Status reports the sessions and, for each established one, the routes
// announced on it, in the order of the settings' neighbors.
func (sp *Speaker) Status(ctx context.Context) (Status, error) {
	srv, s, _, err := sp.running()
	if err != nil {
		return Status{}, err
	}
	st := Status{ASN: s.ASN, RouterID: s.RouterID}
	var peers []*api.Peer
	if err := srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) { peers = append(peers, p) }); err != nil {
		return Status{}, fmt.Errorf("bgp: status: %w", err)
	}
	families := []gobgp.Family{gobgp.RF_IPv4_UC}
	if s.VRF() {
		families = append(families, gobgp.RF_IPv4_VPN)
	}
	for _, p := range peers {
		if p.Conf == nil || p.State == nil {
			continue
		}
		addr, _ := netip.ParseAddr(p.Conf.NeighborAddress)
		n := NeighborStatus{Address: addr, ASN: p.Conf.PeerAsn, State: sessionStates[p.State.SessionState]}
		if n.State == "" {
			n.State = "unknown"
		}
		if s.BFD {
			n.BFD = bfdStates[p.State.GetBfdState().GetSessionState()]
			if n.BFD == "" {
				n.BFD = "down"
			}
		}
		if t := p.Timers.GetState(); t != nil {
			if n.Established() {
				n.Since = t.GetUptime().AsTime()
				n.HoldTime = time.Duration(t.NegotiatedHoldTime) * time.Second
			} else if t.Downtime != nil {
				n.Since = t.GetDowntime().AsTime()
			}
		}
		if n.Established() {
			ebgp := n.ASN != s.ASN
			for _, f := range families {
				err := srv.ListPath(apiutil.ListPathRequest{
					TableType: api.TableType_TABLE_TYPE_ADJ_OUT,
					Name:      p.Conf.NeighborAddress,
					Family:    f,
				}, func(_ gobgp.NLRI, paths []*apiutil.Path) {
					for _, path := range paths {
						if r, ok := toRoute(path, s.ASN, ebgp); ok {
							n.Advertised = append(n.Advertised, r)
						}
					}
				})
				if err != nil {
					return Status{}, fmt.Errorf("bgp: status: adj-rib-out of %s: %w", addr, err)
				}
			}
		}
		st.Neighbors = append(st.Neighbors, n)
	}
	order := make(map[netip.Addr]int, len(s.Neighbors))
	for i, n := range s.Neighbors {
		a, _ := netip.ParseAddr(n.Address)
		order[a] = i
	}
	slices.SortFunc(st.Neighbors, func(a, b NeighborStatus) int { return order[a.Address] - order[b.Address] })
	return st, nil
}

// toRoute reads a path of the adj-rib-out. On an eBGP session GoBGP has
// already put the site's AS number in front once; that one is no prepend.
func toRoute(p *apiutil.Path, asn uint32, ebgp bool) (Route, bool) {
	if p.Withdrawal {
		return Route{}, false
	}
	var r Route
	switch n := p.Nlri.(type) {
	case *gobgp.IPAddrPrefix:
		r.Prefix = n.Prefix
	case *gobgp.LabeledVPNIPAddrPrefix:
		r.Prefix = n.Prefix
		r.RD = formatRD(n.RD)
	default:
		return Route{}, false
	}
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *gobgp.PathAttributeNextHop:
			r.NextHop = a.Value
		case *gobgp.PathAttributeMpReachNLRI:
			r.NextHop = a.Nexthop
		case *gobgp.PathAttributeAsPath:
			for _, seg := range a.Value {
				r.ASPath = append(r.ASPath, seg.GetAS()...)
			}
		case *gobgp.PathAttributeExtendedCommunities:
			for _, c := range a.Value {
				if rt, ok := formatTarget(c); ok {
					r.RouteTargets = append(r.RouteTargets, rt)
				}
			}
		}
	}
	lead := 0
	for lead < len(r.ASPath) && r.ASPath[lead] == asn {
		lead++
	}
	if ebgp && lead > 0 {
		lead--
	}
	r.Prepend = lead
	return r, true
}
