package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/siteflip/siteflip/internal/resource"
)

// The boot guard: the data dir of every running primary holds
// standby.signal. PostgreSQL reads the signal files only when it starts,
// so a running primary is unaffected; but a primary that starts again by
// itself — after a power cut, at boot, by a service manager — comes up as
// a read-only standby, and only the agent makes it a primary again
// (StartPrimary). Promote writes the guard back right after PostgreSQL
// removed it; Fence and KillDataDir write it before they stop the server.

const (
	standbySignal  = "standby.signal"
	recoverySignal = "recovery.signal"
	// asideSuffix marks a signal file moved aside for a single-user server.
	asideSuffix = ".siteflip-aside"
)

// EnsureBootGuard makes sure dataDir, which must hold a cluster, has an
// empty standby.signal (mode 0600, owned by the postgres OS user when we
// are root), written durably: the file and the directory are synced, so
// that the guard survives the power cut it is there for. Idempotent.
func EnsureBootGuard(dataDir string) error {
	if err := checkCluster(dataDir); err != nil {
		return fmt.Errorf("write the boot guard: %w", err)
	}
	u, err := runAsUser()
	if err != nil {
		return fmt.Errorf("write the boot guard into %s: %w", dataDir, err)
	}
	return ensureBootGuard(u, dataDir)
}

