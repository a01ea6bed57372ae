package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Synchronous replication: a primary that waits, before it acknowledges a
// commit, until the standby at the other site has flushed the commit's WAL.
// A failover to that standby then loses no acknowledged write, and every
// commit costs a round trip to the standby. Whether to wait, and whether to
// stop waiting when the standby is gone, is the control plane's decision;
// these are the primitives it uses, each checked on the server rather than
// assumed.

// SyncState is what a server says about synchronous replication.
type SyncState struct {
	// Primary is false on a server in recovery (a standby), where these
	// settings have no effect until it is promoted.
	Primary bool
	// StandbyNames is synchronous_standby_names in effect; "" means no
	// commit waits for a standby. EnableSync sets one double-quoted name.
	StandbyNames string
	// SynchronousCommit is synchronous_commit as a new session of
	// Settings.User gets it (pg_settings.reset_val), role and database
	// settings included. With StandbyNames set, on, remote_write and
	// remote_apply wait for the standby; local and off do not.
	SynchronousCommit string
	// ServerCommit is the server's own synchronous_commit, before any role
	// or database setting: from the configuration files (ALTER SYSTEM
	// included), the command line or the default. EnableSync keeps it at
	// on or stronger.
	ServerCommit string
	// Weakened lists every setting that lets commits stop waiting for the
	// standby: the server's own synchronous_commit and every ALTER ROLE /
	// ALTER DATABASE ... SET synchronous_commit (pg_db_role_setting) that
	// is off, local or remote_write (which waits for the standby's write,
	// not its flush), e.g. "role app sets synchronous_commit=local",
	// "database shop sets synchronous_commit=off", "role app in database
	// shop sets synchronous_commit=local", "server sets
	// synchronous_commit=off". A session's own SET synchronous_commit
	// cannot be seen here, and PostgreSQL offers no way to forbid it: such
	// a session opts its own transactions out of the guarantee.
	Weakened []string
	// Standbys are the standbys connected now (pg_stat_replication).
	Standbys []SyncStandby
	// Waiting is the number of backends whose commit waits for a
	// synchronous standby now (pg_stat_activity wait_event SyncRep), and
	// LongestWait how long the earliest of them has been running the
	// statement that waits.
	Waiting     int
	LongestWait time.Duration
}

// SyncStandby is one connected standby as the primary sees it.
type SyncStandby struct {
	ApplicationName string
	State           string // startup, catchup, streaming, backup, stopping
	// SyncState is async (it confirms nothing), potential (it would take
	// over from the sync standby), sync or quorum (commits wait for it).
	SyncState    string
	SyncPriority int
}

// Enabled says whether commits of new sessions wait for a synchronous
// standby.
func (st SyncState) Enabled() bool {
	if st.StandbyNames == "" {
		return false
	}
	switch st.SynchronousCommit {
	case "on", "remote_write", "remote_apply":
		return true
	}
	return false
}

// Requires says whether the server is configured as EnableSync(standby)
// configures it: synchronous_standby_names names exactly that standby, and
// the server's own synchronous_commit is on or remote_apply. Settings of
// roles and databases are not part of it: see Weakened.
func (st SyncState) Requires(standby string) bool {
	names, err := syncStandbyNames(standby)
	return err == nil && st.StandbyNames == names && strongCommit(st.ServerCommit)
}

// strongCommit says whether a synchronous_commit value waits, with a
// standby named, until the standby has flushed (or applied) the commit.
func strongCommit(v string) bool {
	v = canonicalCommit(v)
	return v == "on" || v == "remote_apply"
}

// canonicalCommit is the name PostgreSQL shows for a synchronous_commit
// value as it may be written in a setting: case does not matter, and the
// boolean spellings stand for on and off.
func canonicalCommit(v string) string {
	v = strings.ToLower(strings.Trim(strings.TrimSpace(v), `'"`))
	switch v {
	case "true", "yes", "1":
		return "on"
	case "false", "no", "0":
		return "off"
	}
	return v
}

// IsSync says whether the standby with application_name standby is
// connected and confirms commits (sync_state sync or quorum). Names are
// compared without regard to case, as PostgreSQL compares them.
func (st SyncState) IsSync(standby string) bool {
	for _, sb := range st.Standbys {
		if strings.EqualFold(sb.ApplicationName, standby) && (sb.SyncState == "sync" || sb.SyncState == "quorum") {
			return true
		}
	}
	return false
}

