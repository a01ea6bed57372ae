package mariadb

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The process of a server on this machine, found from its state
// directory alone: the watchdog, which knows nothing else, fences with it.

// serverPID returns the pid of the mariadbd started from the option file
// in stateDir, when one runs: the pid file's process must name that
// option file (a stale pid file may name a pid reused since).
func serverPID(stateDir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(stateDir, "mariadb.pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	if !bytes.Contains(cmdline, []byte("--defaults-file="+filepath.Join(stateDir, "mariadb.cnf"))) {
		return 0, false
	}
	// A zombie has ended: it only waits for its parent.
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(st, ')'); i > 0 && len(st) > i+2 && st[i+2] == 'Z' {
			return 0, false
		}
	}
	return pid, true
}

// killServer stops the server of stateDir at once, as a power cut would:
// SIGSTOP first (it writes nothing more from that instant), then SIGKILL,
// and waits until it has gone. killed says a server ran.
func killServer(stateDir string) (killed bool, err error) {
	pid, ok := serverPID(stateDir)
	if !ok {
		return false, nil
	}
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return false, fmt.Errorf("kill mariadbd %d (%s): %w", pid, stateDir, err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, ok := serverPID(stateDir); !ok {
			return true, nil
		}
	}
	return true, fmt.Errorf("mariadbd %d (%s) still runs 10 s after SIGKILL", pid, stateDir)
}

// The writable mark (docs/design/mariadb.md, "Fence"): a file in the state
// directory, synced before the agent makes the server writable and
// removed when it boots (read-only, behind its guard) or is fenced,
// verified. A server without it has not been writable since it booted:
// the hard fence spares it, as a standby must be.

func markPath(stateDir string) string { return filepath.Join(stateDir, "writable") }

// setMark writes the mark, synced with its directory.
func setMark(stateDir string) error {
	f, err := os.OpenFile(markPath(stateDir), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write the writable mark: %w", err)
	}
	_, err = f.WriteString(time.Now().UTC().Format(time.RFC3339Nano) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the writable mark: %w", err)
	}
	return syncDir(stateDir)
}

// clearMark removes the mark.
func clearMark(stateDir string) error {
	if err := os.Remove(markPath(stateDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the writable mark: %w", err)
	}
	return syncDir(stateDir)
}

func hasMark(stateDir string) bool {
	_, err := os.Stat(markPath(stateDir))
	return err == nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// localState says whether the state directory is on this machine: siteflip
// started the server here from its option file.
func localState(stateDir string) bool {
	if stateDir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(stateDir, "mariadb.cnf"))
	return err == nil
}
