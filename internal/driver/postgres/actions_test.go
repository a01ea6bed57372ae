package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/siteflip/siteflip/internal/testbed"
)

// stopAtEnd shuts the instances down with pg_ctl when the test ends: the
// actions start servers that the test's server structs do not know.
// Register it after startPair, so that it runs first.
func stopAtEnd(t *testing.T, insts ...Instance) {
	t.Helper()
	t.Cleanup(func() {
		for _, inst := range insts {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := inst.Stop(ctx, "fast"); err != nil && !strings.Contains(err.Error(), "no cluster") {
				t.Errorf("stop %s at the end: %v", inst.Site, err)
			}
			cancel()
		}
	})
}

// execSQL runs statements on the instance s describes.
func execSQL(t *testing.T, ctx context.Context, s Settings, sql ...string) {
	t.Helper()
	conn, err := connect(ctx, s, "siteflip-test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range sql {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s on %s: %v", q, s.addr(), err)
		}
	}
}

// queryInt runs a query that returns one number.
func queryInt(t *testing.T, ctx context.Context, s Settings, sql string) int64 {
	t.Helper()
	conn, err := connect(ctx, s, "siteflip-test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatalf("%s on %s: %v", sql, s.addr(), err)
	}
	return n
}

// currentLSN is pg_current_wal_lsn() of a primary.
func currentLSN(t *testing.T, ctx context.Context, s Settings) string {
	t.Helper()
	conn, err := connect(ctx, s, "siteflip-test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var lsn string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	return lsn
}

// ack is one acknowledged insert.
type ack struct {
	id   int64
	at   time.Time
	addr string // where it was committed
}

// writer inserts rows with unique ids into table w of its target, one
// transaction each, as fast as it can, and records every acknowledged id.
// When a write fails it reconnects, to whatever the target is by then.
type writer struct {
	target   atomic.Pointer[Settings]
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu   sync.Mutex
	acks []ack
}

// startWriter starts a writer to s. It is halted when the test ends, if
// not before.
func startWriter(t *testing.T, s Settings) *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	w.target.Store(&s)
	go w.run()
	t.Cleanup(w.halt)
	return w
}

func (w *writer) run() {
	defer close(w.done)
	var (
		conn *pgx.Conn
		addr string
		id   int64
	)
	defer func() { closeConn(conn) }()
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		s := *w.target.Load()
		if conn != nil && addr != s.addr() {
			closeConn(conn)
			conn = nil
		}
		if conn == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c, err := connect(ctx, s, "siteflip-test-writer")
			cancel()
			if err != nil {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			conn, addr = c, s.addr()
		}
		id++
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := conn.Exec(ctx, `INSERT INTO w (id) VALUES ($1)`, id)
		cancel()
		if err != nil {
			closeConn(conn)
			conn = nil
			continue
		}
		w.mu.Lock()
		w.acks = append(w.acks, ack{id: id, at: time.Now(), addr: addr})
		w.mu.Unlock()
	}
}

func (w *writer) retarget(s Settings) { w.target.Store(&s) }

func (w *writer) halt() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}

// acked returns a copy of the acknowledged writes so far.
func (w *writer) acked() []ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]ack(nil), w.acks...)
}

// waitAcks waits until n more writes than there were are acknowledged at addr.
func (w *writer) waitAcks(t *testing.T, addr string, n int) {
	t.Helper()
	count := func() int {
		c := 0
		for _, a := range w.acked() {
			if a.addr == addr {
				c++
			}
		}
		return c
	}
	want := count() + n
	if !testbed.Poll(15*time.Second, func() bool { return count() >= want }) {
		t.Fatalf("the writer got only %d of %d acknowledged writes at %s within 15s", count(), want, addr)
	}
}

