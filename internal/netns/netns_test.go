package netns

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/testbed"
)

// helperEnv makes the test binary act as the probe that runs inside a
// namespace (see probeMain).
const helperEnv = "SITEFLIP_NETNS_PROBE"

// probePort is where every probe listens, TCP and UDP, in its namespace.
const probePort = 7070

// dialTimeout bounds a probe's connection attempt; a cut link shows as a
// timeout, so it is the cost of every check that expects a cut.
const dialTimeout = 400 * time.Millisecond

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		probeMain()
		return
	}
	os.Exit(m.Run())
}

// probeMain serves TCP and counts UDP datagrams on probePort, and answers
// one command per line on stdin:
//
//	dial ADDR:PORT...   → "ok" or "fail" for each, in order
//	send ADDR:PORT N    → sends N UDP datagrams, then "sent"
//	count               → datagrams received since the last count, once
//	                      none has come for 30 ms
func probeMain() {
	ln, err := net.Listen("tcp4", fmt.Sprintf(":%d", probePort))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	go serveTCP(ln)
	pc, err := net.ListenPacket("udp4", fmt.Sprintf(":%d", probePort))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var received, last atomic.Int64 // datagrams, UnixNano of the last one
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			received.Add(1)
			last.Store(time.Now().UnixNano())
		}
	}()
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) > 1 && f[0] == "dial":
			fmt.Println(strings.Join(dialAll(f[1:]), " "))
		case len(f) == 3 && f[0] == "send":
			count, _ := strconv.Atoi(f[2])
			if err := sendUDP(f[1], count); err != nil {
				fmt.Println("error", err)
				continue
			}
			fmt.Println("sent")
		case len(f) == 1 && f[0] == "count":
			// Wait for the datagrams still in flight to stop coming.
			for time.Since(time.Unix(0, last.Load())) < 30*time.Millisecond {
				time.Sleep(10 * time.Millisecond)
			}
			fmt.Println(received.Swap(0))
		default:
			fmt.Println("error unknown command", in.Text())
		}
	}
}

func serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, "ok\n")
		c.Close()
	}
}

// dialAll connects to every address at once and says which answered.
func dialAll(addrs []string) []string {
	res := make([]string, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() {
			res[i] = "fail"
			c, err := net.DialTimeout("tcp4", a, dialTimeout)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(dialTimeout))
			if line, _ := bufio.NewReader(c).ReadString('\n'); line == "ok\n" {
				res[i] = "ok"
			}
		})
	}
	wg.Wait()
	return res
}

func sendUDP(addr string, count int) error {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range count {
		if _, err := fmt.Fprintf(c, "%d", i); err != nil {
			return err
		}
		// Paced so the receiver's socket buffer never overflows: every
		// missing datagram is one the fault dropped.
		time.Sleep(200 * time.Microsecond)
	}
	return nil
}

// probe is a probeMain process running in one location.
type probe struct {
	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Reader
}

func (p *probe) ask(line string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		return "", fmt.Errorf("probe %q: %w", line, err)
	}
	reply, err := p.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("probe %q: %w", line, err)
	}
	reply = strings.TrimSpace(reply)
	if strings.HasPrefix(reply, "error") {
		return "", fmt.Errorf("probe %q: %s", line, reply)
	}
	return reply, nil
}

func (p *probe) mustAsk(t *testing.T, line string) string {
	t.Helper()
	reply, err := p.ask(line)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

// startProbes runs a probe in every location of n.
func startProbes(t *testing.T, n *Net) map[string]*probe {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	probes := make(map[string]*probe)
	for _, name := range n.Names() {
		cmd := n.Command(t.Context(), name, exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=1")
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start probe in %s: %v", name, err)
		}
		t.Cleanup(func() {
			in.Close()
			cmd.Wait() // killed already: t.Context is done before cleanups run
		})
		p := &probe{in: in, out: bufio.NewReader(out)}
		if line, err := p.out.ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("probe in %s: %q, %v", name, line, err)
		}
		probes[name] = p
	}
	return probes
}

// link is a direction between two endpoints.
type link struct{ from, to string }