// Blocking says whether commits wait for a standby that is not there:
// synchronous replication is enabled and no connected standby is sync or
// quorum. Every commit of a session that has not turned
// synchronous_commit down then waits until a named standby connects and
// catches up, or until DisableSync.
func (st SyncState) Blocking() bool {
	if !st.Primary || !st.Enabled() {
		return false
	}
	for _, sb := range st.Standbys {
		if sb.SyncState == "sync" || sb.SyncState == "quorum" {
			return false
		}
	}
	return true
}

// String describes the state on one line, for logs and errors.
func (st SyncState) String() string {
	var b strings.Builder
	if !st.Primary {
		b.WriteString("standby (in recovery); ")
	}
	fmt.Fprintf(&b, "synchronous_standby_names = '%s', synchronous_commit = %s", strings.ReplaceAll(st.StandbyNames, "'", "''"), st.SynchronousCommit)
	if st.ServerCommit != "" && st.ServerCommit != st.SynchronousCommit {
		fmt.Fprintf(&b, " (server: %s)", st.ServerCommit)
	}
	b.WriteString("; ")
	if len(st.Weakened) > 0 {
		fmt.Fprintf(&b, "weakened: %s; ", strings.Join(st.Weakened, ", "))
	}
	if len(st.Standbys) == 0 {
		b.WriteString("no standby connected")
	} else {
		b.WriteString("standbys:")
		for _, sb := range st.Standbys {
			fmt.Fprintf(&b, " %s (%s, %s)", sb.ApplicationName, sb.State, sb.SyncState)
		}
	}
	if st.Waiting > 0 {
		fmt.Fprintf(&b, "; %d commits waiting for a synchronous standby, the longest for %v", st.Waiting, st.LongestWait.Round(time.Millisecond))
	}
	return b.String()
}

const (
	// syncAppName is the application_name of the sync primitives'
	// connections.
	syncAppName = "siteflip-sync"
	// defaultSyncTimeout bounds a primitive when ctx has no deadline.
	defaultSyncTimeout = 10 * time.Second
	// reloadWait bounds the wait for a reload to take effect, and for the
	// commits it releases to be released.
	reloadWait = 5 * time.Second
	syncPoll   = 10 * time.Millisecond
)

