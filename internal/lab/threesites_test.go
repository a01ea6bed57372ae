package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/driver/postgres"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/testbed"
)

// TestThreeSites: a lab of three sites, webshop at brussels with standbys
// at antwerp and liege, a writer running. antwerp, first in preference
// after brussels, falls behind while it is still a standby; then brussels
// loses power. The group fails over to liege, the most advanced standby,
// not to antwerp; antwerp follows liege; no acknowledged write is lost
// but those of the failover itself (asynchronous replication), and there
// are never two writable primaries. brussels, healed and reprotected,
// streams from liege too.
//
// antwerp falls behind in two ways: its WAL receiver stopped (an empty
// primary_conninfo), so that it is not streaming when last seen; or still
// streaming, with a lag within max_data_loss, while the WAL brussels
// sends it is dropped on the way (nftables), so that only comparing the
// standbys' positions tells liege is ahead.
func TestThreeSites(t *testing.T) {
	skipUnlessLab(t)
	t.Run("antwerp not streaming", func(t *testing.T) {
		threeSiteFailover(t, func(t *testing.T, topo *config.Topology) {
			pgExec(t, topo, "antwerp", "ALTER SYSTEM SET primary_conninfo = ''")
			pgExec(t, topo, "antwerp", "SELECT pg_reload_conf()")
			testbed.WaitFor(t, 10*time.Second, "antwerp's WAL receiver to stop", func() bool {
				var n int
				pgScan(t, topo, "antwerp", "SELECT count(*) FROM pg_stat_wal_receiver", &n)
				return n == 0
			})
		}, func(s status.ResourceSiteStatus) bool {
			// Refused by the rule of two sites already: its primary saw
			// it not streaming.
			return !s.Streaming && s.FailoverReady != nil && !*s.FailoverReady
		})
	})
	t.Run("antwerp streaming but behind", func(t *testing.T) {
		if _, err := exec.LookPath("nft"); err != nil || os.Geteuid() != 0 {
			t.Skip("drops brussels' WAL to antwerp with nftables: needs root and nft (apt-get install nftables)")
		}
		threeSiteFailover(t, func(t *testing.T, topo *config.Topology) {
			dropWAL(t, topo, "brussels", "antwerp")
		}, func(s status.ResourceSiteStatus) bool {
			// Still a candidate by the rules of two sites: streaming,
			// ready within max_data_loss.
			return s.Streaming && s.FailoverReady != nil && *s.FailoverReady
		})
	})
}

