// Package netns builds throw-away networks of several locations on one Linux
// machine, for the lab and the fault-injection tests. Each location lives in
// its own network namespace, joined by a veth pair to one bridge in the root
// namespace; the bridge has an address too, so processes in the root
// namespace reach every location directly. nftables rules inside the
// namespaces cut links or make them lossy. It drives the ip and nft commands
// and needs root.
//
// Everything a Net creates carries its prefix: the namespaces
// "<prefix>-<name>", the bridge "<prefix>br", the veths "<prefix>v<i>" (root
// side) and "<prefix>p<i>" (location side), and the nftables tables
// "inet <prefix>". Close removes all of it; Sweep removes what a crashed run
// left behind. Only the lock file /run/siteflip-netns.lock is shared: it
// keeps two nets created at the same time from picking the same subnet.
//
// Faults drop packets silently where they arrive, as a dead or bad line
// would: nothing tells the sender, so TCP notices only through its
// retransmission timer, and after a Heal a connection that was backing off
// resumes only when its next retransmission fires, typically 3–8 s after a
// cut of a few seconds. That slow recovery is what failover has to survive.
// A crashed process, which refuses connections at once, is better produced
// by killing the process than by the network.
//
// AddIsolated adds namespaces linked to nothing (a drill's bubble), and Do
// and Dialer run code inside any named namespace, for the drivers that
// serve or check a drill's copies in one.
package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Host names the root namespace wherever a location name is expected: in
// Addr, Command, Cut, Loss, Isolate and Heal. No location may be called so.
const Host = "host"

// ErrClosed is returned by the fault methods of a Net after Close.
var ErrClosed = errors.New("netns: net is closed")

// Options describe the network Create builds.
type Options struct {
	// Prefix starts the name of everything the net creates: 1 to 10
	// lowercase letters and digits, beginning with a letter. Empty picks an
	// unused one like "sf3fa2".
	Prefix string
	// Names are the locations, in the order their addresses are given:
	// lowercase letters, digits and '-', at most 32 characters, not Host.
	Names []string
	// Subnet is the IPv4 network of the bridge and the locations. The zero
	// value picks a free /24 in 10.200.0.0/16 (then 172.30.0.0/16), one that
	// overlaps no address or route already on the machine.
	Subnet netip.Prefix
}

// Net is a network built by Create. Its methods are safe for concurrent use.
type Net struct {
	prefix string
	subnet netip.Prefix
	host   netip.Addr
	names  []string
	locs   map[string]*location
	// alone are the namespaces AddIsolated made, by name: linked to
	// nothing.
	alone map[string]string

	mu     sync.Mutex
	faults map[pair]int    // percentage of packets dropped each way; 100 is a cut
	tables map[string]bool // endpoints (names or Host) whose nftables table exists
	bridge bool            // the bridge exists and is ours
	closed bool
}

type location struct {
	ns   string // network namespace
	veth string // root side of the veth pair, a port of the bridge
	peer string // location side of the veth pair
	addr netip.Addr

	madeNS, madeVeth bool // what Create made, for Close
}

const (
	maxPrefix = 10 // "<prefix>v<i>" must fit IFNAMSIZ-1 = 15 with up to 3 digits
	maxName   = 32
	maxNames  = 250
)