// EnableSync makes the primary s describes wait, before acknowledging a
// commit, until the standby whose application_name is standby has flushed
// it: synchronous_standby_names names exactly that standby (double-quoted,
// so that any name is taken literally; PostgreSQL still matches it to
// application_name without regard to case), and the server's own
// synchronous_commit is at least on: set to on when it is off, local or
// remote_write, left alone when it is on or remote_apply. Both are set
// with ALTER SYSTEM and pg_reload_conf(); EnableSync returns once the
// server shows the new values, which it checks for up to 5 s.
//
// It does not wait for the standby: if it is not connected, or another
// standby is, commits block from now on. Use ReadSync or WaitSync to see
// whether the standby confirms commits.
//
// Roles and databases can still weaken it (ALTER ROLE/DATABASE ... SET
// synchronous_commit): EnableSync leaves those alone, and ReadSync lists
// them in Weakened. A session's own SET synchronous_commit = local or off
// cannot be prevented by PostgreSQL at all: such a session's commits do
// not wait for the standby.
//
// ALTER SYSTEM writes postgresql.auto.conf in the data dir, and
// pg_basebackup and pg_rewind copy that file to the other site. There it
// does nothing while that site is a standby, but once promoted the copy
// still requires the standby named here — usually the promoted site
// itself — so its commits would block. After a promotion the caller must
// therefore call EnableSync (naming the new standby) or DisableSync on
// the new primary; DisableSync also works on a standby, to clear the
// setting before promoting it. Promote's own test write uses
// synchronous_commit = local and does not notice.
//
// EnableSync refuses a standby (a server in recovery), an empty name, "*"
// (which lets any standby confirm) and the server's own cluster_name.
// It needs a superuser (ALTER SYSTEM). Idempotent.
func EnableSync(ctx context.Context, s Settings, standby string) error {
	where := syncWhere(fmt.Sprintf("enable synchronous replication to standby %q", standby), s)
	names, err := syncStandbyNames(standby)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	ctx, cancel := withSyncTimeout(ctx)
	defer cancel()
	conn, err := syncConn(ctx, s)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	defer closeConn(conn)

	var (
		recovery bool
		cluster  string
	)
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), current_setting('cluster_name')`).Scan(&recovery, &cluster); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if recovery {
		return fmt.Errorf("%s: it is a standby (in recovery); synchronous replication is set on the primary: pass the primary's settings", where)
	}
	if strings.EqualFold(cluster, standby) {
		return fmt.Errorf("%s: that is this server's own cluster_name: name the standby at the other site (its application_name)", where)
	}
	// synchronous_commit first: while no standby is named it makes commits
	// wait for nothing, so a failure between the two leaves an
	// asynchronous primary asynchronous.
	commit, err := serverCommit(ctx, conn)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if !strongCommit(commit) {
		if err := alterSystem(ctx, conn, s, "synchronous_commit", "on"); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	if err := alterSystem(ctx, conn, s, "synchronous_standby_names", names); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := reloadAndCheck(ctx, conn, names, true); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// DisableSync makes the server s describes stop waiting for standbys: it
// sets synchronous_standby_names to the empty string with ALTER SYSTEM and
// pg_reload_conf() (explicitly, rather than RESET, so that a value in
// postgresql.conf does not come back). Commits already waiting for a standby are released: they return
// to their clients as committed. DisableSync returns once the server shows
// the new value and no backend waits for a synchronous standby any more,
// which it checks for up to 5 s each. synchronous_commit is left alone:
// with no standby named, on means a local flush.
//
// It works on a standby too, where it clears a setting that pg_basebackup
// or pg_rewind copied from the primary before the standby is promoted
// (see EnableSync). It needs a superuser. Idempotent.
func DisableSync(ctx context.Context, s Settings) error {
	where := syncWhere("disable synchronous replication", s)
	ctx, cancel := withSyncTimeout(ctx)
	defer cancel()
	conn, err := syncConn(ctx, s)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	defer closeConn(conn)
	if err := alterSystem(ctx, conn, s, "synchronous_standby_names", ""); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := reloadAndCheck(ctx, conn, "", false); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	// The checkpointer releases the waiting commits when it applies the
	// reload, a moment after this session has.
	began := time.Now()
	for {
		var waiting int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`).Scan(&waiting); err != nil {
			return fmt.Errorf("%s: count the commits waiting for a standby: %w", where, err)
		}
		if waiting == 0 {
			return nil
		}
		if time.Since(began) > reloadWait || sleepCtx(ctx, syncPoll) != nil {
			return fmt.Errorf("%s: %d commits still wait for a synchronous standby %v after the reload: see the server log; something may have set synchronous_standby_names again",
				where, waiting, time.Since(began).Round(time.Millisecond))
		}
	}
}

// ReadSync reads what the server s describes says about synchronous
// replication now: its settings, the standbys connected to it and the
// commits waiting for one. It changes nothing and never waits for a
// standby, so it works while commits are blocked.
func ReadSync(ctx context.Context, s Settings) (SyncState, error) {
	where := syncWhere("read synchronous replication state", s)
	ctx, cancel := withSyncTimeout(ctx)
	defer cancel()
	conn, err := syncConn(ctx, s)
	if err != nil {
		return SyncState{}, fmt.Errorf("%s: %w", where, err)
	}
	defer closeConn(conn)
	st, err := readSync(ctx, conn)
	if err != nil {
		return SyncState{}, fmt.Errorf("%s: %w", where, err)
	}
	return st, nil
}

