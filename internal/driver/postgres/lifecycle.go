package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/internal/priority"
)

// The server lifecycle of the recovery actions: a server is started by
// executing the postmaster directly — never through pg_ctl start, which
// hands its command line, data dir included, to /bin/sh — in a session of
// its own, so that it outlives the agent, and it is found again through
// postmaster.pid, as is one that ServerCommand started. Stop and promote
// go through pg_ctl, which runs no shell for them.

// defaultPgctlWait is pg_ctl's -t when ctx has no deadline.
const defaultPgctlWait = 5 * time.Minute

// orphanGrace is how long backends of a dead postmaster get to notice and
// exit before they are killed.
const orphanGrace = 2 * time.Second

// Stop shuts the server down with pg_ctl stop -w in mode "fast" (roll back
// open transactions, disconnect clients, write a shutdown checkpoint) or
// "immediate" (quit at once; the next start runs crash recovery). It
// returns nil if the server is not running. Backends left behind by a
// postmaster that was killed are given a moment to exit and then killed,
// so that afterwards no server process uses the data dir.
func (i Instance) Stop(ctx context.Context, mode string) error {
	where := i.where("stop postgres")
	if mode != "fast" && mode != "immediate" {
		return fmt.Errorf("%s: unknown shutdown mode %q: use fast or immediate", where, mode)
	}
	if err := checkCluster(i.Settings.DataDir); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	pgctl, err := binary(i.Settings, "pg_ctl")
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	u, err := runAsUser()
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := i.stop(ctx, u, pgctl, mode); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// stop is Stop without the checks.
func (i Instance) stop(ctx context.Context, u *osUser, pgctl, mode string) error {
	dir := i.Settings.DataDir
	if pid, alive := postmasterAlive(dir); alive {
		err := run(ctx, u, mode+" shutdown", nil, pgctl, "stop", "-D", dir, "-m", mode, "-w", "-t", pgctlWait(ctx))
		if err != nil {
			if _, still := postmasterAlive(dir); still {
				return fmt.Errorf("%w; the server (pid %d) is still running: see its log %s, or stop it in mode immediate%s", err, pid, i.LogFile, fileTail(i.LogFile))
			}
			// It went down anyway, e.g. stopped by someone else meanwhile.
		}
	}
	return reapOrphans(ctx, dir)
}

// Start starts the server as it is configured on disk — a primary, or a
// standby when standby.signal exists (which the boot guard, see
// EnsureBootGuard, makes the case for a primary that was fenced or
// killed: StartPrimary starts one as the primary) — and waits until it is
// ready, as pg_ctl start -w does: until postmaster.pid says "ready" (it
// accepts connections: a primary, or a hot standby once consistent) or
// "standby" (a standby with hot_standby off). It returns nil if the server
// is already running.
//
// The server is bin_dir/postgres -D data_dir with the per-site settings of
// ServerCommand on its command line, executed directly (no shell sees the
// data dir) as the postgres OS user when we are root, in a session of its
// own, with its output appended to LogFile. It is this process's child
// and reaped by it; it outlives this process.
//
// What a killed server left behind is cleared first: its orphaned
// backends (waited for, then killed) and a postmaster.pid that PostgreSQL
// would take for a live postmaster's (see clearStalePidFile). If the
// server exits during startup the error carries the end of its log; if it
// does not become ready before ctx ends (5 minutes without a deadline) it
// is shut down again (immediate) rather than left half started.
func (i Instance) Start(ctx context.Context) error {
	s := i.Settings
	where := i.where("start postgres")
	if i.LogFile == "" {
		return fmt.Errorf("%s: Instance.LogFile is empty: set a server log path", where)
	}
	if err := checkCluster(s.DataDir); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if _, err := binary(s, "postgres"); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	u, err := runAsUser()
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := i.start(ctx, u); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// PrepareStart does what Start does before it launches a server: it waits
// for the backends of a killed postmaster to exit and removes a
// postmaster.pid left by a dead one (a zombie that nobody reaped yet
// included, up to 10 s). Call it before running ServerCommand yourself;
// it does nothing when a server runs for the data dir.
func (i Instance) PrepareStart(ctx context.Context) error {
	dir := i.Settings.DataDir
	if _, alive := postmasterAlive(dir); alive {
		return nil
	}
	if err := reapOrphans(ctx, dir); err != nil {
		return fmt.Errorf("%s: %w", i.where("prepare to start postgres"), err)
	}
	if err := clearStalePidFile(ctx, dir); err != nil {
		return fmt.Errorf("%s: %w", i.where("prepare to start postgres"), err)
	}
	return nil
}

// start is Start without the checks.
func (i Instance) start(ctx context.Context, u *osUser) error {
	s := i.Settings
	dir := s.DataDir
	if _, alive := postmasterAlive(dir); alive {
		return nil
	}
	// A new postmaster refuses to start while backends of a killed one
	// still hold its shared memory.
	if err := reapOrphans(ctx, dir); err != nil {
		return err
	}
	if err := clearStalePidFile(ctx, dir); err != nil {
		return err
	}
	_, err := i.launch(ctx, u)
	return err
}

// launch executes the postmaster and waits until it is ready, as start
// describes, and returns what postmaster.pid says then: pmReady or
// pmStandby. The caller has made sure no server runs for the data dir.
func (i Instance) launch(ctx context.Context, u *osUser) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultPgctlWait)
		defer cancel()
	}
	cmd, log, err := i.serverCmd(u)
	if err != nil {
		return "", err
	}
	// Stdin stays nil: the server reads /dev/null.
	err = priority.Start(cmd)
	if log != nil {
		log.Close() // the server has its own descriptor now
	}
	if err != nil {
		return "", fmt.Errorf("execute %s: %w", cmd.Path, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	var waitErr error
	go func() {
		// Reap the postmaster whenever it exits, so that no zombie stays.
		waitErr = cmd.Wait()
		close(exited)
	}()

	status, err := waitPostmaster(ctx, i.Settings.DataDir, pid, func() (bool, error) {
		select {
		case <-exited:
			return true, waitErr
		default:
			return false, nil
		}
	})
	if err == nil {
		return status, nil
	}
	// One that became ready later would surprise whoever retries.
	// SIGQUIT is an immediate shutdown. Process.Signal refuses a process
	// already reaped, whose pid may belong to another one by now.
	stopped := "it was shut down again (immediate)"
	if serr := cmd.Process.Signal(syscall.SIGQUIT); serr != nil && !errors.Is(serr, os.ErrProcessDone) {
		stopped = fmt.Sprintf("shutting it down failed: %v", serr)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		if kerr := KillServer(pid); kerr != nil {
			stopped = fmt.Sprintf("it did not stop after an immediate shutdown, and killing it failed: %v", kerr)
		} else {
			<-exited
			stopped = "it did not stop after an immediate shutdown and was killed"
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if rerr := reapOrphans(rctx, i.Settings.DataDir); rerr != nil {
		stopped += "; " + rerr.Error()
	}
	if isCtxErr(err) {
		err = fmt.Errorf("%w; %s", err, stopped)
	}
	tail := fileTail(i.LogFile)
	if tail == "" {
		tail = "; see the server log " + i.LogFile
	}
	return "", fmt.Errorf("%w%s", err, tail)
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// What postmaster.pid says on its 8th line (LOCK_FILE_LINE_PM_STATUS).
const (
	pmReady   = "ready"   // accepts connections: a primary or a hot standby
	pmStandby = "standby" // a standby with hot_standby off: up, accepts none
)

// pmStatus reads the pid and the status line of dir's postmaster.pid; the
// status is "" while the postmaster has not written it yet.
func pmStatus(dir string) (pid int, status string) {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0, ""
	}
	lines := strings.Split(string(b), "\n")
	pid, _ = strconv.Atoi(strings.TrimSpace(lines[0]))
	if len(lines) >= 8 {
		status = strings.TrimSpace(lines[7])
	}
	return pid, status
}

// waitPostmaster waits, as pg_ctl -w does, until dir's postmaster.pid
// names pid and says "ready" or "standby", and returns which. gone says
// whether the postmaster has exited, and how.
func waitPostmaster(ctx context.Context, dir string, pid int, gone func() (bool, error)) (string, error) {
	const poll = 20 * time.Millisecond
	var last string
	for {
		filePID, status := pmStatus(dir)
		if filePID == pid && (status == pmReady || status == pmStandby) {
			return status, nil
		}
		if filePID == pid {
			last = status
		}
		if exited, err := gone(); exited {
			if err == nil {
				err = errors.New("exit status 0")
			}
			return "", fmt.Errorf("the server (pid %d) exited during startup (%v)", pid, err)
		}
		select {
		case <-ctx.Done():
			if last == "" {
				last = "no status in postmaster.pid yet"
			}
			return "", fmt.Errorf("the server (pid %d) was not ready: %w (%s)", pid, ctx.Err(), last)
		case <-time.After(poll):
		}
	}
}

// where says which instance an action is about, for errors.
func (i Instance) where(what string) string {
	return fmt.Sprintf("%s for site %s at %s (data dir %s)", what, i.Site, i.Settings.addr(), i.Settings.DataDir)
}

// checkCluster makes sure dir holds a cluster.
func checkCluster(dir string) error {
	if dir == "" {
		return errors.New("data_dir is not set: set it to the directory of this instance's cluster")
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		return fmt.Errorf("no cluster in data dir %s (%w): create it with InitPrimary or CloneStandby, or fix data_dir", dir, err)
	}
	return nil
}

// pgctlWait is pg_ctl's -t, in seconds: what is left of ctx.
func pgctlWait(ctx context.Context) string {
	wait := defaultPgctlWait
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	return strconv.Itoa(max(1, int(wait.Round(time.Second)/time.Second)))
}

// postmasterAlive returns the pid in dir's postmaster.pid and whether it
// is a live postgres process working in dir. A postmaster that ServerCommand
// started and that has exited but was not reaped yet does not count.
func postmasterAlive(dir string) (int, bool) {
	pid := pidFilePID(dir)
	if pid == 0 {
		return 0, false
	}
	return pid, isServerProcess(pid, realDir(dir))
}

// pidFilePID reads the pid in dir's postmaster.pid, or 0. A single-user
// server (pg_rewind's crash recovery) writes its pid negated.
func pidFilePID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0
	}
	if pid < 0 {
		pid = -pid
	}
	return pid
}

// zombieWait bounds how long start waits for a killed postmaster's zombie
// to be reaped.
const zombieWait = 10 * time.Second

// clearStalePidFile deals with a postmaster.pid left by a postmaster that
// is not running, before a start. PostgreSQL replaces such a file itself,
// and frees the shared memory segment it names, when the pid in it is
// gone; but it tests that with kill(pid, 0), which also succeeds for a
// zombie (a killed postmaster whose parent has not reaped it yet; a
// container's init may take seconds) and for an unrelated process that got
// the pid since. So: wait for the zombie to be reaped, and failing that,
// or for a pid that another program uses now, remove the file and the
// segment. A pid file whose process cannot be looked at is left alone.
func clearStalePidFile(ctx context.Context, dir string) error {
	rd := realDir(dir)
	deadline := time.Now().Add(zombieWait)
	for {
		pid := pidFilePID(dir)
		if pid == 0 {
			return nil
		}
		_, state, ok := procStat(pid)
		if !ok {
			return nil // gone: PostgreSQL handles it
		}
		if state != 'Z' && state != 'X' {
			cwd, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "cwd"))
			if err != nil || cwd == rd {
				return nil // cannot tell, or a live server after all
			}
			break // another process has the pid now
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	freeSysVSegment(dir)
	if err := os.Remove(filepath.Join(dir, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale postmaster.pid: %w", err)
	}
	return nil
}

// freeSysVSegment removes the small System V shared memory segment named
// in dir's postmaster.pid ("key shmid" on its seventh line), as the next
// postmaster would. Call it only when no server process uses dir.
func freeSysVSegment(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return
	}
	id, err := strconv.Atoi(f[1])
	if err != nil || id < 0 {
		return
	}
	const ipcRMID = 0
	_, _, _ = syscall.Syscall(syscall.SYS_SHMCTL, uintptr(id), ipcRMID, 0) // gone already is fine
}

// realDir resolves symbolic links in dir, as /proc/PID/cwd shows it.
func realDir(dir string) string {
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		return r
	}
	return filepath.Clean(dir)
}