// ensureBootGuard is EnsureBootGuard without the checks.
func ensureBootGuard(u *osUser, dir string) error {
	path := filepath.Join(dir, standbySignal)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write the boot guard %s: %w; the data dir must be writable by siteflip", path, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = u.chown(path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(path) // a guard not known to be durable is retried whole
		return fmt.Errorf("write the boot guard %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// StartPrimary starts this data dir as the primary, whatever the signal
// files in it say, and leaves the boot guard in it:
//
//   - stopped: it removes standby.signal and recovery.signal, starts the
//     server (as Start does), checks that it is out of recovery, and
//     writes the guard back. A data dir that a standby shut down, or one
//     that crashed, starts with plain crash recovery: no promotion, the
//     same timeline, every WAL record it has replayed.
//   - running as a primary: it only ensures the guard.
//   - running in recovery (it came up read-only behind the guard): it
//     shuts the server down (fast) and starts it as above.
//
// StartPrimary decides nothing: the caller must know that this site is
// the one that may serve, and that no other primary runs. A standby that
// streams from another primary is made a primary too.
func (i Instance) StartPrimary(ctx context.Context) error {
	s := i.Settings
	where := i.where("start postgres as the primary")
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
	dir := s.DataDir

	if pid, alive := postmasterAlive(dir); alive {
		// One that is starting up (crash recovery, say) is waited for.
		status, err := waitPostmaster(ctx, dir, pid, func() (bool, error) {
			if _, alive := postmasterAlive(dir); !alive {
				return true, errors.New("it is gone")
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("%s: it runs but %w: see its log %s, or stop it and call StartPrimary again", where, err, i.LogFile)
		}
		// A hot standby says "ready" too; its control file says it is in
		// recovery. This works while the server does not answer queries.
		cd, err := readControlData(ctx, u, s, dir)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if status == pmReady && cd.State == ClusterInProduction {
			if err := ensureBootGuard(u, dir); err != nil {
				return fmt.Errorf("%s: it runs as the primary, but its boot guard is missing: %w", where, err)
			}
			return nil
		}
		if err := i.stop(ctx, u, pgctl, "fast"); err != nil {
			return fmt.Errorf("%s: it runs as a standby, and shutting it down to restart it as the primary failed: %w", where, err)
		}
	}

	for _, name := range []string{standbySignal, recoverySignal} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: remove %s: %w", where, name, err)
		}
	}
	if err := reapOrphans(ctx, dir); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := clearStalePidFile(ctx, dir); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	status, err := i.launch(ctx, u)
	// Whatever happened, the guard goes back: the data dir is never left
	// to start as a primary by itself.
	guardErr := ensureBootGuard(u, dir)
	if err != nil {
		return fmt.Errorf("%s: %w", where, errors.Join(err, guardErr))
	}
	if guardErr != nil {
		return fmt.Errorf("%s: it runs as the primary, but its boot guard is missing: %w; fix that and call StartPrimary again", where, guardErr)
	}
	if status != pmReady {
		return fmt.Errorf("%s: it came up as a standby (postmaster.pid says %q) although the signal files were removed: did something write them meanwhile? see its log %s", where, status, i.LogFile)
	}
	conn, err := connectAction(ctx, s, "siteflip-start")
	if err != nil {
		return fmt.Errorf("%s: it started, but cannot be asked whether it is in recovery: %w", where, err)
	}
	defer closeConn(conn)
	var recovery bool
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&recovery); err != nil {
		return fmt.Errorf("%s: it started, but cannot be asked whether it is in recovery: %w", where, err)
	}
	if recovery {
		return fmt.Errorf("%s: it started in recovery although the signal files were removed: see its log %s", where, i.LogFile)
	}
	return nil
}

// Cluster states, as pg_controldata prints them ("Database cluster state");
// those the agent decides on are the resource model's disk states.
const (
	ClusterShutDown           = resource.StateShutDown
	ClusterShutDownInRecovery = resource.StateShutDownRecovery
	ClusterShuttingDown       = "shutting down"
	ClusterInCrashRecovery    = resource.StateCrashRecovery
	ClusterInArchiveRecovery  = resource.StateArchiveRecovery
	ClusterInProduction       = resource.StateInProduction
)

// DiskState is what a data dir says about its cluster, whether a server
// runs on it or not.
type DiskState struct {
	// State is the control file's "Database cluster state", one of the
	// Cluster* constants. A stopped cluster "in production" or "in archive
	// recovery" was killed (or crashed) as a primary or a standby; one
	// "shut down" or "shut down in recovery" was stopped cleanly.
	State string
	// StandbySignal says standby.signal exists: the next start brings the
	// server up as a standby (for a primary: the boot guard).
	StandbySignal bool
}

// ClusterState reads the state of the cluster in dataDir on this host
// from its control file (read directly: ControlState) and its signal
// files.
func ClusterState(dataDir string) (DiskState, error) {
	if err := checkCluster(dataDir); err != nil {
		return DiskState{}, fmt.Errorf("read the cluster state of data dir %s: %w", dataDir, err)
	}
	state, err := ControlState(dataDir)
	if err != nil {
		return DiskState{}, fmt.Errorf("read the cluster state of data dir %s: %w", dataDir, err)
	}
	d := DiskState{State: state}
	switch _, err := os.Stat(filepath.Join(dataDir, standbySignal)); {
	case err == nil:
		d.StandbySignal = true
	case !errors.Is(err, os.ErrNotExist):
		return DiskState{}, fmt.Errorf("read the cluster state of data dir %s: %w", dataDir, err)
	}
	return d, nil
}

// ensureCleanShutdown makes sure the stopped cluster was shut down
// cleanly, as pg_rewind requires: if its control file says otherwise (it
// was killed), a single-user server runs crash recovery on it —
// postgres --single -F -D DIR template1, executed directly with stdin
// /dev/null. A single-user server refuses to start while standby.signal
// exists ("standby mode is not supported by single-user servers"), so the
// signal files are moved aside for the run and put back afterwards, also
// when it fails.
func (i Instance) ensureCleanShutdown(ctx context.Context, u *osUser) error {
	s := i.Settings
	dir := s.DataDir
	restore := func() error {
		var errs []error
		for _, name := range []string{standbySignal, recoverySignal} {
			aside := filepath.Join(dir, name+asideSuffix)
			if _, err := os.Stat(aside); errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err := os.Rename(aside, filepath.Join(dir, name)); err != nil {
				errs = append(errs, fmt.Errorf("put %s back: %w; rename it to %s by hand", aside, err, name))
			}
		}
		return errors.Join(errs...)
	}
	// Left aside by an earlier run that did not finish.
	if err := restore(); err != nil {
		return err
	}
	cd, err := readControlData(ctx, u, s, dir)
	if err != nil {
		return err
	}
	if cd.State == stateShutDown || cd.State == stateShutDownInRecovery {
		return nil
	}
	postgres, err := binary(s, "postgres")
	if err != nil {
		return err
	}
	if err := reapOrphans(ctx, dir); err != nil {
		return err
	}
	if err := clearStalePidFile(ctx, dir); err != nil {
		return err
	}
	err = func() (err error) {
		defer func() { err = errors.Join(err, restore()) }()
		for _, name := range []string{standbySignal, recoverySignal} {
			p := filepath.Join(dir, name)
			if err := os.Rename(p, p+asideSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("move %s aside for crash recovery: %w", p, err)
			}
		}
		return run(ctx, u, fmt.Sprintf("crash recovery of data dir %s (cluster state %q) before pg_rewind", dir, cd.State), nil,
			postgres, "--single", "-F", "-D", dir, "template1")
	}()
	if err != nil {
		return err
	}
	if cd, err = readControlData(ctx, u, s, dir); err != nil {
		return err
	}
	if cd.State != stateShutDown && cd.State != stateShutDownInRecovery {
		return fmt.Errorf("after crash recovery in a single-user server the cluster state of %s is %q, not shut down: pg_rewind cannot work on it", dir, cd.State)
	}
	return nil
}
