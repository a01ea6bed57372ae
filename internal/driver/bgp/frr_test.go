package bgp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/frr"
	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/testbed"
)

// requireFRR skips the test unless it can build namespaces and run FRR.
func requireFRR(t testing.TB) {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		t.Skipf("skipped: FRR tests need root for network namespaces (uid %d)", uid)
	}
	if err := netns.Available(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	for _, p := range []string{frr.Bin + "/zebra", frr.Bin + "/bgpd", frr.Bin + "/bfdd"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("skipped: %s missing: install FRR (apt-get install -y frr)", p)
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		t.Skip("skipped: vtysh missing: install FRR (apt-get install -y frr)")
	}
	if _, err := user.Lookup("frr"); err != nil {
		t.Skip("skipped: no user frr: install FRR (apt-get install -y frr)")
	}
}

// frrRouter is zebra and bgpd (and bfdd) running in one namespace as an
// frr.Instance in a temporary directory.
type frrRouter struct {
	t    testing.TB
	in   frr.Instance
	cmds []*exec.Cmd
	done []chan struct{}
}

// frrConf is what startFRR runs.
type frrConf struct {
	zebra, bgpd string   // configurations
	zebraArgs   []string // more arguments of zebra
	bfd         bool     // run bfdd too
	bfdd        string   // its configuration
}

// startFRR runs zebra and bgpd in the namespace of location name, and
// waits until both answer. Cleanup stops the daemons and removes their
// files.
func startFRR(t testing.TB, n *netns.Net, name string, conf frrConf) *frrRouter {
	t.Helper()
	f := &frrRouter{t: t, in: frr.Instance{Namespace: n.Namespace(name)}}
	var err error
	if f.in.Dir, err = os.MkdirTemp("", "siteflip-frr-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.stop)
	if err := os.Chmod(f.in.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	daemons := []string{"zebra", "bgpd"}
	files := map[string]string{
		"zebra.conf": "hostname " + name + "\n" + conf.zebra,
		"bgpd.conf":  conf.bgpd,
	}
	if conf.bfd {
		daemons = append(daemons, "bfdd")
		files["bfdd.conf"] = conf.bfdd
	}
	if err := f.in.WriteConfig(files); err != nil {
		t.Fatal(err)
	}
	for _, d := range daemons {
		args := f.in.Args(d)
		if d == "zebra" {
			args = append(args, conf.zebraArgs...)
		}
		cmd := n.Command(context.Background(), name, filepath.Join(frr.Bin, d), args...)
		var out testbed.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", d, err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		f.cmds, f.done = append(f.cmds, cmd), append(f.done, done)
		if err := f.in.WaitUp(t.Context(), d, done); err != nil {
			t.Fatalf("%v\n%s\n%s", err, out.String(), f.log(d))
		}
	}
	return f
}

func (f *frrRouter) log(daemon string) string {
	b, _ := os.ReadFile(f.in.Log(daemon))
	return string(b)
}

// stop ends the daemons (SIGTERM, then SIGKILL) and removes their files,
// and the state directory FRR makes for the pathspace.
func (f *frrRouter) stop() {
	if f.t.Failed() && len(f.cmds) > 1 {
		f.t.Logf("bgpd log:\n%s", f.log("bgpd"))
	}
	for i := len(f.cmds) - 1; i >= 0; i-- {
		f.cmds[i].Process.Signal(syscall.SIGTERM)
		select {
		case <-f.done[i]:
		case <-time.After(5 * time.Second):
			f.cmds[i].Process.Kill()
			<-f.done[i]
		}
	}
	if err := os.RemoveAll(f.in.Dir); err != nil {
		f.t.Error(err)
	}
	if d := f.in.StateDir(); d != "" {
		os.RemoveAll(d)
	}
}

// show runs one show command and decodes its JSON output into v.
func (f *frrRouter) show(cmd string, v any) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := f.in.Vtysh(ctx, "-c", cmd+" json")
	if err != nil {
		f.t.Fatal(err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		f.t.Fatalf("%s: %v: %s", cmd, err, out)
	}
}

// waitFor polls cond until it holds, for up to 30 s, and fails the test
// with the state cond last reported.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	if !testbed.Poll(30*time.Second, func() (ok bool) { ok, last = cond(); return ok }) {
		t.Fatalf("%s: not reached after 30 s; last: %s", what, last)
	}
}

// bgpPath is a path of `show ip bgp PREFIX json` (and of the VPN and VRF
// variants).
type bgpPath struct {
	ASPath struct {
		String string `json:"string"`
		Length int    `json:"length"`
	} `json:"aspath"`
	Valid    bool `json:"valid"`
	Bestpath *struct {
		Overall bool `json:"overall"`
	} `json:"bestpath"`
	ExtendedCommunity *struct {
		String string `json:"string"`
	} `json:"extendedCommunity"`
	Nexthops []struct {
		IP string `json:"ip"`
	} `json:"nexthops"`
	Peer struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
}

func (p bgpPath) best() bool { return p.Bestpath != nil && p.Bestpath.Overall }