// isServerProcess says whether pid is a live postgres process whose
// working directory is dir. Every PostgreSQL server process, the
// postmaster and its children alike, works in its data dir.
func isServerProcess(pid int, dir string) bool {
	_, state, ok := procStat(pid)
	if !ok || state == 'Z' || state == 'X' {
		return false
	}
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	cwd, err := os.Readlink(filepath.Join(proc, "cwd"))
	if err != nil || cwd != dir {
		return false
	}
	exe, err := os.Readlink(filepath.Join(proc, "exe"))
	return err == nil && strings.HasPrefix(filepath.Base(exe), "postgres")
}

// serverProcesses lists the live postgres processes working in dir.
func serverProcesses(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	dir = realDir(dir)
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if isServerProcess(pid, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// reapOrphans waits for the processes of a dead postmaster to exit, and
// kills those still there after orphanGrace. It does nothing while the
// postmaster lives: then they are its children. Backends outlive a killed
// postmaster until they next wait for something, and one of them could
// still commit a client's transaction.
func reapOrphans(ctx context.Context, dir string) error {
	if _, alive := postmasterAlive(dir); alive {
		return nil
	}
	procs := serverProcesses(dir)
	if len(procs) == 0 {
		return nil
	}
	graceEnd := time.Now().Add(orphanGrace)
	for len(procs) > 0 && time.Now().Before(graceEnd) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		procs = serverProcesses(dir)
	}
	for _, p := range procs {
		if err := syscall.Kill(p, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill pid %d, left behind by a dead postmaster in %s: %w", p, dir, err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); len(procs) > 0; procs = serverProcesses(dir) {
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of a dead postmaster still use data dir %s after SIGKILL: find out what holds them (ps -o pid,stat,wchan -p ...)", procs, dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Postmaster returns the PID of the postmaster running on dataDir (from
// its postmaster.pid, checked to be a live postgres process whose working
// directory is dataDir with symbolic links resolved, so a data dir reached
// through a link works), or false when none runs. It reads only
// postmaster.pid and /proc: it answers while the server does not. An
// instance whose observation fails (Observer: down) while Postmaster says
// it runs is running but not answering — starting up, shutting down,
// hung, or with every connection slot taken — and may still be writing.
func Postmaster(dataDir string) (int, bool) { return postmasterAlive(dataDir) }
