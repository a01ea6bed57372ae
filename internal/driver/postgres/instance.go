package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Instance is a PostgreSQL instance on this host that siteflip manages.
type Instance struct {
	Settings Settings
	Site     string
	// LogFile receives the server's stdout and stderr. Its directory must
	// be writable by the postgres OS user: the server inherits it, and
	// siteflip gives the file to that user.
	LogFile string
	// ClientNets are networks (CIDR) whose TCP clients InitPrimary's
	// pg_hba.conf admits besides loopback.
	ClientNets []string
	// Netns, when set, is the network namespace the server runs in (a
	// drill's bubble): it is started through ip netns exec, which needs
	// root (see inNetns).
	Netns string
}

// replicationConf is appended to postgresql.conf by InitPrimary.
// pg_basebackup copies it to every standby, so it holds only settings that
// are the same on every site; per-site ones go on the server command line.
const replicationConf = `
# Added by siteflip: replication and pg_rewind prerequisites.
wal_level = replica
max_wal_senders = 10
wal_keep_size = '256MB'
hot_standby = on
wal_log_hints = on
# kill -9 of a server leaks POSIX shared memory segments; mmap files do not.
dynamic_shared_memory_type = mmap
password_encryption = 'scram-sha-256'
`

// hbaConf replaces pg_hba.conf in InitPrimary. Loopback TCP clients are
// admitted, and those of Instance.ClientNets (a lab whose sites live in
// network namespaces).
const hbaConf = `# Written by siteflip.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  peer
local   replication  all                  peer
host    all          all   127.0.0.0/8    scram-sha-256
host    all          all   ::1/128        scram-sha-256
host    replication  all   127.0.0.0/8    scram-sha-256
host    replication  all   ::1/128        scram-sha-256
`

