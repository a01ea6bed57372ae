package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	mdns "github.com/miekg/dns"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/testbed"
)

// built is the binary the package's labs run, built once for all of them:
// a build checks the whole module even when nothing changed, which took
// seconds for every lab.
var built struct {
	sync.Mutex
	dir, exe string
}

// buildSiteflip builds the binary the lab runs for its agents and writer,
// the first time it is asked; TestMain removes it.
func buildSiteflip(t testing.TB) string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	if built.exe != "" {
		return built.exe
	}
	dir, err := os.MkdirTemp("", "siteflip-lab-bin-")
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "siteflip")
	cmd := exec.Command("go", "build", "-o", exe, "github.com/siteflip/siteflip/cmd/siteflip")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("build siteflip: %v\n%s", err, out)
	}
	built.dir, built.exe = dir, exe
	return exe
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// labDir returns a fresh directory for a lab that the postgres OS user can
// reach (t.TempDir is private to root).
func labDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(testbed.SharedDir(t, "siteflip-labtest-"), "lab")
}

func skipUnlessLab(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a whole lab (three agents, two PostgreSQL servers); skipped with -short")
	}
	if pgBinDir() == "" {
		t.Skip("PostgreSQL server binaries are not installed (apt-get install postgresql-15)")
	}
}

// failpointEnvForTest is the agent's test-hook variable.
const failpointEnvForTest = "SITEFLIP_FAILPOINT"

// labUp starts a lab and makes sure it is torn down, whatever happens.
func labUp(t testing.TB) (Options, *config.Topology, *api.Client) {
	t.Helper()
	return labUpWith(t, nil)
}

// labUpWith starts a lab whose agents get env added to their environment.
func labUpWith(t testing.TB, env []string) (Options, *config.Topology, *api.Client) {
	t.Helper()
	return labUpOptions(t, Options{AgentEnv: env})
}

// labUpOptions starts a lab with o (its directory, binary and output
// filled in) and makes sure it is torn down, whatever happens.
func labUpOptions(t testing.TB, o Options) (Options, *config.Topology, *api.Client) {
	t.Helper()
	o.Dir, o.Exe, o.Out = labDir(t), buildSiteflip(t), testWriter{t}
	t.Cleanup(func() {
		if t.Failed() {
			logTails(t, o.Dir, 60)
		}
		if _, err := os.Stat(filepath.Join(o.Dir, stateFile)); err == nil {
			if err := Down(o); err != nil {
				t.Errorf("lab down in cleanup: %v", err)
			}
		}
	})
	if err := Up(context.Background(), o); err != nil {
		logTails(t, o.Dir, 20)
		t.Fatalf("lab up: %v", err)
	}
	topo, c, err := Open(o.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return o, topo, c
}

// TestLab is the lab's life: up, a power cut at the active site, heal,
// down; with the status truthful at every stage.
func TestLab(t *testing.T) {
	skipUnlessLab(t)
	o, topo, c := labUp(t)

	st := waitStatus(t, c, 30*time.Second, "lab healthy", func(st status.Status) bool { return unhealthy(st) == "" })
	waitFor(t, 5*time.Second, "antwerp's agent to answer "+DNSName+" with brussels' address", func() bool {
		return askName(t, "127.0.2.1:5353") == "127.0.1.1"
	})
	g := st.Groups[0]
	if g.Name != "webshop" || g.ActiveSite != "brussels" || g.Epoch != 1 || g.State != status.StateProtected {
		t.Errorf("group: %s active %s epoch %d state %s", g.Name, g.ActiveSite, g.Epoch, g.State)
	}
	db := g.Resources[0]
	if db.Sites[0].Site != "brussels" || db.Sites[0].Role != status.RolePrimary {
		t.Errorf("brussels: %+v", db.Sites[0])
	}
	sb := db.Sites[1]
	if sb.Site != "antwerp" || sb.Role != status.RoleStandby || !sb.Streaming || sb.LagSeconds == nil || *sb.LagSeconds >= 1 {
		t.Errorf("antwerp standby: %+v (lag %v)", sb, sb.LagSeconds)
	}

	// A second up on a running lab refuses and changes nothing.
	if err := Up(context.Background(), o); !errors.Is(err, ErrRunning) {
		t.Errorf("second lab up: got %v, want ErrRunning", err)
	}

	// The demo writer commits orders at the primary.
	n1 := countOrders(t, topo)
	waitFor(t, 10*time.Second, "the writer to add orders", func() bool { return countOrders(t, topo) > n1 })

	// Power cut at brussels: the others see it down and declare it lost, a
	// controller outside brussels answers, and the group (policy
	// automatic) fails over to antwerp by itself.
	if err := Disaster(o, "brussels"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st = waitStatus(t, c, 30*time.Second, "brussels lost, controller elsewhere, webshop failed over to antwerp", func(st status.Status) bool {
		b, _ := st.Site("brussels")
		return !b.Up && len(b.UnseenBy) == 2 && b.Lost && st.Controller != "" && st.Controller != "brussels" &&
			st.Groups[0].ActiveSite == "antwerp" && st.Groups[0].Epoch == 2 && st.Groups[0].Run == ""
	})
	t.Logf("brussels lost: webshop active at antwerp with controller %s after %s", st.Controller, time.Since(start).Round(10*time.Millisecond))
	// The agents answer the database's name with the new active site.
	waitFor(t, 5*time.Second, "antwerp's agent to answer "+DNSName+" with antwerp's address", func() bool {
		return askName(t, "127.0.2.1:5353") == "127.0.2.1"
	})
	n3 := countOrders(t, topo)
	waitFor(t, 10*time.Second, "the writer to add orders at antwerp", func() bool { return countOrders(t, topo) > n3 })
	if st.AnsweredBy == "brussels" {
		t.Error("status was answered by the dead site")
	}
	if err := Disaster(o, "brussels"); err == nil {
		t.Error("a second disaster at a dead site should say it is already down")
	}
	if procs := processesOf(t, filepath.Join(o.Dir, "brussels")); len(procs) > 0 {
		t.Errorf("processes of brussels survived the power cut: %v", procs)
	}

	if err := Heal(context.Background(), o, "brussels"); err != nil {
		t.Fatal(err)
	}
	// Heal starts the old primary: it comes up read-only behind its boot
	// guard, and its agent leaves it so, since antwerp is active.
	healedReadOnly(t, c, topo, "brussels")
	if r := runAndWait(t, c, api.RunRequest{Group: "webshop", Action: plan.Reprotect}); r.State != plan.RunSucceeded {
		t.Fatalf("reprotect %s: %s", r.State, r.Error)
	}
	waitStatus(t, c, 60*time.Second, "lab healthy after heal and reprotect", func(st status.Status) bool { return unhealthy(st) == "" })
	n2 := countOrders(t, topo)
	waitFor(t, 10*time.Second, "the writer to add orders after heal", func() bool { return countOrders(t, topo) > n2 })

	if err := Down(o); err != nil {
		t.Fatal(err)
	}
	if procs := processesOf(t, o.Dir); len(procs) > 0 {
		t.Errorf("processes left after lab down: %v", procs)
	}
	for _, addr := range addresses(locations, 0) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still taken after lab down: %v", addr, err)
			continue
		}
		ln.Close()
	}
	if _, err := os.Stat(o.Dir); !os.IsNotExist(err) {
		t.Errorf("lab directory left after down: %v", err)
	}
}

