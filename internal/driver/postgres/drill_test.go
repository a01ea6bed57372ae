package postgres

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/testbed"
)

// drillGroup is a group whose resource db has the pair's settings at
// site-a and site-b.
func drillGroup(p *pair) (*config.Group, *config.Resource) {
	pa, pb := p.primary.Settings, p.standby.Settings
	r := &config.Resource{Name: "db", Type: "postgres", Class: config.ClassData, Data: true,
		Settings: map[string]any{"site-a": &pa, "site-b": &pb}}
	return &config.Group{Name: "shop", Sites: []string{"site-a", "site-b"}, Resources: []config.Resource{*r}}, r
}

// newDrill is the standby's part of drill run in bubble b; it is torn
// down when the test ends, whatever happened.
func newDrill(t *testing.T, p *pair, b resource.Bubble) *drill {
	t.Helper()
	g, r := drillGroup(p)
	d, err := Type{}.Drill(g, r, "site-b", b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Teardown(ctx); err != nil {
			t.Errorf("teardown at the end: %v", err)
		}
	})
	return d.(*drill)
}

// queryCopy runs a one-row query on the drill's copy.
func queryCopy(t *testing.T, ctx context.Context, d *drill, sql string, dest ...any) {
	t.Helper()
	conn, err := d.connect(ctx, "siteflip-test")
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(conn)
	if err := conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
		t.Fatalf("%s on the copy: %v", sql, err)
	}
}

