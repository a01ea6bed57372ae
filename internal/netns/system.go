package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// ErrUnavailable is wrapped by the error of Available (and so of Create)
// when the machine cannot build a Net.
var ErrUnavailable = errors.New("network namespaces unavailable")

// netnsDir is where ip netns keeps its named namespaces.
const netnsDir = "/run/netns"

// lockPath serializes the choice of subnets among all processes of the
// machine that create nets.
const lockPath = "/run/siteflip-netns.lock"

// Available reports whether this process can build a Net, and if not, every
// reason why and what to install.
func Available() error {
	var missing []string
	if uid := os.Geteuid(); uid != 0 {
		missing = append(missing, fmt.Sprintf("not running as root (uid %d): network namespaces need root", uid))
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		missing = append(missing, "the kernel has no network namespaces (/proc/self/ns/net is missing)")
	}
	if _, err := tool("ip"); err != nil {
		missing = append(missing, "ip not found: install the Debian package iproute2 (apt-get install -y iproute2)")
	}
	if _, err := tool("nft"); err != nil {
		missing = append(missing, "nft not found: install the Debian package nftables (apt-get install -y nftables)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("netns: %w: %s", ErrUnavailable, strings.Join(missing, "; "))
	}
	return nil
}

// tool finds ip or nft, also in the sbin directories a PATH may lack.
func tool(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("netns: %w", err)
}

// run runs a command and returns its output; its error names the command
// and carries what it printed.
func run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	path, err := tool(name)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String() + string(out))
		return out, fmt.Errorf("netns: %s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return out, nil
}

func runIP(ctx context.Context, args ...string) ([]byte, error) {
	return run(ctx, nil, "ip", args...)
}

// runNft loads an nft script into the namespace ns, or into the root
// namespace when ns is "".
func runNft(ctx context.Context, ns string, script []byte) error {
	if ns == "" {
		_, err := run(ctx, script, "nft", "-f", "-")
		return err
	}
	nft, err := tool("nft")
	if err != nil {
		return err
	}
	_, err = run(ctx, script, "ip", "netns", "exec", ns, nft, "-f", "-")
	return err
}

// deleteLink deletes a network device unless it is already gone. Deleting
// one side of a veth pair deletes both.
func deleteLink(ctx context.Context, name string) error {
	if _, err := net.InterfaceByName(name); err != nil {
		return nil
	}
	_, err := runIP(ctx, "link", "del", name)
	return err
}

// deleteNamespace deletes a named namespace unless it is already gone.
func deleteNamespace(ctx context.Context, ns string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := runIP(ctx, "netns", "del", ns)
	return err
}

// lockSubnets takes the machine-wide lock on choosing subnets.
func lockSubnets() (unlock func(), err error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("netns: subnet lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("netns: subnet lock %s: %w", lockPath, err)
	}
	return func() { f.Close() }, nil
}

// candidates are the ranges a subnet is picked from, in order.
var candidates = []netip.Prefix{
	netip.MustParsePrefix("10.200.0.0/16"),
	netip.MustParsePrefix("172.30.0.0/16"),
}

// pickSubnet checks want against the machine's addresses and routes, or
// picks the first free /24 of the candidates when want is the zero value.
func pickSubnet(ctx context.Context, want netip.Prefix) (netip.Prefix, error) {
	addrs, err := runIP(ctx, "-4", "-o", "addr", "show")
	if err != nil {
		return netip.Prefix{}, err
	}
	routes, err := runIP(ctx, "-4", "route", "show", "table", "all")
	if err != nil {
		return netip.Prefix{}, err
	}
	used := append(parseAddrs(addrs), parseRoutes(routes)...)
	if want.IsValid() {
		if p, ok := overlap(want, used); ok {
			return netip.Prefix{}, fmt.Errorf("netns: subnet %s overlaps %s, already on this machine", want, p)
		}
		return want, nil
	}
	if p, ok := firstFree(candidates, used); ok {
		return p, nil
	}
	return netip.Prefix{}, fmt.Errorf("netns: no free /24 in %v: every one overlaps an address or route on this machine; set Options.Subnet", candidates)
}

