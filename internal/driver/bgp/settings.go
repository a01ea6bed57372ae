package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
)

// Settings is the per-site block of a bgp or vrf resource: how the site's
// speaker peers with the site's routers and what it announces. The caller
// decodes it strictly from YAML, calls SetDefaults and then Check (bgp) or
// CheckVRF (vrf).
type Settings struct {
	ASN uint32 `yaml:"asn"`
	// RouterID is the speaker's BGP identifier, an IPv4 address; default
	// NextHop.
	RouterID string `yaml:"router_id"`
	// ListenPort is the TCP port the speaker accepts sessions on; -1, the
	// default, makes it only connect out to its neighbors.
	ListenPort int        `yaml:"listen_port"`
	Neighbors  []Neighbor `yaml:"neighbors"`
	// Prefixes are the group's service prefixes, e.g. 10.77.0.10/32: the
	// same at every site, announced by the active one.
	Prefixes []string `yaml:"prefixes"`
	// NextHop is the address the routers forward the prefixes to; default:
	// the speaker's own address on each session.
	NextHop string `yaml:"next_hop"`
	// BFD detects a dead link in about a second (300 ms × 3) instead of the
	// hold time; the routers must run BFD towards the speaker too. On FRR,
	// declare each speaker as a peer in bfdd as well as with "neighbor X
	// bfd": otherwise FRR re-creates the BFD session once BGP is up, and
	// GoBGP answers the BFD down with a reset of the BGP session.
	BFD bool `yaml:"bfd"`
	// HoldTime is how long a silent session lives: at least 3 s, whole
	// seconds; default 9 s. Keepalives go every third of it.
	HoldTime config.Duration `yaml:"hold_time"`

	// VRF mode: the prefixes are announced as VPNv4 routes with route
	// distinguisher RD and one of three route targets. The production
	// target is imported by the production VRF; the standby target parks
	// the other site's routes; the bubble target is for drills and must
	// never be imported by production.
	RD           string `yaml:"rd"`
	ProductionRT string `yaml:"production_rt"`
	StandbyRT    string `yaml:"standby_rt"`
	BubbleRT     string `yaml:"bubble_rt"`
	// Label is the MPLS label of the VPNv4 routes; default 3 (implicit
	// null: the next hop receives plain IP).
	Label uint32 `yaml:"label"`
}

// Neighbor is one router the speaker peers with.
type Neighbor struct {
	Address string `yaml:"address"`
	ASN     uint32 `yaml:"asn"`
	Port    int    `yaml:"port"` // default 179
}

const (
	defaultHoldTime = 9 * time.Second
	minHoldTime     = 3 * time.Second // RFC 4271 4.2: 0 or at least 3 s
	maxHoldTime     = 65535 * time.Second
	defaultPort     = 179
	noListen        = -1
	defaultLabel    = 3
	maxLabel        = 1<<20 - 1
)

// SetDefaults fills the fields left empty.
func (s *Settings) SetDefaults() {
	if s.ListenPort == 0 {
		s.ListenPort = noListen
	}
	if s.HoldTime == 0 {
		s.HoldTime = config.Duration(defaultHoldTime)
	}
	if s.RouterID == "" {
		if a, err := netip.ParseAddr(s.NextHop); err == nil && a.Is4() {
			s.RouterID = s.NextHop
		}
	}
	for i := range s.Neighbors {
		if s.Neighbors[i].Port == 0 {
			s.Neighbors[i].Port = defaultPort
		}
	}
	if s.Label == 0 && s.RD != "" {
		s.Label = defaultLabel
	}
}

// VRF says whether the settings describe VPNv4 routes (rd is set).
func (s *Settings) VRF() bool { return s.RD != "" }

// Check reports every problem with the settings of a bgp resource; nil
// means they are usable. Call it after SetDefaults. The VRF keys are
// optional here but checked when present.
func (s *Settings) Check() []config.FieldError {
	return s.check(false)
}

// CheckVRF is Check for a vrf resource: rd, production_rt and standby_rt
// are required.
func (s *Settings) CheckVRF() []config.FieldError {
	return s.check(true)
}