var (
	prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

func (o Options) validate() error {
	if o.Prefix != "" && (len(o.Prefix) > maxPrefix || !prefixRE.MatchString(o.Prefix)) {
		return fmt.Errorf("netns: prefix %q: want 1 to %d lowercase letters and digits, beginning with a letter", o.Prefix, maxPrefix)
	}
	if len(o.Names) == 0 {
		return errors.New("netns: no location names")
	}
	if len(o.Names) > maxNames {
		return fmt.Errorf("netns: %d locations: at most %d", len(o.Names), maxNames)
	}
	seen := make(map[string]bool)
	for _, name := range o.Names {
		switch {
		case name == Host:
			return fmt.Errorf("netns: location %q: the name is reserved for the root namespace", name)
		case len(name) > maxName || !nameRE.MatchString(name):
			return fmt.Errorf("netns: location %q: want 1 to %d lowercase letters, digits and '-'", name, maxName)
		case seen[name]:
			return fmt.Errorf("netns: location %q given twice", name)
		}
		seen[name] = true
	}
	if o.Subnet.IsValid() {
		if !o.Subnet.Addr().Is4() {
			return fmt.Errorf("netns: subnet %s: want IPv4", o.Subnet)
		}
		if o.Subnet.Masked() != o.Subnet {
			return fmt.Errorf("netns: subnet %s: host bits set, want %s", o.Subnet, o.Subnet.Masked())
		}
		if hosts := 1<<(32-o.Subnet.Bits()) - 2; hosts < len(o.Names)+1 {
			return fmt.Errorf("netns: subnet %s: room for %d addresses, want %d (the bridge and each location)", o.Subnet, max(hosts, 0), len(o.Names)+1)
		}
	}
	return nil
}

// Create builds the network: a namespace per location with loopback up, a
// veth from each into the bridge, an address for each location and one for
// the bridge. On failure it removes what it made and returns why. Close the
// Net when done.
func Create(ctx context.Context, opts Options) (_ *Net, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := Available(); err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		if opts.Prefix, err = freePrefix(opts.Names); err != nil {
			return nil, err
		}
	}
	n := &Net{
		prefix: opts.Prefix,
		names:  slices.Clone(opts.Names),
		locs:   make(map[string]*location),
		alone:  make(map[string]string),
		faults: make(map[pair]int),
		tables: make(map[string]bool),
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Close())
		}
	}()
	if err := n.makeBridge(ctx, opts.Subnet); err != nil {
		return nil, err
	}
	hosts := n.subnet.Addr().Next().Next() // .1 is the bridge
	for i, name := range n.names {
		l := &location{
			ns:   n.prefix + "-" + name,
			veth: n.prefix + "v" + strconv.Itoa(i),
			peer: n.prefix + "p" + strconv.Itoa(i),
			addr: hosts,
		}
		hosts = hosts.Next()
		n.locs[name] = l
		if err := n.makeLocation(ctx, l); err != nil {
			return nil, fmt.Errorf("location %s: %w", name, err)
		}
	}
	return n, nil
}

// makeBridge picks the subnet and gives the bridge its address while holding
// the machine-wide lock, so that two Creates never pick the same subnet.
func (n *Net) makeBridge(ctx context.Context, subnet netip.Prefix) error {
	unlock, err := lockSubnets()
	if err != nil {
		return err
	}
	defer unlock()
	if n.subnet, err = pickSubnet(ctx, subnet); err != nil {
		return err
	}
	n.host = n.subnet.Addr().Next()
	br := n.prefix + "br"
	if _, err := runIP(ctx, "link", "add", br, "type", "bridge"); err != nil {
		return err
	}
	n.bridge = true
	if _, err := runIP(ctx, "addr", "add", netip.PrefixFrom(n.host, n.subnet.Bits()).String(), "dev", br); err != nil {
		return err
	}
	_, err = runIP(ctx, "link", "set", br, "up")
	return err
}

