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
)

// The server lifecycle of the recovery actions goes through pg_ctl: a
// server it starts lives in a session of its own, outlives the agent, and
// is found again through postmaster.pid — as is one that ServerCommand
// started.

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

// Start starts the server with pg_ctl start -w as it is configured on
// disk — a primary, or a standby when standby.signal exists — with the
// per-site settings of ServerCommand on its command line and its output
// appended to LogFile, and waits until it accepts connections (a standby:
// once it is consistent). It returns nil if the server is already
// running. What a killed server left behind is cleared first: its orphaned
// backends (waited for, then killed) and a postmaster.pid that PostgreSQL
// would take for a live postmaster's (see clearStalePidFile). If the
// server does not become ready before ctx ends it is shut down again
// (immediate) rather than left half started.
func (i Instance) Start(ctx context.Context) error {
	s := i.Settings
	where := i.where("start postgres")
	if i.LogFile == "" {
		return fmt.Errorf("%s: Instance.LogFile is empty: set a server log path", where)
	}
	if err := checkCluster(s.DataDir); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	pgctl, err := binary(s, "pg_ctl")
	if err == nil {
		_, err = binary(s, "postgres")
	}
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	u, err := runAsUser()
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := i.start(ctx, u, pgctl); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// start is Start without the checks.
func (i Instance) start(ctx context.Context, u *osUser, pgctl string) error {
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
	if err := prepareSocketDir(u, s); err != nil {
		return err
	}
	log, err := openLog(u, i.LogFile)
	if err != nil {
		return err
	}
	log.Close() // the postmaster opens it itself, as the postgres user

	opts := make([]string, 0, 8)
	for _, o := range i.serverOptions() {
		opts = append(opts, shellQuote(o)) // pg_ctl hands -o to /bin/sh
	}
	err = run(ctx, u, "start", nil, pgctl,
		"start", "-D", dir, "-l", i.LogFile, "-w", "-t", pgctlWait(ctx), "-o", strings.Join(opts, " "))
	if err == nil {
		return nil
	}
	// pg_ctl gave up, but the server it started may still be coming up;
	// one that answers later would surprise whoever retries.
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, alive := postmasterAlive(dir); alive {
		if stopErr := run(stopCtx, u, "stop the server that did not become ready", nil, pgctl,
			"stop", "-D", dir, "-m", "immediate", "-w", "-t", "30"); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}
	return fmt.Errorf("%w%s", err, fileTail(i.LogFile))
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
// its postmaster.pid, checked to be a live postgres process working in
// that directory), or false when none runs.
func Postmaster(dataDir string) (int, bool) { return postmasterAlive(dataDir) }
