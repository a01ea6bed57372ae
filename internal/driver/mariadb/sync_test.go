package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/testbed"
)

// appConn is a session of the application account at s whose reads wait
// up to a minute (the package's DSN gives up after 10 s: a commit that
// waits longer must still be seen to wait).
func appConn(t *testing.T, s Settings) (*sql.Conn, int64) {
	t.Helper()
	db, err := sql.Open("mysql", fmt.Sprintf("app:app-pw@tcp(%s)/?timeout=2s&readTimeout=60s&writeTimeout=60s&interpolateParams=true", s.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var id int64
	if err := c.QueryRowContext(t.Context(), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return c, id
}

// covers says whether GTID list have holds every GTID of want.
func covers(t *testing.T, have, want string) bool {
	t.Helper()
	h, err := parseGTIDList(have)
	if err != nil {
		t.Fatal(err)
	}
	w, err := parseGTIDList(want)
	if err != nil {
		t.Fatal(err)
	}
	for d, n := range w {
		if h[d] < n {
			return false
		}
	}
	return true
}

func readState(t *testing.T, c syncControl) resource.SyncState {
	t.Helper()
	st, err := c.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func waitState(t *testing.T, c syncControl, timeout time.Duration, what string, cond func(resource.SyncState) bool) resource.SyncState {
	t.Helper()
	var st resource.SyncState
	var err error
	if !testbed.Poll(timeout, func() bool {
		st, err = c.Read(t.Context())
		return err == nil && cond(st)
	}) {
		t.Fatalf("waiting for %s: %+v, %v", what, st, err)
	}
	return st
}

// median commit latency of n single-row autocommit inserts from id on.
func commitLatency(t *testing.T, c *sql.Conn, id, n int) time.Duration {
	t.Helper()
	d := make([]time.Duration, n)
	for i := range n {
		began := time.Now()
		if _, err := c.ExecContext(t.Context(), "INSERT INTO shop.orders VALUES (?)", id+i); err != nil {
			t.Fatal(err)
		}
		d[i] = time.Since(began)
	}
	slices.Sort(d)
	return d[n/2]
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:min(3, len(strings.Fields(string(b))))], " ")
}

// Semi-synchronous replication on two real servers: the option file's
// settings are in effect; required, a commit returns once the standby has
// received it; with the standby's replication stopped commits wait, past
// the 10 s a default server would wait, until DisableSync releases them;
// a session killed while it waited commits locally and is reported once;
// Require and Release are idempotent.
func TestSyncSemiSync(t *testing.T) {
	testbed.RequireMariaDB(t)
	p := startPair(t)
	ctx := t.Context()
	waitRole(t, p.b.Settings, RoleStandby, true)
	c := newSyncControl(p.a.Settings, p.b.Settings)

	// The option file, as the servers took it.
	st, err := ReadSync(ctx, p.a.Settings)
	if err != nil {
		t.Fatal(err)
	}
	if st.Enabled || !strings.EqualFold(st.WaitPoint, "AFTER_SYNC") || !st.WaitNoSlave || st.TimeoutMS != maxSemiSyncTimeout {
		t.Errorf("primary from its option file: %s, wait point %s, wait_no_slave %v, timeout %d", st, st.WaitPoint, st.WaitNoSlave, st.TimeoutMS)
	}
	if out, err := p.b.RootSQL(ctx, "SELECT @@rpl_semi_sync_slave_enabled, @@sync_relay_log"); err != nil || out != "1\t1" {
		t.Errorf("standby: rpl_semi_sync_slave_enabled, sync_relay_log = %q (%v), want 1 and 1", out, err)
	}
	if len(st.Weakened) != 0 {
		t.Errorf("weakened on a new pair: %q", st.Weakened)
	}
	// Attached from the start: the standby's IO thread started with
	// rpl_semi_sync_slave_enabled=ON.
	s0 := waitState(t, c, 10*time.Second, "the standby attached", func(s resource.SyncState) bool { return s.Streaming })
	if s0.Enabled || s0.Requires || s0.Confirms || s0.Blocking {
		t.Errorf("before Require: %+v, want only Streaming", s0)
	}

	app, appID := appConn(t, p.a.Settings)
	async := commitLatency(t, app, 1, 200)

	// Fact 3 (part): Require twice.
	for i := range 2 {
		if err := c.Require(ctx); err != nil {
			t.Fatalf("Require #%d: %v", i+1, err)
		}
	}
	s1 := readState(t, c)
	if !s1.Enabled || !s1.Requires || !s1.Confirms || !s1.Streaming || s1.Blocking || len(s1.Weakened) > 0 {
		t.Fatalf("after Require: %+v, want Enabled, Requires, Confirms, Streaming", s1)
	}
	semi := commitLatency(t, app, 1000, 200)
	t.Logf("median commit latency over 200 autocommit inserts on loopback: async %v, semi-sync %v (load %s)", async, semi, loadAvg())

	// Fact 1: a commit returns once the standby has received it.
	_, since, err := c.SyncedSince(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(since, "binlog=0-1-") {
		t.Errorf("SyncedSince(\"\") = %q, want binlog=0-1-… no_tx=… no_times=…", since)
	}
	for i := range 20 {
		if _, err := app.ExecContext(ctx, "INSERT INTO shop.orders VALUES (?)", 2000+i); err != nil {
			t.Fatal(err)
		}
		var gtid string
		if err := app.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&gtid); err != nil {
			t.Fatal(err)
		}
		o, err := Observe(ctx, p.b.Settings)
		if err != nil {
			t.Fatal(err)
		}
		if !covers(t, o.IOPos, gtid) {
			t.Fatalf("commit %s returned, but the standby has received only %s", gtid, o.IOPos)
		}
	}
	flushed, pos, err := c.SyncedSince(ctx, since)
	if err != nil || !flushed {
		t.Errorf("SyncedSince(%q) after commits the standby confirmed: %v, %q, %v; want true", since, flushed, pos, err)
	}
	if !readState(t, c).Confirms {
		t.Error("Confirms false while the standby confirms")
	}

	// Fact 2: the standby's replication stopped, commits wait.
	if _, err := p.b.RootSQL(ctx, "STOP SLAVE"); err != nil {
		t.Fatal(err)
	}
	s2 := waitState(t, c, 10*time.Second, "the standby detached", func(s resource.SyncState) bool { return !s.Streaming })
	if !s2.Blocking || s2.Confirms || !s2.Enabled {
		t.Errorf("standby stopped: %+v, want Blocking, Enabled, not Confirms", s2)
	}
	_, beforeStuck, err := c.SyncedSince(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	began := time.Now()
	go func() {
		_, err := app.ExecContext(ctx, "INSERT INTO shop.orders VALUES (3000)")
		first <- err
	}()
	select {
	case err := <-first:
		t.Fatalf("a commit returned (%v) after %v with the standby stopped", err, time.Since(began))
	case <-time.After(time.Second):
	}
	w1 := waitState(t, c, 10*time.Second, "a waiting commit", func(s resource.SyncState) bool { return s.LongestWait > 0 })
	if !w1.Blocking {
		t.Errorf("a commit waits: %+v, want Blocking", w1)
	}
	stuck, err := ReadSync(ctx, p.a.Settings)
	if err != nil {
		t.Fatal(err)
	}
	if stuck.WaitSessions != 1 || stuck.Waiting != 1 || !stuck.On {
		t.Errorf("one commit waits: %s", stuck)
	}
	// Past the default timeout (10 s): nothing falls back.
	w2 := waitState(t, c, 15*time.Second, "a commit waiting 11 s", func(s resource.SyncState) bool { return s.LongestWait > 11*time.Second })
	if w2.LongestWait <= w1.LongestWait || !w2.Blocking {
		t.Errorf("the wait did not grow: %v then %+v", w1.LongestWait, w2)
	}
	select {
	case err := <-first:
		t.Fatalf("a commit returned (%v) after %v", err, time.Since(began))
	default:
	}
	late, err := ReadSync(ctx, p.a.Settings)
	if err != nil {
		t.Fatal(err)
	}
	if !late.On || late.NoTimes != stuck.NoTimes || late.NoTx != stuck.NoTx || late.TimeoutMS != maxSemiSyncTimeout {
		t.Errorf("after %v: %s, timeout %d ms; want still ON, nothing gone through", time.Since(began).Round(time.Millisecond), late, late.TimeoutMS)
	}
	t.Logf("a commit still waits after %v: %s", time.Since(began).Round(time.Millisecond), late)

	// The standby has all that was written before the commit that waits.
	if flushed, _, err := c.SyncedSince(ctx, beforeStuck); err != nil || !flushed {
		t.Errorf("SyncedSince(%q) with the standby stopped after it: %v, %v; want true", beforeStuck, flushed, err)
	}

	// A second commit queues behind; the first one's session killed, its
	// commit goes through locally: reported once, and SyncedSince no
	// longer trusts a position taken before.
	app2, app2ID := appConn(t, p.a.Settings)
	second := make(chan error, 1)
	go func() {
		_, err := app2.ExecContext(ctx, "INSERT INTO shop.orders VALUES (3001)")
		second <- err
	}()
	testbed.WaitFor(t, 5*time.Second, "the second commit to wait", func() bool {
		out, err := p.a.RootSQL(ctx, fmt.Sprintf("SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = %d", app2ID))
		return err == nil && (out == "Commit" || out == stateSemiSyncWait)
	})
	if _, err := p.a.RootSQL(ctx, fmt.Sprintf("KILL CONNECTION %d", appID)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-first:
		if err == nil {
			t.Error("the killed session's commit returned OK")
		} else {
			t.Logf("the killed session's client got: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the killed session's commit did not return")
	}
	if out, err := p.a.RootSQL(ctx, "SELECT COUNT(*) FROM shop.orders WHERE id = 3000"); err != nil || out != "1" {
		t.Errorf("the killed session's row at the primary: %q (%v), want it committed", out, err)
	}
	k1 := readState(t, c)
	if !slices.ContainsFunc(k1.Weakened, func(w string) bool { return strings.Contains(w, "without the standby's acknowledgement") }) {
		t.Errorf("after a waiting commit was killed: Weakened %q, want it reported", k1.Weakened)
	}
	if k2 := readState(t, c); len(k2.Weakened) != 0 || !k2.Blocking {
		t.Errorf("the next Read: %+v, want it reported once, still Blocking", k2)
	}
	select {
	case err := <-second:
		t.Fatalf("the second commit returned (%v) with the standby stopped", err)
	default:
	}
	if flushed, _, err := c.SyncedSince(ctx, beforeStuck); err != nil || flushed {
		t.Errorf("SyncedSince(%q) after a commit went through without the standby: %v, %v; want false", beforeStuck, flushed, err)
	}

	// Fact 2 (end) and 3: Release wakes the waiting commit, twice.
	released := time.Now()
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second:
		if err != nil {
			t.Errorf("the waiting commit, released: %v", err)
		}
		t.Logf("Release returned and the waiting commit returned within %v", time.Since(released).Round(time.Millisecond))
	case <-time.After(2 * time.Second):
		t.Fatal("the waiting commit did not return after Release")
	}
	if err := c.Release(ctx); err != nil {
		t.Errorf("Release again: %v", err)
	}
	r := readState(t, c)
	if r.Enabled || r.Requires || r.Blocking || r.Confirms || r.LongestWait != 0 || len(r.Weakened) != 0 {
		t.Errorf("after Release: %+v, want nothing enabled, nothing waiting, nothing reported", r)
	}
	if flushed, _, err := c.SyncedSince(ctx, beforeStuck); err != nil || flushed {
		t.Errorf("SyncedSince(%q) after Release: %v, %v; want false", beforeStuck, flushed, err)
	}

	// Back: the standby attached again, required, catch-up confirmed.
	if _, err := p.b.RootSQL(ctx, "START SLAVE"); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, 10*time.Second, "the standby attached again", func(s resource.SyncState) bool { return s.Streaming })
	if err := c.Require(ctx); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, 10*time.Second, "the standby confirming", func(s resource.SyncState) bool { return s.Confirms && s.Requires })
	_, since, err = c.SyncedSince(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := write(ctx, p.a.Settings, 4000); err != nil {
		t.Fatal(err)
	}
	if flushed, _, err := c.SyncedSince(ctx, since); err != nil || !flushed {
		t.Errorf("SyncedSince(%q) after a confirmed commit: %v, %v", since, flushed, err)
	}
	na, _ := count(ctx, p.a.Settings)
	testbed.WaitFor(t, 10*time.Second, "the standby to hold every order", func() bool {
		nb, err := count(ctx, p.b.Settings)
		return err == nil && nb == na
	})
}

// What lets commits stop waiting for the standby is listed, and Require
// puts the option file's settings back.
func TestSyncWeakened(t *testing.T) {
	testbed.RequireMariaDB(t)
	p := startPair(t)
	ctx := t.Context()
	waitRole(t, p.b.Settings, RoleStandby, true)
	c := newSyncControl(p.a.Settings, p.b.Settings)

	if st := readState(t, c); len(st.Weakened) != 0 {
		t.Errorf("a new pair: Weakened %q", st.Weakened)
	}
	if _, err := p.a.RootSQL(ctx, "REVOKE SELECT ON mysql.global_priv FROM 'siteflip'@'%'"); err != nil {
		t.Fatal(err)
	}
	st := readState(t, c)
	if len(st.Weakened) != 1 || !strings.Contains(st.Weakened[0], "mysql.global_priv") {
		t.Errorf("without SELECT on mysql.global_priv: Weakened %q, want that it cannot tell", st.Weakened)
	}
	if _, err := p.a.RootSQL(ctx, `GRANT SELECT ON mysql.global_priv TO 'siteflip'@'%';
CREATE USER ops@'%' IDENTIFIED BY 'x'; GRANT BINLOG ADMIN ON *.* TO ops@'%';
CREATE USER old@'%' IDENTIFIED BY 'x'; GRANT SUPER ON *.* TO old@'%';
CREATE ROLE loggers; GRANT BINLOG ADMIN ON *.* TO loggers; GRANT BINLOG ADMIN ON *.* TO PUBLIC;
CREATE USER mon@'%' IDENTIFIED BY 'x'; GRANT BINLOG MONITOR, REPLICATION MASTER ADMIN ON *.* TO mon@'%'`); err != nil {
		t.Fatal(err)
	}
	// SUPER alone still allows SET sql_log_bin=0 in 10.11.
	old := Settings{Host: p.a.Settings.Host, Port: p.a.Settings.Port}
	db, conn, err := open(ctx, old, "old", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "SET SESSION sql_log_bin=0"); err != nil {
		t.Errorf("SET sql_log_bin=0 with SUPER: %v; SUPER need not be listed then", err)
	}
	conn.Close()
	db.Close()

	st = readState(t, c)
	want := []string{"role PUBLIC holds BINLOG ADMIN", "role `loggers` holds BINLOG ADMIN", "account 'old'@'%' holds SUPER", "account 'ops'@'%' holds BINLOG ADMIN"}
	if len(st.Weakened) != len(want) {
		t.Errorf("Weakened %q, want %d entries", st.Weakened, len(want))
	}
	for i, w := range want {
		if i >= len(st.Weakened) || !strings.HasPrefix(st.Weakened[i], w) {
			t.Errorf("Weakened %q, want %q first in entry %d", st.Weakened, w, i)
		}
	}
	if _, err := p.a.RootSQL(ctx, "DROP USER ops@'%', old@'%'; DROP ROLE loggers; REVOKE BINLOG ADMIN ON *.* FROM PUBLIC"); err != nil {
		t.Fatal(err)
	}

	// Settings changed at runtime: weakened, not required; Require puts
	// them back.
	if err := c.Require(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.a.RootSQL(ctx, "SET GLOBAL rpl_semi_sync_master_timeout=10000; SET GLOBAL rpl_semi_sync_master_wait_no_slave=OFF; SET GLOBAL rpl_semi_sync_master_wait_point=AFTER_COMMIT"); err != nil {
		t.Fatal(err)
	}
	st = readState(t, c)
	if st.Requires || len(st.Weakened) != 2 || !strings.Contains(st.Weakened[0], "rpl_semi_sync_master_timeout is 10000 ms") || !strings.Contains(st.Weakened[1], "wait_no_slave is OFF") {
		t.Errorf("timeout 10 s, wait_no_slave OFF, AFTER_COMMIT: %+v", st)
	}
	if err := c.Require(ctx); err != nil {
		t.Fatal(err)
	}
	if st = readState(t, c); !st.Requires || len(st.Weakened) != 0 {
		t.Errorf("after Require: %+v", st)
	}

	// The fallback the option file's timeout prevents: at 200 ms, a
	// commit with the standby stopped goes through and the side turns
	// OFF while still enabled. Reported, not required; Require turns it
	// back ON.
	if _, err := p.b.RootSQL(ctx, "STOP SLAVE"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.a.RootSQL(ctx, "SET GLOBAL rpl_semi_sync_master_timeout=200"); err != nil {
		t.Fatal(err)
	}
	readState(t, c) // the counters before
	began := time.Now()
	if err := write(ctx, p.a.Settings, 1); err != nil {
		t.Fatal(err)
	}
	t.Logf("with rpl_semi_sync_master_timeout=200 and the standby stopped a commit returned after %v", time.Since(began).Round(time.Millisecond))
	st = readState(t, c)
	if !st.Enabled || st.Requires || st.Blocking || len(st.Weakened) != 2 ||
		!strings.Contains(st.Weakened[0], "timeout is 200 ms") || !strings.Contains(st.Weakened[1], "no_tx 0 → 1, _no_times 0 → 1") {
		t.Errorf("after a timeout: %+v", st)
	}
	if err := c.Require(ctx); err != nil {
		t.Fatal(err)
	}
	if st = readState(t, c); !st.Requires || !st.Blocking || len(st.Weakened) != 0 {
		t.Errorf("after Require: %+v, want Requires, Blocking (the standby is stopped)", st)
	}
	if _, err := p.b.RootSQL(ctx, "START SLAVE"); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, 10*time.Second, "the standby confirming", func(s resource.SyncState) bool { return s.Confirms })

	// A third replica attached: its acknowledgement would count.
	other := Settings{ServerID: 99}
	if st, err := newSyncControl(p.a.Settings, other).Read(ctx); err != nil || st.Streaming || st.Confirms ||
		len(st.Weakened) != 1 || !strings.Contains(st.Weakened[0], "replica server_id 2") {
		t.Errorf("with the standby said to be server_id 99: %+v, %v", st, err)
	}
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSyncPosition(t *testing.T) {
	p := syncPosition{binlog: "0-1-12,1-3-4", noTx: 2, noTimes: 1}
	got, err := parseSyncPosition(p.String())
	if err != nil || got != p {
		t.Errorf("round trip of %q: %+v, %v", p, got, err)
	}
	if got, err := parseSyncPosition("binlog= no_tx=0 no_times=0"); err != nil || got != (syncPosition{}) {
		t.Errorf("nothing written: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "0-1-12", "binlog=0-1-12 no_tx=x no_times=0", "binlog=0-1-12 no_tx=1"} {
		if _, err := parseSyncPosition(bad); err == nil {
			t.Errorf("parseSyncPosition(%q) accepted", bad)
		}
	}
	m, err := parseGTIDList("0-1-12, 1-3-4,0-2-10")
	if err != nil || m[0] != 12 || m[1] != 4 || len(m) != 2 {
		t.Errorf("parseGTIDList: %v, %v", m, err)
	}
	if _, err := parseGTIDList("0-1"); err == nil {
		t.Error("parseGTIDList(0-1) accepted")
	}
}

// Without a server the calls say where they failed.
func TestSyncNothingListening(t *testing.T) {
	s := Settings{Host: "127.0.0.1", Port: testbed.FreePort(t), Admin: "siteflip", AdminPassword: "x"}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c := newSyncControl(s, s)
	if _, err := c.Read(ctx); err == nil || !strings.Contains(err.Error(), s.Addr()) {
		t.Errorf("Read: %v", err)
	}
	if err := c.Require(ctx); err == nil || !strings.Contains(err.Error(), "semi-synchronous") {
		t.Errorf("Require: %v", err)
	}
	if err := c.Release(ctx); err == nil || !strings.Contains(err.Error(), "asynchronous") {
		t.Errorf("Release: %v", err)
	}
	if _, _, err := c.SyncedSince(ctx, ""); err == nil || !strings.Contains(err.Error(), s.Addr()) {
		t.Errorf("SyncedSince: %v", err)
	}
}