// threeSiteFailover is TestThreeSites with antwerp held back by behind,
// after which its status must satisfy seen before the power cut.
func threeSiteFailover(t *testing.T, behind func(*testing.T, *config.Topology), seen func(status.ResourceSiteStatus) bool) {
	o, topo, c := labUpOptions(t, Options{Sites: 3})
	g, _ := topo.Group(demoGroup)
	if want := []string{"brussels", "antwerp", "liege"}; !slices.Equal(g.Sites, want) {
		t.Fatalf("webshop's sites %v, want %v in that order", g.Sites, want)
	}
	waitStatus(t, c, 60*time.Second, "protected at brussels, antwerp and liege streaming", func(st status.Status) bool {
		return protectedAt("brussels")(st) && standbysStreaming(st, "antwerp", "liege")
	})
	if got := streamingStandbys(t, topo, "brussels"); !slices.Equal(got, []string{"antwerp", "liege"}) {
		t.Fatalf("brussels streams to %v, want antwerp and liege", got)
	}
	w := startWriter(t, topo)
	testbed.WaitFor(t, 10*time.Second, "the writer to start", func() bool { return w.count() > 20 })

	behind(t, topo)
	n := w.count()
	testbed.WaitFor(t, 10*time.Second, "50 writes at brussels past antwerp", func() bool { return w.count() > n+50 })
	antwerpLSN, liegeLSN := receiveLSN(t, topo, "antwerp"), receiveLSN(t, topo, "liege")
	var current string
	pgScan(t, topo, "brussels", "SELECT pg_current_wal_lsn()::text", &current)
	if d := lsnDiff(t, topo, current, antwerpLSN); d <= 0 {
		t.Fatalf("brussels at %s is not past antwerp's received %s", current, antwerpLSN)
	}
	if d := lsnDiff(t, topo, liegeLSN, antwerpLSN); d <= 0 {
		t.Fatalf("liege (received %s) is not ahead of antwerp (received %s)", liegeLSN, antwerpLSN)
	} else {
		t.Logf("before the power cut: brussels at %s, liege received %s, antwerp %s (%d bytes behind liege)", current, liegeLSN, antwerpLSN, d)
	}
	before := waitStatus(t, c, 30*time.Second, "antwerp seen behind and a fresh lag record for liege", func(st status.Status) bool {
		a, ok := siteOfResource(st, "antwerp")
		return ok && seen(a) && freshLag("liege")(st)
	})
	t.Logf("standbys before the power cut: %s", candidates(before))

	primaries := watchPrimaries(t, topo, "brussels", "antwerp", "liege")
	if err := Disaster(o, "brussels"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	r := waitFailoverFrom(t, c, "brussels")
	if r.Plan.To != "liege" {
		after, _ := c.Status(t.Context())
		t.Fatalf("the failover went to %s, want liege, the most advanced standby (antwerp received up to %s only, liege %s): run %s %s (why: %q): %s; standbys now: %s",
			r.Plan.To, antwerpLSN, liegeLSN, r.ID, r.State, r.Plan.Why, r.Error, candidates(after))
	}
	if r.State != plan.RunSucceeded {
		t.Fatalf("failover to liege: %s: %s", r.State, r.Error)
	}
	t.Logf("failover to liege: power cut → run done %s; why liege: %s", time.Since(cut).Round(time.Millisecond), r.Plan.Why)
	if rejoin := stepOf(r, plan.Rejoin, demoResource, "antwerp"); rejoin < 0 || rejoin < stepOf(r, plan.Promote, demoResource, "liege") {
		t.Errorf("the failover has no rejoin of antwerp after liege's promotion: steps %+v", r.Plan.Steps)
	}
	waitStatus(t, c, 30*time.Second, "webshop active at liege", func(st status.Status) bool {
		return group(st).ActiveSite == "liege" && group(st).Run == ""
	})
	n = w.count()
	testbed.WaitFor(t, 20*time.Second, "writes at liege", func() bool { return w.count() > n+20 })
	liege := topo.Groups[0].Resources[0].Settings["liege"].(*postgres.Settings)
	testbed.WaitFor(t, 60*time.Second, "antwerp streaming from liege", func() bool {
		host, port, ok := streamsFrom(t, topo, "antwerp")
		return ok && host == liege.Host && port == liege.Port
	})
	lostInFailover := len(w.lost(t))
	t.Logf("acknowledged writes lost in the failover (asynchronous replication): %d", lostInFailover)

	if err := Heal(context.Background(), o, "brussels"); err != nil {
		t.Fatal(err)
	}
	healedReadOnly(t, c, topo, "brussels")
	if r := runAndWait(t, c, api.RunRequest{Group: demoGroup, Action: plan.Reprotect}); r.State != plan.RunSucceeded {
		t.Fatalf("reprotect %s: %s", r.State, r.Error)
	}
	waitStatus(t, c, 60*time.Second, "protected at liege, brussels and antwerp streaming", func(st status.Status) bool {
		return protectedAt("liege")(st) && standbysStreaming(st, "brussels", "antwerp")
	})
	if got := streamingStandbys(t, topo, "liege"); !slices.Equal(got, []string{"antwerp", "brussels"}) {
		t.Errorf("liege streams to %v, want antwerp and brussels", got)
	}
	n = w.count()
	testbed.WaitFor(t, 20*time.Second, "writes at liege after the reprotect", func() bool { return w.count() > n+20 })
	if lost := len(w.lost(t)); lost != lostInFailover {
		t.Errorf("%d more acknowledged writes lost after the failover", lost-lostInFailover)
	}
	if both := primaries.stop(); len(both) > 0 {
		t.Errorf("two writable primaries at once: %s", strings.Join(both, "; "))
	}
}

// TestThreeSitesMariaDB: news on MariaDB at three sites, the primary at
// brussels and a replica at antwerp and at liege, a writer running.
// antwerp, first in preference after brussels, stops fetching (STOP SLAVE
// IO_THREAD) and falls behind; then brussels loses power. The group fails
// over to liege, the most advanced replica by GTID; antwerp replicates
// from liege; never two writable primaries, and no acknowledged write
// lost but those of the failover itself (asynchronous replication).
func TestThreeSitesMariaDB(t *testing.T) {
	skipUnlessMariaDBLab(t)
	o, topo, c := labUpOptions(t, Options{Sites: 3, DB: DBMariaDB})
	g, _ := topo.Group(newsGroup)
	if want := []string{"brussels", "antwerp", "liege"}; !slices.Equal(g.Sites, want) || g.PreferredSite != "brussels" {
		t.Fatalf("news at %v preferring %s, want %v preferring brussels", g.Sites, g.PreferredSite, want)
	}
	waitStatus(t, c, 60*time.Second, "protected at brussels, antwerp and liege replicating", func(st status.Status) bool {
		return protectedAt("brussels")(st) && standbysStreaming(st, "antwerp", "liege")
	})
	w := startMDBWriter(t, topo, o.Dir)
	testbed.WaitFor(t, 10*time.Second, "the writer to start", func() bool { return w.count() > 20 })

	antwerp, _, err := mariadbInstance(topo, "antwerp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := antwerp.RootSQL(t.Context(), "STOP SLAVE IO_THREAD"); err != nil {
		t.Fatal(err)
	}
	n := w.count()
	testbed.WaitFor(t, 10*time.Second, "50 writes at brussels past antwerp", func() bool { return w.count() > n+50 })
	waitStatus(t, c, 30*time.Second, "antwerp seen not replicating and a fresh lag record for liege", func(st status.Status) bool {
		a, ok := siteOfResource(st, "antwerp")
		return ok && !a.Streaming && freshLag("liege")(st)
	})

	bru, ant, lie := mdbAddr(t, topo, "brussels"), mdbAddr(t, topo, "antwerp"), mdbAddr(t, topo, "liege")
	var both []string
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		testbed.Poll(5*time.Minute, func() bool {
			var writable []string
			for _, addr := range []string{bru, ant, lie} {
				if mdbWritable(t, w, addr) {
					writable = append(writable, addr)
				}
			}
			if len(writable) > 1 {
				both = append(both, fmt.Sprintf("%s: %s", time.Now().Format(time.TimeOnly), strings.Join(writable, " and ")))
			}
			select {
			case <-stopWatch:
				return true
			default:
				return false
			}
		})
	}()
	if err := Disaster(o, "brussels"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	r := waitAutomaticFailoverOf(t, c, newsGroup, "brussels", "liege")
	t.Logf("failover to liege: power cut → run done %s; why liege: %s", time.Since(cut).Round(time.Millisecond), r.Plan.Why)
	if rejoin := stepOf(r, plan.Rejoin, newsResource, "antwerp"); rejoin < 0 || rejoin < stepOf(r, plan.Promote, newsResource, "liege") {
		t.Errorf("the failover has no rejoin of antwerp after liege's promotion: steps %+v", r.Plan.Steps)
	}
	n = w.count()
	testbed.WaitFor(t, 20*time.Second, "writes at liege", func() bool { return w.count() > n+20 })
	waitStatus(t, c, 60*time.Second, "antwerp replicating from liege", func(st status.Status) bool {
		return group(st).ActiveSite == "liege" && standbysStreaming(st, "antwerp")
	})
	rows, err := antwerp.RootSQL(t.Context(), "SHOW SLAVE STATUS")
	if err != nil || !strings.Contains(rows, lie[:strings.LastIndexByte(lie, ':')]) {
		t.Errorf("antwerp's replication after the failover (want its source at liege, %s): %v\n%s", lie, err, rows)
	}
	close(stopWatch)
	<-watched
	if len(both) > 0 {
		t.Errorf("two writable primaries at once: %s", strings.Join(both, "; "))
	}
	n = w.count()
	testbed.WaitFor(t, 20*time.Second, "more writes at liege", func() bool { return w.count() > n+20 })
	w.stop()
	<-w.done
	lostAtLiege := len(w.lost(t, lie))
	t.Logf("acknowledged writes lost in the failover (asynchronous replication): %d", lostAtLiege)
	testbed.WaitFor(t, 20*time.Second, "antwerp to have every write liege has", func() bool {
		return len(w.lost(t, ant)) == lostAtLiege
	})
}

// standbysStreaming says that webshop's database at each of sites is a
// streaming standby with a lag under a second.
func standbysStreaming(st status.Status, sites ...string) bool {
	for _, site := range sites {
		s, ok := siteOfResource(st, site)
		if !ok || s.Role != status.RoleStandby || !s.Streaming || s.LagSeconds == nil || *s.LagSeconds >= 1 {
			return false
		}
	}
	return true
}

// candidates says, for the log, how antwerp and liege stand as standbys
// of webshop's database: what a failover judges them on.
func candidates(st status.Status) string {
	var out []string
	for _, site := range []string{"antwerp", "liege"} {
		s, _ := siteOfResource(st, site)
		l := "none"
		if k := s.LastKnownLag; k != nil {
			l = fmt.Sprintf("streaming %v, %.3fs, epoch %d, %s stale", k.Streaming, k.Seconds, k.Epoch, k.Staleness())
		}
		ready := "?"
		if s.FailoverReady != nil {
			ready = fmt.Sprint(*s.FailoverReady)
		}
		out = append(out, fmt.Sprintf("%s: %s, streaming %v, position %s on timeline %d, failover ready %s (%s), last known lag %s",
			site, s.Role, s.Streaming, s.Position, s.Timeline, ready, s.FailoverBound, l))
	}
	return strings.Join(out, "; ")
}

// siteOfResource is webshop's database at site.
func siteOfResource(st status.Status, site string) (status.ResourceSiteStatus, bool) {
	for _, s := range group(st).Resources[0].Sites {
		if s.Site == site {
			return s, true
		}
	}
	return status.ResourceSiteStatus{}, false
}

// pgScan runs a query on the lab's database at site and scans its one row.
func pgScan(t *testing.T, topo *config.Topology, site, sql string, dest ...any) {
	t.Helper()
	withPG(t, topo, site, func(ctx context.Context, conn *pgx.Conn) error {
		if err := conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		return nil
	})
}

// streamingStandbys are the application names of the standbys the
// primary at site streams to, sorted.
func streamingStandbys(t *testing.T, topo *config.Topology, site string) []string {
	t.Helper()
	var names []string
	pgScan(t, topo, site, "SELECT coalesce(array_agg(application_name::text ORDER BY application_name), '{}') FROM pg_stat_replication WHERE state = 'streaming'", &names)
	return names
}

// receiveLSN is the WAL the standby at site received and flushed.
func receiveLSN(t *testing.T, topo *config.Topology, site string) string {
	t.Helper()
	var lsn string
	pgScan(t, topo, site, "SELECT pg_last_wal_receive_lsn()::text", &lsn)
	return lsn
}

// lsnDiff is a - b in bytes, computed by the database at liege, which
// stays up.
func lsnDiff(t *testing.T, topo *config.Topology, a, b string) int64 {
	t.Helper()
	var d int64
	pgScan(t, topo, "liege", fmt.Sprintf("SELECT pg_wal_lsn_diff('%s', '%s')::int8", a, b), &d)
	return d
}

// streamsFrom is where the standby at site streams from, if it does.
func streamsFrom(t *testing.T, topo *config.Topology, site string) (host string, port int, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := pgConnect(ctx, topo, site)
	if err != nil {
		return "", 0, false
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(ctx, "SELECT sender_host, sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'").Scan(&host, &port)
	return host, port, err == nil
}

// waitFailoverFrom waits for the automatic failover of webshop away from
// site to end, wherever it went.
func waitFailoverFrom(t *testing.T, c *api.Client, from string) plan.Run {
	t.Helper()
	var found plan.Run
	ok := testbed.Poll(45*time.Second, func() bool {
		runs, err := c.Runs(t.Context(), demoGroup)
		if err != nil {
			return false
		}
		for _, r := range runs {
			if r.Plan.Action == plan.Failover && r.Plan.From == from && strings.HasSuffix(r.By, "(automatic)") && r.Done() {
				found = r
				return true
			}
		}
		return false
	})
	if !ok {
		st, _ := c.Status(t.Context())
		t.Fatalf("no automatic failover from %s within 45s; webshop: %s at %s, problems %v, decision %+v",
			from, group(st).State, group(st).ActiveSite, group(st).Problems, group(st).Decision)
	}
	return found
}

// primaryWatch samples, until stopped, which of the lab's databases accept
// writes, and notes every moment when more than one did.
type primaryWatch struct {
	mu   sync.Mutex
	both []string
	halt chan struct{}
	done chan struct{}
}

func watchPrimaries(t *testing.T, topo *config.Topology, sites ...string) *primaryWatch {
	w := &primaryWatch{halt: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		testbed.Poll(10*time.Minute, func() bool {
			var writable []string
			for _, site := range sites {
				if acceptsWrites(t.Context(), topo, site) {
					writable = append(writable, site)
				}
			}
			if len(writable) > 1 {
				w.mu.Lock()
				w.both = append(w.both, fmt.Sprintf("%s: %s", time.Now().Format(time.TimeOnly), strings.Join(writable, " and ")))
				w.mu.Unlock()
			}
			select {
			case <-w.halt:
				return true
			default:
				return false
			}
		})
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

// stop ends the watch and returns the moments two databases accepted
// writes.
func (w *primaryWatch) stop() []string {
	select {
	case <-w.halt:
	default:
		close(w.halt)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.both)
}

// acceptsWrites says whether the database at site runs and is not in
// recovery (writable, without a test to fail from another goroutine).
func acceptsWrites(ctx context.Context, topo *config.Topology, site string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgConnect(ctx, topo, site)
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	var recovery bool
	return conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovery) == nil && !recovery
}

// dropWAL drops, with nftables, what the primary at from sends to the
// standby at to on its replication connection, until the test ends: the
// standby stays connected and shown streaming, and receives nothing more.
// In the loopback lab every standby connects from 127.0.0.1; the
// connection's port, as the primary lists it, tells them apart.
func dropWAL(t *testing.T, topo *config.Topology, from, to string) {
	t.Helper()
	var port int
	pgScan(t, topo, from, fmt.Sprintf("SELECT client_port FROM pg_stat_replication WHERE application_name = '%s' AND state = 'streaming'", to), &port)
	p := topo.Groups[0].Resources[0].Settings[from].(*postgres.Settings)
	table := fmt.Sprintf("siteflip_labtest_%d", os.Getpid())
	script := fmt.Sprintf(`table inet %s {
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr %s tcp sport %d tcp dport %d drop
	}
}
`, table, p.Host, p.Port, port)
	nft := func(stdin string, args ...string) error {
		cmd := exec.Command("nft", args...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := nft(script, "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nft("", "delete", "table", "inet", table); err != nil {
			t.Errorf("remove the test's nftables table: %v", err)
		}
	})
	t.Logf("dropping what %s (%s:%d) sends to %s's WAL receiver (port %d)", from, p.Host, p.Port, to, port)
}

// TestThreeSiteTopology: a lab of three sites is three voting locations,
// no witness, that the configuration accepts without a warning but on
// geography (its sites are 41–96 km apart), with
// webshop at its three sites in order of preference and a database at
// each; the default lab is what it was.
func TestThreeSiteTopology(t *testing.T) {
	binDir := pgBinDir()
	if binDir == "" {
		t.Skip("PostgreSQL server binaries are not installed (apt-get install postgresql-15): the topology names them")
	}
	for _, tc := range []struct {
		sites      int
		locations  []string
		groupSites []string
		explicit   bool // webshop's sites written out
	}{
		{0, []string{"brussels", "antwerp", "frankfurt"}, []string{"brussels", "antwerp"}, false},
		{2, []string{"brussels", "antwerp", "frankfurt"}, []string{"brussels", "antwerp"}, false},
		{3, []string{"brussels", "antwerp", "liege"}, []string{"brussels", "antwerp", "liege"}, true},
	} {
		t.Run(fmt.Sprint(tc.sites), func(t *testing.T) {
			dir := t.TempDir()
			topo, err := writeFiles(dir, binDir, labLocations(tc.sites), groupOptions{postgres: true, groups: 1})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.locations, topo.SiteNames()); diff != "" {
				t.Errorf("locations (-want +got):\n%s", diff)
			}
			if n := len(topo.Sites); n%2 == 0 {
				t.Errorf("%d voting locations: want an odd number", n)
			}
			if _, probs, err := config.Check(filepath.Join(dir, "siteflip.yaml"), driver.Types()); err != nil || len(notGeography(probs)) > 0 {
				t.Errorf("siteflip check: %v %v", err, notGeography(probs))
			}
			for _, name := range []string{demoGroup, scaleGroup(1)} {
				g, _ := topo.Group(name)
				if diff := cmp.Diff(tc.groupSites, g.Sites); diff != "" || g.PreferredSite != "brussels" {
					t.Errorf("%s: preferred %s, sites (-want +got):\n%s", name, g.PreferredSite, diff)
				}
			}
			g, _ := topo.Group(demoGroup)
			for _, r := range g.Resources {
				if diff := cmp.Diff(slices.Sorted(slices.Values(tc.groupSites)), slices.Sorted(maps.Keys(r.Settings))); diff != "" {
					t.Errorf("%s's sites (-want +got):\n%s", r.Name, diff)
				}
			}
			yaml, err := os.ReadFile(filepath.Join(dir, "siteflip.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(yaml), "    sites: [brussels, antwerp, liege]\n"); got != tc.explicit {
				t.Errorf("webshop's sites written out: %v, want %v", got, tc.explicit)
			}
		})
	}
}

// TestThreeSitesRefusals: what a lab of three sites does not run, and a
// number of sites the lab does not have, are refused before anything is
// made.
func TestThreeSitesRefusals(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Sites: 4}, "--sites 4: the lab has 2 sites (brussels, antwerp) or 3 (adding liege): use --sites 2 or --sites 3"},
		{Options{Sites: 1}, "--sites 1: the lab has 2 sites"},
		{Options{Sites: 3, Stack: true}, "--sites 3 runs webshop without its web stack"},
		{Options{Sites: 3, Synchronous: true}, "a synchronous database confirms each commit at one standby, so it needs exactly two sites"},
	} {
		upRefused(t, tc.o, tc.want)
	}
}