func (p bgpPath) String() string {
	s := fmt.Sprintf("from %s as-path %q", p.Peer.PeerID, p.ASPath.String)
	if p.ExtendedCommunity != nil {
		s += " " + p.ExtendedCommunity.String
	}
	if p.best() {
		s += " best"
	}
	return s
}

// bgpPaths returns FRR's paths to the prefix in the default instance.
func (f *frrRouter) bgpPaths(p netip.Prefix) []bgpPath {
	f.t.Helper()
	var out struct {
		Paths []bgpPath `json:"paths"`
	}
	f.show("show ip bgp "+p.String(), &out)
	return out.Paths
}

// bestVia returns the peer FRR's best path to the prefix comes from, or
// the zero Addr.
func bestVia(paths []bgpPath) netip.Addr {
	for _, p := range paths {
		if p.best() {
			a, _ := netip.ParseAddr(p.Peer.PeerID)
			return a
		}
	}
	return netip.Addr{}
}

// fibVia returns the next hops of the route zebra installed in the kernel
// for the prefix.
func (f *frrRouter) fibVia(p netip.Prefix) []netip.Addr {
	f.t.Helper()
	var out map[string][]struct {
		Protocol  string `json:"protocol"`
		Selected  bool   `json:"selected"`
		Installed bool   `json:"installed"`
		Nexthops  []struct {
			IP     string `json:"ip"`
			Active bool   `json:"active"`
			FIB    bool   `json:"fib"`
		} `json:"nexthops"`
	}
	f.show("show ip route "+p.String(), &out)
	var via []netip.Addr
	for _, r := range out[p.String()] {
		if !r.Installed {
			continue
		}
		for _, nh := range r.Nexthops {
			if a, err := netip.ParseAddr(nh.IP); err == nil && nh.FIB {
				via = append(via, a)
			}
		}
	}
	return via
}

// routeWatch follows the kernel's routing table of one namespace through
// `ip monitor route`, which reports zebra's change the moment it lands:
// that is when the router forwards differently.
type routeWatch struct {
	prefix netip.Prefix
	cmd    *exec.Cmd
	done   chan struct{}

	mu      sync.Mutex
	changed *sync.Cond
	via     []netip.Addr // current next hops of the prefix, nil when none
	at      time.Time    // when via last changed
	nexthop map[string]netip.Addr
	lines   []string // what ip monitor printed, for the log of a failed test
}

// watchRoutes starts following the prefix's route in the namespace.
func watchRoutes(t testing.TB, ns string, prefix netip.Prefix) *routeWatch {
	t.Helper()
	w := &routeWatch{prefix: prefix, done: make(chan struct{}), nexthop: map[string]netip.Addr{}}
	w.changed = sync.NewCond(&w.mu)
	w.cmd = exec.Command("ip", "-n", ns, "-o", "monitor", "route", "nexthop")
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("ip monitor: %v", err)
	}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.line(sc.Text(), time.Now())
		}
	}()
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		<-w.done
		w.cmd.Wait()
		if t.Failed() || os.Getenv("BGP_DEBUG") != "" {
			t.Logf("ip monitor in %s:\n%s", ns, strings.Join(w.lines, "\n"))
		}
	})
	return w
}

// line reads one line of ip monitor: a nexthop object ("id 12 via A dev
// X ...") or a route ("10.77.0.10 nhid 12 via A dev X proto bgp ...",
// "10.77.0.10 nhid 13 proto bgp" with a group, "Deleted 10.77.0.10 ...").
func (w *routeWatch) line(l string, at time.Time) {
	f := strings.Fields(l)
	deleted := len(f) > 0 && f[0] == "Deleted"
	if deleted {
		f = f[1:]
	}
	field := func(key string) string {
		for i := 0; i+1 < len(f); i++ {
			if f[i] == key {
				return f[i+1]
			}
		}
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, at.Format("15:04:05.000 ")+l)
	if len(f) > 1 && f[0] == "id" {
		if a, err := netip.ParseAddr(field("via")); err == nil && !deleted {
			w.nexthop[f[1]] = a
		}
		return
	}
	if len(f) == 0 || (f[0] != w.prefix.String() && f[0] != w.prefix.Addr().String()) {
		return
	}
	var via []netip.Addr
	if !deleted {
		if a, err := netip.ParseAddr(field("via")); err == nil {
			via = []netip.Addr{a}
		} else if a, ok := w.nexthop[field("nhid")]; ok {
			via = []netip.Addr{a}
		} else {
			via = []netip.Addr{} // present, next hop unknown (a group)
		}
	}
	w.via, w.at = via, at
	w.changed.Broadcast()
}

// waitVia waits until the route's only next hop is want (or, for the
// zero Addr, until there is no route) and returns when that happened:
// the zero Time if it always was so.
func (w *routeWatch) waitVia(want netip.Addr, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		w.mu.Lock()
		w.changed.Broadcast()
		w.mu.Unlock()
	})
	defer timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if want.IsValid() && len(w.via) == 1 && w.via[0] == want || !want.IsValid() && w.via == nil {
			return w.at, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("route %s: next hops %v after %v, want %v", w.prefix, w.via, timeout, want)
		}
		w.changed.Wait()
	}
}
