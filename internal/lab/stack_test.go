package lab

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver/script"
	"github.com/siteflip/siteflip/internal/driver/service"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/testbed"
)

// TestStack: webshop as a web stack (storage, an app per site, HAProxy in
// front, or the apps directly where HAProxy is not installed) moved as one
// by a switchover: a client ordering over HTTP all along loses no
// acknowledged order, the run shows what the storage script and the app
// service did, and lab down stops the apps and HAProxy with the rest.
func TestStack(t *testing.T) {
	skipUnlessLab(t)
	o, topo, c := labUpOptions(t, Options{Stack: true})
	st, err := loadState(o.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Stack.Proxy == "" {
		t.Log("no HAProxy here: ordering at the apps directly")
	}
	waitStatus(t, c, 60*time.Second, "protected at brussels", protectedAt("brussels"))
	orders := startOrdering(t, o.Dir, st.Stack.urls(st.locs()))
	testbed.WaitFor(t, 20*time.Second, "orders placed at brussels", func() bool { return orders.count("brussels") > 20 })

	r := runAndWait(t, c, api.RunRequest{Group: demoGroup, Action: plan.Switchover, To: "antwerp"})
	if r.State != plan.RunSucceeded {
		t.Fatalf("switchover %s: %s", r.State, r.Error)
	}
	// The run moved the storage and the app with the database, and shows
	// what their commands said.
	for _, want := range []struct {
		kind           plan.Kind
		resource, site string
		key, output    string
	}{
		{plan.Fence, appResource, "brussels", resource.OutputStdout, "stopped the app at brussels"},
		{plan.Fence, appResource, "brussels", service.OutputStopped, "true"},
		{plan.Fence, storageResource, "brussels", resource.OutputStdout, "storage at brussels: read-only, was read-write (fence step of switchover " + r.ID},
		{plan.Promote, storageResource, "antwerp", resource.OutputStdout, "storage at antwerp: read-write, was read-only (promote step of switchover " + r.ID},
		{plan.Promote, appResource, "antwerp", resource.OutputStdout, "started the app at antwerp"},
		{plan.Promote, appResource, "antwerp", service.OutputHealth, "HTTP 200"},
		{plan.Rejoin, storageResource, "brussels", resource.OutputStdout, "storage at brussels: read-only already"},
		{plan.Rejoin, appResource, "brussels", service.OutputStopped, "true"},
	} {
		i := stepOf(r, want.kind, want.resource, want.site)
		if i < 0 {
			t.Errorf("the switchover has no %s step of %s at %s", want.kind, want.resource, want.site)
			continue
		}
		s := r.Steps[i]
		t.Logf("%s of %s at %s: %s %q", want.kind, want.resource, want.site, want.key, s.Output[want.key])
		if s.State != plan.StepDone || !strings.Contains(s.Output[want.key], want.output) {
			t.Errorf("%s of %s at %s: %s, %s %q; want %s with %q", want.kind, want.resource, want.site, s.State, want.key, s.Output[want.key], plan.StepDone, want.output)
		}
	}
	if st.Stack.Proxy != "" {
		if i := stepOf(r, plan.Promote, proxyResource, "antwerp"); i < 0 || r.Steps[i].State != plan.StepDone {
			t.Errorf("the switchover did not move HAProxy's traffic to antwerp (step %d)", i)
		}
	}

	testbed.WaitFor(t, 30*time.Second, "orders placed at antwerp", func() bool { return orders.count("antwerp") > 20 })
	orders.stop()
	if lost := orders.lost(t, topo); len(lost) > 0 {
		t.Errorf("the switchover lost %d acknowledged orders: %v", len(lost), lost[:min(len(lost), 10)])
	}
	t.Logf("orders acknowledged: %d at brussels, %d at antwerp", orders.count("brussels"), orders.count("antwerp"))

	for site, want := range map[string]string{"brussels": StorageReadOnly, "antwerp": StorageReadWrite} {
		if mode, err := readStorage(o.Dir, site); mode != want {
			t.Errorf("storage at %s is %q (%v), want %s", site, mode, err, want)
		}
	}
	if _, ok := st.app("brussels"); ok {
		t.Error("the app still runs at brussels")
	}
	if _, ok := st.app("antwerp"); !ok {
		t.Error("the app does not run at antwerp")
	}
	waitStatus(t, c, 30*time.Second, "protected at antwerp, app and proxy there", func(s status.Status) bool {
		return protectedAt("antwerp")(s)
	})

	// An app started by hand where the group is not active (a host that
	// came back, a service manager) is stopped by that site's agent.
	if err := Service(t.Context(), Options{Dir: o.Dir, Exe: o.Exe, Out: io.Discard}, "start", "brussels", appResource); err != nil {
		t.Fatal(err)
	}
	testbed.WaitFor(t, 30*time.Second, "brussels' agent to stop the app started there by hand, and say why", func() bool {
		b, _ := os.ReadFile(filepath.Join(o.Dir, "brussels", "agent.log"))
		return strings.Contains(string(b), "it runs at a site that is not its group's active site")
	})
	if _, ok := st.app("brussels"); ok {
		t.Error("the app started by hand at brussels still runs")
	}

	if err := Down(o); err != nil {
		t.Fatal(err)
	}
	if procs := processesOf(t, o.Dir); len(procs) > 0 {
		t.Errorf("processes left after lab down: %v", procs)
	}
}

// TestStackTopology: the stack adds its resources to webshop, every
// command this binary as an argument list, and HAProxy's configuration has
// the active site's server ready; without the stack, webshop is what it
// was.
func TestStackTopology(t *testing.T) {
	binDir := pgBinDir()
	if binDir == "" {
		t.Skip("PostgreSQL server binaries are not installed (apt-get install postgresql-15): the topology names them")
	}
	const exe = "/opt/siteflip/bin/siteflip"
	for _, tc := range []struct {
		name      string
		stack     *stackState
		resources []string
	}{
		{"without", nil, []string{"db", "name", "recent-orders", "name-answers"}},
		{"without a proxy", newStackState(locations, false), []string{"db", "storage", "app", "name", "recent-orders", "name-answers"}},
		{"with a proxy", newStackState(locations, true), []string{"db", "storage", "app", "lb", "name", "recent-orders", "name-answers"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			topo, err := writeFiles(dir, binDir, locations, groupOptions{postgres: true, stack: tc.stack, exe: exe})
			if err != nil {
				t.Fatal(err)
			}
			g, _ := topo.Group(demoGroup)
			var got []string
			by := map[string]config.Resource{}
			for _, r := range g.Resources {
				got = append(got, r.Name)
				by[r.Name] = r
			}
			if diff := cmp.Diff(tc.resources, got); diff != "" {
				t.Fatalf("webshop's resources (-want +got):\n%s", diff)
			}
			if tc.stack == nil {
				return
			}
			if diff := cmp.Diff([]string{"db", "storage"}, by["app"].DependsOn); diff != "" {
				t.Errorf("app depends on (-want +got):\n%s", diff)
			}
			app := by["app"].Settings["antwerp"].(*service.Settings)
			if diff := cmp.Diff([]string{exe, "lab", "service", "start", "--dir", dir, "--site", "antwerp", "app"}, app.Start); diff != "" || app.Shell {
				t.Errorf("app's start at antwerp (shell %v, -want +got):\n%s", app.Shell, diff)
			}
			if h := app.Health; h == nil || h.HTTP == nil || h.HTTP.URL != "http://127.0.2.1:8080/healthz" {
				t.Errorf("app's health at antwerp: %+v", h)
			}
			storage := by["storage"].Settings["brussels"].(*script.Settings)
			for _, c := range []struct {
				kind string
				argv []string
				mode string
			}{{"fence", storage.Fence, StorageReadOnly}, {"promote", storage.Promote, StorageReadWrite},
				{"rejoin", storage.Rejoin, StorageReadOnly}, {"unfence", storage.Unfence, StorageReadWrite}} {
				want := []string{exe, "lab", "storage", "--dir", dir, "--site", "brussels", c.mode}
				if diff := cmp.Diff(want, c.argv); diff != "" || storage.Shell {
					t.Errorf("storage's %s at brussels (-want +got):\n%s", c.kind, diff)
				}
			}
			if tc.stack.Proxy == "" {
				return
			}
			if diff := cmp.Diff([]string{"app"}, by["lb"].DependsOn); diff != "" {
				t.Errorf("lb depends on (-want +got):\n%s", diff)
			}
			cfg := haproxyConfig(dir, locations, tc.stack, "brussels")
			for _, line := range []string{"    bind 127.0.4.1:8080\n", "    server brussels 127.0.1.1:8080 check inter 250ms\n",
				"    server antwerp 127.0.2.1:8080 check inter 250ms disabled\n", "    stats socket " + haproxySocket(dir) + " level admin\n"} {
				if !strings.Contains(cfg, line) {
					t.Errorf("haproxy.cfg lacks %q:\n%s", line, cfg)
				}
			}
		})
	}
}

// stepOf is the index of the run's step of kind on resource at site, or
// -1.
func stepOf(r plan.Run, kind plan.Kind, resource, site string) int {
	for i, s := range r.Plan.Steps {
		if s.Kind == kind && s.Resource == resource && s.Site == site {
			return i
		}
	}
	return -1
}

// ordering places orders over HTTP with the lab's web writer, one every
// 10ms, and remembers every acknowledged one and the site whose app placed
// it.
type ordering struct {
	halt context.CancelFunc
	done chan struct{}

	mu     sync.Mutex
	acked  []int64
	bySite map[string]int
}

func startOrdering(t *testing.T, dir string, urls []string) *ordering {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	o := &ordering{halt: cancel, done: make(chan struct{}), bySite: map[string]int{}}
	w := Writer{Dir: dir, URLs: urls, Interval: 10 * time.Millisecond, Out: testWriter{t}, Acked: func(id int64, server string) {
		site, _, _ := strings.Cut(server, " (")
		o.mu.Lock()
		defer o.mu.Unlock()
		o.acked = append(o.acked, id)
		o.bySite[site]++
	}}
	go func() {
		defer close(o.done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("web writer: %v", err)
		}
	}()
	t.Cleanup(o.stop)
	return o
}

func (o *ordering) stop() {
	o.halt()
	<-o.done
}

// count is how many orders the app at site acknowledged.
func (o *ordering) count(site string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.bySite[site]
}

// lost returns the acknowledged orders the group's primary does not have.
func (o *ordering) lost(t *testing.T, topo *config.Topology) []int64 {
	t.Helper()
	o.mu.Lock()
	ids := append([]int64(nil), o.acked...)
	o.mu.Unlock()
	dsn, err := WriterDSN(topo)
	if err != nil {
		t.Fatal(err)
	}
	return missingIDs(t, dsn, "orders", ids)
}