// WaitSync waits until the primary s describes shows the standby with
// application_name standby connected and confirming commits (IsSync), or
// ctx ends, and returns the last state read. It changes nothing: call it
// after EnableSync to know that commits are protected rather than blocked.
// Without a deadline in ctx it waits up to 10 s.
func WaitSync(ctx context.Context, s Settings, standby string) (SyncState, error) {
	where := syncWhere(fmt.Sprintf("wait for standby %q to be synchronous", standby), s)
	if standby == "" {
		return SyncState{}, fmt.Errorf("%s: standby name is empty: give the standby's application_name", where)
	}
	ctx, cancel := withSyncTimeout(ctx)
	defer cancel()
	var (
		conn    *pgx.Conn
		st      SyncState
		seen    bool
		lastErr error
	)
	defer func() { closeConn(conn) }()
	for {
		if conn == nil {
			c, err := syncConn(ctx, s)
			if err != nil {
				lastErr = err
			}
			conn = c
		}
		if conn != nil {
			cur, err := readSync(ctx, conn)
			switch {
			case err != nil:
				lastErr = err
				closeConn(conn)
				conn = nil
			case cur.IsSync(standby):
				return cur, nil
			default:
				st, seen = cur, true
			}
		}
		if err := sleepCtx(ctx, 2*syncPoll); err != nil {
			if !seen {
				return st, fmt.Errorf("%s: %w before the server could be read: %v", where, err, lastErr)
			}
			hint := "check that the standby runs and streams from this primary, and that its application_name is " + standby
			if !st.Primary {
				hint = "this server is a standby: pass the primary's settings"
			} else if !st.Requires(standby) {
				hint = "the primary does not require it: call EnableSync"
			} else if st.Blocking() {
				hint += "; meanwhile commits wait for it, and DisableSync releases them"
			}
			return st, fmt.Errorf("%s: %w: %s; %s", where, err, st, hint)
		}
	}
}

// syncStandbyNames is the synchronous_standby_names value that names
// exactly the standby with application_name standby.
func syncStandbyNames(standby string) (string, error) {
	switch {
	case standby == "":
		return "", errors.New("standby name is empty: give the application_name of the standby that must confirm every commit (the application_name setting of its site)")
	case strings.TrimSpace(standby) == "*":
		return "", errors.New(`standby name "*" would let any standby confirm commits: name the one standby`)
	case !printableASCII(standby):
		return "", fmt.Errorf("standby name %q must be printable ASCII, as application_name is", standby)
	case len(standby) > maxNameLen:
		return "", fmt.Errorf("standby name %q is %d bytes; PostgreSQL truncates application_name to %d bytes, so no standby can carry it", standby, len(standby), maxNameLen)
	}
	// A double-quoted name is taken as it is: no keyword (FIRST, ANY), no
	// list, no number; a quote inside is doubled.
	return `"` + strings.ReplaceAll(standby, `"`, `""`) + `"`, nil
}

// syncWhere says what a sync primitive does where, for errors.
func syncWhere(what string, s Settings) string {
	if s.DataDir != "" {
		return fmt.Sprintf("%s on postgres at %s (data dir %s)", what, s.addr(), s.DataDir)
	}
	return fmt.Sprintf("%s on postgres at %s", what, s.addr())
}

func withSyncTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, defaultSyncTimeout)
}

// syncConn connects for the sync primitives. The session commits nothing
// that needs a standby, but should it ever, it must not wait for the
// standby it manages: synchronous_commit = local. A statement timeout
// keeps a stuck statement from holding it beyond what ctx allows anyway.
func syncConn(ctx context.Context, s Settings) (*pgx.Conn, error) {
	conn, err := connectAction(ctx, s, syncAppName)
	if err != nil {
		return nil, fmt.Errorf("%w; check that the server runs and is reachable", err)
	}
	// A session SET, not a startup parameter: that would also become the
	// session's reset value, which readSync reports as what new sessions get.
	if _, err := conn.Exec(ctx, `SET synchronous_commit = local; SET statement_timeout = '5s'`); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("set up the session: %w", err)
	}
	return conn, nil
}

// alterSystem runs ALTER SYSTEM SET name = value. The statement takes no
// parameters, so the server quotes the value (format %L).
func alterSystem(ctx context.Context, conn *pgx.Conn, s Settings, name, value string) error {
	var stmt string
	err := conn.QueryRow(ctx, `SELECT format('ALTER SYSTEM SET %I = %L', $1::text, $2::text)`, name, value).Scan(&stmt)
	if err == nil {
		_, err = conn.Exec(ctx, stmt)
	}
	if err != nil {
		return fmt.Errorf("ALTER SYSTEM SET %s = '%s': %w; it needs a superuser (user %s) and a writable postgresql.auto.conf", name, value, err, s.User)
	}
	return nil
}

