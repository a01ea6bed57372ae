package postgres

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/testbed"
)

func TestSyncStandbyNames(t *testing.T) {
	for _, tc := range []struct {
		standby, want, err string
	}{
		{standby: "site-b", want: `"site-b"`},
		{standby: "Site B", want: `"Site B"`},
		{standby: "first", want: `"first"`}, // a keyword, taken as a name
		{standby: "2", want: `"2"`},         // a number, taken as a name
		{standby: `a"b`, want: `"a""b"`},
		{standby: `it's`, want: `"it's"`},
		{standby: "a, b", want: `"a, b"`}, // one name, not a list
		{standby: strings.Repeat("x", 63), want: `"` + strings.Repeat("x", 63) + `"`},
		{standby: "", err: "empty"},
		{standby: "*", err: "any standby"},
		{standby: " * ", err: "any standby"},
		{standby: "site\tb", err: "printable ASCII"},
		{standby: "sité", err: "printable ASCII"},
		{standby: strings.Repeat("x", 64), err: "truncates"},
	} {
		got, err := syncStandbyNames(tc.standby)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("syncStandbyNames(%q) = %q, %v; want an error about %q", tc.standby, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("syncStandbyNames(%q) = %q, %v; want %q", tc.standby, got, err, tc.want)
		}
	}
}

func TestSyncStateMethods(t *testing.T) {
	sync := SyncStandby{ApplicationName: "site-b", State: "streaming", SyncState: "sync", SyncPriority: 1}
	async := SyncStandby{ApplicationName: "site-b", State: "streaming", SyncState: "async"}
	for _, tc := range []struct {
		name                    string
		st                      SyncState
		enabled, requires, sync bool
		blocking                bool
	}{
		{name: "asynchronous", st: SyncState{Primary: true, SynchronousCommit: "on", Standbys: []SyncStandby{async}}},
		{name: "sync standby connected",
			st:      SyncState{Primary: true, StandbyNames: `"site-b"`, SynchronousCommit: "on", ServerCommit: "on", Standbys: []SyncStandby{sync}},
			enabled: true, requires: true, sync: true},
		{name: "named in another case",
			st:      SyncState{Primary: true, StandbyNames: `"SITE-B"`, SynchronousCommit: "on", Standbys: []SyncStandby{{ApplicationName: "SITE-B", State: "streaming", SyncState: "sync"}}},
			enabled: true, sync: true},
		{name: "no standby connected",
			st:      SyncState{Primary: true, StandbyNames: `"site-b"`, SynchronousCommit: "on", ServerCommit: "on", Waiting: 2},
			enabled: true, requires: true, blocking: true},
		{name: "another standby named",
			st:      SyncState{Primary: true, StandbyNames: `"site-x"`, SynchronousCommit: "on", Standbys: []SyncStandby{async}},
			enabled: true, blocking: true},
		{name: "quorum",
			st:      SyncState{Primary: true, StandbyNames: `ANY 1 ("site-b", "site-c")`, SynchronousCommit: "on", Standbys: []SyncStandby{{ApplicationName: "site-b", State: "streaming", SyncState: "quorum"}}},
			enabled: true, sync: true},
		{name: "remote_apply",
			st:      SyncState{Primary: true, StandbyNames: `"site-b"`, SynchronousCommit: "remote_apply", ServerCommit: "remote_apply", Standbys: []SyncStandby{sync}},
			enabled: true, requires: true, sync: true},
		{name: "server remote_write",
			st:      SyncState{Primary: true, StandbyNames: `"site-b"`, SynchronousCommit: "remote_write", ServerCommit: "remote_write", Standbys: []SyncStandby{sync}},
			enabled: true, sync: true},
		{name: "server local, session of the role on",
			st:      SyncState{Primary: true, StandbyNames: `"site-b"`, SynchronousCommit: "on", ServerCommit: "local", Standbys: []SyncStandby{sync}},
			enabled: true, sync: true},
		{name: "server on, session of the role local",
			st:       SyncState{Primary: true, StandbyNames: `"site-b"`, SynchronousCommit: "local", ServerCommit: "on", Standbys: []SyncStandby{sync}},
			requires: true, sync: true},
		{name: "synchronous_commit local",
			st: SyncState{Primary: true, StandbyNames: `"site-b"`, SynchronousCommit: "local", ServerCommit: "local"}},
		{name: "standby with a copied setting",
			st:      SyncState{StandbyNames: `"site-b"`, SynchronousCommit: "on", ServerCommit: "on"},
			enabled: true, requires: true},
	} {
		st := tc.st
		got := []bool{st.Enabled(), st.Requires("site-b"), st.IsSync("site-b"), st.Blocking()}
		want := []bool{tc.enabled, tc.requires, tc.sync, tc.blocking}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: Enabled, Requires(site-b), IsSync(site-b), Blocking (-want +got):\n%s", tc.name, diff)
		}
		if s := st.String(); !strings.Contains(s, st.StandbyNames) {
			t.Errorf("%s: String() = %q does not show synchronous_standby_names", tc.name, s)
		}
	}
}