// TestUnhealthyStandbys: a lab is healthy only when every standby of
// webshop streams, the third site's too.
func TestUnhealthyStandbys(t *testing.T) {
	lag := 0.1
	standby := func(site string, streaming bool) status.ResourceSiteStatus {
		return status.ResourceSiteStatus{Site: site, Observed: true, Up: true, Role: status.RoleStandby, Streaming: streaming, LagSeconds: &lag}
	}
	lab := func(sites ...status.ResourceSiteStatus) status.Status {
		return status.Status{Controller: "brussels", Groups: []status.GroupStatus{{
			Name: demoGroup, ActiveSite: "brussels", State: status.StateProtected,
			Resources: []status.ResourceStatus{{Name: demoResource, Type: "postgres",
				Sites: append([]status.ResourceSiteStatus{{Site: "brussels", Observed: true, Up: true, Role: status.RolePrimary}}, sites...)}},
		}}}
	}
	for _, tc := range []struct {
		name string
		st   status.Status
		want string
	}{
		{"two sites", lab(standby("antwerp", true)), ""},
		{"three sites", lab(standby("antwerp", true), standby("liege", true)), ""},
		{"liege not streaming", lab(standby("antwerp", true), standby("liege", false)), "db of webshop at liege is not a streaming standby yet (standby)"},
		{"no lag yet", lab(standby("antwerp", true), status.ResourceSiteStatus{Site: "liege", Role: status.RoleStandby, Streaming: true}), "db of webshop at liege reports no lag yet"},
	} {
		if got := unhealthy(tc.st); got != tc.want {
			t.Errorf("%s: unhealthy = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// upRefused checks that Up refuses o with an error containing want, before
// it creates anything.
func upRefused(t *testing.T, o Options, want string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "lab")
	o.Dir, o.Exe, o.Out = dir, "/nonexistent", testWriter{t}
	err := Up(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), want) || errors.Is(err, ErrRunning) {
		t.Errorf("up with %+v: got %v, want an error containing %q", o, err, want)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("up with %+v created %s although it refused", o, dir)
	}
}
