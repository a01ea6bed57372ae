package postgres

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/testbed"
)

// timelineOf is the current timeline of a primary.
func timelineOf(t *testing.T, ctx context.Context, s Settings) int64 {
	t.Helper()
	conn, err := connect(ctx, s, "siteflip-test")
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(conn)
	tl, err := readTimeline(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	return tl.tli
}

// diskState is ClusterState, failing the test on an error.
func diskState(t *testing.T, s Settings) DiskState {
	t.Helper()
	d, err := ClusterState(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitDown waits until no postmaster runs on the data dir.
func waitDown(t *testing.T, dir string) {
	t.Helper()
	if !testbed.Poll(10*time.Second, func() bool { _, alive := Postmaster(dir); return !alive }) {
		t.Fatalf("postmaster of %s still alive", dir)
	}
}

// TestNoShell starts, stops and recovers a cluster whose data dir holds
// characters a shell would act on: pg_ctl start handed the data dir to
// /bin/sh in double quotes, where $(...) runs a command.
func TestNoShell(t *testing.T) {
	l := newLab(t, func(dir string, s *Settings) { s.SocketDir = filepath.Join(dir, "run") })
	a := l.initPrimary("site-a")
	// The substitution spans path components: they are directories.
	marker := filepath.Join(l.dir, "pwned")
	hostile := filepath.Join(l.dir, "site a;") + "$(touch " + marker + ")"
	if err := os.MkdirAll(filepath.Dir(hostile), 0o755); err != nil {
		t.Fatal(err)
	}
	u, _ := runAsUser()
	for d := filepath.Dir(hostile); d != l.dir; d = filepath.Dir(d) {
		if err := u.chown(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(a.Settings.DataDir, hostile); err != nil {
		t.Fatal(err)
	}
	a.Settings.DataDir = hostile
	if errs := a.Settings.Check(); len(errs) != 1 || errs[0].Field != "data_dir" || !strings.Contains(errs[0].Msg, "contains $") {
		t.Errorf("Check of data dir %q: %v, want one data_dir error about $", hostile, errs)
	}
	stopAtEnd(t, a)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid, alive := Postmaster(hostile)
	if !alive {
		t.Fatal("no postmaster runs on the data dir after Start")
	}
	conn, err := connect(ctx, a.Settings, "siteflip-test")
	if err != nil {
		t.Fatal(err)
	}
	var dataDir string
	err = conn.QueryRow(ctx, `SELECT current_setting('data_directory')`).Scan(&dataDir)
	closeConn(conn)
	if err != nil || dataDir != hostile {
		t.Errorf("server's data_directory %q (%v), want %q", dataDir, err, hostile)
	}
	// The postmaster is this process's child, reaped when it exits: no
	// shell in between.
	if ppid, _, _ := procStat(pid); ppid != os.Getpid() {
		t.Errorf("postmaster %d has parent %d, want this process %d", pid, ppid, os.Getpid())
	}
	if err := a.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	if _, alive := Postmaster(hostile); alive {
		t.Error("postmaster still runs after Stop")
	}
	if !testbed.Poll(5*time.Second, func() bool { _, _, ok := procStat(pid); return !ok }) {
		_, state, _ := procStat(pid)
		t.Errorf("stopped postmaster %d still exists (state %c): not reaped", pid, state)
	}

	// pg_rewind's crash recovery, without a shell and behind the guard.
	if err := a.StartPrimary(ctx); err != nil {
		t.Fatal(err)
	}
	if err := KillDataDir(hostile); err != nil {
		t.Fatal(err)
	}
	waitDown(t, hostile)
	if d := diskState(t, a.Settings); d != (DiskState{State: ClusterInProduction, StandbySignal: true}) {
		t.Errorf("after KillDataDir: %+v, want in production with standby.signal", d)
	}
	if err := a.ensureCleanShutdown(ctx, u); err != nil {
		t.Fatal(err)
	}
	if d := diskState(t, a.Settings); d != (DiskState{State: ClusterShutDown, StandbySignal: true}) {
		t.Errorf("after crash recovery: %+v, want shut down with standby.signal put back", d)
	}
	if aside, _ := filepath.Glob(filepath.Join(hostile, "*"+asideSuffix)); len(aside) > 0 {
		t.Errorf("left aside: %v", aside)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (%v): a shell ran the command in the data dir's name", marker, err)
	}
}

func TestBootGuard(t *testing.T) {
	l := newLab(t, func(dir string, s *Settings) { s.SocketDir = filepath.Join(dir, "run") })
	a := l.initPrimary("site-a")
	stopAtEnd(t, a)
	s, dir := a.Settings, a.Settings.DataDir
	guard := filepath.Join(dir, "standby.signal")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	hasGuard := func(when string) {
		t.Helper()
		fi, err := os.Stat(guard)
		if err != nil {
			t.Fatalf("%s: no boot guard: %v", when, err)
		}
		u, _ := runAsUser()
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o600 || fi.Size() != 0 || (u != nil && st.Uid != u.uid) {
			t.Errorf("%s: boot guard mode %v, size %d, owner %d; want an empty 0600 file of the postgres user", when, fi.Mode(), fi.Size(), st.Uid)
		}
	}
	isPrimary := func(when string, want bool) {
		t.Helper()
		if got := queryInt(t, ctx, s, `SELECT pg_is_in_recovery()::int`) == 0; got != want {
			t.Errorf("%s: primary %v, want %v", when, got, want)
		}
	}
	if err := EnsureBootGuard(filepath.Join(l.dir, "nothing")); err == nil || !strings.Contains(err.Error(), "no cluster") {
		t.Errorf("EnsureBootGuard without a cluster: %v", err)
	}

	// From a clean stop without the guard.
	if err := a.StartPrimary(ctx); err != nil {
		t.Fatal(err)
	}
	hasGuard("after StartPrimary")
	isPrimary("after StartPrimary", true)
	tl := timelineOf(t, ctx, s)
	pid, _ := Postmaster(dir)
	// Again: nothing to do.
	if err := a.StartPrimary(ctx); err != nil {
		t.Fatal(err)
	}
	if err := EnsureBootGuard(dir); err != nil {
		t.Fatal(err)
	}
	hasGuard("after a second StartPrimary")
	if got, _ := Postmaster(dir); got != pid {
		t.Errorf("second StartPrimary restarted the server: pid %d, was %d", got, pid)
	}
	// Postmaster works through a symbolic link.
	link := filepath.Join(l.dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if got, ok := Postmaster(link); !ok || got != pid {
		t.Errorf("Postmaster(%s -> %s) = %d, %v; want %d", link, dir, got, ok, pid)
	}
	execSQL(t, ctx, s, `CREATE TABLE g (id int PRIMARY KEY)`, `INSERT INTO g SELECT generate_series(1, 100)`)

	// Killed (the guard removed first: KillDataDir writes it), the
	// primary comes back as a read-only standby.
	if err := os.Remove(guard); err != nil {
		t.Fatal(err)
	}
	if err := KillDataDir(link); err != nil {
		t.Fatal(err)
	}
	waitDown(t, dir)
	hasGuard("after KillDataDir")
	if d := diskState(t, s); d.State != ClusterInProduction || !d.StandbySignal {
		t.Errorf("killed primary: %+v, want in production with standby.signal, not stopped cleanly", d)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	isPrimary("Start behind the guard", false)
	if n := queryInt(t, ctx, s, `SELECT count(*) FROM g`); n != 100 {
		t.Errorf("read-only standby has %d rows, want 100", n)
	}
	conn, err := connect(ctx, s, "siteflip-test")
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `INSERT INTO g VALUES (0)`)
	closeConn(conn)
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("write behind the guard: %v, want a read-only error", err)
	}

	// Running in recovery: StartPrimary restarts it as the primary, on the
	// same timeline, without promoting it.
	standbyPID, _ := Postmaster(dir)
	if err := a.StartPrimary(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := Postmaster(dir); got == standbyPID {
		t.Error("StartPrimary did not restart the standby")
	}
	isPrimary("StartPrimary of a running standby", true)
	hasGuard("StartPrimary of a running standby")
	if got := timelineOf(t, ctx, s); got != tl {
		t.Errorf("timeline %d after StartPrimary, want %d: it was promoted", got, tl)
	}
	execSQL(t, ctx, s, `INSERT INTO g SELECT generate_series(101, 200)`)

	// Stopped cleanly as a standby: StartPrimary starts it as the primary.
	if err := KillDataDir(dir); err != nil {
		t.Fatal(err)
	}
	waitDown(t, dir)
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	isPrimary("Start behind the guard", false)
	if err := a.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	if d := diskState(t, s); d != (DiskState{State: ClusterShutDownInRecovery, StandbySignal: true}) {
		t.Errorf("standby stopped fast: %+v, want shut down in recovery with standby.signal", d)
	}
	if err := a.StartPrimary(ctx); err != nil {
		t.Fatal(err)
	}
	isPrimary("StartPrimary after a standby's shutdown", true)
	hasGuard("StartPrimary after a standby's shutdown")
	if got := timelineOf(t, ctx, s); got != tl {
		t.Errorf("timeline %d after StartPrimary, want %d", got, tl)
	}
	if hist, _ := filepath.Glob(filepath.Join(dir, "pg_wal", "*.history")); len(hist) > 0 {
		t.Errorf("timeline history files %v: a promotion happened", hist)
	}
	execSQL(t, ctx, s, `INSERT INTO g SELECT generate_series(201, 300)`)
	if n := queryInt(t, ctx, s, `SELECT count(*) FROM g`); n != 300 {
		t.Errorf("%d rows, want 300", n)
	}

	// Fence writes the guard before it stops the server.
	if err := os.Remove(guard); err != nil {
		t.Fatal(err)
	}
	f, err := a.Fence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hasGuard("after Fence")
	if d := diskState(t, s); !f.Clean || d != (DiskState{State: ClusterShutDown, StandbySignal: true}) {
		t.Errorf("fenced: %+v, cluster %+v; want a clean stop, shut down with standby.signal", f, d)
	}
}

func TestClusterStateErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := ClusterState(dir)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "no cluster") {
		t.Errorf("ClusterState without a cluster: %v", err)
	}
	inst := Instance{Settings: Settings{Host: "127.0.0.1", Port: 5432, DataDir: dir}, Site: "site-a", LogFile: filepath.Join(dir, "log")}
	if err := inst.StartPrimary(t.Context()); err == nil || !strings.Contains(err.Error(), "site-a") || !strings.Contains(err.Error(), "no cluster") {
		t.Errorf("StartPrimary without a cluster: %v", err)
	}
	// KillDataDir of a missing data dir has nothing to guard or kill.
	if err := KillDataDir(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("KillDataDir of a missing data dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("KillDataDir created the data dir: %v", err)
	}
}

func TestStandbyRow(t *testing.T) {
	str := func(s string) *string { return &s }
	i64 := func(n int64) *int64 { return &n }
	f64 := func(f float64) *float64 { return &f }
	for _, tc := range []struct {
		name       string
		state      string
		lagBytes   *int64
		lagSeconds *float64
		want       Standby
	}{
		{"measured", "streaming", i64(100), f64(0.02), Standby{State: "streaming", LagBytes: 100, LagSeconds: 0.02}},
		{"idle, caught up", "streaming", i64(0), nil, Standby{State: "streaming", LagBytes: 0, LagSeconds: 0}},
		// An idle primary's insert position is a few bytes past what it
		// flushed: replay_lag is NULL, the standby has everything sent.
		{"idle, insert ahead of flush", "streaming", i64(24), nil, Standby{State: "streaming", LagBytes: 24, LagSeconds: 0}},
		{"catching up, not measured", "catchup", i64(8192), nil, Standby{State: "catchup", LagBytes: 8192, LagSeconds: -1}},
		{"no replay position yet", "startup", nil, nil, Standby{State: "startup", LagBytes: -1, LagSeconds: -1}},
	} {
		got := standbyRow(str("site-b"), str(tc.state), str("async"), str("0/3000000"), tc.lagBytes, tc.lagSeconds)
		tc.want.ApplicationName, tc.want.SyncState, tc.want.ReplayLSN = "site-b", "async", "0/3000000"
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}
