package postgres

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/siteflip/siteflip/internal/testbed"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testSuperPassword = "super-secret 'quoted'"
	testReplPassword  = "repl-secret"
)

// requirePostgres skips real-server tests in -short mode or when the
// PostgreSQL server binaries are not installed.
func requirePostgres(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping real PostgreSQL test in -short mode: it starts servers and takes a few seconds")
	}
	bin := findBinDir(debianPostgresRoot)
	if bin == "" {
		t.Skipf("skipping real PostgreSQL test: no %s/<version>/bin/postgres; apt-get install postgresql-15 to run it", debianPostgresRoot)
	}
	if _, err := runAsUser(); err != nil {
		t.Skipf("skipping real PostgreSQL test: %v", err)
	}
	return bin
}

// labDir returns a directory the postgres OS user can use. t.TempDir and
// its parent are 0700 and owned by root; the servers need to reach into it.
func labDir(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(tmp, "pg")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	u, err := runAsUser()
	if err != nil {
		t.Fatal(err)
	}
	if err := u.chown(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// server is a running ServerCommand.
type server struct {
	inst Instance
	cmd  *exec.Cmd
	done chan struct{} // closed when Wait returned
	err  error         // Wait's result, valid after done
}

func startServer(t *testing.T, inst Instance) *server {
	t.Helper()
	srv := &server{inst: inst, cmd: inst.ServerCommand(), done: make(chan struct{})}
	if err := srv.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", inst.Site, err)
	}
	go func() {
		srv.err = srv.cmd.Wait()
		close(srv.done)
	}()
	return srv
}

// stop shuts the server down fast (SIGINT to the postmaster) or, when
// hard, kills it and its children with KillServer, and waits until the
// postmaster and every process it had started are gone.
func (srv *server) stop(t *testing.T, hard bool) {
	t.Helper()
	pid := srv.cmd.Process.Pid
	procs, err := descendants(pid)
	if err != nil {
		t.Error(err)
	}
	if hard {
		err = KillServer(pid)
	} else if err = syscall.Kill(pid, syscall.SIGINT); errors.Is(err, syscall.ESRCH) {
		err = nil
	}
	if err != nil {
		t.Errorf("stop %s (pid %d): %v", srv.inst.Site, pid, err)
	}
	select {
	case <-srv.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%s (pid %d) did not exit within 30s; killing it", srv.inst.Site, pid)
		_ = KillServer(pid)
		<-srv.done
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range procs {
		for {
			_, state, ok := procStat(p)
			if !ok || state == 'Z' || state == 'X' {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("process %d of %s still running (state %c) after the server stopped", p, srv.inst.Site, state)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if hard {
		removeSysVSegment(t, srv.inst.Settings.DataDir)
	}
}

// removeSysVSegment removes the small System V shared memory segment a
// postmaster killed with SIGKILL leaves behind. A server restarted in the
// same data dir would clean it up; a test deleting the data dir must.
func removeSysVSegment(t *testing.T, dataDir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return // clean shutdown: the server removed both
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return
	}
	fields := strings.Fields(lines[6]) // "<key> <shmid>"
	if len(fields) != 2 {
		return
	}
	id, err := strconv.Atoi(fields[1])
	if err != nil {
		return
	}
	const ipcRMID = 0
	if _, _, errno := syscall.Syscall(syscall.SYS_SHMCTL, uintptr(id), ipcRMID, 0); errno != 0 && errno != syscall.EINVAL {
		t.Errorf("remove shared memory segment %d of %s: %v", id, dataDir, errno)
	}
}

func (srv *server) running() bool {
	select {
	case <-srv.done:
		return false
	default:
		return true
	}
}

// pair is a primary with one streaming standby.
type pair struct {
	primary, standby Instance
	pSrv, sSrv       *server
}

// lab makes clusters for one test in a directory of its own.
type lab struct {
	t      *testing.T
	bin    string
	dir    string // holds the data dirs
	pwFile string // the superuser's password
	opts   []func(dir string, s *Settings)
}

// newLab skips the test unless real servers can run. Every opt can change
// every site's settings; dir is the lab's directory.
func newLab(t *testing.T, opts ...func(dir string, s *Settings)) *lab {
	t.Helper()
	bin := requirePostgres(t)
	dir := labDir(t)
	pwFile := filepath.Join(dir, "super.pw")
	if err := os.WriteFile(pwFile, []byte(testSuperPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &lab{t: t, bin: bin, dir: dir, pwFile: pwFile, opts: opts}
}

// instance describes the site's instance (nothing is created); its server
// log is shown if the test fails.
func (l *lab) instance(site string) Instance {
	t := l.t
	t.Helper()
	s := Settings{
		Host:         "127.0.0.1",
		Port:         testbed.FreePort(t),
		Database:     "siteflip", // not built in: InitPrimary creates it
		DataDir:      filepath.Join(l.dir, site),
		BinDir:       l.bin,
		PasswordFile: l.pwFile,
	}
	for _, opt := range l.opts {
		opt(l.dir, &s)
	}
	s.SetDefaults(site)
	if errs := s.Check(); len(errs) > 0 {
		t.Fatalf("settings for %s: %v", site, errs)
	}
	inst := Instance{Settings: s, Site: site, LogFile: filepath.Join(l.dir, site+".log")}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(inst.LogFile); err == nil {
				t.Logf("server log of %s:\n%s", site, b)
			}
		}
	})
	return inst
}

// initPrimary creates the site's cluster with InitPrimary; it is stopped.
func (l *lab) initPrimary(site string) Instance {
	t := l.t
	t.Helper()
	inst := l.instance(site)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	if err := inst.InitPrimary(ctx, testSuperPassword, testReplPassword); err != nil {
		t.Fatal(err)
	}
	t.Logf("InitPrimary %s: %v", site, time.Since(began).Round(time.Millisecond))
	return inst
}

// startPair starts a primary and a standby cloned from it, each with
// ServerCommand. Every opt can change both sites' settings; dir is the
// directory that holds their data dirs.
func startPair(t *testing.T, opts ...func(dir string, s *Settings)) *pair {
	t.Helper()
	l := newLab(t, opts...)
	began := time.Now()
	p := &pair{primary: l.initPrimary("site-a"), standby: l.instance("site-b")}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	step := time.Now()
	p.pSrv = startServer(t, p.primary)
	t.Cleanup(func() { p.pSrv.stop(t, false) })
	if err := WaitReady(ctx, p.primary.Settings); err != nil {
		t.Fatal(err)
	}
	t.Logf("primary ready: %v", time.Since(step).Round(time.Millisecond))

	step = time.Now()
	if err := p.standby.CloneStandby(ctx, p.primary.Settings, testReplPassword); err != nil {
		t.Fatal(err)
	}
	t.Logf("CloneStandby: %v", time.Since(step).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(p.standby.Settings.DataDir, "standby.signal")); err != nil {
		t.Errorf("clone has no standby.signal: %v", err)
	}
	auto, err := os.ReadFile(filepath.Join(p.standby.Settings.DataDir, "postgresql.auto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(auto), "application_name=''site-b''") {
		t.Errorf("postgresql.auto.conf does not carry application_name site-b:\n%s", auto)
	}

	step = time.Now()
	p.sSrv = startServer(t, p.standby)
	t.Cleanup(func() { p.sSrv.stop(t, true) })
	if err := WaitReady(ctx, p.standby.Settings); err != nil {
		t.Fatal(err)
	}
	t.Logf("standby ready: %v (%v from nothing)", time.Since(step).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	return p
}

// queryStandby runs a one-row query on the standby.
func (p *pair) queryStandby(ctx context.Context, sql string, dest ...any) error {
	conn, err := connect(ctx, p.standby.Settings, "siteflip-test")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql).Scan(dest...)
}

// observeUntil observes until ok accepts the observation or timeout passes,
// and returns the last observation.
func observeUntil(t *testing.T, o *Observer, timeout time.Duration, ok func(Observation) bool) (Observation, bool) {
	t.Helper()
	var obs Observation
	good := testbed.Poll(timeout, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		obs = o.Observe(ctx)
		return ok(obs)
	})
	return obs, good
}

func TestReplicationPair(t *testing.T) {
	began := time.Now()
	p := startPair(t)

	po := NewObserver(p.primary.Settings)
	defer po.Close()
	so := NewObserver(p.standby.Settings)
	defer so.Close()

	// The standby's walsender shows up as streaming shortly after start.
	pobs, ok := observeUntil(t, po, 15*time.Second, func(o Observation) bool {
		return len(o.Standbys) == 1 && o.Standbys[0].State == "streaming"
	})
	if !ok {
		t.Fatalf("primary never showed one streaming standby: %+v", pobs)
	}
	t.Logf("streaming: %v after start", time.Since(began).Round(time.Millisecond))
	sobs, ok := observeUntil(t, so, 15*time.Second, func(o Observation) bool { return o.Streaming })
	if !ok {
		t.Fatalf("standby never reported streaming: %+v", sobs)
	}
	t.Logf("primary: %+v", pobs)
	t.Logf("standby: %+v", sobs)

	if !pobs.Up || pobs.Role != RolePrimary || pobs.Error != "" {
		t.Errorf("primary: up %v role %q error %q, want up primary without error", pobs.Up, pobs.Role, pobs.Error)
	}
	if pobs.LSN == "" || pobs.Timeline < 1 {
		t.Errorf("primary: lsn %q timeline %d, want both set", pobs.LSN, pobs.Timeline)
	}
	if pobs.Streaming || pobs.Upstream != "" || pobs.ReceiveLSN != "" || !pobs.LastReplay.IsZero() {
		t.Errorf("primary has standby-only fields set: %+v", pobs)
	}
	if sb := pobs.Standbys[0]; sb.ApplicationName != p.standby.Settings.ApplicationName {
		t.Errorf("standby listed as %q, want %q", sb.ApplicationName, p.standby.Settings.ApplicationName)
	}
	if !sobs.Up || sobs.Role != RoleStandby || sobs.Error != "" {
		t.Errorf("standby: up %v role %q error %q, want up standby without error", sobs.Up, sobs.Role, sobs.Error)
	}
	if sobs.Timeline != pobs.Timeline {
		t.Errorf("standby timeline %d, primary timeline %d, want equal", sobs.Timeline, pobs.Timeline)
	}
	if want := p.primary.Settings.addr(); sobs.Upstream != want {
		t.Errorf("standby upstream %q, want %q", sobs.Upstream, want)
	}
	if sobs.LSN == "" || sobs.ReceiveLSN == "" {
		t.Errorf("standby: lsn %q receive lsn %q, want both set", sobs.LSN, sobs.ReceiveLSN)
	}
	if len(sobs.Standbys) != 0 {
		t.Errorf("standby lists standbys: %+v", sobs.Standbys)
	}

	t.Run("catches up after writes", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		conn, err := connect(ctx, p.primary.Settings, "siteflip-test")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, payload text)`); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g`); err != nil {
			t.Fatal(err)
		}
		written := time.Now()
		pobs, ok := observeUntil(t, po, 15*time.Second, func(o Observation) bool {
			return len(o.Standbys) == 1 && o.Standbys[0].LagBytes == 0
		})
		if !ok {
			t.Fatalf("standby did not catch up within 15s: %+v", pobs)
		}
		t.Logf("caught up %v after the writes: %+v", time.Since(written).Round(time.Millisecond), pobs.Standbys[0])
		if sb := pobs.Standbys[0]; sb.LagSeconds < 0 || sb.ReplayLSN == "" {
			t.Errorf("caught-up standby: lag %vs replay lsn %q, want lag >= 0 and a replay lsn", sb.LagSeconds, sb.ReplayLSN)
		}

		sobs := so.Observe(ctx)
		if sobs.LastReplay.IsZero() || time.Since(sobs.LastReplay) > time.Minute {
			t.Errorf("standby last replay %v, want the time of the insert", sobs.LastReplay)
		}
		var n int
		sconn, err := connect(ctx, p.standby.Settings, "siteflip-test")
		if err != nil {
			t.Fatal(err)
		}
		defer sconn.Close(ctx)
		if err := sconn.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 20000 {
			t.Errorf("standby has %d rows (err %v), want 20000", n, err)
		}
	})

	t.Run("refuses to init over a cluster", func(t *testing.T) {
		err := p.primary.InitPrimary(t.Context(), testSuperPassword, testReplPassword)
		if err == nil || !strings.Contains(err.Error(), "already holds a PostgreSQL cluster") {
			t.Errorf("InitPrimary on an existing cluster: %v", err)
		}
		err = p.standby.CloneStandby(t.Context(), p.primary.Settings, testReplPassword)
		if err == nil || !strings.Contains(err.Error(), p.standby.Settings.DataDir) {
			t.Errorf("CloneStandby onto an existing cluster: %v", err)
		}
	})

	t.Run("wrong replication password", func(t *testing.T) {
		inst := p.standby
		inst.Settings.DataDir = filepath.Join(filepath.Dir(p.standby.Settings.DataDir), "site-c")
		err := inst.CloneStandby(t.Context(), p.primary.Settings, "wrong")
		if err == nil || !strings.Contains(err.Error(), "pg_basebackup") || !strings.Contains(err.Error(), "password authentication failed") {
			t.Errorf("CloneStandby with a wrong password: %v, want pg_basebackup's authentication error", err)
		}
		t.Logf("wrong password: %v", err)
	})

	t.Run("reconnects after a primary restart", func(t *testing.T) {
		p.pSrv.stop(t, false)
		p.pSrv = startServer(t, p.primary)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if err := WaitReady(ctx, p.primary.Settings); err != nil {
			t.Fatal(err)
		}
		// po still holds a connection to the old server; one Observe must
		// notice, reconnect and succeed.
		if obs := po.Observe(ctx); !obs.Up || obs.Role != RolePrimary {
			t.Errorf("first observation after restart: %+v, want up primary", obs)
		}
	})

	t.Run("killed standby is down", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		// A backend busy with a query outlives a postmaster killed with
		// its process group; KillServer must take it down too.
		busy, err := connect(ctx, p.standby.Settings, "siteflip-test-busy")
		if err != nil {
			t.Fatal(err)
		}
		queryDone := make(chan error, 1)
		go func() {
			_, err := busy.Exec(ctx, `SELECT count(*) FROM generate_series(1, 10000000000)`)
			queryDone <- err
		}()
		if !testbed.Poll(10*time.Second, func() bool {
			var n int
			err := p.queryStandby(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'siteflip-test-busy' AND state = 'active'`, &n)
			return err == nil && n == 1
		}) {
			t.Fatal("busy query never showed up in pg_stat_activity")
		}

		p.sSrv.stop(t, true)
		if err := <-queryDone; err == nil {
			t.Error("busy query succeeded although its server was killed")
		}
		busy.Close(ctx)

		obs := so.Observe(ctx)
		if obs.Up || obs.Role != RoleDown || obs.Error == "" {
			t.Errorf("observation of a killed standby: %+v, want down with an error", obs)
		}
		t.Logf("down: %s", obs.Error)
		// The primary notices the standby is gone.
		pobs, ok := observeUntil(t, po, 15*time.Second, func(o Observation) bool { return len(o.Standbys) == 0 })
		if !ok {
			t.Errorf("primary still lists standbys after the standby was killed: %+v", pobs)
		}
	})

	if p.sSrv.running() {
		t.Error("standby still running")
	}
}

func TestObserveNothingListening(t *testing.T) {
	s := Settings{Host: "127.0.0.1", Port: testbed.FreePort(t)}
	s.SetDefaults("site-a")
	o := NewObserver(s)
	defer o.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	start := time.Now()
	obs := o.Observe(ctx)
	elapsed := time.Since(start)
	if obs.Up || obs.Role != RoleDown || obs.Error == "" {
		t.Errorf("observation with nothing listening: %+v, want down with an error", obs)
	}
	if !strings.Contains(obs.Error, s.addr()) {
		t.Errorf("error %q does not name %s", obs.Error, s.addr())
	}
	if elapsed > 3*time.Second {
		t.Errorf("Observe took %v, longer than its 3s context", elapsed)
	}
	t.Logf("down after %v: %s", elapsed.Round(time.Millisecond), obs.Error)
}

func TestObserveHonoursDeadline(t *testing.T) {
	// A listener that accepts but never answers: the connection hangs in
	// the startup handshake until ctx ends.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		l.Close()
		for c := range accepted {
			c.Close()
		}
	}()

	s := Settings{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port}
	s.SetDefaults("site-a")
	o := NewObserver(s)
	defer o.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	obs := o.Observe(ctx)
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Observe took %v with a 300ms context", elapsed)
	}
	if obs.Up || obs.Role != RoleDown || obs.Error == "" {
		t.Errorf("observation of a silent server: %+v, want down with an error", obs)
	}

	wctx, wcancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer wcancel()
	err = WaitReady(wctx, s)
	if err == nil || !strings.Contains(err.Error(), s.addr()) {
		t.Errorf("WaitReady on a silent server: %v, want an error naming %s", err, s.addr())
	}
}