// firstFree returns the first /24 of the ranges that overlaps none of used.
func firstFree(ranges, used []netip.Prefix) (netip.Prefix, bool) {
	for _, r := range ranges {
		for p := netip.PrefixFrom(r.Addr(), 24); r.Contains(p.Addr()); p = next24(p) {
			if _, ok := overlap(p, used); !ok {
				return p, true
			}
		}
	}
	return netip.Prefix{}, false
}

func next24(p netip.Prefix) netip.Prefix {
	a := p.Addr().As4()
	if a[2] == 255 {
		a[1]++
		a[2] = 0
	} else {
		a[2]++
	}
	return netip.PrefixFrom(netip.AddrFrom4(a), 24)
}

// overlap returns the first of used that overlaps p. Default routes do not
// count: everything overlaps them.
func overlap(p netip.Prefix, used []netip.Prefix) (netip.Prefix, bool) {
	for _, u := range used {
		if u.Bits() > 0 && u.Overlaps(p) {
			return u, true
		}
	}
	return netip.Prefix{}, false
}

// parseAddrs reads the networks of `ip -4 -o addr show`, lines like
// "4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0" or
// "6: wg0    inet 10.1.0.7 peer 10.1.0.0/24 scope global wg0".
func parseAddrs(out []byte) []netip.Prefix {
	var ps []netip.Prefix
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "peer" {
				if p, ok := parseNet(f[i+1]); ok {
					ps = append(ps, p)
				}
			}
		}
	}
	return ps
}

// parseNet reads "10.1.0.0/16" or "10.1.0.7" (a /32).
func parseNet(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is4() {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		return netip.PrefixFrom(a, 32), true
	}
	return netip.Prefix{}, false
}

// routeTypes may precede the destination in `ip route` output.
var routeTypes = map[string]bool{
	"unicast": true, "local": true, "broadcast": true, "multicast": true, "anycast": true,
	"unreachable": true, "blackhole": true, "prohibit": true, "throw": true, "nat": true,
}

// parseRoutes reads the destinations of `ip -4 route show table all`, lines
// like "10.1.0.0/16 via 192.0.2.1 dev eth0" or "local 192.0.2.2 dev eth0
// table local ...".
func parseRoutes(out []byte) []netip.Prefix {
	var ps []netip.Prefix
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 0 && routeTypes[f[0]] {
			f = f[1:]
		}
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		if p, ok := parseNet(f[0]); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// Sweep removes what nets with the given prefix left behind when their
// process died before Close: namespaces, veths, the bridge and the root
// namespace's nftables table. Processes still running inside those
// namespaces are left alone. Sweep must not run while a live Net uses the
// prefix.
func Sweep(prefix string) error {
	if len(prefix) > maxPrefix || !prefixRE.MatchString(prefix) {
		return fmt.Errorf("netns: sweep: prefix %q: want 1 to %d lowercase letters and digits, beginning with a letter", prefix, maxPrefix)
	}
	if err := Available(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	links, err := runIP(ctx, "-o", "link", "show")
	if err != nil {
		return err
	}
	for _, l := range sweptLinks(prefix, links) {
		if err := deleteLink(ctx, l); err != nil {
			errs = append(errs, err)
		}
	}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("netns: sweep: %w", err))
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			if err := deleteNamespace(ctx, e.Name()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	tables, err := run(ctx, nil, "nft", "list", "tables", "inet")
	if err != nil {
		errs = append(errs, err)
	} else if hasTable(tables, prefix) {
		if err := runNft(ctx, "", dropTable(prefix)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sweptLinks returns the devices of `ip -o link show` that a net with the
// prefix creates in the root namespace: "<prefix>br" and "<prefix>v<i>".
// Such a name splits into prefix and suffix in one way only ("br", or 'v'
// and all the trailing digits), so another prefix's devices never match.
func sweptLinks(prefix string, out []byte) []string {
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `(br|v[0-9]+)$`)
	var names []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if re.MatchString(name) {
			names = append(names, name)
		}
	}
	return names
}

func hasTable(out []byte, name string) bool {
	for line := range strings.Lines(string(out)) {
		if strings.TrimSpace(line) == "table inet "+name {
			return true
		}
	}
	return false
}