// reloadAndCheck runs pg_reload_conf() and waits until this session shows
// synchronous_standby_names = names and, when strong, a server
// synchronous_commit of on or remote_apply. A backend applies a reload
// between statements, once the postmaster has re-read the files and
// signalled it; the postmaster signals all its children at once.
func reloadAndCheck(ctx context.Context, conn *pgx.Conn, names string, strong bool) error {
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_reload_conf()`).Scan(&ok); err != nil || !ok {
		return fmt.Errorf("pg_reload_conf(): %v (returned %v); the new setting is in postgresql.auto.conf: reload the server (pg_ctl reload) and check again", err, ok)
	}
	began := time.Now()
	for {
		var gotNames, source, sourceFile string
		err := conn.QueryRow(ctx, `
SELECT setting, source, COALESCE(sourcefile, '')
FROM pg_settings WHERE name = 'synchronous_standby_names'`).Scan(&gotNames, &source, &sourceFile)
		if err != nil {
			return fmt.Errorf("read the settings after the reload: %w", err)
		}
		gotCommit, err := serverCommit(ctx, conn)
		if err != nil {
			return err
		}
		if gotNames == names && (!strong || strongCommit(gotCommit)) {
			return nil
		}
		if time.Since(began) > reloadWait || sleepCtx(ctx, syncPoll) != nil {
			from := source
			if sourceFile != "" {
				from += " " + sourceFile
			}
			want := "any"
			if strong {
				want = "on or remote_apply"
			}
			return fmt.Errorf("%v after pg_reload_conf() the server still has synchronous_standby_names = %q (from %s) and synchronous_commit = %s, not %q and %s: "+
				"a value on the server command line (-c) overrides ALTER SYSTEM; a reload is ignored when a configuration file has errors (see the server log)",
				time.Since(began).Round(time.Millisecond), gotNames, from, gotCommit, names, want)
		}
	}
}

// serverCommit reads the server's own synchronous_commit, before role and
// database settings: this session's reset value when no such setting
// applies to it; otherwise what the configuration files say (which needs a
// superuser), or the default. It reads the value through this session's
// own, so it sees a reload once the session has applied it.
func serverCommit(ctx context.Context, conn *pgx.Conn) (string, error) {
	var (
		commit     string
		overridden bool
	)
	err := conn.QueryRow(ctx, `
SELECT (SELECT reset_val FROM pg_settings WHERE name = 'synchronous_commit'),
       EXISTS (SELECT 1 FROM pg_db_role_setting d, unnest(d.setconfig) AS c
               WHERE lower(split_part(c, '=', 1)) = 'synchronous_commit'
                 AND d.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = session_user))
                 AND d.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())))`).Scan(&commit, &overridden)
	if err != nil {
		return "", fmt.Errorf("read synchronous_commit: %w", err)
	}
	if !overridden {
		return canonicalCommit(commit), nil
	}
	err = conn.QueryRow(ctx, `
SELECT COALESCE(
  (SELECT setting FROM pg_file_settings
   WHERE name = 'synchronous_commit' AND applied AND error IS NULL
   ORDER BY seqno DESC LIMIT 1),
  (SELECT boot_val FROM pg_settings WHERE name = 'synchronous_commit'))`).Scan(&commit)
	if err != nil {
		return "", fmt.Errorf("read the server's synchronous_commit from its configuration files (pg_file_settings), as a role or database setting applies to this session: %w; it needs a superuser", err)
	}
	return canonicalCommit(commit), nil
}

// weakenedQuery lists the role and database settings that weaken
// synchronous_commit, as SyncState.Weakened describes them.
const weakenedQuery = `
SELECT COALESCE(r.rolname, ''), COALESCE(db.datname, ''), split_part(c, '=', 2)
FROM pg_db_role_setting d
CROSS JOIN LATERAL unnest(d.setconfig) AS c
LEFT JOIN pg_roles r ON r.oid = d.setrole
LEFT JOIN pg_database db ON db.oid = d.setdatabase
WHERE lower(split_part(c, '=', 1)) = 'synchronous_commit'
ORDER BY 1, 2`

// weakCommit says whether a synchronous_commit value lets a commit return
// before the standby has flushed it.
func weakCommit(v string) bool {
	switch canonicalCommit(v) {
	case "off", "local", "remote_write":
		return true
	}
	return false
}

// describeWeakening says who sets synchronous_commit to value: role and db
// are "" for every role and every database.
func describeWeakening(role, db, value string) string {
	var who string
	switch {
	case role != "" && db != "":
		who = fmt.Sprintf("role %s in database %s", role, db)
	case role != "":
		who = "role " + role
	case db != "":
		who = "database " + db
	default:
		who = "every role (ALTER ROLE ALL)"
	}
	return fmt.Sprintf("%s sets synchronous_commit=%s", who, canonicalCommit(value))
}

// readSync reads the sync state in one round trip.
func readSync(ctx context.Context, conn *pgx.Conn) (SyncState, error) {
	var (
		st      SyncState
		longest float64
	)
	b := &pgx.Batch{}
	b.Queue(`