func TestSyncNothingListening(t *testing.T) {
	s := Settings{Host: "127.0.0.1", Port: testbed.FreePort(t)}
	s.SetDefaults("site-a")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	for name, f := range map[string]func() error{
		"EnableSync":  func() error { return EnableSync(ctx, s, "site-b") },
		"DisableSync": func() error { return DisableSync(ctx, s) },
		"ReadSync":    func() error { _, err := ReadSync(ctx, s); return err },
	} {
		err := f()
		if err == nil || !strings.Contains(err.Error(), s.addr()) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s with nothing listening: %v; want a one-line error naming %s", name, err, s.addr())
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second) // long enough to connect on a loaded machine; the standby never appears
	defer wcancel()
	if _, err := WaitSync(wctx, s, "site-b"); err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), s.addr()) {
		t.Errorf("WaitSync with nothing listening: %v; want a deadline error naming %s", err, s.addr())
	}
}

// pendingCommit is an INSERT committed on a connection of its own, in the
// background.
type pendingCommit struct {
	began  time.Time
	done   chan struct{}
	err    error         // valid after done
	took   time.Duration // valid after done
	cancel context.CancelFunc
}

// startCommit inserts id into sync_t of s in the background. The test's
// end cancels it if it is still waiting.
func startCommit(t *testing.T, s Settings, id int) *pendingCommit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	conn, err := connect(ctx, s, "siteflip-test-commit")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &pendingCommit{began: time.Now(), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(c.done)
		_, c.err = conn.Exec(ctx, `INSERT INTO sync_t (id) VALUES ($1)`, id)
		c.took = time.Since(c.began)
		closeConn(conn)
	}()
	t.Cleanup(func() {
		c.cancel()
		<-c.done
	})
	return c
}

// wait returns the commit's result, or fails the test if it has not
// returned within d.
func (c *pendingCommit) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(d):
		t.Fatalf("commit still waiting %v after it began", time.Since(c.began).Round(time.Millisecond))
		return nil
	}
}

// blocks fails the test if the commit returns within d.
func (c *pendingCommit) blocks(t *testing.T, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	select {
	case <-c.done:
		t.Fatalf("commit returned after %v (err %v), want it to wait for the standby", c.took.Round(time.Millisecond), c.err)
	default:
	}
}

// readSyncUntil reads the sync state until ok accepts it or timeout
// passes, and returns the last state.
func readSyncUntil(t *testing.T, s Settings, timeout time.Duration, ok func(SyncState) bool) (SyncState, bool) {
	t.Helper()
	var st SyncState
	good := testbed.Poll(timeout, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		var err error
		if st, err = ReadSync(ctx, s); err != nil {
			t.Fatal(err)
		}
		return ok(st)
	})
	return st, good
}

