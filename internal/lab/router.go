package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/frr"
)

// The lab's router: when the lab has a network, FRR (zebra and bgpd) runs
// in the namespace "router" and peers with the BGP speaker in each site's
// agent. Both sites have the service address (VIP) on their loopback; the
// router forwards to the site that announces it, and the root namespace
// (where the clients run) routes the VIP through the router.

const routerASN = 65000

// siteASN is the AS number of a site's speaker.
func siteASN(site string) int {
	switch site {
	case "brussels":
		return 65001
	case "antwerp":
		return 65002
	case "liege":
		return 65003
	}
	return 65009
}

// vip is the lab's service address: outside the bridge's /24, so that it
// is routed, not resolved on the bridge.
func vip(subnet string) string {
	p := netip.MustParsePrefix(subnet)
	b := p.Addr().As4()
	return netip.AddrFrom4([4]byte{b[0], b[1] + 1, b[2], 10}).String()
}

func (st *state) routerDir() string { return filepath.Join(st.Dir, "router") }

// startRouter configures the namespaces for the VIP and starts FRR.
func (st *state) startRouter(ctx context.Context) error {
	if st.Net == nil {
		return nil
	}
	n := st.Net
	for _, l := range st.locs() {
		if l.postgres {
			if err := nsRun(ctx, n.Namespaces[l.name], "ip", "addr", "add", n.VIP+"/32", "dev", "lo"); err != nil {
				return err
			}
		}
	}
	if err := nsRun(ctx, n.Namespaces["router"], "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	// The router forwards the VIP back out of the interface it came in on
	// (everything is on one bridge): an ICMP redirect would teach the
	// clients to skip the router, and they would keep going to the old
	// site after a flip.
	if err := nsRun(ctx, n.Namespaces["router"], "sh", "-c", "for f in /proc/sys/net/ipv4/conf/*/send_redirects; do echo 0 >$f; done"); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "sysctl", "-qw", "net.ipv4.conf."+n.Prefix+"br.accept_redirects=0").CombinedOutput(); err != nil {
		return fmt.Errorf("refuse redirects on the lab's bridge: %w: %s", err, out)
	}
	if out, err := exec.CommandContext(ctx, "ip", "route", "replace", n.VIP+"/32", "via", n.Addrs["router"]).CombinedOutput(); err != nil {
		return fmt.Errorf("route the service address through the router: %w: %s", err, out)
	}
	var bgpd strings.Builder
	fmt.Fprintf(&bgpd, "router bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp network import-check\n", routerASN, n.Addrs["router"])
	for _, l := range st.locs() {
		if l.postgres {
			fmt.Fprintf(&bgpd, " neighbor %s remote-as %d\n neighbor %s timers 3 9\n neighbor %s timers connect 1\n", n.Addrs[l.name], siteASN(l.name), n.Addrs[l.name], n.Addrs[l.name])
		}
	}
	router := st.router()
	if err := router.WriteConfig(map[string]string{"zebra.conf": "hostname router\n", "bgpd.conf": bgpd.String()}); err != nil {
		return fmt.Errorf("the lab's router: %w", err)
	}
	for _, d := range []string{"zebra", "bgpd"} {
		cmd := exec.Command(filepath.Join(frr.Bin, d), router.Args(d)...)
		if _, err := st.start("router", d, st.wrap("router", cmd), filepath.Join(router.Dir, d+".out")); err != nil {
			return err
		}
		if err := router.WaitUp(ctx, d, nil); err != nil {
			return fmt.Errorf("FRR's %s in the lab's router does not answer; see %s", d, router.Log(d))
		}
	}
	return nil
}

func nsRun(ctx context.Context, ns string, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s in %s: %w: %s", strings.Join(args, " "), ns, err, out)
	}
	return nil
}

// router is the lab's FRR.
func (st *state) router() frr.Instance {
	return frr.Instance{Dir: st.routerDir(), Namespace: st.Net.Namespaces["router"]}
}

// vtysh asks the lab's router.
func (st *state) vtysh(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return st.router().Vtysh(ctx, args...)
}

// VIPRoute returns the next hops the lab's router forwards the service
// address to (its FIB), and the service address.
func VIPRoute(ctx context.Context, o Options) (vip string, via []string, err error) {
	st, err := loadState(o.Dir)
	if err != nil {
		return "", nil, err
	}
	if st.Net == nil {
		return "", nil, fmt.Errorf("the lab in %s has no network (lab up --netns)", o.Dir)
	}
	out, err := st.vtysh(ctx, "-c", "show ip route "+st.Net.VIP+"/32 json")
	if err != nil {
		return st.Net.VIP, nil, err
	}
	var routes map[string][]struct {
		Selected  bool `json:"selected"`
		Installed bool `json:"installed"`
		Nexthops  []struct {
			IP     string `json:"ip"`
			Active bool   `json:"active"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return st.Net.VIP, nil, fmt.Errorf("read the router's route: %w", err)
	}
	for _, rs := range routes {
		for _, r := range rs {
			if !r.Installed {
				continue
			}
			for _, nh := range r.Nexthops {
				if nh.Active {
					via = append(via, nh.IP)
				}
			}
		}
	}
	return st.Net.VIP, via, nil
}

// SiteOf names the location whose address is addr in the lab.
func SiteOf(o Options, addr string) string {
	st, err := loadState(o.Dir)
	if err != nil || st.Net == nil {
		return ""
	}
	for site, a := range st.Net.Addrs {
		if a == addr {
			return site
		}
	}
	return ""
}