// reachability tries every direction between all endpoints (the locations
// and Host) at once and returns the ones that do not connect.
func reachability(t *testing.T, n *Net, probes map[string]*probe, hostAddr string) []link {
	t.Helper()
	ends := append(n.Names(), Host)
	addr := func(e string) string {
		if e == Host {
			return hostAddr
		}
		return netip.AddrPortFrom(n.Addr(e), probePort).String()
	}
	var mu sync.Mutex
	var blocked []link
	var wg sync.WaitGroup
	for _, from := range ends {
		var to, addrs []string
		for _, e := range ends {
			if e != from {
				to = append(to, e)
				addrs = append(addrs, addr(e))
			}
		}
		wg.Go(func() {
			res := make([]string, len(addrs))
			if from == Host {
				res = dialAll(addrs)
			} else if reply, err := probes[from].ask("dial " + strings.Join(addrs, " ")); err != nil {
				t.Error(err)
			} else {
				res = strings.Fields(reply)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, r := range res {
				if r != "ok" {
					blocked = append(blocked, link{from, to[i]})
				}
			}
		})
	}
	wg.Wait()
	slices.SortFunc(blocked, func(a, b link) int {
		return strings.Compare(a.from+" "+a.to, b.from+" "+b.to)
	})
	return blocked
}

// both returns the two directions between a and b.
func both(a, b string) []link { return []link{{a, b}, {b, a}} }

func wantBlocked(t *testing.T, n *Net, probes map[string]*probe, hostAddr string, want ...[]link) {
	t.Helper()
	w := slices.Concat(want...)
	slices.SortFunc(w, func(a, b link) int {
		return strings.Compare(a.from+" "+a.to, b.from+" "+b.to)
	})
	if got := reachability(t, n, probes, hostAddr); !slices.Equal(got, w) {
		t.Errorf("blocked links:\n got %v\nwant %v", got, w)
	}
}

// needRoot skips the test where nets cannot be built.
func needRoot(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipped: %v", err)
	}
}