SELECT NOT pg_is_in_recovery(),
       current_setting('synchronous_standby_names'),
       (SELECT reset_val FROM pg_settings WHERE name = 'synchronous_commit'),
       count(a.pid)::int,
       COALESCE(EXTRACT(epoch FROM max(clock_timestamp() - a.query_start)), 0)::float8
FROM (SELECT 1) AS one
LEFT JOIN pg_stat_activity AS a ON a.wait_event = 'SyncRep'`).QueryRow(func(row pgx.Row) error {
		return row.Scan(&st.Primary, &st.StandbyNames, &st.SynchronousCommit, &st.Waiting, &longest)
	})
	b.Queue(weakenedQuery).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var role, db, value string
			if err := rows.Scan(&role, &db, &value); err != nil {
				return err
			}
			if weakCommit(value) {
				st.Weakened = append(st.Weakened, describeWeakening(role, db, value))
			}
		}
		return rows.Err()
	})
	b.Queue(`
SELECT COALESCE(application_name, ''), COALESCE(state, ''), COALESCE(sync_state, ''), COALESCE(sync_priority, 0)
FROM pg_stat_replication
ORDER BY application_name, pid`).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var sb SyncStandby
			if err := rows.Scan(&sb.ApplicationName, &sb.State, &sb.SyncState, &sb.SyncPriority); err != nil {
				return err
			}
			st.Standbys = append(st.Standbys, sb)
		}
		return rows.Err()
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return SyncState{}, err
	}
	st.LongestWait = time.Duration(longest * float64(time.Second))
	var err error
	if st.ServerCommit, err = serverCommit(ctx, conn); err != nil {
		return SyncState{}, err
	}
	if weakCommit(st.ServerCommit) {
		st.Weakened = append([]string{"server sets synchronous_commit=" + st.ServerCommit}, st.Weakened...)
	}
	return st, nil
}

// sleepCtx sleeps for d or until ctx ends, and then returns ctx.Err().
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return ctx.Err()
}

// SyncedSince tells whether the standby has flushed all the WAL the
// primary had written at since (an LSN, "" for now), and returns the
// primary's current write position. Commits acknowledged before the
// standby became synchronous were not confirmed by it: the caller takes a
// position once the standby is sync, and trusts that no acknowledged commit
// is missing at the standby only once SyncedSince says it flushed past it.
func SyncedSince(ctx context.Context, s Settings, standby, since string) (bool, string, error) {
	ctx, cancel := withSyncTimeout(ctx)
	defer cancel()
	conn, err := syncConn(ctx, s)
	if err != nil {
		return false, "", fmt.Errorf("%s: %w", syncWhere("check synchronous catch-up", s), err)
	}
	defer closeConn(conn)
	var now string
	var flushed bool
	err = conn.QueryRow(ctx, `
SELECT pg_current_wal_lsn()::text,
       COALESCE((SELECT flush_lsn >= COALESCE(NULLIF($2, '')::pg_lsn, pg_current_wal_lsn())
                 FROM pg_stat_replication
                 WHERE application_name = $1 AND sync_state IN ('sync', 'quorum')
                 ORDER BY flush_lsn DESC LIMIT 1), false)`, standby, since).Scan(&now, &flushed)
	if err != nil {
		return false, "", fmt.Errorf("%s: %w", syncWhere("check synchronous catch-up", s), err)
	}
	return flushed, now, nil
}
