package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/netns"
)

const (
	routerASN = 65000
	siteASN   = 65001 // both sites, as one company's AS

	prodRT    = "65000:100"
	standbyRT = "65000:200"
	bubbleRT  = "65000:999"
)

// lab is a router running FRR and two sites, brussels and antwerp, each
// with a speaker peering with the router, all on one bridge.
type lab struct {
	t                 testing.TB
	net               *netns.Net
	router            *frrRouter
	brussels, antwerp *site
	fib               *routeWatch
}

// labOptions choose what newLab builds.
type labOptions struct {
	// vrf: the router also carries VPNv4 towards the speakers, with a VRF
	// prod importing the production route target and a VRF bubble
	// importing the bubble target.
	vrf bool
	// bfd: the router runs bfdd and both ends of each session use BFD.
	bfd bool
}

// newLab builds the lab: namespaces router, brussels, antwerp and client
// (and prod and bubble for the VRFs), FRR in router, a speaker in each
// site, and waits until both sessions are up.
func newLab(t testing.TB, opts labOptions) *lab {
	t.Helper()
	requireFRR(t)
	vrf := opts.vrf
	names := []string{"router", "brussels", "antwerp", "client"}
	if vrf {
		names = append(names, "prod", "bubble")
	}
	n, err := netns.Create(t.Context(), netns.Options{Names: names})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	l := &lab{t: t, net: n}
	conf := frrConf{bgpd: l.routerConf(opts), bfd: opts.bfd}
	if opts.bfd {
		// Sessions configured in bfdd keep their identity when bgpd takes
		// them up; left to bgpd, FRR re-creates each one once the BGP
		// session is up (with the local address and interface), which
		// GoBGP, seeing its BFD peer go down, answers by resetting BGP.
		conf.bfdd = "bfd\n"
		for _, s := range []string{"brussels", "antwerp"} {
			conf.bfdd += fmt.Sprintf(" peer %s local-address %s interface %sp0\n !\n", n.Addr(s), n.Addr("router"), n.Prefix())
		}
		conf.bfdd += "!\n"
	}
	if vrf {
		// FRR leaks VPN routes only into a VRF zebra reports active. The
		// kernel here has no VRF devices, so zebra runs with the netns
		// backend, where each namespace is a VRF named after it.
		conf.zebraArgs = []string{"-n"}
	}
	l.router = startFRR(t, n, "router", conf)
	l.fib = watchRoutes(t, n.Namespace("router"), vip)
	l.brussels = startSite(t, n, "brussels")
	l.antwerp = startSite(t, n, "antwerp")
	for _, s := range []*site{l.brussels, l.antwerp} {
		s.start(l.settings(s, opts))
	}
	for _, s := range []*site{l.brussels, l.antwerp} {
		s.waitStatus("session up", func(st Status) bool { return st.Neighbors[0].Established() })
	}
	return l
}

func (l *lab) routerConf(opts labOptions) string {
	vrf := opts.vrf
	r := l.net.Addr("router")
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults traditional\nhostname router\n!\nrouter bgp %d\n", routerASN)
	fmt.Fprintf(&b, " bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp network import-check\n", r)
	for _, s := range []string{"brussels", "antwerp"} {
		a := l.net.Addr(s)
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s timers connect 1\n", a, siteASN, a)
		if opts.bfd {
			fmt.Fprintf(&b, " neighbor %s bfd\n neighbor %s update-source %s\n", a, a, r)
		}
	}
	if vrf {
		b.WriteString(" address-family ipv4 vpn\n")
		for _, s := range []string{"brussels", "antwerp"} {
			fmt.Fprintf(&b, "  neighbor %s activate\n", l.net.Addr(s))
		}
		b.WriteString(" exit-address-family\n")
		for i, v := range []struct{ name, rt string }{{"prod", prodRT}, {"bubble", bubbleRT}} {
			fmt.Fprintf(&b, "!\nrouter bgp %d vrf %s\n bgp router-id %s\n no bgp ebgp-requires-policy\n", routerASN, l.net.Namespace(v.name), r)
			fmt.Fprintf(&b, " address-family ipv4 unicast\n  rd vpn export %d:%d\n  rt vpn import %s\n  import vpn\n exit-address-family\n", routerASN, i+1, v.rt)
		}
	}
	b.WriteString("!\n")
	return b.String()
}