func (n *Net) makeLocation(ctx context.Context, l *location) error {
	if _, err := runIP(ctx, "netns", "add", l.ns); err != nil {
		return err
	}
	l.madeNS = true
	if _, err := runIP(ctx, "link", "add", l.veth, "type", "veth", "peer", "name", l.peer, "netns", l.ns); err != nil {
		return err
	}
	l.madeVeth = true
	steps := [][]string{
		{"link", "set", l.veth, "master", n.prefix + "br", "up"},
		{"-n", l.ns, "addr", "add", netip.PrefixFrom(l.addr, n.subnet.Bits()).String(), "dev", l.peer},
		{"-n", l.ns, "link", "set", l.peer, "up"},
		{"-n", l.ns, "link", "set", "lo", "up"},
	}
	for _, args := range steps {
		if _, err := runIP(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// freePrefix returns "sf" and four random hex digits, one no bridge or
// namespace on the machine uses yet.
func freePrefix(names []string) (string, error) {
	for range 20 {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("netns: random prefix: %w", err)
		}
		p := "sf" + hex.EncodeToString(b[:])
		if !prefixInUse(p, names) {
			return p, nil
		}
	}
	return "", errors.New("netns: no unused prefix found: remove leftovers with Sweep")
}

func prefixInUse(p string, names []string) bool {
	if _, err := net.InterfaceByName(p + "br"); err == nil {
		return true
	}
	for _, name := range names {
		if _, err := os.Stat(netnsDir + "/" + p + "-" + name); err == nil {
			return true
		}
	}
	return false
}

// Prefix returns the prefix of everything the net created.
func (n *Net) Prefix() string { return n.prefix }

// Names returns the locations in the order given to Create.
func (n *Net) Names() []string { return slices.Clone(n.names) }

// Subnet returns the IPv4 network of the bridge and the locations.
func (n *Net) Subnet() netip.Prefix { return n.subnet }

// HostAddr returns the bridge's address, the one the root namespace uses to
// reach the locations and they use to reach it.
func (n *Net) HostAddr() netip.Addr { return n.host }

// Addr returns the address of a location, HostAddr for Host, and the zero
// Addr for a name the net does not have.
func (n *Net) Addr(name string) netip.Addr {
	if name == Host {
		return n.host
	}
	if l, ok := n.locs[name]; ok {
		return l.addr
	}
	return netip.Addr{}
}

// Namespace returns the network namespace of a location, or of a
// namespace AddIsolated made, for tools that take one (ip -n, vtysh -N):
// "" for Host or an unknown name.
func (n *Net) Namespace(name string) string {
	if l, ok := n.locs[name]; ok {
		return l.ns
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.alone[name]
}

// AddIsolated makes the namespace "<prefix>-<name>" with its loopback up,
// and the addrs on it besides 127.0.0.1, linked to nothing: what runs in
// there reaches, and is reached by, nothing but itself (a drill's bubble).
// It returns the namespace; Close and Sweep remove it like the others.
func (n *Net) AddIsolated(ctx context.Context, name string, addrs ...netip.Addr) (string, error) {
	switch _, loc := n.locs[name]; {
	case name == Host || loc:
		return "", fmt.Errorf("netns: isolated namespace %q: the name is taken", name)
	case len(name) > maxName || !nameRE.MatchString(name):
		return "", fmt.Errorf("netns: isolated namespace %q: want 1 to %d lowercase letters, digits and '-'", name, maxName)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return "", ErrClosed
	}
	if _, ok := n.alone[name]; ok {
		return "", fmt.Errorf("netns: isolated namespace %q made twice", name)
	}
	ns := n.prefix + "-" + name
	if _, err := runIP(ctx, "netns", "add", ns); err != nil {
		return "", err
	}
	n.alone[name] = ns
	if _, err := runIP(ctx, "-n", ns, "link", "set", "lo", "up"); err != nil {
		return "", err
	}
	for _, a := range addrs {
		if _, err := runIP(ctx, "-n", ns, "addr", "add", netip.PrefixFrom(a, a.BitLen()).String(), "dev", "lo"); err != nil {
			return "", err
		}
	}
	return ns, nil
}

// Command returns a command that runs prog inside the location's namespace
// (through ip netns exec, which execs prog in its place, so the process is
// prog itself); for Host it runs prog directly. For an unknown name the
// command fails to start. Close does not stop the processes: stop them
// first.
func (n *Net) Command(ctx context.Context, name, prog string, args ...string) *exec.Cmd {
	if name == Host {
		return exec.CommandContext(ctx, prog, args...)
	}
	l, ok := n.locs[name]
	if !ok {
		cmd := exec.CommandContext(ctx, prog, args...)
		cmd.Err = fmt.Errorf("netns: unknown location %q", name)
		return cmd
	}
	ip, err := tool("ip")
	cmd := exec.CommandContext(ctx, ip, append([]string{"netns", "exec", l.ns, prog}, args...)...)
	if err != nil {
		cmd.Err = err
	}
	return cmd
}

// Close removes every veth, namespace, bridge and nftables table the net
// created, including after a failed Create. It is safe to call more than
// once; a later call retries what an earlier one could not remove.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	clear(n.faults)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	// The veths go first and explicitly: deleting a namespace frees its
	// devices later, in the kernel's own time, and the root side of a veth
	// would linger for a while.
	for _, name := range n.names {
		l := n.locs[name]
		if l == nil {
			continue
		}
		if l.madeVeth {
			if err := deleteLink(ctx, l.veth); err != nil {
				errs = append(errs, err)
			} else {
				l.madeVeth = false
			}
		}
		if l.madeNS {
			if err := deleteNamespace(ctx, l.ns); err != nil {
				errs = append(errs, err)
			} else {
				l.madeNS = false
				delete(n.tables, name)
			}
		}
	}
	for name, ns := range n.alone {
		if err := deleteNamespace(ctx, ns); err != nil {
			errs = append(errs, err)
		} else {
			delete(n.alone, name)
		}
	}
	if n.bridge {
		if err := deleteLink(ctx, n.prefix+"br"); err != nil {
			errs = append(errs, err)
		} else {
			n.bridge = false
		}
	}
	if n.tables[Host] {
		if err := n.applyLocked(ctx, Host); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