func TestSwitchover(t *testing.T) {
	p := startPair(t)
	a, b := p.primary, p.standby
	stopAtEnd(t, a, b)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	execSQL(t, ctx, a.Settings, `CREATE TABLE w (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`)

	w := startWriter(t, a.Settings)
	w.waitAcks(t, a.Settings.addr(), 200)

	step := time.Now()
	fence, err := a.Fence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tFence := time.Since(step)
	if !fence.Clean || fence.Forced || fence.Timeline != 1 || fence.EndLSN == "" {
		t.Errorf("Fence = %+v, want a clean stop on timeline 1 with an end LSN", fence)
	}
	if _, err := os.Stat(filepath.Join(a.Settings.DataDir, "standby.signal")); err != nil {
		t.Errorf("the fenced primary has no boot guard: %v", err)
	}

	step = time.Now()
	if err := WaitCatchUp(ctx, b.Settings, fence.EndLSN); err != nil {
		t.Fatal(err)
	}
	tCatchUp := time.Since(step)

	step = time.Now()
	promoted, err := Promote(ctx, b.Settings)
	if err != nil {
		t.Fatal(err)
	}
	tPromote := time.Since(step)
	w.retarget(b.Settings)
	if _, err := os.Stat(filepath.Join(b.Settings.DataDir, "standby.signal")); err != nil {
		t.Errorf("the promoted primary has no boot guard: %v", err)
	}
	if promoted.Timeline != 2 {
		t.Errorf("Promote: timeline %d, want 2", promoted.Timeline)
	}
	// The standby replayed all the old primary wrote, its shutdown
	// checkpoint last, and the new timeline starts right after it.
	if promoted.SwitchLSN != fence.EndLSN {
		t.Errorf("Promote: switch point %s, want the fenced primary's end %s", promoted.SwitchLSN, fence.EndLSN)
	}

	step = time.Now()
	rejoin, err := a.Rejoin(ctx, b.Settings, testReplPassword)
	if err != nil {
		t.Fatal(err)
	}
	tRejoin := time.Since(step)
	if diff := cmp.Diff(RejoinResult{}, rejoin); diff != "" {
		t.Errorf("Rejoin after a clean switchover did more than restart as a standby (-want +got):\n%s", diff)
	}

	w.waitAcks(t, b.Settings.addr(), 200)
	w.halt()
	acks := w.acked()

	// Every acknowledged write is on the new primary.
	conn, err := connect(ctx, b.Settings, "siteflip-test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id FROM w`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	have := make(map[int64]bool, len(ids))
	for _, id := range ids {
		have[id] = true
	}
	var lost []int64
	var lastOld, firstNew time.Time
	for _, a := range acks {
		if !have[a.id] {
			lost = append(lost, a.id)
		}
		switch a.addr {
		case p.primary.Settings.addr():
			lastOld = a.at
		case b.Settings.addr():
			if firstNew.IsZero() {
				firstNew = a.at
			}
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged writes are not on the new primary: %v", len(lost), len(acks), lost)
	}
	t.Logf("writer: %d acknowledged writes, %d on the new primary's table, none lost", len(acks), len(ids))
	t.Logf("write gap (last ack on the old primary -> first ack on the new one): %v", firstNew.Sub(lastOld).Round(time.Millisecond))
	t.Logf("Fence %v (%+v), WaitCatchUp %v, Promote %v (writable after %v, %+v), Rejoin %v",
		tFence.Round(time.Millisecond), fence, tCatchUp.Round(time.Millisecond), tPromote.Round(time.Millisecond),
		promoted.WritableAfter.Round(time.Millisecond), promoted, tRejoin.Round(time.Millisecond))

	// The old primary streams from the new one, on its timeline, and has
	// the same rows.
	ao := NewObserver(a.Settings)
	defer ao.Close()
	bo := NewObserver(b.Settings)
	defer bo.Close()
	bobs := bo.Observe(ctx)
	aobs := ao.Observe(ctx)
	if aobs.Role != RoleStandby || !aobs.Streaming || aobs.Upstream != b.Settings.addr() || aobs.Timeline != bobs.Timeline || bobs.Role != RolePrimary || bobs.Timeline != 2 {
		t.Errorf("after the switchover: old primary %+v, new primary %+v; want a standby streaming from the new primary on its timeline 2", aobs, bobs)
	}
	if err := WaitCatchUp(ctx, a.Settings, currentLSN(t, ctx, b.Settings)); err != nil {
		t.Fatal(err)
	}
	if na, nb := queryInt(t, ctx, a.Settings, `SELECT count(*) FROM w`), int64(len(ids)); na != nb {
		t.Errorf("old primary has %d rows, new primary %d", na, nb)
	}
}

func TestFailover(t *testing.T) {
	requirePostgres(t)
	for _, tc := range []struct {
		name string
		// socketsInDataDir leaves socket_dir unset: every server keeps its
		// unix socket in its data dir, where pg_rewind cannot copy it.
		socketsInDataDir bool
		// noHints runs the old primary with wal_log_hints off, which
		// pg_rewind refuses.
		noHints bool
		// reclone is why Rejoin must take a fresh base backup instead of
		// rewinding, "" when it can rewind.
		reclone string
		// guarded kills the old primary while it holds the boot guard, as
		// every running primary does.
		guarded bool
	}{
		{name: "rewind"},
		{name: "rewind, killed with the guard", guarded: true},
		{name: "no hints", noHints: true, reclone: "wal_log_hints"},
		{name: "socket", socketsInDataDir: true, reclone: "unix socket in its data dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			var opts []func(string, *Settings)
			if !tc.socketsInDataDir {
				opts = append(opts, func(dir string, s *Settings) { s.SocketDir = filepath.Join(dir, "run") })
			}
			p := startPair(t, opts...)
			a, b := p.primary, p.standby
			stopAtEnd(t, a, b)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()

			execSQL(t, ctx, a.Settings,
				`CREATE TABLE w (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`,
				`INSERT INTO w (id) SELECT -g FROM generate_series(1, 1000) g`)
			if err := WaitCatchUp(ctx, b.Settings, currentLSN(t, ctx, a.Settings)); err != nil {
				t.Fatal(err)
			}
			if tc.noHints {
				execSQL(t, ctx, a.Settings, `ALTER SYSTEM SET wal_log_hints = off`)
				p.pSrv.stop(t, false)
				p.pSrv = startServer(t, a)
				if err := WaitReady(ctx, a.Settings); err != nil {
					t.Fatal(err)
				}
			}

			// The standby stops receiving; what the primary acknowledges
			// from now on exists only there.
			if err := b.Stop(ctx, "fast"); err != nil {
				t.Fatal(err)
			}
			w := startWriter(t, a.Settings)
			w.waitAcks(t, a.Settings.addr(), 300)
			if tc.guarded {
				if err := EnsureBootGuard(a.Settings.DataDir); err != nil {
					t.Fatal(err)
				}
			}
			p.pSrv.stop(t, true) // KillServer while the writer writes
			w.halt()
			// A segment the server had made ready ahead of time, all zeros:
			// reading where the WAL ends must not trip over it.
			ahead := filepath.Join(a.Settings.DataDir, "pg_wal", walSegmentName(1, 0x7F000000, 16<<20))
			if err := os.WriteFile(ahead, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(ahead, 16<<20); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(filepath.Dir(ahead)); err == nil {
				st := fi.Sys().(*syscall.Stat_t)
				if err := os.Chown(ahead, int(st.Uid), int(st.Gid)); err != nil {
					t.Fatal(err)
				}
			}
			if d, err := ClusterState(a.Settings.DataDir); err != nil || d.State != ClusterInProduction || d.StandbySignal != tc.guarded {
				t.Errorf("killed primary: %+v, %v; want in production, standby.signal %v", d, err, tc.guarded)
			}
			acked := len(w.acked())

			// Fencing a dead primary only reads where its WAL ends.
			fence, err := a.Fence(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if fence.Clean || fence.EndLSN == "" {
				t.Errorf("Fence of a killed primary = %+v, want an unclean stop with an end LSN", fence)
			}

			if err := b.Start(ctx); err != nil {
				t.Fatal(err)
			}
			// It cannot catch up: the WAL is on the dead primary only.
			sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
			err = WaitCatchUp(sctx, b.Settings, fence.EndLSN)
			scancel()
			var replay string
			if qerr := p.queryStandby(ctx, `SELECT pg_last_wal_replay_lsn()::text`, &replay); qerr != nil {
				t.Fatal(qerr)
			}
			end, _ := parseLSN(fence.EndLSN)
			replayed, _ := parseLSN(replay)
			behind := fmt.Sprintf("still %d bytes behind", end-replayed)
			if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), behind) || !strings.Contains(err.Error(), b.Settings.addr()) {
				t.Errorf("WaitCatchUp on a standby that cannot catch up: %v; want a deadline error naming %s and saying %q", err, b.Settings.addr(), behind)
			}
			t.Logf("WaitCatchUp: %v", err)

			promoted, err := Promote(ctx, b.Settings)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("Promote: %+v", promoted)
			// Fence wrote the guard; Promote wrote one for the new primary.
			for _, inst := range []Instance{a, b} {
				if _, err := os.Stat(filepath.Join(inst.Settings.DataDir, "standby.signal")); err != nil {
					t.Errorf("%s has no boot guard: %v", inst.Site, err)
				}
			}
			execSQL(t, ctx, b.Settings, `INSERT INTO w (id) SELECT -g FROM generate_series(1001, 1500) g`)

			step := time.Now()
			rejoin, err := a.Rejoin(ctx, b.Settings, testReplPassword)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("Rejoin %v: %+v", time.Since(step).Round(time.Millisecond), rejoin)
			if recloned := tc.reclone != ""; rejoin.Rewound == recloned || rejoin.Recloned != recloned {
				t.Errorf("Rejoin: rewound %v, recloned %v; want rewound %v", rejoin.Rewound, rejoin.Recloned, !recloned)
			}
			if rejoin.LostFrom != promoted.SwitchLSN || rejoin.LostTo != fence.EndLSN || rejoin.LostBytes <= 0 {
				t.Errorf("Rejoin: lost %s to %s (%d bytes), want %s (the switch point) to %s (the old end)",
					rejoin.LostFrom, rejoin.LostTo, rejoin.LostBytes, promoted.SwitchLSN, fence.EndLSN)
			}
			if from, _ := parseLSN(rejoin.LostFrom); int64(end-from) != rejoin.LostBytes {
				t.Errorf("Rejoin: lost bytes %d, want %d", rejoin.LostBytes, end-from)
			}
			if !strings.HasPrefix(rejoin.LostWALDir, a.Settings.DataDir+".lost-") {
				t.Errorf("lost WAL dir %q, want %s.lost-<timestamp>", rejoin.LostWALDir, a.Settings.DataDir)
			}
			segs, _ := filepath.Glob(filepath.Join(rejoin.LostWALDir, "00000001*"))
			if readme, err := os.ReadFile(filepath.Join(rejoin.LostWALDir, "LOST-WAL.txt")); err != nil || len(segs) == 0 {
				t.Errorf("lost WAL dir %s: segments %v, LOST-WAL.txt: %v", rejoin.LostWALDir, segs, err)
			} else {
				t.Logf("LOST-WAL.txt:\n%s", readme)
			}
			if tc.reclone != "" {
				if _, err := os.Stat(filepath.Join(rejoin.OldDataDir, "PG_VERSION")); err != nil || !strings.Contains(rejoin.RecloneReason, tc.reclone) {
					t.Errorf("reclone: old data dir %q (%v), reason %q; want the old cluster kept and a reason about %s", rejoin.OldDataDir, err, rejoin.RecloneReason, tc.reclone)
				}
			} else if rejoin.OldDataDir != "" || rejoin.RecloneReason != "" {
				t.Errorf("Rejoin without a reclone: old data dir %q, reason %q", rejoin.OldDataDir, rejoin.RecloneReason)
			}
			if _, err := os.Stat(a.Settings.DataDir + ".siteflip-rejoin"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("rejoin marker left behind: %v", err)
			}

			ao := NewObserver(a.Settings)
			defer ao.Close()
			aobs := ao.Observe(ctx)
			if aobs.Role != RoleStandby || !aobs.Streaming || aobs.Upstream != b.Settings.addr() || aobs.Timeline != 2 {
				t.Errorf("old primary after Rejoin: %+v, want a standby streaming from %s on timeline 2", aobs, b.Settings.addr())
			}
			if err := WaitCatchUp(ctx, a.Settings, currentLSN(t, ctx, b.Settings)); err != nil {
				t.Fatal(err)
			}
			na := queryInt(t, ctx, a.Settings, `SELECT count(*) FROM w`)
			nb := queryInt(t, ctx, b.Settings, `SELECT count(*) FROM w`)
			if na != nb || nb != 1500 {
				t.Errorf("rows: old primary %d, new primary %d, want 1500 on both", na, nb)
			}
			t.Logf("%d acknowledged writes made while the standby was down were lost, as reported; test took %v", acked, time.Since(began).Round(time.Millisecond))
		})
	}
}

func TestActionsIdempotent(t *testing.T) {
	p := startPair(t)
	a, b := p.primary, p.standby
	stopAtEnd(t, a, b)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	execSQL(t, ctx, a.Settings, `CREATE TABLE w (id bigint PRIMARY KEY)`, `INSERT INTO w SELECT generate_series(1, 100)`)

	// Start on a running server (started by ServerCommand) does nothing.
	pid := pidFilePID(b.Settings.DataDir)
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := pidFilePID(b.Settings.DataDir); got != pid || pid != p.sSrv.cmd.Process.Pid {
		t.Errorf("Start on a running standby: postmaster %d, was %d (ServerCommand's %d)", got, pid, p.sSrv.cmd.Process.Pid)
	}

	f1, err := a.Fence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f2, err := a.Fence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f1, f2); diff != "" || !f1.Clean {
		t.Errorf("second Fence differs from the first, or not clean (-first +second):\n%s", diff)
	}
	for _, mode := range []string{"fast", "immediate"} {
		if err := a.Stop(ctx, mode); err != nil {
			t.Errorf("Stop %s on a stopped server: %v", mode, err)
		}
	}
	if f3, err := a.Fence(ctx); err != nil || f3 != f1 {
		t.Errorf("Fence after Stop: %+v, %v; want %+v", f3, err, f1)
	}

	for range 2 {
		if err := WaitCatchUp(ctx, b.Settings, f1.EndLSN); err != nil {
			t.Fatal(err)
		}
	}
	p1, err := Promote(ctx, b.Settings)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Promote(ctx, b.Settings)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Timeline != 2 || p2.Timeline != p1.Timeline || p2.SwitchLSN != p1.SwitchLSN {
		t.Errorf("Promote twice: %+v then %+v, want timeline 2 both times and the same switch point", p1, p2)
	}
	t.Logf("Promote: %+v; again: %+v", p1, p2)
	// Asked again after the promotion, WaitCatchUp goes by the switch point.
	if err := WaitCatchUp(ctx, b.Settings, f1.EndLSN); err != nil {
		t.Errorf("WaitCatchUp after the promotion: %v", err)
	}
	end, _ := parseLSN(f1.EndLSN)
	if err := WaitCatchUp(ctx, b.Settings, formatLSN(end+1)); err == nil || !strings.Contains(err.Error(), "promoted already") {
		t.Errorf("WaitCatchUp past the switch point after the promotion: %v, want an error saying it was promoted", err)
	}

	if _, err := a.Rejoin(ctx, b.Settings, testReplPassword); err != nil {
		t.Fatal(err)
	}
	pid = pidFilePID(a.Settings.DataDir)
	step := time.Now()
	again, err := a.Rejoin(ctx, b.Settings, testReplPassword)
	if err != nil {
		t.Fatal(err)
	}
	if got := pidFilePID(a.Settings.DataDir); got != pid || again != (RejoinResult{}) {
		t.Errorf("Rejoin of a streaming standby: %+v, postmaster %d (was %d); want nothing done", again, got, pid)
	}
	t.Logf("second Rejoin took %v", time.Since(step).Round(time.Millisecond))
	if err := a.Start(ctx); err != nil || pidFilePID(a.Settings.DataDir) != pid {
		t.Errorf("Start on a running standby: %v, postmaster %d (was %d)", err, pidFilePID(a.Settings.DataDir), pid)
	}

	// A crash half-way: the rejoined standby is killed, orphans and all.
	// Stop finds nothing to stop, and Rejoin brings it back without
	// rewinding anything.
	if err := KillServer(pid); err != nil {
		t.Fatal(err)
	}
	if !testbed.Poll(10*time.Second, func() bool { _, alive := postmasterAlive(a.Settings.DataDir); return !alive }) {
		t.Fatal("killed postmaster still alive")
	}
	if err := a.Stop(ctx, "fast"); err != nil {
		t.Errorf("Stop on a killed server: %v", err)
	}
	execSQL(t, ctx, b.Settings, `INSERT INTO w SELECT generate_series(101, 200)`)
	r, err := a.Rejoin(ctx, b.Settings, testReplPassword)
	if err != nil {
		t.Fatal(err)
	}
	if r != (RejoinResult{}) {
		t.Errorf("Rejoin of a killed standby: %+v, want no rewind and nothing lost", r)
	}
	if err := WaitCatchUp(ctx, a.Settings, currentLSN(t, ctx, b.Settings)); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, ctx, a.Settings, `SELECT count(*) FROM w`); n != 200 {
		t.Errorf("rejoined standby has %d rows, want 200", n)
	}
}