func (l *lab) settings(s *site, opts labOptions) Settings {
	vrf := opts.vrf
	set := Settings{
		BFD:       opts.bfd,
		ASN:       siteASN,
		RouterID:  s.addr.String(),
		Neighbors: []Neighbor{{Address: l.net.Addr("router").String(), ASN: routerASN}},
		Prefixes:  []string{vip.String()},
	}
	if vrf {
		rd := map[string]string{"brussels": "65001:1", "antwerp": "65001:2"}[s.name]
		set.RD, set.ProductionRT, set.StandbyRT, set.BubbleRT = rd, prodRT, standbyRT, bubbleRT
	}
	return set
}

// waitBest waits until FRR's best path to the VIP comes from want (the
// zero Addr: until FRR has no path).
func (l *lab) waitBest(what string, want netip.Addr) []bgpPath {
	l.t.Helper()
	var paths []bgpPath
	waitFor(l.t, what, func() (bool, string) {
		paths = l.router.bgpPaths(vip)
		if !want.IsValid() {
			return len(paths) == 0, fmt.Sprint(paths)
		}
		return bestVia(paths) == want, fmt.Sprint(paths)
	})
	return paths
}

// waitFIB waits until the kernel route to the VIP goes via want only, and
// checks that `show ip route` agrees.
func (l *lab) waitFIB(what string, want netip.Addr) time.Time {
	l.t.Helper()
	at, err := l.fib.waitVia(want, 30*time.Second)
	if err != nil {
		l.t.Fatalf("%s: %v", what, err)
	}
	waitFor(l.t, what+" (show ip route)", func() (bool, string) {
		via := l.router.fibVia(vip)
		if !want.IsValid() {
			return len(via) == 0, fmt.Sprint(via)
		}
		return len(via) == 1 && via[0] == want, fmt.Sprint(via)
	})
	return at
}

