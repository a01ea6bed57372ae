package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Drill copies made by drill_clone_command: a storage snapshot (LVM, ZFS,
// btrfs) of the standby's data dir instead of pg_basebackup, for databases
// too large to copy. The command runs between pg_backup_start and
// pg_backup_stop in one session on the standby (a non-exclusive backup,
// which a standby allows), and siteflip then turns what it left into a
// base backup: backup_label and tablespace_map, the standby's pg_control
// (a standby's backup ends at the minimum recovery point in the copy's
// pg_control, so it must be copied after every data file, as pg_basebackup
// does), and the WAL from the backup's start to its stop.

// Environment of drill_clone_command.
const (
	envDrillSource = "SITEFLIP_DRILL_SOURCE"
	envDrillTarget = "SITEFLIP_DRILL_TARGET"
	envDrillRun    = "SITEFLIP_DRILL_RUN"
)

// Clone methods, the clone's output "method".
const (
	outMethod           = "method"
	methodBasebackup    = "pg_basebackup"
	methodCloneCommand  = "clone_command"
	minBackupAPIVersion = 150000 // pg_backup_start and pg_backup_stop
	backupStopTimeout   = time.Minute
)

// cloneWithCommand fills the copy's data dir, made empty by the caller,
// with drill_clone_command, and returns the backup's WAL range.
func (d *drill) cloneWithCommand(ctx context.Context, u *osUser, before standbyState) (walRange, error) {
	cmd := d.s.DrillCloneCommand
	if !filepath.IsAbs(cmd[0]) {
		return walRange{}, fmt.Errorf("drill_clone_command: program %q is not an absolute path: give its full path", cmd[0])
	}
	if d.s.DataDir == "" {
		return walRange{}, errors.New("drill_clone_command needs data_dir, the directory the command snapshots: set data_dir")
	}
	if len(before.tablespaces) > 0 {
		return walRange{}, fmt.Errorf("the standby at %s has tablespaces outside its data dir (%s, ...), which a snapshot of the data dir does not hold: unset drill_clone_command to copy with pg_basebackup", d.s.addr(), before.tablespaces[0].location)
	}
	conn, err := connectAction(ctx, d.s, "siteflip-"+clusterName(d.b.Run))
	if err != nil {
		return walRange{}, err
	}
	// Closing the session also ends a backup that pg_backup_stop could not.
	defer closeConn(conn)
	var version int
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return walRange{}, fmt.Errorf("ask the standby at %s for its version: %w", d.s.addr(), err)
	}
	if version < minBackupAPIVersion {
		return walRange{}, fmt.Errorf("the standby at %s runs PostgreSQL %d.%d; drill_clone_command needs PostgreSQL 15 or later (pg_backup_start): unset it to copy with pg_basebackup", d.s.addr(), version/10000, version%10000)
	}
	var segSize uint64
	if err := conn.QueryRow(ctx, `SELECT bytes_per_wal_segment FROM pg_control_init()`).Scan(&segSize); err != nil || segSize == 0 {
		return walRange{}, fmt.Errorf("ask the standby at %s for its WAL segment size: %v", d.s.addr(), err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_backup_start($1, true)`, "siteflip drill "+d.b.Run); err != nil {
		return walRange{}, fmt.Errorf("start a backup on the standby at %s (pg_backup_start): %w", d.s.addr(), err)
	}
	target := d.dataDir()
	env := []string{envDrillSource + "=" + d.s.DataDir, envDrillTarget + "=" + target, envDrillRun + "=" + d.b.Run}
	cmdErr := run(ctx, nil, "snapshot the standby's data dir", env, cmd[0], cmd[1:]...)
	if cmdErr != nil {
		cmdErr = fmt.Errorf("drill_clone_command: %w", cmdErr)
	} else {
		cmdErr = checkSnapshot(u, d.s.DataDir, target)
	}
	// Stopped whatever happened, and even when ctx has ended, so that no
	// backup stays in progress while the session lingers.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backupStopTimeout)
	defer cancel()
	stop, label, spcmap, stopErr := stopBackup(sctx, conn)
	if cmdErr != nil {
		if stopErr != nil {
			cmdErr = fmt.Errorf("%w (and then: %w)", cmdErr, stopErr)
		}
		return walRange{}, cmdErr
	}
	if stopErr != nil {
		return walRange{}, fmt.Errorf("stop the backup on the standby at %s: %w", d.s.addr(), stopErr)
	}
	wal, err := parseBackupLabel(label)
	if err != nil {
		return walRange{}, err
	}
	if wal.end, err = parseLSN(stop); err != nil {
		return walRange{}, fmt.Errorf("pg_backup_stop: %w", err)
	}
	if err := writeFileAs(u, filepath.Join(target, "backup_label"), []byte(label)); err != nil {
		return walRange{}, err
	}
	if spcmap != "" {
		if err := writeFileAs(u, filepath.Join(target, "tablespace_map"), []byte(spcmap)); err != nil {
			return walRange{}, err
		}
	}
	if err := copyBackupWAL(u, filepath.Join(d.s.DataDir, "pg_wal"), filepath.Join(target, "pg_wal"), wal, segSize); err != nil {
		return walRange{}, err
	}
	return wal, nil
}

func stopBackup(ctx context.Context, conn *pgx.Conn) (lsn, label, spcmap string, err error) {
	// wait_for_archive false: a standby without archive_mode=always
	// archives nothing, and the WAL is taken from pg_wal here anyway.
	err = conn.QueryRow(ctx, `SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_backup_stop(false)`).Scan(&lsn, &label, &spcmap)
	if err != nil {
		err = fmt.Errorf("pg_backup_stop: %w", err)
	}
	return lsn, label, spcmap, err
}

// checkSnapshot makes what drill_clone_command left at target fit to start
// as a drill copy: a data dir of its own (pg_wal and tablespaces not links
// into production's), without the standby's pid file, options and slots,
// and with the standby's pg_control as of now.
func checkSnapshot(u *osUser, source, target string) error {
	if err := checkCluster(target); err != nil {
		return fmt.Errorf("drill_clone_command succeeded, but left no copy of the data dir at %s: %w", target, err)
	}
	wal := filepath.Join(target, "pg_wal")
	fi, err := os.Lstat(wal)
	switch {
	case err != nil:
		return fmt.Errorf("drill_clone_command left no pg_wal in %s: %w", target, err)
	case !fi.IsDir():
		return fmt.Errorf("drill_clone_command left %s as a link or file, not a directory: the copy would write its WAL where it points, perhaps into production's; make the command give the copy a pg_wal of its own", wal)
	}
	links, err := os.ReadDir(filepath.Join(target, "pg_tblspc"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("list the copy's tablespaces: %w", err)
	}
	for _, e := range links {
		if e.Type()&os.ModeSymlink != 0 {
			return fmt.Errorf("the copy's pg_tblspc/%s is a link, which would make the copy write into production's tablespace: unset drill_clone_command to copy with pg_basebackup", e.Name())
		}
	}
	for _, name := range []string{"postmaster.pid", "postmaster.opts"} {
		if err := os.Remove(filepath.Join(target, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove the copy's %s: %w", name, err)
		}
	}
	// Its replication slots and signal files go when it starts (detach),
	// as those of a pg_basebackup copy do.
	// Last of all the files, as pg_basebackup sends it: its minimum
	// recovery point, where the backup is consistent, is then at or past
	// every page the copy holds, snapshot or not.
	ctl, err := os.ReadFile(filepath.Join(source, "global", "pg_control"))
	if err != nil {
		return fmt.Errorf("read the standby's pg_control: %w", err)
	}
	return writeFileAs(u, filepath.Join(target, "global", "pg_control"), ctl)
}

var (
	labelStart    = regexp.MustCompile(`(?m)^START WAL LOCATION: ([0-9A-Fa-f]+/[0-9A-Fa-f]+)`)
	labelTimeline = regexp.MustCompile(`(?m)^START TIMELINE: ([0-9]+)`)
)

// parseBackupLabel reads where the backup starts, and on which timeline,
// from the backup_label pg_backup_stop returned.
func parseBackupLabel(label string) (walRange, error) {
	m, t := labelStart.FindStringSubmatch(label), labelTimeline.FindStringSubmatch(label)
	if m == nil || t == nil {
		return walRange{}, fmt.Errorf("the backup label lacks START WAL LOCATION or START TIMELINE: %q", label)
	}
	start, err := parseLSN(m[1])
	if err != nil {
		return walRange{}, fmt.Errorf("backup label: %w", err)
	}
	tli, err := strconv.ParseInt(t[1], 10, 64)
	if err != nil || tli < 1 {
		return walRange{}, fmt.Errorf("backup label: START TIMELINE %q", t[1])
	}
	return walRange{tli: tli, start: start}, nil
}

var walFileName = regexp.MustCompile(`^[0-9A-F]{24}$`)

// copyBackupWAL copies from the standby's pg_wal (src) into the copy's
// (dst) the segments holding the WAL from the backup's start to its stop,
// on the backup's timeline or a later one, and the timeline history
// files. A snapshot holds the WAL as of its own moment, which may end
// before the backup's stop point, and a copy made file by file may hold a
// segment torn while it was written. The standby keeps no WAL for a backup:
// a restartpoint during a long snapshot may remove a segment still needed,
// which is then an error.
func copyBackupWAL(u *osUser, src, dst string, wal walRange, segSize uint64) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("list the standby's WAL: %w", err)
	}
	first, last := wal.start/segSize, wal.start/segSize
	if wal.end > wal.start {
		last = (wal.end - 1) / segSize
	}
	perID := (uint64(1) << 32) / segSize
	have := map[uint64]bool{}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".history"):
		case walFileName.MatchString(name):
			tli, _ := strconv.ParseInt(name[:8], 16, 64)
			hi, _ := strconv.ParseUint(name[8:16], 16, 32)
			lo, _ := strconv.ParseUint(name[16:], 16, 32)
			seg := hi*perID + lo
			// The segment the stop point begins, when it ends one, too:
			// replay reads on to the next record.
			if tli < wal.tli || seg < first || seg > last+1 {
				continue
			}
			err := replaceFileAs(u, filepath.Join(src, name), filepath.Join(dst, name))
			if errors.Is(err, os.ErrNotExist) {
				continue // removed meanwhile: missed below if it was needed
			}
			if err != nil {
				return fmt.Errorf("copy the WAL the copy needs: %w", err)
			}
			have[seg] = true
			continue
		default:
			continue
		}
		if err := replaceFileAs(u, filepath.Join(src, name), filepath.Join(dst, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("copy the WAL the copy needs: %w", err)
		}
	}
	for seg := first; seg <= last; seg++ {
		if !have[seg] {
			return fmt.Errorf("WAL segment %s, which the copy needs to be consistent (from %s to %s), is no longer in the standby's pg_wal %s: raise wal_keep_size on the standby, or make the snapshot faster, and drill again",
				walSegmentName(wal.tli, seg*segSize, segSize), formatLSN(wal.start), formatLSN(wal.end), src)
		}
	}
	return nil
}

// replaceFileAs copies src to dst, replacing it, owned by u with mode 0600.
func replaceFileAs(u *osUser, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".siteflip-tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = u.chown(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}
