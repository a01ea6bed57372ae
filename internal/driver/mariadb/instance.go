package mariadb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/internal/osuser"
	"github.com/siteflip/siteflip/internal/priority"
)

// Instance is a server on this machine. Dir holds its option file, pid
// file and log, outside the data directory (a backup never copies them).
type Instance struct {
	Settings Settings
	Dir      string
}

// OptionFile is where the instance's options live.
func (in Instance) OptionFile() string { return filepath.Join(in.Dir, "mariadb.cnf") }

// PIDFile is where the running server writes its pid.
func (in Instance) PIDFile() string { return filepath.Join(in.Dir, "mariadb.pid") }

// LogFile is the server's error log.
func (in Instance) LogFile() string { return filepath.Join(in.Dir, "mariadb.err") }

// options are the server's options. The last three are the boot guard: a
// server that starts, whoever starts it, is read-only and does not
// replicate until its agent decides; SET GLOBAL read_only=0 is not kept
// across a restart, so the guard is never removed.
func (in Instance) options() string {
	s := in.Settings
	lines := []string{
		"[mariadbd]",
		"datadir=" + s.DataDir,
		"socket=" + s.Socket,
		"pid-file=" + in.PIDFile(),
		"log-error=" + in.LogFile(),
		"port=" + strconv.Itoa(s.Port),
		"bind-address=" + s.Host,
		"server_id=" + strconv.Itoa(s.ServerID),
		"gtid_domain_id=0",
		"log_bin=" + filepath.Join(s.DataDir, "binlog"),
		"log_slave_updates=ON",
		"gtid_strict_mode=ON",
		"binlog_format=ROW",
		"sync_binlog=1",
		"innodb_flush_log_at_trx_commit=1",
		// Semi-synchronous replication (sync.go): the agent alone turns
		// the primary's side on and off; commits wait after the binlog
		// sync, also with no standby attached, and never fall back on
		// their own (the default timeout, 10 s, would, silently). The
		// standby acknowledges what its relay log holds, synced.
		"sync_relay_log=1",
		"rpl_semi_sync_master_enabled=OFF",
		"rpl_semi_sync_slave_enabled=ON",
		"rpl_semi_sync_master_wait_point=AFTER_SYNC",
		"rpl_semi_sync_master_wait_no_slave=ON",
		"rpl_semi_sync_master_timeout=4294967295",
		"skip-name-resolve",
		"read_only=ON",
		"skip_slave_start",
	}
	return strings.Join(lines, "\n") + "\n"
}

// serverUser is the OS user the server runs as: mysql when siteflip runs
// as root (mariadbd refuses to run as root), else siteflip's own.
func serverUser() (*user.User, error) {
	if os.Geteuid() != 0 {
		return user.Current()
	}
	u, err := user.Lookup("mysql")
	if err != nil {
		return nil, fmt.Errorf("the mysql OS user is missing (it comes with Debian's mariadb-server package): %w", err)
	}
	return u, nil
}

// Init creates an empty data directory with mariadb-install-db and writes
// the option file. Only root administers it afterwards, over the socket.
func (in Instance) Init(ctx context.Context) error {
	u, err := serverUser()
	if err != nil {
		return err
	}
	tmp := in.Settings.DataDir + ".tmp"
	for _, d := range []string{in.Dir, in.Settings.DataDir, tmp} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	if err := osuser.Give(u, in.Dir, in.Settings.DataDir, tmp); err != nil {
		return err
	}
	if err := os.WriteFile(in.OptionFile(), []byte(in.options()), 0o644); err != nil {
		return err
	}
	// --no-defaults first; one at a time, each with its own tmpdir
	// (docs/design/mariadb.md).
	cmd := exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+in.Settings.DataDir, "--tmpdir="+tmp,
		"--user="+u.Username, "--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve")
	if out, err := priority.CombinedOutput(cmd); err != nil {
		return fmt.Errorf("mariadb-install-db into %s: %w: %s", in.Settings.DataDir, err, tail(out))
	}
	return nil
}

// Server is a running mariadbd started by Start.
type Server struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done closes
}

// Exited is closed when the server process has ended.
func (s *Server) Exited() <-chan struct{} { return s.done }

// Kill kills the server at once, as a power cut would, and waits until it
// has ended.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// ServerCommand is the command that runs the server from its option file
// (that option first), for a caller that runs it itself (the lab).
func (in Instance) ServerCommand() (*exec.Cmd, error) {
	u, err := serverUser()
	if err != nil {
		return nil, err
	}
	return exec.Command("mariadbd", "--defaults-file="+in.OptionFile(), "--user="+u.Username), nil
}

// PrepareStart readies a start: none may run yet, and the writable mark
// goes, as the server boots read-only behind its guard.
func (in Instance) PrepareStart() error {
	if pid, running := serverPID(in.Dir); running {
		return fmt.Errorf("mariadbd (%s) already runs, pid %d", in.OptionFile(), pid)
	}
	return clearMark(in.Dir)
}

// Start starts the server from its option file, in a session of its own,
// and waits until it answers on its socket.
func (in Instance) Start(ctx context.Context) (*Server, error) {
	if err := in.PrepareStart(); err != nil {
		return nil, err
	}
	cmd, err := in.ServerCommand()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := priority.Start(cmd); err != nil {
		return nil, fmt.Errorf("start mariadbd (%s): %w", in.OptionFile(), err)
	}
	s := &Server{cmd: cmd, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	if err := in.WaitReady(ctx, s.done); err != nil {
		if ctx.Err() != nil {
			s.Kill()
		}
		return nil, err
	}
	return s, nil
}

// WaitReady waits until the server answers on its socket; exited, when
// not nil, is closed if the server ends first.
func (in Instance) WaitReady(ctx context.Context, exited <-chan struct{}) error {
	for {
		if _, err := os.Stat(in.Settings.Socket); err == nil && in.ping(ctx) == nil {
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(in.LogFile())
			return fmt.Errorf("mariadbd (%s) exited; the end of %s: %s", in.OptionFile(), in.LogFile(), tail(log))
		case <-ctx.Done():
			return fmt.Errorf("mariadbd (%s) did not answer in time: %w; see %s", in.OptionFile(), ctx.Err(), in.LogFile())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Running returns the pid of the server when it runs.
func (in Instance) Running() (pid int, ok bool) { return serverPID(in.Dir) }

// ping runs SELECT 1 through the mariadb client over the socket.
func (in Instance) ping(ctx context.Context) error {
	_, err := in.RootSQL(ctx, "SELECT 1")
	return err
}

// RootSQL runs statements as the OS root's socket account with the
// mariadb client (siteflip runs as root where it installs servers), for
// setting up accounts; it returns the output, tab-separated, without
// headers.
func (in Instance) RootSQL(ctx context.Context, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, "mariadb", "--no-defaults", "-S", in.Settings.Socket, "-N", "-B", "-e", sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s at %s: %w: %s", firstWords(sql), in.Settings.Socket, err, tail(out))
	}
	return strings.TrimSpace(string(out)), nil
}

// Stop asks the server to shut down and waits for it.
func (in Instance) Stop(ctx context.Context) error {
	if _, err := in.RootSQL(ctx, "SHUTDOWN"); err != nil {
		return err
	}
	for {
		if _, err := os.Stat(in.PIDFile()); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mariadbd (%s) did not stop: %w", in.OptionFile(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if len(s) > 400 {
		s = "…" + s[len(s)-400:]
	}
	return s
}

func firstWords(sql string) string {
	f := strings.Fields(sql)
	return strings.Join(f[:min(3, len(f))], " ")
}