// TestFRRUnicast announces the VIP to FRR from brussels, flips it to
// antwerp make-before-break (by prepending, then by withdrawing) and
// kills the speakers, checking FRR's best path and the route zebra
// installs in the kernel each time. It logs how long each change took
// from the API call to the kernel route.
func TestFRRUnicast(t *testing.T) {
	l := newLab(t, labOptions{})
	br, an := l.brussels, l.antwerp

	// brussels announces: FRR's only path, and the kernel route, go there.
	t0 := time.Now()
	br.announce(0, vip)
	at := l.waitFIB("brussels announces", br.addr)
	t.Logf("announce → kernel route via brussels: %v", at.Sub(t0).Round(time.Millisecond))
	paths := l.waitBest("best via brussels", br.addr)
	if len(paths) != 1 || paths[0].ASPath.String != "65001" {
		t.Errorf("FRR paths %v, want one with as-path 65001", paths)
	}
	st := br.status()
	if r, ok := st.Neighbors[0].Unicast(vip); !ok || r.Prepend != 0 || r.NextHop != br.addr {
		t.Errorf("brussels adj-rib-out %v, want %s via %s without prepend", st.Neighbors[0].Advertised, vip, br.addr)
	}

	// antwerp stands by with a prepended path: FRR keeps brussels.
	an.announce(3, vip)
	waitFor(t, "antwerp's standby path", func() (bool, string) {
		paths = l.router.bgpPaths(vip)
		return len(paths) == 2, fmt.Sprint(paths)
	})
	if via := bestVia(paths); via != br.addr {
		t.Errorf("best path via %s with antwerp prepended, want brussels %s: %v", via, br.addr, paths)
	}
	st = an.status()
	if r, ok := st.Neighbors[0].Unicast(vip); !ok || r.Prepend != 3 {
		t.Errorf("antwerp adj-rib-out %v, want %s prepended 3 times", st.Neighbors[0].Advertised, vip)
	}

	// Flip by prepending: antwerp drops its prepend, then brussels
	// prepends. The new path exists before the old one loses.
	t0 = time.Now()
	an.announce(0, vip)
	t1 := time.Now()
	br.announce(3, vip)
	at = l.waitFIB("flip to antwerp", an.addr)
	t.Logf("flip by prepend → kernel route via antwerp: %v from antwerp's announce, %v from brussels' prepend",
		at.Sub(t0).Round(time.Millisecond), at.Sub(t1).Round(time.Millisecond))
	paths = l.waitBest("best via antwerp", an.addr)
	if len(paths) != 2 {
		t.Errorf("FRR paths %v, want brussels' prepended path kept", paths)
	}

	// Flip back by withdrawing: brussels announces, then antwerp withdraws.
	t0 = time.Now()
	br.announce(0, vip)
	t1 = time.Now()
	an.withdraw(vip)
	at = l.waitFIB("flip back to brussels", br.addr)
	t.Logf("flip by withdraw → kernel route via brussels: %v from brussels' announce, %v from antwerp's withdraw",
		at.Sub(t0).Round(time.Millisecond), at.Sub(t1).Round(time.Millisecond))
	paths = l.waitBest("best via brussels again", br.addr)
	if len(paths) != 1 {
		t.Errorf("FRR paths %v, want brussels' only", paths)
	}
	an.waitStatus("antwerp withdrawn", func(st Status) bool { return len(st.Neighbors[0].Advertised) == 0 })

	// A killed speaker: the kernel closes its session and FRR drops its
	// path at once; antwerp's standby path takes over.
	an.announce(3, vip)
	waitFor(t, "antwerp's standby path again", func() (bool, string) {
		paths = l.router.bgpPaths(vip)
		return len(paths) == 2, fmt.Sprint(paths)
	})
	t0 = time.Now()
	br.kill()
	at = l.waitFIB("brussels killed", an.addr)
	t.Logf("brussels' speaker killed → kernel route via antwerp's standby path: %v", at.Sub(t0).Round(time.Millisecond))
	paths = l.waitBest("best via antwerp after the kill", an.addr)
	if len(paths) != 1 {
		t.Errorf("FRR paths %v after brussels was killed, want antwerp's only", paths)
	}

	t0 = time.Now()
	an.kill()
	at = l.waitFIB("antwerp killed", netip.Addr{})
	t.Logf("antwerp's speaker killed → kernel route gone: %v", at.Sub(t0).Round(time.Millisecond))
	l.waitBest("no path left", netip.Addr{})
}

// vpnPaths returns FRR's VPNv4 paths to the VIP by route distinguisher.
func (l *lab) vpnPaths() map[string][]bgpPath {
	l.t.Helper()
	var out map[string]struct {
		Paths []bgpPath `json:"paths"`
	}
	l.router.show("show bgp ipv4 vpn "+vip.String(), &out)
	byRD := map[string][]bgpPath{}
	for rd, v := range out {
		byRD[rd] = v.Paths
	}
	return byRD
}

// vrfPaths returns the VIP's paths FRR imported into the BGP table of a
// VRF, "prod" or "bubble".
func (l *lab) vrfPaths(vrf string) []bgpPath {
	l.t.Helper()
	var out struct {
		Paths []bgpPath `json:"paths"`
	}
	l.router.show("show bgp vrf "+l.net.Namespace(vrf)+" ipv4 unicast "+vip.String(), &out)
	return out.Paths
}

// rt returns the route targets of a path as FRR writes them, e.g.
// "RT:65000:100".
func (p bgpPath) rt() string {
	if p.ExtendedCommunity == nil {
		return ""
	}
	return p.ExtendedCommunity.String
}