// InitPrimary creates a new cluster in Settings.DataDir, which must be
// empty or missing, ready to be a primary: superuser Settings.User with
// superPassword, a replication role Settings.ReplicationUser with
// replPassword, the database Settings.Database, replication settings in
// postgresql.conf and a pg_hba.conf admitting loopback clients with
// scram-sha-256 and local clients by peer. The server is started for the
// setup (executed directly, as Start does) and stopped again; start it
// with StartPrimary, or with ServerCommand.
// The setup connects over TCP to Settings.Host, so that must be a loopback
// address: the pg_hba.conf written here admits no other.
//
// On failure the data dir may be left half made: remove it before retrying.
func (i Instance) InitPrimary(ctx context.Context, superPassword, replPassword string) error {
	s := i.Settings
	where := fmt.Sprintf("init primary for site %s (data dir %s)", i.Site, s.DataDir)
	switch {
	case superPassword == "":
		return fmt.Errorf("%s: superuser password is empty: host connections use scram-sha-256, so one is needed", where)
	case replPassword == "":
		return fmt.Errorf("%s: replication password is empty: host connections use scram-sha-256, so one is needed", where)
	case s.User == "" || s.ReplicationUser == "":
		return fmt.Errorf("%s: user and replication_user must be set: call SetDefaults", where)
	case s.ReplicationUser == s.User:
		return fmt.Errorf("%s: replication_user %q is the superuser: choose a separate replication role", where, s.User)
	case i.LogFile == "":
		return fmt.Errorf("%s: Instance.LogFile is empty: set a server log path", where)
	}
	initdb, err := binary(s, "initdb")
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	pgctl, err := binary(s, "pg_ctl")
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if _, err := binary(s, "postgres"); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	u, err := runAsUser()
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := prepareDataDir(u, s.DataDir); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := prepareSocketDir(u, s); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}

	if err := i.initdb(ctx, u, initdb, superPassword); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := appendFile(filepath.Join(s.DataDir, "postgresql.conf"), replicationConf); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	// initdb created pg_hba.conf owned by postgres; truncating keeps that.
	hba := hbaConf
	for _, n := range i.ClientNets {
		hba += fmt.Sprintf("host    all          all   %-14s scram-sha-256\nhost    replication  all   %-14s scram-sha-256\n", n, n)
	}
	if err := os.WriteFile(filepath.Join(s.DataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("%s: write pg_hba.conf: %w", where, err)
	}

	// No server can run in a data dir initdb has just made.
	if _, err := i.launch(ctx, u); err != nil {
		return fmt.Errorf("%s: start postgres at %s for setup: %w", where, s.addr(), err)
	}

	setupErr := setupRoles(ctx, s, superPassword, replPassword)
	mode := "fast"
	if setupErr != nil {
		mode = "immediate"
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	stopErr := run(stopCtx, u, "stop postgres at "+s.addr()+" after setup", nil, pgctl,
		"stop", "-D", s.DataDir, "-m", mode, "-w", "-t", "110")
	if err := errors.Join(setupErr, stopErr); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

func (i Instance) initdb(ctx context.Context, u *osUser, initdb, superPassword string) error {
	pwfile, err := os.CreateTemp("", "siteflip-initdb-pw-")
	if err != nil {
		return fmt.Errorf("create password file for initdb: %w", err)
	}
	defer os.Remove(pwfile.Name())
	_, err = pwfile.WriteString(superPassword + "\n")
	if cerr := pwfile.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = u.chown(pwfile.Name())
	}
	if err != nil {
		return fmt.Errorf("write password file for initdb: %w", err)
	}
	return run(ctx, u, "create cluster", nil, initdb,
		"-D", i.Settings.DataDir,
		"-U", i.Settings.User,
		"--pwfile="+pwfile.Name(),
		"--auth-host=scram-sha-256",
		"--auth-local=peer",
		"--encoding=UTF8",
		"--locale=C",
	)
}

// setupRoles creates the replication role and, if it is not a built-in
// one, the database siteflip connects to.
func setupRoles(ctx context.Context, s Settings, superPassword, replPassword string) error {
	setup := s
	setup.Database = "postgres" // exists in every new cluster
	cfg, err := connConfig(setup, "siteflip-setup", superPassword)
	if err != nil {
		return err
	}
	conn, err := connectConfig(ctx, setup, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	// format() quotes on the server side: utility statements take no
	// parameters.
	var stmt string
	err = conn.QueryRow(ctx, `SELECT format('CREATE ROLE %I WITH LOGIN REPLICATION PASSWORD %L', $1::text, $2::text)`,
		s.ReplicationUser, replPassword).Scan(&stmt)
	if err == nil {
		_, err = conn.Exec(ctx, stmt)
	}
	if err != nil {
		return fmt.Errorf("create replication role %q on %s: %w", s.ReplicationUser, s.addr(), err)
	}
	if s.Database != "" && s.Database != "postgres" && s.Database != "template1" {
		err = conn.QueryRow(ctx, `SELECT format('CREATE DATABASE %I', $1::text)`, s.Database).Scan(&stmt)
		if err == nil {
			_, err = conn.Exec(ctx, stmt)
		}
		if err != nil {
			return fmt.Errorf("create database %q on %s: %w", s.Database, s.addr(), err)
		}
	}
	return nil
}

// CloneStandby makes Settings.DataDir, which must be empty or missing, a
// standby of the primary from describes, with pg_basebackup -R. It
// connects to from.Host:from.Port as from.ReplicationUser — the role that
// exists on that primary — with replPassword, passed in the environment.
// The generated primary_conninfo carries application_name =
// Settings.ApplicationName, the name the primary lists the standby under,
// and the password, so the data dir's postgresql.auto.conf holds it.
//
// If it fails, remove the data dir before retrying.
func (i Instance) CloneStandby(ctx context.Context, from Settings, replPassword string) error {
	s := i.Settings
	where := fmt.Sprintf("clone standby for site %s from %s (data dir %s)", i.Site, from.addr(), s.DataDir)
	if from.Host == "" || from.Port == 0 || from.ReplicationUser == "" {
		return fmt.Errorf("%s: the primary's host, port and replication_user must be set: call SetDefaults on its settings", where)
	}
	basebackup, err := binary(s, "pg_basebackup")
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	u, err := runAsUser()
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := prepareDataDir(u, s.DataDir); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	var env []string
	if replPassword != "" {
		env = append(env, "PGPASSWORD="+replPassword)
	}
	err = run(ctx, u, "base backup", env, basebackup,
		"-D", s.DataDir,
		"-R",
		"-X", "stream",
		"-c", "fast",
		"-w", // never prompt for a password
		"-d", conninfo(
			"host", from.Host,
			"port", strconv.Itoa(from.Port),
			"user", from.ReplicationUser,
			"application_name", s.ApplicationName,
			"connect_timeout", "10",
		),
	)
	if err != nil {
		return fmt.Errorf("%s: %w; remove the data dir before retrying", where, err)
	}
	// A primary whose unix socket lives in its data directory has a
	// .s.PGSQL.PORT.lock file there, and pg_basebackup copies it: the
	// standby would then refuse to start, taking the lock for another
	// postmaster's. It is never valid in a fresh copy.
	locks, _ := filepath.Glob(filepath.Join(s.DataDir, ".s.PGSQL.*.lock"))
	for _, l := range locks {
		if err := os.Remove(l); err != nil {
			return fmt.Errorf("%s: remove copied socket lock: %w", where, err)
		}
	}
	return nil
}

// ServerCommand returns the command that runs the server in the
// foreground: bin_dir/postgres -D data_dir with the per-site settings
// (port, listen_addresses, cluster_name, unix_socket_directories) as -c
// options. It runs as the postgres OS user when we are root, in a session
// of its own (Setsid) so that signals meant for the caller's terminal or
// process group do not reach it. Its stdout and stderr are appended to
// LogFile, or discarded when LogFile is empty.
//
// Shut the server down by signalling the postmaster (cmd.Process.Pid):
// SIGTERM, SIGINT and SIGQUIT are PostgreSQL's smart, fast and immediate
// shutdown. To kill it outright use KillServer: every PostgreSQL child
// process makes a session of its own, so killing the postmaster's process
// group reaches only the postmaster, and busy backends outlive it.
//
// The caller Starts and Waits the command. A problem found while building
// it (missing binary, log file that cannot be opened) is returned by Start.
// The log file stays open in this process while the command is referenced.
func (i Instance) ServerCommand() *exec.Cmd {
	s := i.Settings
	where := fmt.Sprintf("postgres server for site %s (data dir %s)", i.Site, s.DataDir)
	u, err := runAsUser()
	if err != nil {
		cmd := exec.Command(filepath.Join(s.BinDir, "postgres"))
		cmd.Err = fmt.Errorf("%s: %w", where, err)
		return cmd
	}
	cmd, _, err := i.serverCmd(u)
	if err != nil {
		cmd = exec.Command(filepath.Join(s.BinDir, "postgres"))
		cmd.Err = fmt.Errorf("%s: %w", where, err)
	}
	return cmd
}

// serverCmd builds the command ServerCommand describes, to run as u, and
// returns the log file it writes to (nil when LogFile is empty), which the
// caller closes once the command has started.
func (i Instance) serverCmd(u *osUser) (*exec.Cmd, *os.File, error) {
	s := i.Settings
	path, err := binary(s, "postgres")
	if err != nil {
		return nil, nil, err
	}
	if err := prepareSocketDir(u, s); err != nil {
		return nil, nil, err
	}
	args := append([]string{"-D", s.DataDir}, i.serverOptions()...)
	var cmd *exec.Cmd
	if i.Netns == "" {
		cmd = exec.Command(path, args...)
		u.prepare(cmd)
	} else if cmd, err = inNetns(u, i.Netns, path, args...); err != nil {
		return nil, nil, err
	}
	cmd.SysProcAttr.Setsid = true
	if i.LogFile == "" {
		return cmd, nil, nil
	}
	f, err := openLog(u, i.LogFile)
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout = f
	cmd.Stderr = f
	return cmd, f, nil
}

// serverOptions are the per-site settings, as server arguments.
func (i Instance) serverOptions() []string {
	s := i.Settings
	sock := s.socketDir()
	if strings.ContainsAny(sock, ", \t") {
		sock = `"` + sock + `"` // unix_socket_directories is a list
	}
	return []string{
		"-c", "port=" + strconv.Itoa(s.Port),
		"-c", "listen_addresses=" + cmp.Or(s.ListenAddresses, s.Host),
		"-c", "cluster_name=" + s.ApplicationName,
		"-c", "unix_socket_directories=" + sock,
	}
}

// WaitReady polls the instance s describes until a connection as s.User
// succeeds, or ctx ends. A server accepts connections once it is up (a
// primary) or consistent (a hot standby).
func WaitReady(ctx context.Context, s Settings) error {
	pw, err := s.Password()
	if err != nil {
		return fmt.Errorf("wait for postgres at %s: %w", s.addr(), err)
	}
	cfg, err := connConfig(s, "siteflip-wait-ready", pw)
	if err != nil {
		return err
	}
	const interval = 100 * time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last error
	for {
		select {
		case <-ctx.Done():
			if last == nil {
				return fmt.Errorf("postgres at %s is not ready: %w", s.addr(), ctx.Err())
			}
			return fmt.Errorf("postgres at %s is not ready: %w; last connection error: %w; check that the server is running and its log", s.addr(), ctx.Err(), last)
		case <-timer.C:
		}
		conn, err := connectConfig(ctx, s, cfg.Copy())
		if err == nil {
			_ = conn.Close(ctx) // ready is ready, whatever the goodbye does
			return nil
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		timer.Reset(interval)
	}
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return nil
}
