package postgres

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KillServer kills the postmaster pid and every process descended from it
// with SIGKILL, as if the machine had died. It does not reap the
// postmaster: the caller Waits its command.
//
// Killing the postmaster's process group is not enough: PostgreSQL puts
// each child process in a session of its own, and a backend busy with a
// query keeps running after its postmaster is gone. So KillServer first
// stops the postmaster (SIGSTOP) so that it cannot start more children,
// kills the descendants it finds in /proc, and then kills the postmaster.
func KillServer(pid int) error {
	if pid <= 1 {
		return fmt.Errorf("kill postgres server: refusing pid %d", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil // already gone
		}
		return fmt.Errorf("stop postgres server pid %d before killing it: %w", pid, err)
	}
	var errs []error
	// Children killed while the postmaster is stopped stay its zombies, so
	// a second pass sees only what was started during the first.
	for pass := 0; pass < 3; pass++ {
		procs, err := descendants(pid)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if len(procs) == 0 {
			break
		}
		for _, p := range procs {
			if err := syscall.Kill(p, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("kill pid %d, a child of postgres server pid %d: %w", p, pid, err))
			}
		}
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		errs = append(errs, fmt.Errorf("kill postgres server pid %d: %w", pid, err))
	}
	return errors.Join(errs...)
}

// freeze stops (SIGSTOP) the postmaster pid and the processes descended
// from it, so that none answers a client any more; KillServer kills them
// after. Best effort: KillServer finds whatever it missed.
func freeze(pid int) {
	if pid <= 1 || syscall.Kill(pid, syscall.SIGSTOP) != nil {
		return
	}
	procs, _ := descendants(pid)
	for _, p := range procs {
		_ = syscall.Kill(p, syscall.SIGSTOP)
	}
}

// descendants lists the live (not zombie) processes descended from pid,
// from /proc.
func descendants(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	children := map[int][]int{}
	live := map[int]bool{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, state, ok := procStat(p)
		if !ok {
			continue // exited meanwhile
		}
		children[ppid] = append(children[ppid], p)
		live[p] = state != 'Z' && state != 'X'
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if live[c] {
				out = append(out, c)
			}
			queue = append(queue, c)
		}
	}
	return out, nil
}

// procStat returns the parent and state of pid from /proc/<pid>/stat.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, false
	}
	return ppid, f[0][0], true
}

// guardWait bounds how long KillDataDir waits for the boot guard to be
// written before it kills anyway: a hung disk must not delay a fence.
const guardWait = time.Second

// KillDataDir kills, as KillServer does, the server running on dataDir if
// there is one: the self-fence of a primary whose serve lease ran out.
// It stops the server's processes at once (SIGSTOP); before killing them
// it writes the boot guard (EnsureBootGuard), so that
// whoever starts the server again gets a read-only standby; it waits at
// most a second for that, and kills whether the guard could be written
// or not (the error says so). Otherwise it reads only postmaster.pid and
// /proc, so it works while the server hangs. A dataDir without a cluster
// gets no guard.
func KillDataDir(dataDir string) error {
	// Frozen first: writing the guard takes a disk flush (tens of
	// milliseconds under load), and a server that runs meanwhile keeps
	// acknowledging commits after its lease ran out.
	if pid, ok := postmasterAlive(dataDir); ok {
		freeze(pid)
	}
	guard := make(chan error, 1)
	go func() {
		if checkCluster(dataDir) != nil {
			guard <- nil
			return
		}
		guard <- EnsureBootGuard(dataDir)
	}()
	var guardErr error
	select {
	case guardErr = <-guard:
	case <-time.After(guardWait):
		guardErr = fmt.Errorf("writing the boot guard into %s took longer than %v (a hung disk?): killed the server without it; write %s before anybody starts the server", dataDir, guardWait, filepath.Join(dataDir, standbySignal))
	}
	var killErr error
	if pid, ok := postmasterAlive(dataDir); ok {
		killErr = KillServer(pid)
	}
	return errors.Join(killErr, guardErr)
}
