package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The recovery actions: what a plan runs on the agent of the site where an
// instance lives. Each is idempotent — run again after it succeeded, or
// after a crash half-way, it does the right thing — so that a plan can be
// resumed by another controller.

// FenceResult says where the fenced primary's WAL ends.
type FenceResult struct {
	// EndLSN is where the old primary's WAL ends: the end of its last
	// record, which after a clean stop is the shutdown checkpoint (the
	// record "Latest checkpoint location" of pg_controldata points at).
	// A standby that has replayed up to EndLSN has everything; promoted
	// there, its timeline history shows EndLSN as the switch point.
	EndLSN   string
	Timeline int64
	// Clean says the server was shut down cleanly (pg_controldata
	// "Database cluster state: shut down"): every connected streaming
	// standby was sent all of its WAL before it stopped.
	Clean bool
	// Forced says the fast shutdown did not finish before ctx ended and an
	// immediate shutdown stopped the server instead; Clean is then false.
	Forced bool
}

// Fence makes the primary at this site stop accepting writes, and proves
// it: it writes the boot guard (EnsureBootGuard) first, so that whoever
// starts the server again gets a read-only standby; then a fast shutdown
// with pg_ctl (PostgreSQL's walsenders send all WAL to connected streaming
// standbys before the postmaster exits); then it checks that no postmaster
// or other server process runs for the data dir, and reads pg_controldata
// and the WAL to say where it ends. Backends left behind by a killed
// postmaster are killed: they could still commit. A guard that cannot be
// written does not stop the shutdown; Fence reports it afterwards.
//
// If the fast shutdown does not finish before ctx ends, Fence falls back
// to an immediate shutdown (Forced): stopping writes matters more than a
// clean stop. Idempotent: on a stopped server it only writes the guard and
// reads the control file and the WAL. Fence cannot stop a service manager
// from starting the server again; it reports one that did.
func (i Instance) Fence(ctx context.Context) (FenceResult, error) {
	s := i.Settings
	where := i.where("fence primary")
	if err := checkCluster(s.DataDir); err != nil {
		return FenceResult{}, fmt.Errorf("%s: %w", where, err)
	}
	pgctl, err := binary(s, "pg_ctl")
	if err != nil {
		return FenceResult{}, fmt.Errorf("%s: %w", where, err)
	}
	u, err := runAsUser()
	if err != nil {
		return FenceResult{}, fmt.Errorf("%s: %w", where, err)
	}
	dir := s.DataDir
	guardErr := ensureBootGuard(u, dir)
	var res FenceResult
	if pid, alive := postmasterAlive(dir); alive {
		err := run(ctx, u, "fast shutdown", nil, pgctl, "stop", "-D", dir, "-m", "fast", "-w", "-t", pgctlWait(ctx))
		if _, still := postmasterAlive(dir); err != nil && still {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			ierr := run(fctx, u, "immediate shutdown", nil, pgctl, "stop", "-D", dir, "-m", "immediate", "-w", "-t", "30")
			cancel()
			if _, still := postmasterAlive(dir); still {
				return FenceResult{}, fmt.Errorf("%s: %w; the immediate shutdown that followed failed too: %w; the server (pid %d) may still accept writes: kill it and its children (kill -9), or cut the host off%s",
					where, err, ierr, pid, fileTail(i.LogFile))
			}
			res.Forced = true
		}
	}

	// The proof must not be skipped because ctx ended during the shutdown.
	vctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		vctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
	}
	if err := reapOrphans(vctx, dir); err != nil {
		return FenceResult{}, fmt.Errorf("%s: %w", where, err)
	}
	if pid, alive := postmasterAlive(dir); alive {
		return FenceResult{}, fmt.Errorf("%s: a postmaster (pid %d) runs for the data dir again right after the shutdown: something restarts it (a service manager?); disable that and fence again", where, pid)
	}
	if procs := serverProcesses(dir); len(procs) > 0 {
		return FenceResult{}, fmt.Errorf("%s: postgres processes %v still use the data dir after the shutdown: stop them and fence again", where, procs)
	}
	cd, err := readControlData(vctx, u, s, dir)
	if err != nil {
		return FenceResult{}, fmt.Errorf("%s: %w", where, err)
	}
	end, err := walEnd(vctx, u, s, dir, cd.CheckpointTLI, cd.Checkpoint, cd)
	if err != nil {
		return FenceResult{}, fmt.Errorf("%s: %w", where, err)
	}
	res.EndLSN = formatLSN(end)
	res.Timeline = cd.CheckpointTLI
	res.Clean = cd.State == stateShutDown
	if guardErr != nil {
		return res, fmt.Errorf("%s: the server is stopped, but its boot guard is missing: %w; whoever starts it now gets a primary: fix that and fence again", where, guardErr)
	}
	return res, nil
}

// catchUpPoll is how often WaitCatchUp looks at the standby.
const catchUpPoll = 20 * time.Millisecond