// cloneAndStart clones and starts d, twice each, and returns the outputs.
func cloneAndStart(t *testing.T, ctx context.Context, d *drill) (cloned, started map[string]string) {
	t.Helper()
	began := time.Now()
	cloned, err := d.Clone(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Clone: %v: %v", time.Since(began).Round(time.Millisecond), cloned)
	again, err := d.Clone(ctx)
	if err != nil {
		t.Fatalf("second clone: %v", err)
	}
	if diff := cmp.Diff(cloned, again); diff != "" {
		t.Errorf("a second clone did not keep the complete copy (-first +second):\n%s", diff)
	}
	began = time.Now()
	started, err = d.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Start: %v: %v", time.Since(began).Round(time.Millisecond), started)
	again, err = d.Start(ctx)
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	if diff := cmp.Diff(started, again); diff != "" {
		t.Errorf("a second start said something else (-first +second):\n%s", diff)
	}
	return cloned, started
}

// dataAgeAtMost checks that the clone gave a data age, and one no larger
// than the time since the newest write it holds was committed.
func dataAgeAtMost(t *testing.T, out map[string]string, wrote time.Time) float64 {
	t.Helper()
	age, err := strconv.ParseFloat(out[resource.OutputDataAge], 64)
	if err != nil || age < 0 {
		t.Fatalf("data age %q (%v), want seconds >= 0; basis: %s", out[resource.OutputDataAge], err, out[outAgeBasis])
	}
	if limit := time.Since(wrote).Seconds(); age > limit {
		t.Errorf("data age %.3fs, but the copy holds a write committed %.3fs ago; basis: %s", age, limit, out[outAgeBasis])
	}
	return age
}

// tornDown checks that nothing of d is left: no process, no directory,
// no leftover; and that a second teardown is fine.
func tornDown(t *testing.T, ctx context.Context, d *drill) {
	t.Helper()
	if err := d.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if procs := copyProcesses(d.dataDir()); len(procs) > 0 {
		t.Errorf("processes %v still work on the copy after the teardown", procs)
	}
	if _, err := os.Lstat(d.runDir()); !os.IsNotExist(err) {
		t.Errorf("%s is still there after the teardown (%v)", d.runDir(), err)
	}
	if ids, err := d.Leftovers(); err != nil || slices.Contains(ids, d.b.Run) {
		t.Errorf("leftovers after the teardown: %v (%v)", ids, err)
	}
	if err := d.Teardown(ctx); err != nil {
		t.Errorf("second teardown: %v", err)
	}
}

func TestDrill(t *testing.T) {
	p := startPair(t, func(dir string, s *Settings) {
		s.ReplicationPasswordFile = filepath.Join(dir, "repl.pw")
		if err := os.WriteFile(s.ReplicationPasswordFile, []byte(testReplPassword+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	primary, standby := p.primary.Settings, p.standby.Settings
	execSQL(t, ctx, primary,
		`CREATE TABLE drill (id int PRIMARY KEY, note text)`,
		`INSERT INTO drill SELECT g, 'production' FROM generate_series(1, 1000) g`)
	wrote := time.Now()
	if err := WaitCatchUp(ctx, standby, currentLSN(t, ctx, primary)); err != nil {
		t.Fatal(err)
	}

	t.Run("on a bubble address", func(t *testing.T) {
		d := newDrill(t, p, resource.Bubble{Run: "20261203T150405-shop-drill-1a2b", Address: "127.0.5.2"})
		cloned, started := cloneAndStart(t, ctx, d)
		dataAgeAtMost(t, cloned, wrote)
		if cloned[outStreaming] != "true" || cloned[outEndLSN] == "" || cloned[outBackupEndLSN] == "" {
			t.Errorf("clone output %v, want streaming true and WAL positions", cloned)
		}
		if ids, err := d.Leftovers(); err != nil || !slices.Contains(ids, d.b.Run) {
			t.Errorf("Leftovers = %v (%v), want %s listed", ids, err, d.b.Run)
		}
		if want := "127.0.5.2:" + strconv.Itoa(standby.Port); started[resource.OutputAddress] != want {
			t.Errorf("address %q, want %q: the bubble's address at production's port", started[resource.OutputAddress], want)
		}

		// The copy has production's rows, is a primary of its own and
		// takes writes.
		var rows int64
		var recovery bool
		var conninfo, listen, cluster string
		queryCopy(t, ctx, d, `SELECT count(*) FROM drill`, &rows)
		if rows != 1000 {
			t.Errorf("the copy has %d rows, want 1000", rows)
		}
		queryCopy(t, ctx, d, `SELECT pg_is_in_recovery(), current_setting('primary_conninfo'), current_setting('listen_addresses'), current_setting('cluster_name')`,
			&recovery, &conninfo, &listen, &cluster)
		if recovery || conninfo != "" || listen != "127.0.5.2" || cluster != "drill-"+d.b.Run {
			t.Errorf("copy: in recovery %v, primary_conninfo %q, listen_addresses %q, cluster_name %q; want a primary following nobody on 127.0.5.2 named after the drill",
				recovery, conninfo, listen, cluster)
		}
		queryCopy(t, ctx, d, `INSERT INTO drill VALUES (-1, 'drill') RETURNING id`, new(int))
		var slots int64
		queryCopy(t, ctx, d, `SELECT count(*) FROM pg_replication_slots`, &slots)
		if slots != 0 {
			t.Errorf("the copy has %d replication slots, want none", slots)
		}
		for _, name := range []string{standbySignal, recoverySignal} {
			if _, err := os.Stat(filepath.Join(d.dataDir(), name)); !os.IsNotExist(err) {
				t.Errorf("the copy has %s (%v)", name, err)
			}
		}
		auto, err := os.ReadFile(filepath.Join(d.dataDir(), "postgresql.auto.conf"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(auto), testReplPassword) {
			t.Errorf("the copy's postgresql.auto.conf still holds the replication password:\n%s", auto)
		}

		// Production goes on: the standby streams, replays a new row, and
		// has neither the copy's row nor a slot left by the backup.
		obs, ok := observeUntil(t, NewObserver(primary), 15*time.Second, func(o Observation) bool {
			return len(o.Standbys) == 1 && o.Standbys[0].State == "streaming"
		})
		if !ok {
			t.Errorf("the primary does not show its standby streaming while the copy runs: %+v", obs)
		}
		execSQL(t, ctx, primary, `INSERT INTO drill VALUES (1001, 'after the clone')`)
		if err := WaitCatchUp(ctx, standby, currentLSN(t, ctx, primary)); err != nil {
			t.Fatal(err)
		}
		if n := queryInt(t, ctx, standby, `SELECT count(*) FROM drill WHERE id IN (1001, -1)`); n != 1 {
			t.Errorf("the standby has %d of the rows 1001 (production's) and -1 (the copy's), want only 1001", n)
		}
		if n := queryInt(t, ctx, standby, `SELECT count(*) FROM pg_replication_slots`); n != 0 {
			t.Errorf("the standby has %d replication slots after the clone, want none", n)
		}
		queryCopy(t, ctx, d, `SELECT count(*) FROM drill WHERE id = 1001`, &rows)
		if rows != 0 {
			t.Error("the copy has production's newer row: it still follows production")
		}
		if _, err := os.Stat(filepath.Join(standby.DataDir, standbySignal)); err != nil {
			t.Errorf("production's standby lost its standby.signal: %v", err)
		}

		tornDown(t, ctx, d)
		if n := queryInt(t, ctx, standby, `SELECT count(*) FROM drill`); n != 1001 {
			t.Errorf("the standby has %d rows after the teardown, want 1001", n)
		}
	})

	t.Run("in a network namespace", func(t *testing.T) {
		if err := netns.Available(); err != nil {
			t.Skipf("skipping the network namespace case: %v", err)
		}
		n, err := netns.Create(ctx, netns.Options{Names: []string{"bubble"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := n.Close(); err != nil {
				t.Error(err)
			}
		})
		// Production's own address and port, inside the namespace.
		d := newDrill(t, p, resource.Bubble{Run: "20261203T150406-shop-drill-3c4d", Address: standby.Host, Netns: n.Namespace("bubble")})
		// A half-made copy of an earlier attempt is removed first.
		if err := os.MkdirAll(filepath.Join(d.dataDir(), "base"), 0o700); err != nil {
			t.Fatal(err)
		}
		_, started := cloneAndStart(t, ctx, d)
		if want := standby.addr(); started[resource.OutputAddress] != want {
			t.Errorf("address %q, want %q", started[resource.OutputAddress], want)
		}
		var rows int64
		var recovery bool
		queryCopy(t, ctx, d, `SELECT count(*) FROM drill`, &rows)
		queryCopy(t, ctx, d, `SELECT pg_is_in_recovery()`, &recovery)
		if rows != 1001 || recovery {
			t.Errorf("the copy in the namespace has %d rows (want 1001) and in recovery %v (want false)", rows, recovery)
		}
		// Outside the namespace the same address and port are production's.
		if !queryBool(t, ctx, standby, `SELECT pg_is_in_recovery()`) {
			t.Error("production's address reaches a primary: the copy is not confined to its namespace")
		}
		tornDown(t, ctx, d)
	})

	t.Run("standby cut off from its primary", func(t *testing.T) {
		lastWrite := time.Now()
		execSQL(t, ctx, primary, `INSERT INTO drill VALUES (1002, 'last')`)
		if err := WaitCatchUp(ctx, standby, currentLSN(t, ctx, primary)); err != nil {
			t.Fatal(err)
		}
		p.pSrv.stop(t, false)
		d := newDrill(t, p, resource.Bubble{Run: "20261203T150407-shop-drill-5e6f", Address: "127.0.5.2"})
		out, err := d.Clone(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("clone: %v", out)
		// The standby cannot know what the primary wrote since: the age is
		// the time since the newest transaction it replayed.
		if age := dataAgeAtMost(t, out, lastWrite); age <= 0 || out[outStreaming] != "false" {
			t.Errorf("data age %v with streaming %s, want more than 0 from a standby that does not stream", age, out[outStreaming])
		}
		tornDown(t, ctx, d)
	})
}

// drillCloneScript writes a drill_clone_command into a temporary
// directory: a shell script running body.
func drillCloneScript(t *testing.T, body string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clone.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{path}
}

// backupSessions counts the standby's sessions of d's clone: a session
// left open would keep its backup in progress.
func backupSessions(t *testing.T, ctx context.Context, s Settings, d *drill) int64 {
	t.Helper()
	return queryInt(t, ctx, s, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'siteflip-`+clusterName(d.b.Run)+`'`)
}

func TestDrillCloneCommand(t *testing.T) {
	p := startPair(t, func(dir string, s *Settings) {
		s.ReplicationPasswordFile = filepath.Join(dir, "repl.pw")
		if err := os.WriteFile(s.ReplicationPasswordFile, []byte(testReplPassword+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	primary, standby := p.primary.Settings, p.standby.Settings
	execSQL(t, ctx, primary,
		`CREATE TABLE drill (id int PRIMARY KEY, note text)`,
		`INSERT INTO drill SELECT g, 'production' FROM generate_series(1, 1000) g`)
	if err := WaitCatchUp(ctx, standby, currentLSN(t, ctx, primary)); err != nil {
		t.Fatal(err)
	}
	withCommand := func(d *drill, cmd []string) *drill {
		d.s.DrillCloneCommand = cmd
		return d
	}

	t.Run("fails", func(t *testing.T) {
		d := withCommand(newDrill(t, p, resource.Bubble{Run: "run-fails", Address: "127.0.5.2"}),
			drillCloneScript(t, `cp -a "$SITEFLIP_DRILL_SOURCE"/PG_VERSION "$SITEFLIP_DRILL_TARGET"/
echo "lvcreate: volume group vg0 has insufficient free space" >&2
exit 1`))
		_, err := d.Clone(ctx)
		if err == nil || !strings.Contains(err.Error(), "insufficient free space") {
			t.Fatalf("Clone with a failing command: %v, want an error with its output", err)
		}
		t.Logf("Clone: %v", err)
		if strings.Contains(err.Error(), "pg_backup_stop") {
			t.Errorf("Clone: %v; want pg_backup_stop to succeed after the command failed", err)
		}
		if n := backupSessions(t, ctx, standby, d); n != 0 {
			t.Errorf("%d sessions of the clone left on the standby, want none: its backup would stay in progress", n)
		}
		if _, err := d.Start(ctx); err == nil {
			t.Error("Start after a failed clone: no error")
		}
		tornDown(t, ctx, d)
	})

	t.Run("copies", func(t *testing.T) {
		// Writes on the primary all along the copy, one row a
		// transaction, so that a copy that is not consistent shows.
		writeCtx, stopWrites := context.WithCancel(ctx)
		written := make(chan int64, 1)
		var writing atomic.Int64
		go func() {
			conn, err := connect(writeCtx, primary, "siteflip-test-writer")
			if err != nil {
				written <- -1
				return
			}
			defer closeConn(conn)
			var n int64
			for id := 2000; ; id++ {
				if _, err := conn.Exec(writeCtx, `INSERT INTO drill VALUES ($1, 'during the copy')`, id); err != nil {
					break
				}
				n++
				writing.Store(n)
			}
			written <- n
		}()
		// A copy of a running server's directory is what a crash-consistent
		// snapshot is; unlike a snapshot, it may find files gone (WAL
		// recycled, temporary files), which cp reports but which do not
		// matter.
		d := withCommand(newDrill(t, p, resource.Bubble{Run: "run-copies", Address: "127.0.5.2"}),
			drillCloneScript(t, `test -n "$SITEFLIP_DRILL_RUN" || exit 2
sleep 0.3
cp -a "$SITEFLIP_DRILL_SOURCE"/. "$SITEFLIP_DRILL_TARGET"/ || echo "some files went during the copy" >&2
sleep 0.3`))
		testbed.WaitFor(t, 30*time.Second, "the writer to write on the primary", func() bool { return writing.Load() > 20 })
		cloned, started := cloneAndStart(t, ctx, d)
		stopWrites()
		n := <-written
		if n <= 0 {
			t.Fatalf("the writer wrote %d rows", n)
		}
		t.Logf("%d rows written on the primary during the test", n)
		if cloned[outMethod] != methodCloneCommand || cloned[outBackupEndLSN] == "" || cloned[outEndLSN] == "" {
			t.Errorf("clone output %v, want method %s and WAL positions", cloned, methodCloneCommand)
		}
		if _, err := strconv.ParseFloat(cloned[resource.OutputDataAge], 64); err != nil {
			t.Errorf("data age %q: %v; basis: %s", cloned[resource.OutputDataAge], err, cloned[outAgeBasis])
		}
		if started[resource.OutputAddress] == "" {
			t.Errorf("start output %v, want an address", started)
		}
		// Production's rows, and a prefix of the rows written during the
		// copy with no gap: one consistent moment.
		var rows, during, maxID int64
		queryCopy(t, ctx, d, `SELECT count(*) FILTER (WHERE id <= 1000), count(*) FILTER (WHERE id >= 2000), coalesce(max(id), 1999) FROM drill`, &rows, &during, &maxID)
		if rows != 1000 || during != maxID-1999 {
			t.Errorf("the copy has %d production rows (want 1000) and %d rows written during the copy up to id %d (want %d)", rows, during, maxID, maxID-1999)
		}
		if during == 0 {
			t.Error("the copy has none of the rows written during the copy")
		}
		var recovery bool
		queryCopy(t, ctx, d, `SELECT pg_is_in_recovery()`, &recovery)
		if recovery {
			t.Error("the copy is in recovery")
		}
		queryCopy(t, ctx, d, `INSERT INTO drill VALUES (-1, 'drill') RETURNING id`, new(int))
		var slots int64
		queryCopy(t, ctx, d, `SELECT count(*) FROM pg_replication_slots`, &slots)
		if slots != 0 {
			t.Errorf("the copy has %d replication slots, want none", slots)
		}
		if n := backupSessions(t, ctx, standby, d); n != 0 {
			t.Errorf("%d sessions of the clone left on the standby, want none", n)
		}
		if err := WaitCatchUp(ctx, standby, currentLSN(t, ctx, primary)); err != nil {
			t.Fatal(err)
		}
		if n := queryInt(t, ctx, standby, `SELECT count(*) FROM drill WHERE id = -1`); n != 0 {
			t.Error("the standby has the copy's row")
		}
		tornDown(t, ctx, d)
	})

	t.Run("pg_basebackup", func(t *testing.T) {
		d := newDrill(t, p, resource.Bubble{Run: "run-basebackup", Address: "127.0.5.2"})
		out, err := d.Clone(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if out[outMethod] != methodBasebackup {
			t.Errorf("method %q, want %s", out[outMethod], methodBasebackup)
		}
		tornDown(t, ctx, d)
	})
}

func TestParseBackupLabel(t *testing.T) {
	label := "START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\nCHECKPOINT LOCATION: 0/5000060\nBACKUP METHOD: streamed\nBACKUP FROM: standby\nSTART TIME: 2026-12-04 16:00:00 UTC\nLABEL: siteflip drill run-1\nSTART TIMELINE: 2\n"
	got, err := parseBackupLabel(label)
	if err != nil || got != (walRange{tli: 2, start: 0x5000028}) {
		t.Errorf("parseBackupLabel = %+v, %v; want timeline 2 from 0/5000028", got, err)
	}
	if _, err := parseBackupLabel("LABEL: x\n"); err == nil {
		t.Error("parseBackupLabel of a label without a start: no error")
	}
}

// queryBool runs a query that returns one boolean.
func queryBool(t *testing.T, ctx context.Context, s Settings, sql string) bool {
	t.Helper()
	conn, err := connect(ctx, s, "siteflip-test")
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(conn)
	var b bool
	if err := conn.QueryRow(ctx, sql).Scan(&b); err != nil {
		t.Fatalf("%s on %s: %v", sql, s.addr(), err)
	}
	return b
}

func TestDataAge(t *testing.T) {
	now := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		end     uint64
		st      standbyState
		age     time.Duration
		known   bool
		inBasis string
	}{
		{"caught up", 0x3000148, standbyState{receiver: "streaming", primaryLSN: "0/3000148", replayedAt: now.Add(-time.Hour), heardAt: now.Add(-2 * time.Second)},
			0, true, "received 2.000s before"},
		{"copy past the last message", 0x3000200, standbyState{receiver: "streaming", primaryLSN: "0/3000148"},
			0, true, "holds all the WAL"},
		{"behind while streaming", 0x3000100, standbyState{receiver: "streaming", primaryLSN: "0/3000148", replayedAt: now.Add(-1500 * time.Millisecond)},
			1500 * time.Millisecond, true, "ends at 0/3000100, the primary had flushed 0/3000148"},
		{"not streaming", 0x3000148, standbyState{receiver: "waiting", primaryLSN: "0/3000148", replayedAt: now.Add(-time.Minute)},
			time.Minute, true, "waiting"},
		{"no receiver", 0x3000148, standbyState{replayedAt: now.Add(-time.Minute)},
			time.Minute, true, "no WAL receiver"},
		{"clock skew", 0x3000100, standbyState{receiver: "streaming", primaryLSN: "0/3000148", replayedAt: now.Add(time.Second)},
			0, true, "replay lag"},
		{"nothing replayed", 0x3000100, standbyState{receiver: "streaming", primaryLSN: "0/3000148"},
			0, false, "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.st.now = now
			age, known, basis := dataAge(tc.end, tc.st)
			if age != tc.age || known != tc.known || !strings.Contains(basis, tc.inBasis) {
				t.Errorf("dataAge = %v, %v, %q; want %v, %v, with %q", age, known, basis, tc.age, tc.known, tc.inBasis)
			}
		})
	}
}

// A drill makes and removes things only right inside drill_dir, and
// never production's data dir.
func TestDrillRefuses(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(data, "global"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := Settings{Host: "127.0.0.1", DataDir: data}
	s.SetDefaults("site-b")
	r := &config.Resource{Name: "db", Type: "postgres", Settings: map[string]any{"site-b": &s}}
	g := &config.Group{Name: "shop", Sites: []string{"site-b"}}
	drillAt := func(t *testing.T, s Settings, run string) (*drill, error) {
		t.Helper()
		r := &config.Resource{Name: "db", Type: "postgres", Settings: map[string]any{"site-b": &s}}
		d, err := Type{}.Drill(g, r, "site-b", resource.Bubble{Run: run, Address: "127.0.5.2"})
		if err != nil {
			return nil, err
		}
		return d.(*drill), nil
	}

	for _, run := range []string{"..", ".hidden", "a/b", "../data", strings.Repeat("x", 300)} {
		if _, err := (Type{}).Drill(g, r, "site-b", resource.Bubble{Run: run}); err == nil {
			t.Errorf("Drill with run ID %q: no error", run)
		}
	}
	noDir := s
	noDir.DataDir, noDir.DrillDir = "", ""
	if _, err := drillAt(t, noDir, "run-1"); err == nil || !strings.Contains(err.Error(), "drill_dir") {
		t.Errorf("Drill without drill_dir: %v, want an error about drill_dir", err)
	}
	long := s
	long.DrillDir = "/" + strings.Repeat("d", 95)
	if _, err := drillAt(t, long, "run-1"); err == nil || !strings.Contains(err.Error(), "unix socket") {
		t.Errorf("Drill with a long drill_dir: %v, want an error about the socket path", err)
	}

	// A run directory that is a link to production's data dir.
	d, err := drillAt(t, s, "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.DrillDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(data, d.runDir()); err != nil {
		t.Fatal(err)
	}
	if err := d.Teardown(t.Context()); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Teardown of a run dir linked to the data dir: %v, want a refusal", err)
	}
	if _, err := d.Clone(t.Context()); err == nil {
		t.Error("Clone into a run dir linked to the data dir: no error")
	}
	if ids, err := d.Leftovers(); err != nil || len(ids) != 0 {
		t.Errorf("Leftovers = %v (%v), want none: a link is not a drill's", ids, err)
	}
	if _, err := os.Stat(filepath.Join(data, "global")); err != nil {
		t.Errorf("production's data dir was touched: %v", err)
	}

	// drill_dir reached through a link into production's data dir.
	linked := s
	linked.DrillDir = filepath.Join(dir, "drills-link")
	if err := os.Symlink(filepath.Join(data, "global"), linked.DrillDir); err != nil {
		t.Fatal(err)
	}
	d, err = drillAt(t, linked, "run-2")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Teardown(t.Context()); err == nil || !strings.Contains(err.Error(), "production's data dir") {
		t.Errorf("Teardown with drill_dir linked into the data dir: %v, want a refusal", err)
	}

	// Start without a complete copy, and on production's own address.
	d, err = drillAt(t, s, "run-3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "no complete copy") {
		t.Errorf("Start without a clone: %v, want an error saying there is no copy", err)
	}
	d.b.Address = s.Host
	if _, err := d.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "clash") {
		t.Errorf("Start on production's address: %v, want a refusal", err)
	}
}

// Teardown kills what still writes the copy: a pg_basebackup, say, that
// outlived the agent that started it.
func TestDrillTeardownKillsWriters(t *testing.T) {
	dir := t.TempDir()
	s := Settings{Host: "127.0.0.1", DataDir: filepath.Join(dir, "data")}
	s.SetDefaults("site-b")
	r := &config.Resource{Name: "db", Type: "postgres", Settings: map[string]any{"site-b": &s}}
	g := &config.Group{Name: "shop", Sites: []string{"site-b"}}
	dr, err := Type{}.Drill(g, r, "site-b", resource.Bubble{Run: "run-1", Address: "127.0.5.2"})
	if err != nil {
		t.Fatal(err)
	}
	d := dr.(*drill)
	if err := os.MkdirAll(d.dataDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	// A program given the copy's data dir as an argument, as pg_basebackup -D is.
	writer := exec.Command("/bin/sh", "-c", "while :; do sleep 0.05; done", "sh", d.dataDir())
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- writer.Wait() }()
	if procs := copyProcesses(d.dataDir()); !slices.Contains(procs, writer.Process.Pid) {
		t.Errorf("copyProcesses = %v, want the writer %d", procs, writer.Process.Pid)
	}
	if err := d.Teardown(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = writer.Process.Kill()
		<-exited
		t.Error("the writer outlived the teardown")
	}
	if _, err := os.Lstat(d.runDir()); !os.IsNotExist(err) {
		t.Errorf("%s is still there after the teardown (%v)", d.runDir(), err)
	}
}

func TestTablespaceMapping(t *testing.T) {
	got := tablespaceMapping("/srv/ts=1", "/drills/run/tblspc/16384")
	if want := `--tablespace-mapping=/srv/ts\=1=/drills/run/tblspc/16384`; got != want {
		t.Errorf("tablespaceMapping = %q, want %q", got, want)
	}
}