func (s *Settings) check(vrf bool) []config.FieldError {
	var errs []config.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, config.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}

	if s.ASN == 0 {
		add("asn", "is required: set the site's AS number, e.g. 65001 (0 is reserved)")
	} else if s.ASN == 23456 {
		add("asn", "23456 is AS_TRANS, reserved for 4-octet AS transition: pick another")
	}
	switch a, err := netip.ParseAddr(s.RouterID); {
	case s.RouterID == "":
		add("router_id", "is required: set an IPv4 address of the speaker, e.g. its address towards the routers (default: next_hop)")
	case err != nil || !a.Is4():
		add("router_id", "%q is not an IPv4 address: the BGP identifier is one, e.g. 10.1.0.10", s.RouterID)
	case a.IsUnspecified():
		add("router_id", "0.0.0.0 is not a valid BGP identifier: set the speaker's IPv4 address")
	}
	if s.ListenPort != noListen && (s.ListenPort < 1 || s.ListenPort > 65535) {
		add("listen_port", "%d is out of range: set -1 to only connect out (the default) or a TCP port from 1 to 65535", s.ListenPort)
	}

	if len(s.Neighbors) == 0 {
		add("neighbors", "is required: list the site's routers, e.g. [{address: 10.1.0.1, asn: 65000}]")
	}
	seenNeighbor := map[netip.Addr]int{}
	for i, n := range s.Neighbors {
		field := "neighbors[" + strconv.Itoa(i) + "]"
		a, err := netip.ParseAddr(n.Address)
		switch {
		case n.Address == "":
			add(field+".address", "is required: set the router's address")
		case err != nil || a.Zone() != "":
			add(field+".address", "%q is not an IP address", n.Address)
		case a.IsUnspecified() || a.IsMulticast():
			add(field+".address", "%s cannot be a neighbor: set the router's unicast address", a)
		default:
			if j, dup := seenNeighbor[a]; dup {
				add(field+".address", "%s is also neighbors[%d]: list each router once", a, j)
			}
			seenNeighbor[a] = i
		}
		if n.ASN == 0 {
			add(field+".asn", "is required: set the router's AS number, e.g. 65000")
		}
		if n.Port < 1 || n.Port > 65535 {
			add(field+".port", "%d is out of range: set a TCP port from 1 to 65535 (default 179)", n.Port)
		}
	}

	if len(s.Prefixes) == 0 {
		add("prefixes", "is required: list the service prefixes the active site announces, e.g. [10.77.0.10/32]")
	}
	seenPrefix := map[netip.Prefix]int{}
	for i, p := range s.Prefixes {
		field := "prefixes[" + strconv.Itoa(i) + "]"
		pfx, err := parsePrefix(p)
		if err != nil {
			add(field, "%v", err)
			continue
		}
		if j, dup := seenPrefix[pfx]; dup {
			add(field, "%s is also prefixes[%d]: list each prefix once", pfx, j)
		}
		seenPrefix[pfx] = i
	}

	if s.NextHop != "" {
		a, err := netip.ParseAddr(s.NextHop)
		switch {
		case err != nil || !a.Is4():
			add("next_hop", "%q is not an IPv4 address: set the address the routers forward the prefixes to, or leave it out to use the speaker's own", s.NextHop)
		case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
			add("next_hop", "%s cannot be a next hop: set a unicast address the routers reach, or leave it out", a)
		}
	}

	switch h := s.HoldTime.D(); {
	case h < minHoldTime:
		add("hold_time", "%v is too short: BGP allows 3 s or more (default 9s; use bfd for faster detection)", h)
	case h > maxHoldTime:
		add("hold_time", "%v is too long: BGP allows at most 65535 s", h)
	case h%time.Second != 0:
		add("hold_time", "%v is not whole seconds: BGP counts the hold time in seconds, e.g. 9s", h)
	}

	errs = append(errs, s.checkVRF(vrf)...)
	return errs
}