// WaitCatchUp waits until the standby described by s has received and
// replayed WAL at least up to lsn, or ctx ends. Replayed WAL has been
// received and is on the standby's disk, so the test is
// pg_last_wal_replay_lsn() >= lsn, compared numerically. (The receive
// position alone can be behind after a standby restart: it starts from
// where streaming resumes.) The error on timeout says how many bytes it is
// still behind, and whether replay is paused.
//
// Idempotent: on a standby promoted since, it succeeds when the promotion's
// switch point is at or past lsn — it had everything before it was
// promoted — and fails otherwise.
func WaitCatchUp(ctx context.Context, s Settings, lsn string) error {
	where := fmt.Sprintf("wait for standby %s at %s to replay WAL up to %s", s.ApplicationName, s.addr(), lsn)
	target, err := parseLSN(lsn)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	var (
		conn    *pgx.Conn
		last    standbyProgress
		seen    bool
		lastErr error
	)
	defer func() { closeConn(conn) }()
	for {
		if conn == nil {
			if conn, err = connectAction(ctx, s, "siteflip-catch-up"); err != nil {
				conn, lastErr = nil, err
			}
		}
		if conn != nil {
			p, err := readStandbyProgress(ctx, conn)
			switch {
			case err != nil:
				lastErr = err
				closeConn(conn)
				conn = nil
			case !p.recovery:
				return promotedPast(ctx, conn, target, where)
			case p.replay >= target:
				return nil
			default:
				last, seen = p, true
			}
		}
		select {
		case <-ctx.Done():
			if !seen {
				return fmt.Errorf("%s: %w before the standby could be observed: %v; check that it runs and is reachable", where, ctx.Err(), lastErr)
			}
			hint := "check that its primary is up and streaming to it (pg_stat_wal_receiver on the standby), or promote it anyway and lose those bytes"
			if last.paused {
				hint = "WAL replay is paused: resume it with SELECT pg_wal_replay_resume()"
			}
			// After a restart the receive position starts at the segment
			// streaming would resume from, below what was replayed.
			received := "nothing more received"
			if last.receive > last.replay {
				received = "received up to " + formatLSN(last.receive)
			}
			return fmt.Errorf("%s: %w: still %d bytes behind (replayed up to %s, %s); %s",
				where, ctx.Err(), target-last.replay, formatLSN(last.replay), received, hint)
		case <-time.After(catchUpPoll):
		}
	}
}

// standbyProgress is how far a standby has got.
type standbyProgress struct {
	recovery        bool
	receive, replay uint64 // 0: none
	paused          bool
}

func readStandbyProgress(ctx context.Context, conn *pgx.Conn) (standbyProgress, error) {
	var (
		p               standbyProgress
		receive, replay string
	)
	err := conn.QueryRow(ctx, `
SELECT pg_is_in_recovery(),
       COALESCE(pg_last_wal_receive_lsn()::text, ''),
       COALESCE(pg_last_wal_replay_lsn()::text, ''),
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END`).Scan(&p.recovery, &receive, &replay, &p.paused)
	if err != nil {
		return p, err
	}
	for _, f := range []struct {
		text string
		dst  *uint64
	}{{receive, &p.receive}, {replay, &p.replay}} {
		if f.text != "" {
			if *f.dst, err = parseLSN(f.text); err != nil {
				return p, err
			}
		}
	}
	return p, nil
}

// promotedPast is WaitCatchUp's answer for a server that is not in
// recovery: it caught up if it was promoted at or past target.
func promotedPast(ctx context.Context, conn *pgx.Conn, target uint64, where string) error {
	tl, err := readTimeline(ctx, conn)
	if err != nil {
		return fmt.Errorf("%s: it is not in recovery, and reading its timeline history failed: %w", where, err)
	}
	if len(tl.chain) < 2 {
		return fmt.Errorf("%s: it is a primary on timeline %d, never promoted: point this at the standby", where, tl.tli)
	}
	if sp := tl.chain[len(tl.chain)-2].End; sp < target {
		return fmt.Errorf("%s: it was promoted already, at %s (timeline %d), %d bytes short of %s: what it lacks is lost unless the old primary's WAL is recovered",
			where, formatLSN(sp), tl.tli, target-sp, formatLSN(target))
	}
	return nil
}

// timeline is where a primary's WAL is now and how it got there.
type timeline struct {
	tli     int64
	current uint64         // pg_current_wal_lsn()
	chain   []timelineSpan // from its timeline history; the last is tli
}