// describe writes paths as "peer rt" pairs, sorted, for comparisons.
func describe(paths []bgpPath) string {
	var out []string
	for _, p := range paths {
		from := p.Peer.PeerID
		if len(p.Nexthops) > 0 && (from == "" || from == "0.0.0.0") {
			from = p.Nexthops[0].IP // an imported path names its next hop
		}
		out = append(out, from+" "+p.rt())
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// updatesFrom returns how many UPDATEs FRR received from a neighbor.
func (l *lab) updatesFrom(a netip.Addr) int {
	l.t.Helper()
	var out map[string]struct {
		MessageStats struct {
			UpdatesRecv int `json:"updatesRecv"`
		} `json:"messageStats"`
	}
	l.router.show("show bgp neighbors "+a.String(), &out)
	return out[a.String()].MessageStats.UpdatesRecv
}

// waitVRF waits until the VIP's paths in a VRF are want (see describe)
// and returns when it saw them, polling as fast as vtysh answers.
func (l *lab) waitVRF(what, vrf, want string) time.Time {
	l.t.Helper()
	var seen time.Time
	waitFor(l.t, what, func() (bool, string) {
		got := describe(l.vrfPaths(vrf))
		seen = time.Now()
		return got == want, got
	})
	return seen
}

// TestFRRVPN checks the route-target design against FRR's control plane:
// each site exports the VIP as a VPNv4 route with its own RD, the active
// site with the production target and the other with the standby target;
// the production VRF imports the active site's path only; a flip
// re-announces each site's route with the other target in one UPDATE
// each, make-before-break; and a path with the bubble target is imported
// by the bubble VRF, never by production.
//
// The kernel here has no VRF or MPLS support, so FRR marks the imported
// paths invalid (their next hop is not reached over an MPLS LSP) and
// installs nothing: what is checked is FRR's import decision, the paths
// in each VRF's BGP table.
func TestFRRVPN(t *testing.T) {
	l := newLab(t, labOptions{vrf: true})
	br, an := l.brussels, l.antwerp
	brRT, anRT := br.addr.String()+" RT:"+prodRT, an.addr.String()+" RT:"+prodRT

	br.announceVPN(prodRT, vip)
	an.announceVPN(standbyRT, vip)
	waitFor(t, "both sites' VPN routes", func() (bool, string) {
		rib := l.vpnPaths()
		return describe(rib["65001:1"]) == br.addr.String()+" RT:"+prodRT &&
			describe(rib["65001:2"]) == an.addr.String()+" RT:"+standbyRT, fmt.Sprint(rib)
	})
	l.waitVRF("prod imports brussels only", "prod", brRT)
	if got := describe(l.vrfPaths("bubble")); got != "" {
		t.Errorf("bubble VRF imported %s, want nothing", got)
	}
	st := br.status()
	if r, ok := st.Neighbors[0].VPN(vip); !ok || r.RD != "65001:1" || !slices.Equal(r.RouteTargets, []string{prodRT}) {
		t.Errorf("brussels adj-rib-out %v, want %s rd 65001:1 rt %s", st.Neighbors[0].Advertised, vip, prodRT)
	}
	if _, ok := st.Neighbors[0].Unicast(vip); ok {
		t.Errorf("brussels announces %s as unicast too: %v", vip, st.Neighbors[0].Advertised)
	}

	// Flip slowly, checking each half: antwerp takes the production target
	// (prod imports both), then brussels parks under the standby target.
	// Each re-announcement is one UPDATE, so FRR never sees a site's route
	// withdrawn or under two targets.
	brUpdates, anUpdates := l.updatesFrom(br.addr), l.updatesFrom(an.addr)
	an.announceVPN(prodRT, vip)
	l.waitVRF("prod imports both during the flip", "prod", brRT+", "+anRT)
	br.announceVPN(standbyRT, vip)
	l.waitVRF("prod imports antwerp only", "prod", anRT)
	if d := l.updatesFrom(an.addr) - anUpdates; d != 1 {
		t.Errorf("antwerp's flip took %d UPDATEs, want 1", d)
	}
	if d := l.updatesFrom(br.addr) - brUpdates; d != 1 {
		t.Errorf("brussels' flip took %d UPDATEs, want 1", d)
	}
	waitFor(t, "VPN routes flipped", func() (bool, string) {
		rib := l.vpnPaths()
		return describe(rib["65001:1"]) == br.addr.String()+" RT:"+standbyRT &&
			describe(rib["65001:2"]) == an.addr.String()+" RT:"+prodRT, fmt.Sprint(rib)
	})

	// Flip back at full speed and time it, as far as polling vtysh can.
	t0 := time.Now()
	br.announceVPN(prodRT, vip)
	t1 := time.Now()
	an.announceVPN(standbyRT, vip)
	at := l.waitVRF("prod imports brussels only again", "prod", brRT)
	t.Logf("VPN flip → prod VRF imports brussels only: %v from brussels' announce, %v from antwerp's (polling vtysh)",
		at.Sub(t0).Round(time.Millisecond), at.Sub(t1).Round(time.Millisecond))

	// A drill: antwerp's route takes the bubble target. The bubble VRF
	// imports it; production keeps brussels' path only.
	an.announceVPN(bubbleRT, vip)
	l.waitVRF("bubble imports antwerp", "bubble", an.addr.String()+" RT:"+bubbleRT)
	for range 10 {
		if got := describe(l.vrfPaths("prod")); got != brRT {
			t.Fatalf("prod VRF imported %s during the drill, want %s", got, brRT)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := describe(l.vpnPaths()["65001:2"]); got != an.addr.String()+" RT:"+bubbleRT {
		t.Errorf("antwerp's VPN route %s, want it under the bubble target", got)
	}

	// The drill ends: antwerp withdraws, the bubble VRF empties.
	an.withdraw(vip)
	l.waitVRF("bubble empty", "bubble", "")
	waitFor(t, "antwerp's VPN route gone", func() (bool, string) {
		rib := l.vpnPaths()
		return len(rib["65001:2"]) == 0, fmt.Sprint(rib)
	})
	if got := describe(l.vrfPaths("prod")); got != brRT {
		t.Errorf("prod VRF %s after the drill, want %s", got, brRT)
	}
}

// dataPort is where the sites count the client's datagrams.
const dataPort = 7777

// sh runs a shell script in a location's namespace.
func (l *lab) sh(name, script string) {
	l.t.Helper()
	out, err := l.net.Command(l.t.Context(), name, "sh", "-ec", script).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %s: %v: %s", name, script, err, out)
	}
}

// dataPlane makes the router forward, gives both sites the VIP on their
// loopback counting the datagrams that reach it, and routes the client's
// traffic to the VIP through the router. The router sends no ICMP
// redirects, which would send the client straight to a site.
func (l *lab) dataPlane() *site {
	l.t.Helper()
	l.sh("router", "echo 1 > /proc/sys/net/ipv4/ip_forward; for f in /proc/sys/net/ipv4/conf/*/send_redirects; do echo 0 > $f; done")
	for _, s := range []*site{l.brussels, l.antwerp} {
		l.sh(s.name, "ip addr add "+vip.String()+" dev lo")
		s.must(siteRequest{Op: "listen", Port: dataPort})
	}
	l.sh("client", "for f in /proc/sys/net/ipv4/conf/*/accept_redirects; do echo 0 > $f; done; ip route add "+vip.String()+" via "+l.net.Addr("router").String())
	return startSite(l.t, l.net, "client")
}

// counted returns the datagrams each site received, once the counts have
// stopped growing.
func (l *lab) counted() (brussels, antwerp int64) {
	l.t.Helper()
	prev := int64(-1)
	for {
		brussels = l.brussels.must(siteRequest{Op: "count"}).Count
		antwerp = l.antwerp.must(siteRequest{Op: "count"}).Count
		if brussels+antwerp == prev {
			return brussels, antwerp
		}
		prev = brussels + antwerp
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFRRFlipLosesNothing streams a datagram a millisecond from a client
// through the router to the VIP while it moves between the sites make-
// before-break, by prepending and by withdrawing, and checks that every
// datagram arrived at one site or the other. For comparison it logs what
// break-before-make (withdraw, 200 ms, announce) loses.
func TestFRRFlipLosesNothing(t *testing.T) {
	l := newLab(t, labOptions{})
	br, an := l.brussels, l.antwerp
	client := l.dataPlane()
	br.announce(0, vip)
	an.announce(3, vip)
	l.waitFIB("brussels announces", br.addr)

	target := fmt.Sprintf("%s:%d", vip.Addr(), dataPort)
	run := func(what string, flip func()) (lost, atBrussels, atAntwerp int64) {
		t.Helper()
		b0, a0 := l.counted()
		client.must(siteRequest{Op: "stream", Target: target})
		time.Sleep(300 * time.Millisecond)
		flip()
		time.Sleep(300 * time.Millisecond)
		sent := client.must(siteRequest{Op: "unstream"}).Count
		b1, a1 := l.counted()
		atBrussels, atAntwerp = b1-b0, a1-a0
		lost = sent - atBrussels - atAntwerp
		t.Logf("%s: %d datagrams sent, %d reached brussels, %d antwerp, %d lost", what, sent, atBrussels, atAntwerp, lost)
		return lost, atBrussels, atAntwerp
	}

	lost, b, a := run("flip by prepend", func() {
		an.announce(0, vip)
		br.announce(3, vip)
		l.waitFIB("flip to antwerp", an.addr)
	})
	if lost != 0 || b == 0 || a == 0 {
		t.Errorf("flip by prepend: %d lost, %d at brussels, %d at antwerp; want none lost and both sites reached", lost, b, a)
	}
	lost, b, a = run("flip by withdraw", func() {
		br.announce(0, vip)
		an.withdraw(vip)
		l.waitFIB("flip back to brussels", br.addr)
	})
	if lost != 0 || b == 0 || a == 0 {
		t.Errorf("flip by withdraw: %d lost, %d at brussels, %d at antwerp; want none lost and both sites reached", lost, b, a)
	}
	run("break-before-make (withdraw, 200 ms, announce)", func() {
		br.withdraw(vip)
		time.Sleep(200 * time.Millisecond)
		an.announce(0, vip)
		l.waitFIB("antwerp after the gap", an.addr)
	})
}

// TestFRRBFD cuts the link between the router and the active site
// silently, as a dead line would: nothing resets the session, and only
// BFD (300 ms × 3 at both ends) tells the router before the 9 s hold
// time. The standby site's path takes over.
func TestFRRBFD(t *testing.T) {
	l := newLab(t, labOptions{bfd: true})
	br, an := l.brussels, l.antwerp
	// GoBGP can still reset a session once while BFD comes up: wait for
	// both to have been up a while.
	for _, s := range []*site{br, an} {
		s.waitStatus("bgp and bfd up for 3 s", func(st Status) bool {
			n := st.Neighbors[0]
			return n.Established() && n.BFD == "up" && time.Since(n.Since) > 3*time.Second
		})
	}
	waitFor(t, "FRR's BFD sessions up", func() (bool, string) {
		var peers []struct {
			Peer   string `json:"peer"`
			Status string `json:"status"`
		}
		l.router.show("show bfd peers", &peers)
		up := 0
		for _, p := range peers {
			if p.Status == "up" {
				up++
			}
		}
		return up == 2, fmt.Sprint(peers)
	})
	br.announce(0, vip)
	an.announce(3, vip)
	l.waitFIB("brussels active", br.addr)

	t0 := time.Now()
	if err := l.net.Cut("router", "brussels"); err != nil {
		t.Fatal(err)
	}
	at := l.waitFIB("brussels cut off", an.addr)
	t.Logf("link to brussels cut → kernel route via antwerp (BFD): %v", at.Sub(t0).Round(time.Millisecond))
	var out map[string]struct {
		LastNotificationReason string `json:"lastNotificationReason"`
	}
	l.router.show("show bgp neighbors "+br.addr.String(), &out)
	if why := out[br.addr.String()].LastNotificationReason; why != "Cease/BFD Down" {
		t.Errorf("FRR dropped brussels with notification %q, want Cease/BFD Down", why)
	}
	br.waitStatus("session down", func(st Status) bool { return !st.Neighbors[0].Established() })
}
