package lab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/driver/postgres"
	"github.com/siteflip/siteflip/internal/netns"
)

// netState is the network a lab runs in when its locations live in network
// namespaces (Options.Net): each location's namespace and address, and the
// subnet the databases admit clients from.
type netState struct {
	Prefix     string            `json:"prefix"`
	Subnet     string            `json:"subnet"`
	HostAddr   string            `json:"host_addr"` // the root namespace's address on the bridge
	Namespaces map[string]string `json:"namespaces"`
	Addrs      map[string]string `json:"addrs"`
	// VIP is the service address both sites have; the router forwards it
	// to the site whose agent announces it.
	VIP string `json:"vip"`
	// Bubbles are, per site, the namespace the site's drills run in: the
	// VIP on its loopback, linked to nothing (`lab pivot SITE` enters it).
	Bubbles map[string]string `json:"bubbles,omitempty"`
	// Owned says the lab created the network (lab up --netns) and removes
	// it on down; otherwise its creator does.
	Owned bool `json:"owned,omitempty"`
}

// bubbleName is the name of a site's bubble in the lab's network, whose
// namespace is then "<prefix>-<site>-bubble".
func bubbleName(site string) string { return site + "-bubble" }

// makeBubbles makes each site's bubble: a namespace of n with the VIP and
// 127.0.0.1 on its loopback and nothing else, where the site's drill
// copies serve at production's address without production's clients ever
// reaching them.
func (st *state) makeBubbles(ctx context.Context, n *netns.Net) error {
	vip, err := netip.ParseAddr(st.Net.VIP)
	if err != nil {
		return fmt.Errorf("the lab's service address: %w", err)
	}
	st.Net.Bubbles = map[string]string{}
	for _, l := range st.locs() {
		if !l.postgres {
			continue
		}
		ns, err := n.AddIsolated(ctx, bubbleName(l.name), vip)
		if err != nil {
			return fmt.Errorf("the drill bubble of %s: %w", l.name, err)
		}
		st.Net.Bubbles[l.name] = ns
	}
	return st.save()
}

// removeBubbles deletes the sites' bubble namespaces; the Net that made
// them would do so only when closed.
func (st *state) removeBubbles() error {
	if st.Net == nil {
		return nil
	}
	var errs []error
	for _, site := range slices.Sorted(maps.Keys(st.Net.Bubbles)) {
		ns := st.Net.Bubbles[site]
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("remove the drill bubble of %s (%s): %w: %s", site, ns, err, strings.TrimSpace(string(out))))
		}
	}
	return errors.Join(errs...)
}

// PivotCommand returns the command that runs prog with args inside site's
// drill bubble, where its copies serve on the lab's service address (lab
// up --netns only): through ip netns exec, which execs prog in its place.
func PivotCommand(ctx context.Context, o Options, site, prog string, args ...string) (*exec.Cmd, error) {
	st, err := loadState(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := st.knownLocation(site); err != nil {
		return nil, err
	}
	if st.Net == nil {
		return nil, fmt.Errorf("the lab in %s has no network, so no bubble namespace: its drill copies listen on %s's bubble address, reachable from here (lab up --netns for a namespaced lab)", st.Dir, site)
	}
	ns, ok := st.Net.Bubbles[site]
	if !ok {
		return nil, fmt.Errorf("%s has no drill bubble in the lab (sites with one: %s)", site, strings.Join(slices.Sorted(maps.Keys(st.Net.Bubbles)), ", "))
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, prog}, args...)...), nil
}

// newNetState describes n, which must have a namespace for each of locs
// and the router.
func newNetState(n *netns.Net, owned bool, locs []location) (*netState, error) {
	ns := &netState{Prefix: n.Prefix(), Subnet: n.Subnet().String(), HostAddr: n.HostAddr().String(),
		Namespaces: map[string]string{}, Addrs: map[string]string{}, Owned: owned}
	for _, name := range netNames(locs) {
		if !slices.Contains(n.Names(), name) {
			return nil, fmt.Errorf("the lab's network %s has no namespace for %s (it has %s): create it with the names of Options.NetNames",
				n.Prefix(), name, strings.Join(n.Names(), ", "))
		}
		ns.Namespaces[name] = n.Namespace(name)
		ns.Addrs[name] = n.Addr(name).String()
	}
	ns.VIP = vip(ns.Subnet)
	return ns, nil
}