func TestSync(t *testing.T) {
	p := startPair(t, func(dir string, s *Settings) { s.SocketDir = filepath.Join(dir, "run") })
	a, b := p.primary.Settings, p.standby.Settings
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	execSQL(t, ctx, a, `CREATE TABLE sync_t (id int PRIMARY KEY)`)
	autoConf := filepath.Join(a.DataDir, "postgresql.auto.conf")
	nextID := 0
	commit := func() *pendingCommit { nextID++; return startCommit(t, a, nextID) }

	if st, ok := readSyncUntil(t, a, 15*time.Second, func(st SyncState) bool {
		return len(st.Standbys) == 1 && st.Standbys[0].State == "streaming"
	}); !ok {
		t.Fatalf("the standby does not stream: %s", st)
	}

	t.Run("bad input changes nothing", func(t *testing.T) {
		before, err := os.ReadFile(autoConf)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ standby, err string }{
			{"", "standby name is empty"},
			{"*", "any standby"},
			{strings.Repeat("b", 64), "truncates"},
			{a.ApplicationName, "own cluster_name"},
			{strings.ToUpper(a.ApplicationName), "own cluster_name"},
		} {
			err := EnableSync(ctx, a, tc.standby)
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), a.addr()) || !strings.Contains(err.Error(), a.DataDir) {
				t.Errorf("EnableSync(%q) = %v; want an error naming %s and %s, about %q", tc.standby, err, a.addr(), a.DataDir, tc.err)
			}
			t.Logf("EnableSync(%q): %v", tc.standby, err)
		}
		// A standby is refused: synchronous replication is the primary's.
		if err := EnableSync(ctx, b, "site-a"); err == nil || !strings.Contains(err.Error(), "standby (in recovery)") || !strings.Contains(err.Error(), b.addr()) {
			t.Errorf("EnableSync on the standby = %v; want it refused, naming %s", err, b.addr())
		}
		after, err := os.ReadFile(autoConf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Errorf("postgresql.auto.conf changed by refused calls:\n%s\nnow:\n%s", before, after)
		}
		st, err := ReadSync(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if st.StandbyNames != "" || st.Enabled() || !st.Primary {
			t.Errorf("after refused calls: %s; want an asynchronous primary", st)
		}
		if _, err := WaitSync(ctx, a, ""); err == nil || !strings.Contains(err.Error(), "empty") {
			t.Errorf("WaitSync with no name: %v", err)
		}
	})

	t.Run("enable", func(t *testing.T) {
		// EnableSync sets synchronous_commit too, and checks that new
		// sessions get it.
		execSQL(t, ctx, a, `ALTER SYSTEM SET synchronous_commit = local`, `SELECT pg_reload_conf()`)
		if st, ok := readSyncUntil(t, a, 5*time.Second, func(st SyncState) bool { return st.SynchronousCommit == "local" }); !ok {
			t.Fatalf("synchronous_commit = local not in effect: %s", st)
		}
		began := time.Now()
		if err := EnableSync(ctx, a, b.ApplicationName); err != nil {
			t.Fatal(err)
		}
		tEnable := time.Since(began)
		st, err := WaitSync(ctx, a, b.ApplicationName)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("EnableSync took %v, the standby was sync %v after the call: %s",
			tEnable.Round(time.Millisecond), time.Since(began).Round(time.Millisecond), st)
		want := SyncState{
			Primary:           true,
			StandbyNames:      `"site-b"`,
			SynchronousCommit: "on",
			ServerCommit:      "on",
			Standbys:          []SyncStandby{{ApplicationName: "site-b", State: "streaming", SyncState: "sync", SyncPriority: 1}},
		}
		if diff := cmp.Diff(want, st); diff != "" {
			t.Errorf("ReadSync after EnableSync (-want +got):\n%s", diff)
		}
		if !st.Requires(b.ApplicationName) || st.Blocking() {
			t.Errorf("Requires %v, Blocking %v; want true, false", st.Requires(b.ApplicationName), st.Blocking())
		}
		auto, err := os.ReadFile(autoConf)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(auto), `synchronous_standby_names = '"site-b"'`) {
			t.Errorf("postgresql.auto.conf:\n%s\nwant synchronous_standby_names = '\"site-b\"'", auto)
		}

		if err := commit().wait(t, 10*time.Second); err != nil {
			t.Fatalf("commit with a sync standby: %v", err)
		}
		// Again: nothing changes.
		if err := EnableSync(ctx, a, b.ApplicationName); err != nil {
			t.Fatal(err)
		}
		if st, err := ReadSync(ctx, a); err != nil || !st.IsSync(b.ApplicationName) {
			t.Errorf("after a second EnableSync: %s, %v; want site-b sync", st, err)
		}
		if err := DisableSync(ctx, a); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("quoted name", func(t *testing.T) {
		name := `Site "B", 'x'`
		if err := EnableSync(ctx, a, name); err != nil {
			t.Fatal(err)
		}
		st, err := ReadSync(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if st.StandbyNames != `"Site ""B"", 'x'"` || !st.Requires(name) || !st.Blocking() {
			t.Errorf("after EnableSync(%q): %s; requires %v, blocking %v", name, st, st.Requires(name), st.Blocking())
		}
		// PostgreSQL matches names without regard to case: the standby
		// site-b confirms for "SITE-B".
		if err := EnableSync(ctx, a, "SITE-B"); err != nil {
			t.Fatal(err)
		}
		if st, err := WaitSync(ctx, a, "SITE-B"); err != nil || st.StandbyNames != `"SITE-B"` || !st.IsSync("site-b") {
			t.Errorf("EnableSync(SITE-B): %s, %v; want site-b sync", st, err)
		}
		if err := DisableSync(ctx, a); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("unknown standby blocks commits", func(t *testing.T) {
		if err := EnableSync(ctx, a, "site-x"); err != nil {
			t.Fatal(err)
		}
		st, err := ReadSync(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Requires("site-x") || st.IsSync("site-x") || st.IsSync("site-b") || !st.Blocking() {
			t.Errorf("configured for site-x, which does not exist: %s; want no sync standby, blocking", st)
		}
		if len(st.Standbys) != 1 || st.Standbys[0].SyncState != "async" {
			t.Errorf("standbys %+v, want site-b async", st.Standbys)
		}
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Second) // long enough to connect on a loaded machine; the standby never appears
		_, err = WaitSync(wctx, a, "site-x")
		wcancel()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "site-b (streaming, async)") {
			t.Errorf("WaitSync for a standby that does not exist: %v; want a deadline error listing the standbys", err)
		}
		t.Logf("WaitSync(site-x): %v", err)

		c := commit()
		c.blocks(t, time.Second)
		st, ok := readSyncUntil(t, a, 5*time.Second, func(st SyncState) bool { return st.Waiting == 1 })
		if !ok || st.LongestWait < 500*time.Millisecond {
			t.Errorf("with a commit blocked: %s; want 1 commit waiting for over 0.5 s", st)
		}
		began := time.Now()
		if err := DisableSync(ctx, a); err != nil {
			t.Fatal(err)
		}
		tDisable := time.Since(began)
		if err := c.wait(t, 5*time.Second); err != nil {
			t.Errorf("blocked commit after DisableSync: %v, want it committed", err)
		}
		t.Logf("DisableSync took %v; the blocked commit returned after %v, %v after DisableSync began",
			tDisable.Round(time.Millisecond), c.took.Round(time.Millisecond), c.began.Add(c.took).Sub(began).Round(time.Millisecond))
	})

	t.Run("disable on a standby", func(t *testing.T) {
		// What pg_basebackup would have copied to the standby.
		execSQL(t, ctx, b, `ALTER SYSTEM SET synchronous_standby_names = '"site-b"'`, `SELECT pg_reload_conf()`)
		st, ok := readSyncUntil(t, b, 5*time.Second, func(st SyncState) bool { return st.StandbyNames != "" })
		if !ok || st.Primary || st.Blocking() {
			t.Errorf("standby with a copied setting: %s; want it listed, not blocking", st)
		}
		if err := DisableSync(ctx, b); err != nil {
			t.Fatal(err)
		}
		if st, err := ReadSync(ctx, b); err != nil || st.StandbyNames != "" {
			t.Errorf("standby after DisableSync: %s, %v; want no standby named", st, err)
		}
	})

	t.Run("weakened", func(t *testing.T) {
		execSQL(t, ctx, a,
			`CREATE ROLE app LOGIN`,
			`CREATE DATABASE shop`,
			`ALTER ROLE app SET synchronous_commit = local`,
			`ALTER DATABASE shop SET synchronous_commit = off`,
			`ALTER ROLE app IN DATABASE shop SET synchronous_commit = 'false'`,
			`ALTER ROLE app IN DATABASE siteflip SET synchronous_commit = remote_apply`, // stronger: fine
			`ALTER SYSTEM SET synchronous_commit = local`,
			`SELECT pg_reload_conf()`)
		st, ok := readSyncUntil(t, a, 5*time.Second, func(st SyncState) bool { return st.ServerCommit == "local" })
		want := []string{
			"server sets synchronous_commit=local",
			"database shop sets synchronous_commit=off",
			"role app sets synchronous_commit=local",
			"role app in database shop sets synchronous_commit=off",
		}
		if diff := cmp.Diff(want, st.Weakened); !ok || diff != "" {
			t.Errorf("Weakened (-want +got):\n%s\nstate: %s", diff, st)
		}

		// EnableSync makes the server's own value strong; the roles and
		// databases are theirs to fix.
		if err := EnableSync(ctx, a, b.ApplicationName); err != nil {
			t.Fatal(err)
		}
		st, err := WaitSync(ctx, a, b.ApplicationName)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want[1:], st.Weakened); st.ServerCommit != "on" || !st.Requires(b.ApplicationName) || diff != "" {
			t.Errorf("after EnableSync: %s; want the server's synchronous_commit on and the others still listed (-want +got):\n%s", st, diff)
		}

		// A weakening of the role siteflip itself connects as: the server's
		// own value is read from its configuration files.
		execSQL(t, ctx, a, `ALTER ROLE `+a.User+` SET synchronous_commit = off`)
		st, err = ReadSync(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if st.SynchronousCommit != "off" || st.ServerCommit != "on" || !st.Requires(b.ApplicationName) || !slices.Contains(st.Weakened, "role "+a.User+" sets synchronous_commit=off") {
			t.Errorf("with role %s weakened: %s; want its sessions off, the server on, required, and the role listed", a.User, st)
		}
		if err := EnableSync(ctx, a, b.ApplicationName); err != nil {
			t.Errorf("EnableSync with role %s weakened: %v", a.User, err)
		}

		// remote_apply is stronger than on: EnableSync leaves it.
		execSQL(t, ctx, a, `ALTER SYSTEM SET synchronous_commit = remote_apply`, `SELECT pg_reload_conf()`)
		if st, ok := readSyncUntil(t, a, 5*time.Second, func(st SyncState) bool { return st.ServerCommit == "remote_apply" }); !ok {
			t.Fatalf("remote_apply not in effect: %s", st)
		}
		if err := EnableSync(ctx, a, b.ApplicationName); err != nil {
			t.Fatal(err)
		}
		if st, err := ReadSync(ctx, a); err != nil || st.ServerCommit != "remote_apply" || !st.Requires(b.ApplicationName) {
			t.Errorf("EnableSync on remote_apply: %s, %v; want remote_apply kept and required", st, err)
		}

		execSQL(t, ctx, a,
			`ALTER ROLE `+a.User+` RESET synchronous_commit`,
			`DROP DATABASE shop`,
			`DROP OWNED BY app`,
			`ALTER ROLE app RESET ALL`,
			`ALTER ROLE app IN DATABASE siteflip RESET ALL`,
			`DROP ROLE app`,
			`ALTER SYSTEM SET synchronous_commit = on`)
		if err := DisableSync(ctx, a); err != nil {
			t.Fatal(err)
		}
		if st, err := ReadSync(ctx, a); err != nil || len(st.Weakened) != 0 || st.SynchronousCommit != "on" {
			t.Errorf("after the cleanup: %s, %v; want nothing weakened", st, err)
		}
	})

	t.Run("standby stopped, then degraded", func(t *testing.T) {
		if err := EnableSync(ctx, a, b.ApplicationName); err != nil {
			t.Fatal(err)
		}
		if _, err := WaitSync(ctx, a, b.ApplicationName); err != nil {
			t.Fatal(err)
		}
		if err := commit().wait(t, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		p.sSrv.stop(t, false)
		st, ok := readSyncUntil(t, a, 10*time.Second, func(st SyncState) bool { return len(st.Standbys) == 0 })
		if !ok || !st.Blocking() || !st.Requires(b.ApplicationName) {
			t.Errorf("standby stopped: %s; want no standby, blocking", st)
		}

		c1, c2 := commit(), commit()
		c1.blocks(t, time.Second)
		c2.blocks(t, 0)
		st, ok = readSyncUntil(t, a, 5*time.Second, func(st SyncState) bool { return st.Waiting == 2 })
		if !ok {
			t.Errorf("with two commits blocked: %s; want 2 waiting", st)
		}
		t.Logf("blocked: %s", st)

		began := time.Now()
		if err := DisableSync(ctx, a); err != nil {
			t.Fatal(err)
		}
		tDisable := time.Since(began)
		for i, c := range []*pendingCommit{c1, c2} {
			if err := c.wait(t, 5*time.Second); err != nil {
				t.Errorf("blocked commit %d after DisableSync: %v, want it committed", i+1, err)
			}
		}
		t.Logf("DisableSync took %v; blocked commits returned %v and %v after DisableSync began", tDisable.Round(time.Millisecond),
			c1.began.Add(c1.took).Sub(began).Round(time.Millisecond), c2.began.Add(c2.took).Sub(began).Round(time.Millisecond))
		if err := commit().wait(t, 5*time.Second); err != nil {
			t.Errorf("commit after DisableSync: %v", err)
		}
		st, err := ReadSync(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if st.Enabled() || st.Blocking() || st.Waiting != 0 {
			t.Errorf("after DisableSync: %s; want asynchronous, nothing waiting", st)
		}
		if n := queryInt(t, ctx, a, `SELECT count(*) FROM sync_t`); n != int64(nextID) {
			t.Errorf("sync_t has %d rows, want all %d commits", n, nextID)
		}
	})
}