// readTimeline reads a primary's current timeline and its history (for
// which it needs superuser or pg_read_server_files).
func readTimeline(ctx context.Context, conn *pgx.Conn) (timeline, error) {
	var walFile, current string
	err := conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_current_wal_lsn()), pg_current_wal_lsn()::text`).Scan(&walFile, &current)
	if err != nil {
		return timeline{}, err
	}
	var tl timeline
	if len(walFile) < 8 {
		return tl, fmt.Errorf("unexpected WAL file name %q", walFile)
	}
	if tl.tli, err = strconv.ParseInt(walFile[:8], 16, 64); err != nil {
		return tl, fmt.Errorf("timeline of WAL file %q: %w", walFile, err)
	}
	if tl.current, err = parseLSN(current); err != nil {
		return tl, err
	}
	var history string
	if tl.tli > 1 {
		name := "pg_wal/" + historyFileName(tl.tli)
		if err := conn.QueryRow(ctx, `SELECT pg_read_file($1)`, name).Scan(&history); err != nil {
			return tl, fmt.Errorf("read %s: %w", name, err)
		}
	}
	if tl.chain, err = timelineChain(history, tl.tli); err != nil {
		return tl, err
	}
	return tl, nil
}

// PromoteResult is what a promotion did.
type PromoteResult struct {
	Timeline      int64
	SwitchLSN     string        // where the new timeline begins ("" on timeline 1)
	WritableAfter time.Duration // from the call to the first successful write
}

// Promote turns the standby s describes into a primary with
// SELECT pg_promote(wait => true), then waits until it accepts writes,
// proven by a real write (a transaction that gets an xid and commits,
// with synchronous_commit = local so that a synchronous_standby_names
// without standbys does not hold it), and runs CHECKPOINT so that its
// control file shows the new timeline: pg_rewind reads the timeline there,
// and says "no rewind required" while it is the old one.
//
// PostgreSQL removes standby.signal when it promotes; when s.DataDir is set
// and holds a cluster (PG_VERSION) on this host, Promote writes the boot
// guard back right after the promotion (see EnsureBootGuard). A data dir
// on another host is left to that host's agent.
//
// Idempotent: on a server that is already a primary it only ensures the
// guard and proves it writable (and checkpoints if its control file still
// shows an older timeline). Promote does not fence anything: the plan must
// have fenced the old primary first.
func Promote(ctx context.Context, s Settings) (PromoteResult, error) {
	began := time.Now()
	where := fmt.Sprintf("promote %s at %s", s.ApplicationName, s.addr())
	conn, err := connectAction(ctx, s, "siteflip-promote")
	if err != nil {
		return PromoteResult{}, fmt.Errorf("%s: %w; check that the server runs and is reachable", where, err)
	}
	defer func() { closeConn(conn) }()

	var recovery bool
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&recovery); err != nil {
		return PromoteResult{}, fmt.Errorf("%s: %w", where, err)
	}
	if recovery {
		// Not pg_promote's own wait: it looks ten times a second; the
		// loop below proves the server writable every 10 ms.
		var done bool
		err := conn.QueryRow(ctx, `SELECT pg_promote(false)`).Scan(&done)
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "55000":
			// "recovery is not in progress": promoted meanwhile.
		case err != nil:
			return PromoteResult{}, fmt.Errorf("%s: pg_promote: %w; see the server log", where, err)
		case !done:
			return PromoteResult{}, fmt.Errorf("%s: the server refused to signal its promotion; see the server log", where)
		}
	}
	for {
		err := proveWritable(ctx, conn)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return PromoteResult{}, fmt.Errorf("%s: it does not accept writes: %w; see the server log", where, err)
		}
		if conn.IsClosed() {
			closeConn(conn)
			if conn, err = connectAction(ctx, s, "siteflip-promote"); err != nil {
				conn = nil
				return PromoteResult{}, fmt.Errorf("%s: reconnect to prove it writable: %w", where, err)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	res := PromoteResult{WritableAfter: time.Since(began)}
	// After the promotion, which removes standby.signal: the boot guard.
	if dir := s.DataDir; dir != "" && checkCluster(dir) == nil {
		if err := EnsureBootGuard(dir); err != nil {
			return res, fmt.Errorf("%s: it is a primary now, but its boot guard is missing: %w; a restart would bring it up as a primary without the agent: fix that and call Promote again", where, err)
		}
	}

	tl, err := readTimeline(ctx, conn)
	if err != nil {
		return res, fmt.Errorf("%s: read its timeline: %w", where, err)
	}
	res.Timeline = tl.tli
	if len(tl.chain) >= 2 {
		res.SwitchLSN = formatLSN(tl.chain[len(tl.chain)-2].End)
	}
	ckpt, err := checkpointTimeline(ctx, conn)
	if err != nil {
		return res, fmt.Errorf("%s: %w", where, err)
	}
	if recovery || ckpt != tl.tli {
		if _, err := conn.Exec(ctx, `CHECKPOINT`); err != nil {
			return res, fmt.Errorf("%s: CHECKPOINT after the promotion: %w; run it by hand before any pg_rewind against this server", where, err)
		}
		if ckpt, err = checkpointTimeline(ctx, conn); err != nil {
			return res, fmt.Errorf("%s: %w", where, err)
		}
		if ckpt != tl.tli {
			return res, fmt.Errorf("%s: its control file shows timeline %d after CHECKPOINT, not %d", where, ckpt, tl.tli)
		}
	}
	return res, nil
}

// proveWritable commits a transaction that has an xid: a commit record
// written and flushed locally.
func proveWritable(ctx context.Context, conn *pgx.Conn) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = local`); err != nil {
		return err
	}
	var xid int64
	if err := tx.QueryRow(ctx, `SELECT txid_current()`).Scan(&xid); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func checkpointTimeline(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var tli int64
	if err := conn.QueryRow(ctx, `SELECT timeline_id::int8 FROM pg_control_checkpoint()`).Scan(&tli); err != nil {
		return 0, fmt.Errorf("read the timeline of its last checkpoint: %w", err)
	}
	return tli, nil
}