// TestUpRefusesBusyAddress: an address the lab needs is taken; up says
// which and creates nothing.
func TestUpRefusesBusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", locations[1].addr(etcdClientPort))
	if err != nil {
		t.Skipf("cannot take %s for the test: %v", locations[1].addr(etcdClientPort), err)
	}
	defer ln.Close()
	dir := filepath.Join(t.TempDir(), "lab")
	err = Up(context.Background(), Options{Dir: dir, Exe: "/nonexistent", Out: testWriter{t}})
	if err == nil || !strings.Contains(err.Error(), "127.0.2.1:2379") {
		t.Fatalf("want an error naming 127.0.2.1:2379, got %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("up created %s although it refused", dir)
	}
}

func TestCommandsWithoutLab(t *testing.T) {
	o := Options{Dir: filepath.Join(t.TempDir(), "nolab"), Out: testWriter{t}}
	for name, err := range map[string]error{
		"disaster": Disaster(o, "brussels"),
		"heal":     Heal(context.Background(), o, "brussels"),
		"down":     Down(o),
	} {
		if err == nil || !strings.Contains(err.Error(), "no lab in") {
			t.Errorf("%s without a lab: %v", name, err)
		}
	}
}

func waitStatus(t *testing.T, c *api.Client, timeout time.Duration, what string, cond func(status.Status) bool) status.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	st, err := c.Wait(ctx, 100*time.Millisecond, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v; last status %+v", what, err, st)
	}
	return st
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

// countOrders counts the orders at the group's primary.
func countOrders(t *testing.T, topo *config.Topology) int64 {
	t.Helper()
	dsn, err := WriterDSN(topo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Logf("count orders: %v", err)
		return -1
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
		t.Logf("count orders: %v", err)
		return -1
	}
	return n
}

// processesOf lists live processes whose command line mentions marker (a
// path inside the lab directory).
func processesOf(t *testing.T, marker string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), marker) {
			continue
		}
		if state, _, err := procStat(pid); err != nil || state == 'Z' {
			continue
		}
		out = append(out, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
	}
	return out
}

// logTails shows the last n lines of every log of the lab in dir, so that
// a failed test says what the agents and databases did.
func logTails(t testing.TB, dir string, n int) {
	t.Helper()
	var files []string
	for _, l := range labLocations(3) { // every location any lab has
		files = append(files, l.name+"/agent.log")
	}
	files = append(files, "writer.log", "news-writer.log",
		"brussels/mdb/run/mariadb.err", "antwerp/mdb/run/mariadb.err",
		"web-writer.log", "brussels/app.log", "antwerp/app.log", "haproxy/haproxy.log")
	for _, f := range files {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			t.Logf("%s:\n%s", f, tail(string(b), n))
		}
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// askName asks the DNS server at addr for the lab's database name and
// returns the A record's address, or the response code.
func askName(t *testing.T, addr string) string {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(DNSName, mdns.TypeA)
	in, err := mdns.Exchange(m, addr)
	if err != nil {
		return err.Error()
	}
	if len(in.Answer) != 1 {
		return mdns.RcodeToString[in.Rcode]
	}
	return in.Answer[0].(*mdns.A).A.String()
}
