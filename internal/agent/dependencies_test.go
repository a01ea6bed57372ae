package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/depprobe"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/testbed"
)

func TestNextDepState(t *testing.T) {
	t0, t1 := time.Unix(100, 0).UTC(), time.Unix(105, 0).UTC()
	up := depprobe.Result{Target: "tcp 10.2.0.5:389", Reachable: true, Latency: 1500 * time.Microsecond}
	down := depprobe.Result{Target: "tcp 10.2.0.5:389", Latency: time.Second, Err: errors.New("connect: connection refused")}
	reachable := status.DependencyView{Target: "tcp 10.2.0.5:389", Reachable: true, LatencyMs: 2, CheckedAt: t0, Since: t0}
	unreachable := status.DependencyView{Target: "tcp 10.2.0.5:389", Error: "connect: connection refused", CheckedAt: t0, Since: t0}
	for _, tc := range []struct {
		name    string
		prev    depState
		known   bool
		r       depprobe.Result
		want    depState
		flipped bool
	}{
		{"first probe up: shown at once", depState{}, false, up,
			depState{view: status.DependencyView{Target: "tcp 10.2.0.5:389", Reachable: true, LatencyMs: 1.5, CheckedAt: t1, Since: t1}}, true},
		{"first probe down: shown at once", depState{}, false, down,
			depState{view: status.DependencyView{Target: "tcp 10.2.0.5:389", Error: "connect: connection refused", CheckedAt: t1, Since: t1}, failures: 1}, true},
		{"up again: Since stays", depState{view: reachable}, true, up,
			depState{view: status.DependencyView{Target: "tcp 10.2.0.5:389", Reachable: true, LatencyMs: 1.5, CheckedAt: t1, Since: t0}}, false},
		{"one failure: not yet shown", depState{view: reachable}, true, down,
			depState{view: reachable, failures: 1}, false},
		{"the second failure in a row: unreachable", depState{view: reachable, failures: 1}, true, down,
			depState{view: status.DependencyView{Target: "tcp 10.2.0.5:389", Error: "connect: connection refused", CheckedAt: t1, Since: t1}, failures: 2}, true},
		{"down again: Since stays", depState{view: unreachable, failures: 2}, true, down,
			depState{view: status.DependencyView{Target: "tcp 10.2.0.5:389", Error: "connect: connection refused", CheckedAt: t1, Since: t0}, failures: 3}, false},
		{"back: at once", depState{view: unreachable, failures: 5}, true, up,
			depState{view: status.DependencyView{Target: "tcp 10.2.0.5:389", Reachable: true, LatencyMs: 1.5, CheckedAt: t1, Since: t1}}, true},
		{"a success between failures starts the count again", depState{view: reachable, failures: 0}, true, down,
			depState{view: reachable, failures: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, flipped := nextDepState(tc.prev, tc.known, tc.r, t1)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(depState{})); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
			if flipped != tc.flipped {
				t.Errorf("flipped %v, want %v", flipped, tc.flipped)
			}
		})
	}
}

// The loop probes this site's entry of its groups' dependencies against a
// real TCP port: refused at first, then a listener appears, then it goes
// away; each change of reachability is published at once.
func TestDependencyLoop(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testbed.FreePort(t)))
	every, timeout := config.Duration(20*time.Millisecond), config.Duration(time.Second)
	dep := func(name string, sites map[string]config.DependencySite) config.Dependency {
		return config.Dependency{Name: name, Type: config.DependencyTCP, Interval: &every, Timeout: &timeout, Sites: sites}
	}
	elsewhere := config.DependencySite{Address: "192.0.2.1:389"} // never probed: not brussels'
	topo := &config.Topology{Groups: []config.Group{
		{Name: "webshop", Sites: []string{"brussels", "antwerp"}, Requires: []config.Dependency{
			dep("ldap", map[string]config.DependencySite{"brussels": {Address: addr}, "antwerp": elsewhere}),
		}},
		{Name: "billing", Sites: []string{"antwerp", "paris"}, Requires: []config.Dependency{
			dep("ldap", map[string]config.DependencySite{"antwerp": elsewhere, "paris": elsewhere}),
		}},
	}}
	var published atomic.Int32
	d := &dependencies{base: &base{topo: topo, site: &config.Site{Name: "brussels"}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics()},
		notify: func() { published.Add(1) }, state: map[string]depState{}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	view := func() status.DependencyView { return d.views()["webshop/ldap"] }
	up := func() float64 {
		v, _ := value(scrape(t, d.metrics.reg), "siteflip_dependency_up", map[string]string{"group": "webshop", "dependency": "ldap", "site": "brussels"})
		return v
	}

	// The view changes first, then the metric and the publication.
	testbed.WaitFor(t, 5*time.Second, "the first probe, published", func() bool { return published.Load() > 0 })
	v := view()
	if v.Reachable || !strings.Contains(v.Error, "connection refused") || v.Target != "tcp "+addr || v.Group != "webshop" || v.Dependency != "ldap" || v.Type != "tcp" {
		t.Fatalf("first probe of a closed port: %+v; want webshop/ldap tcp %s unreachable, connection refused", v, addr)
	}
	if got := d.views(); len(got) != 1 {
		t.Errorf("views %v, want webshop/ldap only: billing is not a group of brussels", got)
	}
	if n := published.Load(); n != 1 || up() != 0 {
		t.Errorf("after the first probe: %d publications asked, up %v; want 1, 0", n, up())
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	testbed.AcceptAll(ln)
	testbed.WaitFor(t, 5*time.Second, "reachable once the port listens, published", func() bool { return published.Load() > 1 })
	if v := view(); v.Error != "" || v.LatencyMs <= 0 || published.Load() != 2 || up() != 1 {
		t.Errorf("reachable: %+v, %d publications asked, up %v; want no error, a latency, 2, 1", v, published.Load(), up())
	}
	since := view().Since
	testbed.WaitFor(t, 5*time.Second, "a few probes more", func() bool { return view().CheckedAt.After(since.Add(60 * time.Millisecond)) })
	if n := published.Load(); n != 2 || view().Since != since {
		t.Errorf("still reachable: %d publications asked, since %v; want 2, %v (no publication when nothing flips)", n, view().Since, since)
	}

	ln.Close()
	testbed.WaitFor(t, 5*time.Second, "unreachable once the port closes, published", func() bool { return published.Load() > 2 })
	if v := view(); !strings.Contains(v.Error, "connection refused") || !v.Since.After(since) || published.Load() != 3 || up() != 0 {
		t.Errorf("unreachable: %+v, %d publications asked, up %v; want connection refused, a new Since, 3, 0", v, published.Load(), up())
	}
}