// RejoinResult says how an old primary became a standby of the new one.
type RejoinResult struct {
	Rewound  bool // pg_rewind was needed and ran
	Recloned bool // pg_rewind could not work, a fresh pg_basebackup was taken
	// LostFrom and LostTo bound the WAL that existed only on the old
	// primary: written after the new primary's timeline switch point, the
	// writes lost in an unplanned failover. Empty when nothing was lost (a
	// clean switchover).
	LostFrom, LostTo string
	LostBytes        int64
	// LostWALDir is where the old data dir's WAL segments covering the
	// lost range were copied before anything was rewound, with a
	// LOST-WAL.txt that says what they are.
	LostWALDir string
	// OldDataDir is where the old data dir was moved before a fresh base
	// backup replaced it; RecloneReason says why pg_rewind was not used.
	OldDataDir    string
	RecloneReason string
}

// Rejoin makes the (stopped or running) old primary at this site a
// streaming standby of newPrimary:
//
//  1. It stops the server if it runs (fast; immediate if that fails).
//  2. It decides whether the old primary diverged: its WAL end (read with
//     pg_waldump from its last checkpoint; for a killed server, the end
//     crash recovery would reach) and timeline against newPrimary's
//     timeline history — as pg_rewind does, the fork point is where the
//     last timeline both share ends.
//  3. If it diverged, the old data dir's WAL segments covering the lost
//     range are copied to <data_dir>.lost-<timestamp>/, newPrimary is
//     checkpointed (so that pg_rewind sees its new timeline), a killed
//     server gets crash recovery in a single-user server (with the boot
//     guard moved aside, see ensureCleanShutdown), and pg_rewind
//     --source-server --no-ensure-shutdown runs (it needs wal_log_hints,
//     which InitPrimary sets). If pg_rewind fails, the old data dir is
//     moved to <data_dir>.old-<timestamp> and a fresh base backup is
//     taken. pg_rewind and pg_basebackup copy newPrimary's boot guard;
//     for a standby that is what it needs anyway.
//  4. It writes standby.signal and primary_conninfo (newPrimary's host and
//     port, its replication user, application_name = this site's
//     ApplicationName, password replPassword) into postgresql.auto.conf,
//     starts the server (as Start does) and waits until pg_stat_wal_receiver
//     says it streams from newPrimary.
//
// Rejoin connects to newPrimary as newPrimary.User with
// newPrimary.Password(): reading the timeline history, CHECKPOINT and
// pg_rewind need a superuser. It refuses a newPrimary that is in recovery
// or belongs to another cluster (system identifier).
//
// Idempotent: on an instance that already streams from newPrimary it
// returns at once with a zero result. A pg_rewind or base backup that was
// interrupted is noticed (a <data_dir>.siteflip-rejoin marker) and
// finished with a fresh base backup: a half rewound data dir is not
// trusted.
func (i Instance) Rejoin(ctx context.Context, newPrimary Settings, replPassword string) (RejoinResult, error) {
	s := i.Settings
	where := fmt.Sprintf("rejoin site %s at %s (data dir %s) as a standby of %s", i.Site, s.addr(), s.DataDir, newPrimary.addr())
	switch {
	case newPrimary.Host == "" || newPrimary.Port == 0 || newPrimary.User == "" || newPrimary.ReplicationUser == "":
		return RejoinResult{}, fmt.Errorf("%s: the new primary's host, port, user and replication_user must be set: call SetDefaults on its settings", where)
	case newPrimary.addr() == s.addr():
		return RejoinResult{}, fmt.Errorf("%s: the new primary is this instance itself: pass the settings of the site that was promoted", where)
	case s.DataDir == "":
		return RejoinResult{}, fmt.Errorf("%s: data_dir is not set", where)
	case i.LogFile == "":
		return RejoinResult{}, fmt.Errorf("%s: Instance.LogFile is empty: set a server log path", where)
	}
	for _, name := range []string{"pg_ctl", "postgres", "pg_controldata", "pg_waldump", "pg_rewind", "pg_basebackup"} {
		if _, err := binary(s, name); err != nil {
			return RejoinResult{}, fmt.Errorf("%s: %w", where, err)
		}
	}
	pgctl, _ := binary(s, "pg_ctl")
	u, err := runAsUser()
	if err != nil {
		return RejoinResult{}, fmt.Errorf("%s: %w", where, err)
	}

	marker := rejoinMarker(s.DataDir + ".siteflip-rejoin")
	pending, resumeOld, err := marker.read()
	if err != nil {
		return RejoinResult{}, fmt.Errorf("%s: %w", where, err)
	}
	if pending == "" && i.streamsFrom(ctx, newPrimary) {
		return RejoinResult{}, nil
	}
	if _, err := os.Stat(s.DataDir); err == nil {
		if err := i.stop(ctx, u, pgctl, "fast"); err != nil {
			if ierr := i.stop(ctx, u, pgctl, "immediate"); ierr != nil {
				return RejoinResult{}, fmt.Errorf("%s: %w", where, errors.Join(err, ierr))
			}
		}
	}

	var res RejoinResult
	reclone := func(reason string) error {
		res.Recloned, res.RecloneReason = true, reason
		old, err := i.reclone(ctx, u, newPrimary, replPassword, marker, resumeOld)
		res.OldDataDir = old
		if err != nil {
			return fmt.Errorf("%s: a fresh base backup, taken because %s, failed: %w; call Rejoin again to retry", where, reason, err)
		}
		return nil
	}
	switch pending {
	case "rewind":
		if err := reclone("an earlier pg_rewind of this data dir was interrupted, so it may be half rewound"); err != nil {
			return res, err
		}
	case "reclone":
		if err := reclone("an earlier base backup into this data dir was interrupted"); err != nil {
			return res, err
		}
	default:
		if err := checkCluster(s.DataDir); err != nil {
			return res, fmt.Errorf("%s: %w", where, err)
		}
		d, err := i.compareWAL(ctx, u, newPrimary)
		if err != nil {
			return res, fmt.Errorf("%s: %w", where, err)
		}
		if d.from < d.to {
			res.LostFrom, res.LostTo, res.LostBytes = formatLSN(d.from), formatLSN(d.to), int64(d.to-d.from)
			if res.LostWALDir, err = i.copyLostWAL(u, d, newPrimary); err != nil {
				return res, fmt.Errorf("%s: keep the WAL only this instance has (%s to %s): %w; nothing was rewound", where, res.LostFrom, res.LostTo, err)
			}
			if err := marker.write("rewind\n"); err != nil {
				return res, fmt.Errorf("%s: %w", where, err)
			}
			if err := i.rewind(ctx, u, newPrimary); err != nil {
				if ctx.Err() != nil {
					return res, fmt.Errorf("%s: %w; call Rejoin again: it will take a fresh base backup", where, err)
				}
				if err := reclone(err.Error()); err != nil {
					return res, err
				}
			} else {
				res.Rewound = true
				if err := marker.remove(); err != nil {
					return res, fmt.Errorf("%s: %w", where, err)
				}
			}
		}
	}

	if err := i.configureStandby(u, newPrimary, replPassword); err != nil {
		return res, fmt.Errorf("%s: %w", where, err)
	}
	if err := i.start(ctx, u); err != nil {
		return res, fmt.Errorf("%s: start as a standby: %w", where, err)
	}
	if err := i.waitStreaming(ctx, newPrimary); err != nil {
		return res, fmt.Errorf("%s: %w", where, err)
	}
	return res, nil
}