// checkVRF checks the VPNv4 keys: all of them when vrf, else only those set.
func (s *Settings) checkVRF(vrf bool) []config.FieldError {
	var errs []config.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, config.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	anySet := s.RD != "" || s.ProductionRT != "" || s.StandbyRT != "" || s.BubbleRT != ""
	if !vrf && !anySet {
		if s.Label != 0 {
			add("label", "is set without rd: the label belongs to VPNv4 routes; set rd and the route targets, or remove label")
		}
		return errs
	}
	if s.RD == "" {
		add("rd", "is required for VPNv4 routes: set the site's route distinguisher, e.g. \"65001:10\" (one per site)")
	} else if _, err := parseRDRT(s.RD); err != nil {
		add("rd", "%v", err)
	}
	targets := []struct {
		field, value string
		required     bool
		role         string
	}{
		{"production_rt", s.ProductionRT, true, "the route target the production VRF imports, e.g. \"65000:100\""},
		{"standby_rt", s.StandbyRT, true, "the route target that parks the standby site's routes, e.g. \"65000:200\""},
		{"bubble_rt", s.BubbleRT, false, ""},
	}
	seen := map[string]string{} // canonical target → field
	for _, t := range targets {
		if t.value == "" {
			if t.required {
				add(t.field, "is required for VPNv4 routes: set %s", t.role)
			}
			continue
		}
		v, err := parseRDRT(t.value)
		if err != nil {
			add(t.field, "%v", err)
			continue
		}
		if other, dup := seen[v.String()]; dup {
			why := "a failover would move nothing"
			switch {
			case t.field == "bubble_rt" && other == "production_rt":
				why = "production would import a drill's routes"
			case t.field == "bubble_rt":
				why = "a drill's routes would mix with the parked standby routes"
			}
			add(t.field, "%s is also %s: the route targets must differ, or %s", v, other, why)
			continue
		}
		seen[v.String()] = t.field
	}
	if s.Label > maxLabel {
		add("label", "%d is out of range: MPLS labels go from 0 to %d (default 3)", s.Label, maxLabel)
	}
	return errs
}

// parsePrefix reads an IPv4 prefix in its canonical form.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil && a.Is4() {
			return netip.Prefix{}, fmt.Errorf("%q is an address, not a prefix: write it as %s/32", s, a)
		}
		return netip.Prefix{}, fmt.Errorf("%q is not a prefix: write it like 10.77.0.10/32", s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%s is not IPv4: only IPv4 prefixes are supported", p)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set: write %s, or %s/32 for the address alone", p, p.Masked(), p.Addr())
	}
	return p, nil
}

// prefixes returns the parsed Prefixes; call it on checked settings.
func (s *Settings) prefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(s.Prefixes))
	for _, p := range s.Prefixes {
		if pfx, err := parsePrefix(p); err == nil {
			out = append(out, pfx)
		}
	}
	return out
}

// Across checks the settings of every site of one resource together: the
// sites announce the same prefixes, and in VRF mode use the same route
// targets and each its own route distinguisher. bySite holds *Settings
// after Check. Problems are keyed by site.
func Across(bySite map[string]any) map[string][]config.FieldError {
	sites := make([]string, 0, len(bySite))
	for site := range bySite {
		sites = append(sites, site)
	}
	slices.Sort(sites)
	out := map[string][]config.FieldError{}
	add := func(site, field, format string, args ...any) {
		out[site] = append(out[site], config.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if len(sites) < 2 {
		return out
	}
	first := bySite[sites[0]].(*Settings)
	want := canonPrefixes(first)
	rdOf := map[string]string{}
	if v, err := parseRDRT(first.RD); err == nil {
		rdOf[v.String()] = sites[0]
	}
	for _, site := range sites[1:] {
		s := bySite[site].(*Settings)
		if got := canonPrefixes(s); !slices.Equal(got, want) {
			add(site, "prefixes", "[%s] differ from [%s] at %s: every site announces the same service prefixes, which a failover moves between them",
				strings.Join(got, ", "), strings.Join(want, ", "), sites[0])
		}
		if !first.VRF() && !s.VRF() {
			continue
		}
		for _, f := range []struct{ field, a, b string }{
			{"production_rt", s.ProductionRT, first.ProductionRT},
			{"standby_rt", s.StandbyRT, first.StandbyRT},
			{"bubble_rt", s.BubbleRT, first.BubbleRT},
		} {
			if canonTarget(f.a) != canonTarget(f.b) {
				add(site, f.field, "%q differs from %q at %s: every site must use the same route targets, or a failover imports the wrong routes",
					f.a, f.b, sites[0])
			}
		}
		if v, err := parseRDRT(s.RD); err == nil {
			if other, dup := rdOf[v.String()]; dup {
				add(site, "rd", "%s is also the rd at %s: give each site its own, or a route reflector keeps only one site's route and the parked one is lost", v, other)
			} else {
				rdOf[v.String()] = site
			}
		}
	}
	return out
}

func canonPrefixes(s *Settings) []string {
	var out []string
	for _, p := range s.prefixes() {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}

func canonTarget(s string) string {
	if v, err := parseRDRT(s); err == nil {
		return v.String()
	}
	return s
}