// NetNames are the namespaces the default lab's network needs: one per
// location, and the router in front of the sites.
func NetNames() []string { return Options{}.NetNames() }

// NetNames are the namespaces the network of a lab with o needs.
func (o Options) NetNames() []string { return netNames(labLocations(o.Sites)) }

func netNames(locs []location) []string {
	var names []string
	for _, l := range locs {
		names = append(names, l.name)
	}
	return append(names, "router")
}

// locs returns the lab's locations with the addresses they have in this
// lab: their loopback addresses, or their namespaces' addresses.
func (st *state) locs() []location {
	out := labLocations(st.Sites)
	if st.Net != nil {
		for i := range out {
			out[i].ip = st.Net.Addrs[out[i].name]
		}
	}
	return out
}

// clientNets are the networks the lab's databases admit clients from
// besides loopback: the bridge's, and the VIP, the address clients inside
// a bubble come from (the only one there besides loopback).
func (st *state) clientNets() []string {
	if st.Net == nil {
		return nil
	}
	return []string{st.Net.Subnet, st.Net.VIP + "/32"}
}

// wrap makes cmd run in site's namespace when the lab has a network, with
// nsenter, which execs the program (its PID stays the one the lab records)
// and drops to the user cmd was to run as only after entering the
// namespace.
func (st *state) wrap(site string, cmd *exec.Cmd) *exec.Cmd {
	if st.Net == nil || site == "" || cmd.Err != nil {
		return cmd
	}
	args := []string{"--net=/run/netns/" + st.Net.Namespaces[site]}
	if a := cmd.SysProcAttr; a != nil && a.Credential != nil {
		args = append(args, "-S", strconv.Itoa(int(a.Credential.Uid)), "-G", strconv.Itoa(int(a.Credential.Gid)))
		a.Credential = nil
	}
	args = append(append(args, "--", cmd.Path), cmd.Args[1:]...)
	w := exec.Command("nsenter", args...)
	w.Env, w.Dir, w.Stdin, w.Stdout, w.Stderr, w.SysProcAttr = cmd.Env, cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.SysProcAttr
	if _, err := exec.LookPath("nsenter"); err != nil {
		w.Err = fmt.Errorf("the lab's network needs nsenter (apt-get install util-linux): %w", err)
	}
	return w
}

// initDatabase runs setup (creating group's primary or cloning its
// standby) here, or, when the lab has a network, as `siteflip lab db-init
// --group GROUP SITE` in the site's namespace: the setup starts a server
// on the site's address, which exists only there.
func (st *state) initDatabase(ctx context.Context, exe, group string, in postgres.Instance, setup func() error) error {
	if st.Net == nil {
		return setup()
	}
	cmd := st.wrap(in.Site, exec.CommandContext(ctx, exe, "lab", "db-init", "--dir", st.Dir, "--group", group, in.Site))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("set up the database at %s in its namespace: %w\n%s", in.Site, err, out)
	}
	return nil
}

// InitDatabase creates the primary of group's database (at its preferred
// site, brussels; webshop's when group is "") or clones a standby from it
// (antwerp, liege) in the lab in o.Dir; `lab up` runs it in the site's
// namespace when the lab has a network.
func InitDatabase(ctx context.Context, o Options, group, site string) error {
	group = cmp.Or(group, demoGroup)
	st, err := loadState(o.Dir)
	if err != nil {
		return err
	}
	t, err := config.Load(filepath.Join(st.Dir, "siteflip.yaml"), driver.Types())
	if err != nil {
		return err
	}
	in, ok := st.instance(t, group, site)
	if !ok {
		return fmt.Errorf("%s has no database of %s in the lab", site, group)
	}
	replPW, err := in.Settings.ReplicationPassword()
	if err != nil {
		return err
	}
	g, _ := t.Group(group)
	if site == g.PreferredSite {
		superPW, err := in.Settings.Password()
		if err != nil {
			return err
		}
		return in.InitPrimary(ctx, superPW, replPW)
	}
	primary, _ := st.instance(t, group, g.PreferredSite)
	return in.CloneStandby(ctx, primary.Settings, replPW)
}

// bubble returns site's bubble namespace, if the lab has a network.
func (n *netState) bubble(site string) (string, bool) {
	if n == nil {
		return "", false
	}
	ns, ok := n.Bubbles[site]
	return ns, ok
}