func create(t *testing.T, opts Options) *Net {
	t.Helper()
	n, err := Create(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return n
}

func TestNet(t *testing.T) {
	needRoot(t)
	start := time.Now()
	n := create(t, Options{Names: []string{"brussels", "antwerp", "frankfurt", "client"}})
	t.Logf("created %s in %v: subnet %s, host %s", n.Prefix(), time.Since(start), n.Subnet(), n.HostAddr())

	// Addresses and names.
	seen := map[netip.Addr]bool{n.HostAddr(): true}
	for _, name := range n.Names() {
		a := n.Addr(name)
		if !n.Subnet().Contains(a) || seen[a] {
			t.Errorf("%s: address %v outside %v or taken twice", name, a, n.Subnet())
		}
		seen[a] = true
		if want := n.Prefix() + "-" + name; n.Namespace(name) != want {
			t.Errorf("namespace of %s = %q, want %q", name, n.Namespace(name), want)
		}
	}
	if !n.Subnet().Contains(n.HostAddr()) || n.Addr(Host) != n.HostAddr() {
		t.Errorf("host address %v, Addr(Host) %v, subnet %v", n.HostAddr(), n.Addr(Host), n.Subnet())
	}
	if n.Addr("nowhere").IsValid() {
		t.Error("Addr of an unknown location is valid")
	}
	if err := n.Command(t.Context(), "nowhere", "true").Run(); err == nil || !strings.Contains(err.Error(), "unknown location") {
		t.Errorf("command in unknown location: %v", err)
	}

	// The root namespace's side: a listener on the bridge address.
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(n.HostAddr(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveTCP(ln)
	hostAddr := ln.Addr().String()

	probes := startProbes(t, n)
	wantBlocked(t, n, probes, hostAddr) // everything reaches everything

	t.Run("cut", func(t *testing.T) {
		if err := n.Cut("brussels", "antwerp"); err != nil {
			t.Fatal(err)
		}
		wantBlocked(t, n, probes, hostAddr, both("brussels", "antwerp"))
		if err := n.Heal("antwerp", "brussels"); err != nil {
			t.Fatal(err)
		}
		wantBlocked(t, n, probes, hostAddr)
	})

	t.Run("cut host", func(t *testing.T) {
		if err := n.Cut("frankfurt", Host); err != nil {
			t.Fatal(err)
		}
		wantBlocked(t, n, probes, hostAddr, both("frankfurt", Host))
		if err := n.Heal("frankfurt", Host); err != nil {
			t.Fatal(err)
		}
		wantBlocked(t, n, probes, hostAddr)
		assertNoTables(t, n)
	})

	t.Run("isolate", func(t *testing.T) {
		// The active site cut off from the other site and the witness,
		// its clients still in reach.
		if err := n.Isolate("brussels", "client", Host); err != nil {
			t.Fatal(err)
		}
		wantBlocked(t, n, probes, hostAddr, both("brussels", "antwerp"), both("brussels", "frankfurt"))
		// Without the host among the exceptions, the host is cut too.
		if err := n.Isolate("brussels", "client"); err != nil {
			t.Fatal(err)
		}
		wantBlocked(t, n, probes, hostAddr, both("brussels", "antwerp"), both("brussels", "frankfurt"), both("brussels", Host))
		if err := n.HealAll(); err != nil {
			t.Fatal(err)
		}
		wantBlocked(t, n, probes, hostAddr)
		assertNoTables(t, n)
	})

	t.Run("loss", func(t *testing.T) {
		const sent = 300
		received := func() int {
			t.Helper()
			probes["antwerp"].mustAsk(t, fmt.Sprintf("send %s %d", netip.AddrPortFrom(n.Addr("frankfurt"), probePort), sent))
			got, err := strconv.Atoi(probes["frankfurt"].mustAsk(t, "count"))
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		if err := n.Loss("antwerp", "frankfurt", 30); err != nil {
			t.Fatal(err)
		}
		got := received()
		lost := 100 * (sent - got) / sent
		t.Logf("30 %% loss: %d of %d datagrams arrived (%d %% lost)", got, sent, lost)
		if lost < 15 || lost > 45 {
			t.Errorf("%d %% of datagrams lost, want about 30", lost)
		}
		if err := n.Heal("antwerp", "frankfurt"); err != nil {
			t.Fatal(err)
		}
		// A few may still go missing on a loaded machine (a full socket
		// buffer); the 30 % fault would lose about 90.
		if got := received(); got < sent-3 {
			t.Errorf("healed: %d of %d datagrams arrived", got, sent)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, err := range []error{
			n.Cut("brussels", "nowhere"),
			n.Cut("brussels", "brussels"),
			n.Loss("brussels", "antwerp", 0),
			n.Loss("brussels", "antwerp", 101),
			n.Isolate("nowhere"),
			n.Isolate("brussels", "nowhere"),
		} {
			if err == nil {
				t.Error("no error")
			}
		}
	})

	t.Run("close", func(t *testing.T) {
		if err := n.Cut("client", Host); err != nil { // leaves a table in the root namespace
			t.Fatal(err)
		}
		start := time.Now()
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("closed in %v", time.Since(start))
		assertGone(t, n.Prefix())
		if err := n.Close(); err != nil {
			t.Errorf("second close: %v", err)
		}
		if err := n.Cut("brussels", "antwerp"); !errors.Is(err, ErrClosed) {
			t.Errorf("cut after close: %v, want ErrClosed", err)
		}
	})
}

// assertNoTables checks that no nftables table of n is left.
func assertNoTables(t *testing.T, n *Net) {
	t.Helper()
	for _, name := range n.Names() {
		out, err := n.Command(t.Context(), name, "nft", "list", "tables").CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("tables in %s: %q, %v", name, out, err)
		}
	}
	if out, err := run(t.Context(), nil, "nft", "list", "tables", "inet"); err != nil || hasTable(out, n.Prefix()) {
		t.Errorf("root namespace tables: %q, %v", out, err)
	}
}

// assertGone checks that nothing carrying the prefix is left on the machine.
func assertGone(t *testing.T, prefix string) {
	t.Helper()
	out, err := runIP(t.Context(), "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, prefix+"-") {
			t.Errorf("namespace left: %s", strings.TrimSpace(line))
		}
	}
	out, err = runIP(t.Context(), "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	if left := sweptLinks(prefix, out); len(left) > 0 {
		t.Errorf("links left: %v", left)
	}
	out, err = run(t.Context(), nil, "nft", "list", "tables", "inet")
	if err != nil {
		t.Fatal(err)
	}
	if hasTable(out, prefix) {
		t.Errorf("table inet %s left in the root namespace", prefix)
	}
}

func TestTwoNetsAtOnce(t *testing.T) {
	needRoot(t)
	nets := make([]*Net, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range nets {
		wg.Go(func() {
			nets[i], errs[i] = Create(t.Context(), Options{Names: []string{"a", "b"}})
		})
	}
	wg.Wait()
	for i, n := range nets {
		if n != nil {
			t.Cleanup(func() { n.Close() })
		}
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	a, b := nets[0], nets[1]
	if a.Prefix() == b.Prefix() || a.Subnet().Overlaps(b.Subnet()) {
		t.Errorf("nets collide: %s %v and %s %v", a.Prefix(), a.Subnet(), b.Prefix(), b.Subnet())
	}
	// The root namespace reaches each net's locations: a connection to a
	// closed port is refused at once rather than left unanswered.
	for _, n := range nets {
		_, err := net.DialTimeout("tcp4", netip.AddrPortFrom(n.Addr("b"), 1).String(), time.Second)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s: dial b from the root namespace: %v, want connection refused", n.Prefix(), err)
		}
	}
}

func TestCreateFailureRemovesOnlyItsOwn(t *testing.T) {
	needRoot(t)
	prefix := testPrefix(t)
	// Someone else's namespace in the way of the second location.
	theirs := prefix + "-antwerp"
	if _, err := runIP(t.Context(), "netns", "add", theirs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(context.Background(), theirs) })

	n, err := Create(t.Context(), Options{Prefix: prefix, Names: []string{"brussels", "antwerp"}})
	if err == nil {
		n.Close()
		t.Fatal("create succeeded over an existing namespace")
	}
	if msg := err.Error(); !strings.Contains(msg, "ip netns add "+theirs) || !strings.Contains(msg, "exists") {
		t.Errorf("error does not name the command and its output: %v", err)
	}
	if _, err := os.Stat(netnsDir + "/" + theirs); err != nil {
		t.Errorf("the namespace that was there before is gone: %v", err)
	}
	deleteNamespace(t.Context(), theirs)
	assertGone(t, prefix)
}

func TestSweep(t *testing.T) {
	needRoot(t)
	prefix := testPrefix(t)
	n := create(t, Options{Prefix: prefix, Names: []string{"x", "y"}})
	if err := n.Cut("x", Host); err != nil { // a table in the root namespace too
		t.Fatal(err)
	}
	// The process dies here without Close.
	if err := Sweep(prefix); err != nil {
		t.Fatal(err)
	}
	assertGone(t, prefix)
	if err := Sweep(prefix); err != nil {
		t.Errorf("second sweep: %v", err)
	}
	if err := Sweep("Bad-prefix"); err == nil {
		t.Error("sweep of an invalid prefix succeeded")
	}
}

// testPrefix returns an unused prefix and sweeps it when the test ends.
func testPrefix(t *testing.T) string {
	t.Helper()
	p, err := freePrefix([]string{"x", "y", "brussels", "antwerp"})
	if err != nil {
		t.Fatal(err)
	}
	p = "t" + p // not one Create would pick on its own
	t.Cleanup(func() {
		if err := Sweep(p); err != nil {
			t.Error(err)
		}
	})
	return p
}

// BenchmarkCreateClose measures building and removing a net of four
// locations.
func BenchmarkCreateClose(b *testing.B) {
	if err := Available(); err != nil {
		b.Skipf("skipped: %v", err)
	}
	names := []string{"brussels", "antwerp", "frankfurt", "client"}
	for b.Loop() {
		n, err := Create(b.Context(), Options{Names: names})
		if err != nil {
			b.Fatal(err)
		}
		if err := n.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", maxName+1)
	for _, tc := range []struct {
		opts Options
		want string // in the error; "" for none
	}{
		{Options{Names: []string{"a"}}, ""},
		{Options{Prefix: "sfab12", Names: []string{"brussels", "antwerp-2"}}, ""},
		{Options{Prefix: "abcdefghij", Names: []string{"a"}}, ""},
		{Options{Names: []string{"a"}, Subnet: netip.MustParsePrefix("10.9.8.0/30")}, ""},
		{Options{}, "no location names"},
		{Options{Prefix: "abcdefghijk", Names: []string{"a"}}, "prefix"},
		{Options{Prefix: "1ab", Names: []string{"a"}}, "prefix"},
		{Options{Prefix: "sf-ab", Names: []string{"a"}}, "prefix"},
		{Options{Prefix: "SF", Names: []string{"a"}}, "prefix"},
		{Options{Names: []string{"a", "a"}}, "given twice"},
		{Options{Names: []string{Host}}, "reserved"},
		{Options{Names: []string{"Brussels"}}, "lowercase"},
		{Options{Names: []string{"-a"}}, "lowercase"},
		{Options{Names: []string{long}}, "lowercase"},
		{Options{Names: []string{"a", "b"}, Subnet: netip.MustParsePrefix("10.9.8.0/30")}, "room for 2"},
		{Options{Names: []string{"a"}, Subnet: netip.MustParsePrefix("10.9.8.1/24")}, "host bits"},
		{Options{Names: []string{"a"}, Subnet: netip.MustParsePrefix("fd00::/64")}, "IPv4"},
	} {
		err := tc.opts.validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.opts, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one with %q", tc.opts, err, tc.want)
		}
	}
}

func TestPickSubnet(t *testing.T) {
	addrs := []byte(`1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\       valid_lft forever preferred_lft forever
5: sfab12br    inet 10.200.0.1/24 scope global sfab12br\       valid_lft forever preferred_lft forever
6: wg0    inet 10.200.2.7 peer 10.200.3.0/24 scope global wg0
`)
	routes := []byte(`default via 192.0.2.1 dev eth0
10.200.1.0/25 via 192.0.2.9 dev eth0
10.200.4.9 via 192.0.2.9 dev eth0
unreachable 10.200.5.0/24
local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1
broadcast 192.0.2.255 dev eth0 table local proto kernel scope link src 192.0.2.2
`)
	used := append(parseAddrs(addrs), parseRoutes(routes)...)
	r16 := netip.MustParsePrefix("10.200.0.0/16")
	for _, tc := range []struct {
		used []netip.Prefix
		want string // "" for none
	}{
		{nil, "10.200.0.0/24"},
		{used, "10.200.6.0/24"},
		{append(used, netip.MustParsePrefix("10.200.6.0/23")), "10.200.8.0/24"},
		{[]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, "10.200.0.0/24"},
		{[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "172.30.0.0/24"},
		{[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12")}, ""},
		{[]netip.Prefix{netip.MustParsePrefix("10.200.0.0/17")}, "10.200.128.0/24"},
	} {
		got, ok := firstFree(append([]netip.Prefix{r16}, candidates[1:]...), tc.used)
		if (tc.want == "") != !ok || ok && got.String() != tc.want {
			t.Errorf("used %v: got %v %v, want %q", tc.used, got, ok, tc.want)
		}
	}
	// The last /24 of a range, then nothing past it.
	all := []netip.Prefix{netip.MustParsePrefix("10.200.0.0/17"), netip.MustParsePrefix("10.200.128.0/18"),
		netip.MustParsePrefix("10.200.192.0/19"), netip.MustParsePrefix("10.200.224.0/20"),
		netip.MustParsePrefix("10.200.240.0/21"), netip.MustParsePrefix("10.200.248.0/22"),
		netip.MustParsePrefix("10.200.252.0/23"), netip.MustParsePrefix("10.200.254.0/24")}
	if got, ok := firstFree([]netip.Prefix{r16}, all); !ok || got.String() != "10.200.255.0/24" {
		t.Errorf("last /24: got %v %v", got, ok)
	}
	if got, ok := firstFree([]netip.Prefix{r16}, append(all, netip.MustParsePrefix("10.200.255.0/24"))); ok {
		t.Errorf("full range: got %v", got)
	}
}

func TestRender(t *testing.T) {
	got := string(render("sfab12", "sfab12br", map[string]int{"10.200.0.3": 100, "10.200.0.2": 30}))
	want := `table inet sfab12
delete table inet sfab12
table inet sfab12 {
	comment "siteflip netns sfab12: faults between locations"
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "sfab12br" ip saddr 10.200.0.2 numgen random mod 100 < 30 drop
		iifname "sfab12br" ip saddr 10.200.0.3 drop
	}
}
`
	if got != want {
		t.Errorf("render:\n%s\nwant:\n%s", got, want)
	}
	if got := string(render("sfab12", "", nil)); got != "table inet sfab12\ndelete table inet sfab12\n" {
		t.Errorf("render without drops: %q", got)
	}
}

func TestSweptLinks(t *testing.T) {
	out := []byte(`1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536
7: sfab12v0@if2: <BROADCAST,MULTICAST> mtu 1500 link-netns sfab12-brussels
8: sfab12br: <BROADCAST,MULTICAST,UP> mtu 1500
9: sfab12v10@if2: <BROADCAST,MULTICAST> mtu 1500
10: sfab123br: <BROADCAST,MULTICAST,UP> mtu 1500
11: sfab12v1x: <BROADCAST,MULTICAST,UP> mtu 1500
12: sfab12vv1@if3: <BROADCAST,MULTICAST,UP> mtu 1500
13: sfab12p0: <BROADCAST,MULTICAST,UP> mtu 1500
`)
	got := sweptLinks("sfab12", out)
	if want := []string{"sfab12v0", "sfab12br", "sfab12v10"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestAvailableSaysWhat(t *testing.T) {
	err := Available()
	if err == nil {
		return
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("%v does not wrap ErrUnavailable", err)
	}
	if _, lookErr := exec.LookPath("nft"); lookErr != nil && !strings.Contains(err.Error(), "apt-get install -y nftables") {
		t.Errorf("nft missing but not said: %v", err)
	}
}

// An isolated namespace has its loopback and its addresses and nothing
// else: Dialer reaches what listens in there, and only from in there;
// Close removes it with the rest.
func TestIsolated(t *testing.T) {
	needRoot(t)
	prefix := testPrefix(t)
	n, err := Create(t.Context(), Options{Prefix: prefix, Names: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	vip := netip.MustParseAddr("192.0.2.10")
	ns, err := n.AddIsolated(t.Context(), "bubble", vip)
	if err != nil {
		t.Fatal(err)
	}
	if ns != prefix+"-bubble" || n.Namespace("bubble") != ns {
		t.Errorf("namespace %q, Namespace %q: want %s-bubble", ns, n.Namespace("bubble"), prefix)
	}
	for _, name := range []string{"x", Host, "bubble", "Bad"} {
		if _, err := n.AddIsolated(t.Context(), name); err == nil {
			t.Errorf("AddIsolated(%q) succeeded", name)
		}
	}
	out, err := runIP(t.Context(), "-n", ns, "-o", "addr", "show")
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); !strings.Contains(s, "127.0.0.1/8") || !strings.Contains(s, "192.0.2.10/32") || strings.Count(s, "inet ") != 2 {
		t.Errorf("addresses in %s:\n%s", ns, s)
	}
	var lns []net.Listener
	for _, a := range []string{"192.0.2.10:0", "127.0.0.1:0"} {
		if err := Do(ns, func() error {
			ln, err := net.Listen("tcp", a)
			if err == nil {
				lns = append(lns, ln)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ln := range lns {
		defer ln.Close()
		testbed.AcceptAll(ln)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		c, err := Dialer(ns)(ctx, "tcp", ln.Addr().String())
		cancel()
		if err != nil {
			t.Errorf("dial %s in %s: %v", ln.Addr(), ns, err)
		} else {
			c.Close()
		}
		ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
		if c, err := Dialer("")(ctx, "tcp", ln.Addr().String()); err == nil {
			c.Close()
			t.Errorf("%s, listening in %s, answers from the root namespace", ln.Addr(), ns)
		}
		cancel()
	}
	if _, err := Dialer("sfnosuch-ns")(t.Context(), "tcp", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "create it with ip netns add sfnosuch-ns") {
		t.Errorf("dial in a missing namespace: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, prefix)
}