func TestActionErrors(t *testing.T) {
	dir := t.TempDir()
	s := Settings{Host: "127.0.0.1", Port: testbed.FreePort(t), DataDir: filepath.Join(dir, "missing")}
	s.SetDefaults("site-a")
	inst := Instance{Settings: s, Site: "site-a", LogFile: filepath.Join(dir, "log")}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	start := time.Now()
	_, err := Promote(ctx, s)
	if err == nil || !strings.Contains(err.Error(), s.addr()) {
		t.Errorf("Promote with nothing listening: %v, want an error naming %s", err, s.addr())
	}
	t.Logf("Promote after %v: %v", time.Since(start).Round(time.Millisecond), err)

	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = WaitCatchUp(wctx, s, "0/3000000")
	wcancel()
	if err == nil || !strings.Contains(err.Error(), s.addr()) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitCatchUp with nothing listening: %v, want a deadline error naming %s", err, s.addr())
	}
	if err := WaitCatchUp(ctx, s, "3000000"); err == nil || !strings.Contains(err.Error(), "invalid WAL position") {
		t.Errorf("WaitCatchUp with a bad LSN: %v", err)
	}

	if err := inst.Stop(ctx, "smart"); err == nil || !strings.Contains(err.Error(), `"smart"`) {
		t.Errorf("Stop in mode smart: %v, want it refused", err)
	}
	for name, f := range map[string]func() error{
		"Start": func() error { return inst.Start(ctx) },
		"Stop":  func() error { return inst.Stop(ctx, "fast") },
		"Fence": func() error { _, err := inst.Fence(ctx); return err },
	} {
		if err := f(); err == nil || !strings.Contains(err.Error(), s.DataDir) || !strings.Contains(err.Error(), "site-a") {
			t.Errorf("%s without a cluster: %v, want an error naming the site and data dir %s", name, err, s.DataDir)
		}
	}
	if _, err := inst.Rejoin(ctx, s, "pw"); err == nil || !strings.Contains(err.Error(), "itself") {
		t.Errorf("Rejoin to itself: %v", err)
	}
}