// receiverState is what a server says about its WAL receiver.
type receiverState struct {
	recovery bool
	status   string // pg_stat_wal_receiver.status, "" without a receiver
	upstream string // sender host:port
}

func readReceiverState(ctx context.Context, conn *pgx.Conn) (receiverState, error) {
	var (
		st     receiverState
		status *string
		host   *string
		port   *int32
	)
	err := conn.QueryRow(ctx, `
SELECT pg_is_in_recovery(), r.status, r.sender_host, r.sender_port
FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true`).Scan(&st.recovery, &status, &host, &port)
	if err != nil {
		return st, err
	}
	st.status = deref(status)
	if host != nil && port != nil {
		st.upstream = joinHostPort(*host, int(*port))
	}
	return st, nil
}

// streamsFrom says whether the instance runs as a standby streaming from p.
func (i Instance) streamsFrom(ctx context.Context, p Settings) bool {
	if _, alive := postmasterAlive(i.Settings.DataDir); !alive {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := connect(cctx, i.Settings, "siteflip-rejoin")
	if err != nil {
		return false
	}
	defer closeConn(conn)
	st, err := readReceiverState(cctx, conn)
	return err == nil && st.recovery && st.status == "streaming" && st.upstream == p.addr()
}

// waitStreaming waits until the instance streams from p.
func (i Instance) waitStreaming(ctx context.Context, p Settings) error {
	var (
		conn *pgx.Conn
		st   receiverState
		last error
	)
	defer func() { closeConn(conn) }()
	for {
		if conn == nil {
			c, err := connectAction(ctx, i.Settings, "siteflip-rejoin")
			if err != nil {
				last = err
			}
			conn = c
		}
		if conn != nil {
			cur, err := readReceiverState(ctx, conn)
			switch {
			case err != nil:
				last = err
				closeConn(conn)
				conn = nil
			case !cur.recovery:
				return fmt.Errorf("it came up as a primary, not a standby: check that standby.signal exists in %s%s", i.Settings.DataDir, fileTail(i.LogFile))
			case cur.status == "streaming" && cur.upstream == p.addr():
				return nil
			default:
				st, last = cur, nil
			}
		}
		select {
		case <-ctx.Done():
			status := st.status
			if status == "" {
				status = "no WAL receiver"
			}
			if last != nil {
				status += fmt.Sprintf("; last error: %v", last)
			}
			return fmt.Errorf("it does not stream from %s: %w (%s); check that %s is reachable and admits replication from here; in the server log %s, \"forked off\" or \"has already been removed\" mean it needs a fresh base backup (remove the data dir and use CloneStandby)%s",
				p.addr(), ctx.Err(), status, p.addr(), i.LogFile, fileTail(i.LogFile))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// divergence is how the old primary's WAL relates to the new primary's.
type divergence struct {
	from, to uint64 // the WAL only the old primary has; from == to when none
	chain    []timelineSpan
	cd       controlData
}

// compareWAL compares the stopped instance's WAL with newPrimary's
// timeline history.
func (i Instance) compareWAL(ctx context.Context, u *osUser, newPrimary Settings) (divergence, error) {
	s := i.Settings
	dir := s.DataDir
	cd, err := readControlData(ctx, u, s, dir)
	if err != nil {
		return divergence{}, err
	}
	var history []byte
	if cd.CheckpointTLI > 1 {
		path := filepath.Join(dir, "pg_wal", historyFileName(cd.CheckpointTLI))
		if history, err = os.ReadFile(path); err != nil {
			return divergence{}, fmt.Errorf("read the history of its timeline %d: %w; without it neither siteflip nor pg_rewind can tell where it forked: remove the data dir and clone a new standby with CloneStandby", cd.CheckpointTLI, err)
		}
	}
	chain, err := timelineChain(string(history), cd.CheckpointTLI)
	if err != nil {
		return divergence{}, fmt.Errorf("timeline history in %s: %w", dir, err)
	}
	end, err := walEnd(ctx, u, s, dir, cd.CheckpointTLI, cd.Checkpoint, cd)
	if err != nil {
		return divergence{}, err
	}

	conn, err := connectAction(ctx, newPrimary, "siteflip-rejoin")
	if err != nil {
		return divergence{}, fmt.Errorf("%w; the new primary must be up", err)
	}
	defer closeConn(conn)
	var (
		recovery bool
		sysID    string
	)
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), system_identifier::text FROM pg_control_system()`).Scan(&recovery, &sysID); err != nil {
		return divergence{}, fmt.Errorf("look at the new primary %s: %w", newPrimary.addr(), err)
	}
	if recovery {
		return divergence{}, fmt.Errorf("the new primary %s is in recovery (a standby): promote it first", newPrimary.addr())
	}
	if sysID != cd.SystemID {
		return divergence{}, fmt.Errorf("the new primary %s is another cluster (system identifier %s, here %s): check the configuration; to follow it anyway, remove the data dir and use CloneStandby", newPrimary.addr(), sysID, cd.SystemID)
	}
	tl, err := readTimeline(ctx, conn)
	if err != nil {
		return divergence{}, fmt.Errorf("read the timeline of the new primary %s: %w", newPrimary.addr(), err)
	}
	fork, ok := forkPoint(chain, tl.chain)
	if !ok {
		return divergence{}, fmt.Errorf("this instance (timeline %d) and the new primary %s (timeline %d) share no timeline: remove the data dir and use CloneStandby", cd.CheckpointTLI, newPrimary.addr(), tl.tli)
	}
	d := divergence{from: end, to: end, chain: chain, cd: cd}
	switch {
	case end > fork:
		d.from = fork
	case cd.CheckpointTLI == tl.tli && end > tl.current:
		return divergence{}, fmt.Errorf("this instance's WAL ends at %s on timeline %d, ahead of the new primary %s (at %s on the same timeline): is the new primary really the newer one?",
			formatLSN(end), tl.tli, newPrimary.addr(), formatLSN(tl.current))
	}
	return d, nil
}

// copyLostWAL copies the WAL segments of the data dir that hold the lost
// range to <data_dir>.lost-<timestamp>/ and describes them there.
func (i Instance) copyLostWAL(u *osUser, d divergence, newPrimary Settings) (string, error) {
	dir := i.Settings.DataDir
	lostDir := uniquePath(dir + ".lost-" + time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Mkdir(lostDir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", lostDir, err)
	}
	if err := u.chown(lostDir); err != nil {
		return "", err
	}
	segSize := d.cd.SegmentSize
	var copied, missing []string
	var tlis []string
	for _, span := range d.chain {
		lo, hi := max(span.Begin, d.from), min(span.End, d.to)
		if lo >= hi {
			continue
		}
		tlis = append(tlis, strconv.FormatInt(span.TLI, 10))
		for seg := lo / segSize; seg <= (hi-1)/segSize; seg++ {
			name := walSegmentName(span.TLI, seg*segSize, segSize)
			err := copyFileAs(u, filepath.Join(dir, "pg_wal", name), filepath.Join(lostDir, name))
			switch {
			case errors.Is(err, os.ErrNotExist):
				missing = append(missing, name)
			case err != nil:
				return lostDir, err
			default:
				copied = append(copied, name)
			}
		}
	}
	if len(copied) == 0 {
		return lostDir, fmt.Errorf("none of the WAL segments %v is in %s", missing, filepath.Join(dir, "pg_wal"))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "siteflip rejoined site %s (data dir %s) as a standby of %s at %s.\n",
		i.Site, dir, newPrimary.addr(), time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "This WAL was written only here, never on the new primary: from %s to %s (%d bytes), timeline %s.\n",
		formatLSN(d.from), formatLSN(d.to), d.to-d.from, strings.Join(tlis, ", "))
	fmt.Fprintf(&b, "It holds the writes lost in the failover. Read it with:\n  pg_waldump -p %s -t %s -s %s -e %s\n",
		lostDir, tlis[0], formatLSN(d.from), formatLSN(d.to))
	fmt.Fprintf(&b, "Segments: %s\n", strings.Join(copied, " "))
	if len(missing) > 0 {
		fmt.Fprintf(&b, "Missing from pg_wal, not copied: %s\n", strings.Join(missing, " "))
	}
	if err := writeFileAs(u, filepath.Join(lostDir, "LOST-WAL.txt"), []byte(b.String())); err != nil {
		return lostDir, err
	}
	return lostDir, nil
}

// rewind runs pg_rewind against newPrimary, after a CHECKPOINT there.
func (i Instance) rewind(ctx context.Context, u *osUser, newPrimary Settings) error {
	dir := i.Settings.DataDir
	pw, err := newPrimary.Password()
	if err != nil {
		return fmt.Errorf("password for the new primary %s: %w", newPrimary.addr(), err)
	}
	conn, err := connectAction(ctx, newPrimary, "siteflip-rejoin")
	if err != nil {
		return err
	}
	defer closeConn(conn)
	// pg_rewind copies every file of the source's data dir it lists and
	// fails on a unix socket there ("could not open file ".s.PGSQL.5432"
	// for reading: No such device or address") — after it has begun to
	// change the target. Do not start what cannot finish.
	var dataDir, sockets string
	if err := conn.QueryRow(ctx, `SELECT current_setting('data_directory'), current_setting('unix_socket_directories')`).Scan(&dataDir, &sockets); err != nil {
		return fmt.Errorf("read the new primary's data_directory and unix_socket_directories: %w", err)
	}
	if d := socketInDataDir(dataDir, sockets); d != "" {
		return fmt.Errorf("the new primary %s keeps its unix socket in its data dir (%s), and pg_rewind fails on socket files: set socket_dir outside data_dir on every site to make rewinding possible", newPrimary.addr(), d)
	}
	// Right after a promotion the control file may still show the old
	// timeline, and pg_rewind would say "no rewind required".
	if _, err := conn.Exec(ctx, `CHECKPOINT`); err != nil {
		return fmt.Errorf("CHECKPOINT on the new primary %s before pg_rewind: %w", newPrimary.addr(), err)
	}
	pgrewind, err := binary(i.Settings, "pg_rewind")
	if err != nil {
		return err
	}
	// pg_rewind would run this crash recovery itself, through system()
	// with the data dir on a shell's command line, and without moving the
	// boot guard aside, which a single-user server refuses.
	if err := i.ensureCleanShutdown(ctx, u); err != nil {
		return err
	}
	env := []string{"LC_ALL=C"}
	if pw != "" {
		env = append(env, "PGPASSWORD="+pw)
	}
	out, err := runOutput(ctx, u, "rewind to the new primary "+newPrimary.addr(), env, pgrewind,
		"--target-pgdata="+dir,
		"--no-ensure-shutdown",
		"--source-server="+conninfo(
			"host", newPrimary.Host,
			"port", strconv.Itoa(newPrimary.Port),
			"user", newPrimary.User,
			"dbname", newPrimary.Database,
			"application_name", "siteflip-rewind",
			"connect_timeout", strconv.Itoa(int(connectTimeout/time.Second)),
		))
	if err != nil {
		// Its own lines say what went wrong.
		var own []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "pg_rewind:") {
				own = append(own, strings.TrimSpace(l))
			}
		}
		if len(own) > 0 {
			var exit *exec.ExitError
			if errors.As(err, &exit) && ctx.Err() == nil {
				return fmt.Errorf("pg_rewind failed (%v): %s", exit, strings.Join(own, " | "))
			}
		}
		return err
	}
	if bytes.Contains(out, []byte("no rewind required")) {
		return fmt.Errorf("pg_rewind says no rewind is required, although this instance's WAL goes on past the new primary's fork point%s", outputTail(out))
	}
	return removeSocketLocks(dir)
}

// socketInDataDir returns the first directory of unix_socket_directories
// that is dataDir or inside it, or "".
func socketInDataDir(dataDir, socketDirs string) string {
	dataDir = filepath.Clean(dataDir)
	for _, d := range splitDirectories(socketDirs) {
		if d == "" {
			continue
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dataDir, d) // relative to the data dir the server runs in
		}
		if d = filepath.Clean(d); d == dataDir || strings.HasPrefix(d, dataDir+"/") {
			return d
		}
	}
	return ""
}

// splitDirectories splits a list setting such as unix_socket_directories
// as PostgreSQL does (SplitDirectoriesString): at commas outside double
// quotes, trimming blanks around each entry; inside quotes "" is a quote.
func splitDirectories(list string) []string {
	var (
		out    []string
		cur    strings.Builder
		quoted bool
	)
	for i := 0; i < len(list); i++ {
		c := list[i]
		switch {
		case quoted && c == '"' && i+1 < len(list) && list[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(out, strings.TrimSpace(cur.String()))
}

// reclone moves the data dir aside and takes a fresh base backup of
// newPrimary. resumeOld is where an interrupted earlier reclone meant to
// move it. It returns where the old data dir is.
func (i Instance) reclone(ctx context.Context, u *osUser, newPrimary Settings, replPassword string, marker rejoinMarker, resumeOld string) (string, error) {
	dir := i.Settings.DataDir
	old := resumeOld
	if old == "" {
		old = uniquePath(dir + ".old-" + time.Now().UTC().Format("20060102T150405Z"))
		if err := marker.write("reclone\t" + old + "\n"); err != nil {
			return "", err
		}
	}
	switch _, err := os.Stat(old); {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Rename(dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("move the old data dir aside: %w", err)
		}
	case err != nil:
		return old, fmt.Errorf("look at %s: %w", old, err)
	default:
		// The old data dir was moved before: what is in dir now is a
		// partial copy of the new primary.
		if err := os.RemoveAll(dir); err != nil {
			return old, fmt.Errorf("remove the partial base backup in %s: %w", dir, err)
		}
	}
	if err := i.CloneStandby(ctx, newPrimary, replPassword); err != nil {
		return old, err
	}
	return old, marker.remove()
}

// configureStandby makes the stopped instance start as a standby of p.
func (i Instance) configureStandby(u *osUser, p Settings, replPassword string) error {
	dir := i.Settings.DataDir
	kv := []string{
		"host", p.Host,
		"port", strconv.Itoa(p.Port),
		"user", p.ReplicationUser,
		"application_name", i.Settings.ApplicationName,
	}
	if replPassword != "" {
		kv = append(kv, "password", replPassword)
	}
	if err := setAutoConf(u, dir, "primary_conninfo", conninfo(kv...)); err != nil {
		return err
	}
	signal := filepath.Join(dir, "standby.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", signal, err)
	}
	return u.chown(signal)
}

// removeSocketLocks removes the .s.PGSQL.PORT.lock files that pg_rewind or
// pg_basebackup copied from the other site's data dir: with the same port
// on both sites, the server would take one for a live postmaster's.
func removeSocketLocks(dir string) error {
	locks, _ := filepath.Glob(filepath.Join(dir, ".s.PGSQL.*.lock"))
	for _, l := range locks {
		if err := os.Remove(l); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove copied socket lock: %w", err)
		}
	}
	return nil
}

// rejoinMarker is a file beside the data dir that says a Rejoin step which
// leaves the data dir unusable when interrupted is under way:
// "rewind", or "reclone<TAB>where the old data dir goes".
type rejoinMarker string

func (m rejoinMarker) read() (step, old string, err error) {
	b, err := os.ReadFile(string(m))
	if errors.Is(err, os.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", m, err)
	}
	step, old, _ = strings.Cut(strings.TrimSpace(string(b)), "\t")
	if step != "reclone" {
		step, old = "rewind", "" // unknown: trust nothing
	}
	return step, old, nil
}

func (m rejoinMarker) write(content string) error {
	if err := os.WriteFile(string(m), []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", m, err)
	}
	return nil
}

func (m rejoinMarker) remove() error {
	if err := os.Remove(string(m)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", m, err)
	}
	return nil
}

// uniquePath returns base, or base-2, base-3 ... if base exists.
func uniquePath(base string) string {
	p := base
	for n := 2; ; n++ {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
		p = base + "-" + strconv.Itoa(n)
	}
}

// copyFileAs copies src to dst (mode 0600, owned by u).
func copyFileAs(u *osUser, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return u.chown(dst)
}

// connectAction is connect with the error on one line: pgx puts every
// connection attempt on a line of its own.
func connectAction(ctx context.Context, s Settings, appName string) (*pgx.Conn, error) {
	conn, err := connect(ctx, s, appName)
	if err != nil {
		return nil, oneLineError{err}
	}
	return conn, nil
}

type oneLineError struct{ err error }

func (e oneLineError) Error() string {
	return strings.NewReplacer(":\n\t", ": ", "\n\t", "; ", "\n", " ").Replace(e.err.Error())
}

func (e oneLineError) Unwrap() error { return e.err }

// closeConn closes conn, if any, giving the goodbye a moment.
func closeConn(conn *pgx.Conn) {
	if conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = conn.Close(ctx) // the connection is done with either way
}
