package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/driver/dns"
	"github.com/siteflip/siteflip/internal/driver/postgres"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// TestScaleLab: the scale lab's data-less groups (a name each, on one DNS
// listener per site) are adopted at brussels, all fail over by themselves
// in one power cut, each name then answered with antwerp's address by the
// surviving agent, and a failback of each takes them home once brussels
// is healed and they are reprotected.
func TestScaleLab(t *testing.T) {
	skipUnlessLab(t)
	const n = 20
	o, _, c := labUpOptions(t, Options{DB: DBNone, Groups: n})
	all := allAt(n)
	waitStatus(t, c, 30*time.Second, "every group protected at brussels", all("brussels", true))
	var antIP, serve string
	for _, l := range locations {
		if l.name == "antwerp" {
			antIP, serve = l.ip, l.addr(dnsPort)
		}
	}

	if err := Disaster(o, "brussels"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, 60*time.Second, "every group failed over to antwerp", all("antwerp", false))
	runs, err := c.Runs(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	succeededFailovers(t, runs, n)
	for i := 1; i <= n; i++ {
		got, _, err := dns.Lookup(t.Context(), serve, scaleName(scaleGroup(i)))
		if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr(antIP) {
			t.Errorf("%s at %s: %v %v, want %s", scaleName(scaleGroup(i)), serve, got, err, antIP)
		}
	}

	healReporting(t, o, c, "brussels")
	for i := 1; i <= n; i++ {
		for _, action := range []plan.Action{plan.Reprotect, plan.Failback} {
			if action == plan.Failback {
				waitStatus(t, c, 30*time.Second, scaleGroup(i)+" protected at antwerp", func(st status.Status) bool {
					return groupProtectedAt(st, scaleGroup(i), "antwerp")
				})
			}
			if r := runAndWait(t, c, api.RunRequest{Group: scaleGroup(i), Action: action}); r.State != plan.RunSucceeded {
				t.Fatalf("%s of %s: %s: %s", action, scaleGroup(i), r.State, r.Error)
			}
		}
	}
	waitStatus(t, c, 60*time.Second, "every group protected at brussels again", all("brussels", true))
}

// allAt says whether the lab's n groups are all active at site with no
// run under way, and, with protected, protected there.
func allAt(n int) func(site string, protected bool) func(status.Status) bool {
	return func(site string, protected bool) func(status.Status) bool {
		return func(st status.Status) bool {
			if len(st.Groups) != n {
				return false
			}
			for _, g := range st.Groups {
				if g.ActiveSite != site || g.Run != "" || (protected && g.State != status.StateProtected) {
					return false
				}
			}
			return true
		}
	}
}

// succeededFailovers checks that runs hold one failover per group, n in
// all, each succeeded.
func succeededFailovers(t *testing.T, runs []plan.Run, n int) {
	t.Helper()
	failovers := 0
	for _, r := range runs {
		if r.Plan.Action == plan.Failover {
			failovers++
			if r.State != plan.RunSucceeded {
				t.Errorf("failover %s of %s: %s: %s", r.ID, r.Plan.Group, r.State, r.Error)
			}
		}
	}
	if failovers != n {
		t.Errorf("%d failovers, want one per group (%d)", failovers, n)
	}
}

// TestPGScaleLab: the scale lab of PostgreSQL groups (lab up --groups N
// --db postgres) comes up with every group protected at brussels, its
// standby streaming at antwerp; one power cut at brussels fails them all
// over by themselves, each antwerp server then accepting writes and each
// name answered with antwerp's address; once brussels is healed, a
// `siteflip reprotect --all` makes every old primary a standby again, and
// lab down leaves no server and no port behind.
func TestPGScaleLab(t *testing.T) {
	skipUnlessLab(t)
	const n = 3
	o, topo, c := labUpOptions(t, Options{DB: DBPostgres, Groups: n})
	all := allAt(n)
	waitStatus(t, c, 30*time.Second, "every group protected at brussels", all("brussels", true))
	if len(topo.Groups) != n {
		t.Fatalf("%d groups, want %d (no webshop)", len(topo.Groups), n)
	}

	cut := time.Now()
	if err := Disaster(o, "brussels"); err != nil {
		t.Fatal(err)
	}
	if procs := processesOf(t, filepath.Join(o.Dir, "brussels")); len(procs) > 0 {
		t.Errorf("processes of brussels survived the power cut: %v", procs)
	}
	waitStatus(t, c, 30*time.Second, "every group failed over to antwerp", all("antwerp", false))
	t.Logf("every group active at antwerp %s after the cut", time.Since(cut).Round(10*time.Millisecond))
	runs, err := c.Runs(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	succeededFailovers(t, runs, n)
	for i := 1; i <= n; i++ {
		if err := pgWrite(t.Context(), topo, pgGroup(i), "antwerp"); err != nil {
			t.Errorf("%s at antwerp after the failover: %v", pgGroup(i), err)
		}
		got, _, err := dns.Lookup(t.Context(), locations[1].addr(dnsPort), scaleName(pgGroup(i)))
		if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr(locations[1].ip) {
			t.Errorf("%s: %v %v, want %s", scaleName(pgGroup(i)), got, err, locations[1].ip)
		}
	}

	healReporting(t, o, c, "brussels")
	for i := 1; i <= n; i++ {
		if err := pgWrite(t.Context(), topo, pgGroup(i), "brussels"); err == nil {
			t.Errorf("%s's healed old primary at brussels accepts writes while antwerp is active", pgGroup(i))
		}
	}
	if out, code := siteflipCLI(t, o, "", "reprotect", "--all"); code != 0 {
		t.Fatalf("reprotect --all: exit %d:\n%s", code, out)
	}
	waitStatus(t, c, 30*time.Second, "every group protected at antwerp, brussels streaming", func(st status.Status) bool {
		return all("antwerp", true)(st) && unhealthy(st) == ""
	})

	if err := Down(o); err != nil {
		t.Fatal(err)
	}
	if procs := processesOf(t, o.Dir); len(procs) > 0 {
		t.Errorf("processes left after lab down: %v", procs)
	}
	for _, addr := range addresses(locations, n) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still taken after lab down: %v", addr, err)
			continue
		}
		ln.Close()
	}
}

// pgWrite writes at group's database at site, which fails unless it
// runs and is a primary.
func pgWrite(ctx context.Context, topo *config.Topology, group, site string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgConnectTo(ctx, topo, group, site)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS proof (at timestamptz); INSERT INTO proof VALUES (now())")
	return err
}

// TestPGScaleTopology: the scale lab's PostgreSQL groups, with two sites
// and with three, are a topology that siteflip check accepts without a
// warning but on geography: each group pg-NNNN a database on a port of its own at every
// site, in a directory of its own, and a name that depends on it; no
// webshop. What the scale lab does not run is refused before anything
// is made.
func TestPGScaleTopology(t *testing.T) {
	binDir := pgBinDir()
	if binDir == "" {
		t.Skip("PostgreSQL server binaries are not installed (apt-get install postgresql-15): the topology names them")
	}
	for _, sites := range []int{2, 3} {
		t.Run(fmt.Sprint(sites), func(t *testing.T) {
			dir := t.TempDir()
			locs := labLocations(sites)
			topo, err := writeFiles(dir, binDir, locs, groupOptions{groups: 3, scalePostgres: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, probs, err := config.Check(filepath.Join(dir, "siteflip.yaml"), driver.Types()); err != nil || len(notGeography(probs)) > 0 {
				t.Errorf("siteflip check: %v %v", err, notGeography(probs))
			}
			var names []string
			for _, g := range topo.Groups {
				names = append(names, g.Name)
			}
			if diff := cmp.Diff([]string{"pg-0001", "pg-0002", "pg-0003"}, names); diff != "" {
				t.Fatalf("groups (-want +got):\n%s", diff)
			}
			for i, g := range topo.Groups {
				if g.PreferredSite != "brussels" || len(g.Sites) != sites || len(g.Resources) != 2 {
					t.Errorf("%s: preferred %s, sites %v, %d resources", g.Name, g.PreferredSite, g.Sites, len(g.Resources))
					continue
				}
				db, name := g.Resources[0], g.Resources[1]
				if db.Type != "postgres" || name.Type != "dns" || !cmp.Equal(name.DependsOn, []string{db.Name}) {
					t.Errorf("%s: resources %s (%s), %s (%s) depending on %v", g.Name, db.Name, db.Type, name.Name, name.Type, name.DependsOn)
				}
				for _, l := range locs {
					if l.role != "site" {
						continue
					}
					s := db.Settings[l.name].(*postgres.Settings)
					want := filepath.Join(dir, l.name, g.Name, "data")
					if s.Host != l.ip || s.Port != 15433+i || s.DataDir != want {
						t.Errorf("%s at %s: %s:%d in %s, want %s:%d in %s", g.Name, l.name, s.Host, s.Port, s.DataDir, l.ip, 15433+i, want)
					}
				}
			}
		})
	}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Groups: 3, DB: DBMariaDB}, "--groups 3 --db mariadb: the scale lab's groups are data-less (--db none, the default) or each a PostgreSQL pair (--db postgres)"},
		{Options{Groups: 3, DB: DBBoth}, "--groups 3 --db both: "},
		{Options{Groups: maxPGGroups + 1, DB: DBPostgres}, "at most 200 PostgreSQL groups"},
		{Options{Groups: 3, DB: DBPostgres, Stack: true}, "the web stack runs in front of webshop"},
	} {
		upRefused(t, tc.o, tc.want)
	}
}

// healReporting heals site and waits until its agent reports: a run
// decided before that finds the site's resources unknown and is refused
// (TestScaleLab once asked for a failback 30 ms after the agent started).
func healReporting(t *testing.T, o Options, c *api.Client, site string) {
	t.Helper()
	if err := Heal(context.Background(), o, site); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, 30*time.Second, site+" up and reporting", func(st status.Status) bool {
		s, ok := st.Site(site)
		return ok && s.Up && s.Reporting
	})
}
