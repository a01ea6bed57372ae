package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/siteflip/siteflip/internal/resource"
)

// Semi-synchronous replication (docs/design/mariadb.md, "Synchronous
// mode"): the primary's commit, once synced to its binlog, waits until the
// standby says its relay log holds it (AFTER_SYNC), and only then commits
// in InnoDB and returns. The option file sets everything but the switch:
// rpl_semi_sync_master_enabled, which only the agent turns ON (Require) or
// OFF (Release). With rpl_semi_sync_master_wait_no_slave=ON a commit waits
// also while no standby is attached, and with the timeout at its maximum
// (about 49.7 days) it never falls back on its own.
//
// What MariaDB 10.11.19 shows of it, and what these functions rely on:
//   - Rpl_semi_sync_master_status is ON from the moment the primary's side
//     is enabled, standby or not: it proves nothing by itself.
//   - Rpl_semi_sync_master_clients counts the attached replicas whose IO
//     thread started with rpl_semi_sync_slave_enabled=ON; it stays 1 while
//     the primary's side is OFF, and drops to 0 with STOP SLAVE.
//   - Commits are acknowledged by binlog position, by whichever semi-sync
//     replica answers: the primary cannot tell which one did.
//   - With group commit only the group's leader waits in the state
//     "Waiting for semi-sync ACK from slave" (one wait session); the others
//     of its group, and later commits, wait in the state "Commit".
//   - _no_tx grows by one for a leader whose commit went through without
//     the acknowledgement: its session killed while it waited (its client
//     loses the connection: 2013 from the mariadb client, "invalid
//     connection" from go-sql-driver; the rows are committed here and
//     others read them), the side switched OFF under it, a timeout. _no_times grows each time the side goes OFF
//     while ON (also by SET GLOBAL rpl_semi_sync_master_enabled=OFF). A
//     commit while the side is OFF is counted nowhere.
//   - No status variable says up to where the standby acknowledged, and
//     _yes_tx counts acknowledgements of positions the caller cannot see:
//     SyncedSince asks the standby (see there).
//   - SET sql_log_bin=0 takes BINLOG ADMIN or SUPER (SUPER still allows it
//     in 10.11): such a session writes what the standby never gets.

// stateSemiSyncWait is the PROCESSLIST state of a commit waiting for the
// standby's acknowledgement.
const stateSemiSyncWait = "Waiting for semi-sync ACK from slave"

// maxSemiSyncTimeout is the largest rpl_semi_sync_master_timeout, in ms:
// the option file's value, so that commits never stop waiting on their own.
const maxSemiSyncTimeout = 4294967295

// Bits of the "access" field of mysql.global_priv's Priv (privilege.h;
// the stored format, so it does not move between versions).
const (
	syncBitSuper       = 1 << 15
	syncBitBinlogAdmin = 1 << 36
)

const (
	// defaultSyncTimeout bounds a call whose ctx has no deadline.
	defaultSyncTimeout = 10 * time.Second
	// syncSettle bounds the wait for OFF to release the waiting commits.
	syncSettle = 5 * time.Second
	syncPoll   = 10 * time.Millisecond
)

// SyncStatus is what a primary says of semi-synchronous replication.
type SyncStatus struct {
	// Settings (SELECT @@…): Enabled is rpl_semi_sync_master_enabled.
	Enabled     bool
	WaitPoint   string // rpl_semi_sync_master_wait_point
	WaitNoSlave bool   // rpl_semi_sync_master_wait_no_slave
	TimeoutMS   uint64 // rpl_semi_sync_master_timeout
	ReadOnly    bool
	ServerID    uint32
	BinlogPos   string // @@gtid_binlog_pos

	// Status variables Rpl_semi_sync_master_*: On is _status (commits of
	// new sessions wait when Enabled too).
	On           bool
	Clients      uint64 // semi-sync replicas attached
	YesTx, NoTx  uint64 // commits acknowledged; gone through without
	NoTimes      uint64 // times switched OFF while ON
	WaitSessions uint64 // commits waiting now (group leaders)

	// Replicas are the replicas attached now (SHOW SLAVE HOSTS).
	Replicas []SyncReplica
	// Waiting is the number of sessions in the state "Waiting for
	// semi-sync ACK from slave", and LongestWait the longest of their
	// statements' running times (PROCESSLIST TIME_MS): the oldest waiting
	// commit.
	Waiting     int
	LongestWait time.Duration
	// Weakened lists what lets commits stop waiting for the standby: a
	// timeout below the maximum, wait_no_slave OFF, and every account or
	// role (PUBLIC included) that may SET sql_log_bin=0 (BINLOG ADMIN or
	// SUPER) other than the admin account, mariadb.sys and the
	// socket-only root@localhost and mysql@localhost; or that they cannot
	// be listed (the admin account needs SELECT on mysql.global_priv).
	Weakened []string
}

// SyncReplica is one attached replica, as the primary sees it.
type SyncReplica struct {
	ServerID uint32
	Host     string
	Port     int
}

// Requires says whether commits wait for a semi-sync standby as EnableSync
// leaves it: enabled and ON, after the binlog sync, also with no standby
// attached, and without a timeout short of the maximum.
func (st SyncStatus) Requires() bool {
	return st.Enabled && st.On && strings.EqualFold(st.WaitPoint, "AFTER_SYNC") && st.WaitNoSlave && st.TimeoutMS == maxSemiSyncTimeout
}

// Attached says whether the replica with server_id id is attached.
func (st SyncStatus) Attached(id int) bool {
	for _, r := range st.Replicas {
		if int64(r.ServerID) == int64(id) {
			return true
		}
	}
	return false
}

// IsSync says whether the standby with server_id id confirms commits:
// commits wait (Enabled, On), it is attached and a semi-sync replica is.
// Another replica attached could be the one that acknowledges: Weakened
// of syncControl.Read says so.
func (st SyncStatus) IsSync(id int) bool {
	return st.Enabled && st.On && st.Clients >= 1 && st.Attached(id)
}

// Blocking says whether commits wait and no standby can confirm them: the
// side is ON, no semi-sync replica is attached, and commits wait for one.
func (st SyncStatus) Blocking() bool {
	return st.Enabled && st.On && st.Clients == 0 && st.WaitNoSlave
}

// String describes the status on one line, for logs and errors.
func (st SyncStatus) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rpl_semi_sync_master_enabled=%s, status %s, %d semi-sync clients, yes_tx %d, no_tx %d, no_times %d",
		onOff(st.Enabled), onOff(st.On), st.Clients, st.YesTx, st.NoTx, st.NoTimes)
	if len(st.Replicas) == 0 {
		b.WriteString("; no replica attached")
	} else {
		b.WriteString("; replicas:")
		for _, r := range st.Replicas {
			fmt.Fprintf(&b, " server_id %d (%s)", r.ServerID, net.JoinHostPort(r.Host, strconv.Itoa(r.Port)))
		}
	}
	if st.Waiting > 0 || st.WaitSessions > 0 {
		fmt.Fprintf(&b, "; %d commits wait for the acknowledgement, the oldest for %v", max(uint64(st.Waiting), st.WaitSessions), st.LongestWait.Round(time.Millisecond))
	}
	if len(st.Weakened) > 0 {
		fmt.Fprintf(&b, "; weakened: %s", strings.Join(st.Weakened, "; "))
	}
	return b.String()
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

// ReadSync reads what the server s describes says of semi-synchronous
// replication now. It changes nothing and never waits for a standby, so it
// works while commits are blocked.
func ReadSync(ctx context.Context, s Settings) (SyncStatus, error) {
	ctx, cancel := withSyncTimeout(ctx)
	defer cancel()
	var st SyncStatus
	err := admin(ctx, s, func(c *sql.Conn) error {
		var err error
		st, err = readSync(ctx, c, s)
		return err
	})
	if err != nil {
		return SyncStatus{}, fmt.Errorf("read semi-synchronous replication of mariadb at %s: %w", s.Addr(), err)
	}
	return st, nil
}

// readSync reads the status on c.
func readSync(ctx context.Context, c *sql.Conn, s Settings) (SyncStatus, error) {
	var st SyncStatus
	if err := c.QueryRowContext(ctx, `SELECT @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_master_wait_point,
@@rpl_semi_sync_master_wait_no_slave, @@rpl_semi_sync_master_timeout, @@read_only, @@server_id, @@gtid_binlog_pos`).
		Scan(&st.Enabled, &st.WaitPoint, &st.WaitNoSlave, &st.TimeoutMS, &st.ReadOnly, &st.ServerID, &st.BinlogPos); err != nil {
		return st, fmt.Errorf("read the settings: %w", err)
	}
	if err := readSyncCounters(ctx, c, &st); err != nil {
		return st, err
	}
	rows, err := rowsByName(ctx, c, "SHOW SLAVE HOSTS")
	if err != nil {
		return st, fmt.Errorf("SHOW SLAVE HOSTS: %w", err)
	}
	for _, r := range rows {
		id, _ := strconv.ParseUint(r["Server_id"], 10, 32)
		port, _ := strconv.Atoi(r["Port"])
		st.Replicas = append(st.Replicas, SyncReplica{ServerID: uint32(id), Host: r["Host"], Port: port})
	}
	sort.Slice(st.Replicas, func(i, j int) bool { return st.Replicas[i].ServerID < st.Replicas[j].ServerID })
	var longest float64
	if err := c.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(MAX(TIME_MS), 0) FROM information_schema.PROCESSLIST WHERE STATE = ?", stateSemiSyncWait).
		Scan(&st.Waiting, &longest); err != nil {
		return st, fmt.Errorf("list the waiting commits: %w", err)
	}
	st.LongestWait = time.Duration(longest * float64(time.Millisecond))
	if st.TimeoutMS != maxSemiSyncTimeout {
		st.Weakened = append(st.Weakened, fmt.Sprintf("rpl_semi_sync_master_timeout is %d ms, not %d: a commit that waits that long goes through without the standby, and replication turns asynchronous",
			st.TimeoutMS, uint64(maxSemiSyncTimeout)))
	}
	if !st.WaitNoSlave {
		st.Weakened = append(st.Weakened, "rpl_semi_sync_master_wait_no_slave is OFF: while no standby is attached commits go through without it")
	}
	holders, err := syncLogBinHolders(ctx, c, s)
	if err != nil {
		return st, err
	}
	st.Weakened = append(st.Weakened, holders...)
	return st, nil
}

// readSyncCounters reads the Rpl_semi_sync_master_* status variables.
func readSyncCounters(ctx context.Context, c *sql.Conn, st *SyncStatus) error {
	rows, err := c.QueryContext(ctx, `SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
WHERE VARIABLE_NAME LIKE 'RPL\_SEMI\_SYNC\_MASTER\_%'`)
	if err != nil {
		return fmt.Errorf("read the status: %w", err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return err
		}
		var dst *uint64
		switch strings.ToUpper(name) {
		case "RPL_SEMI_SYNC_MASTER_STATUS":
			st.On = strings.EqualFold(value, "ON")
			seen++
			continue
		case "RPL_SEMI_SYNC_MASTER_CLIENTS":
			dst = &st.Clients
		case "RPL_SEMI_SYNC_MASTER_YES_TX":
			dst = &st.YesTx
		case "RPL_SEMI_SYNC_MASTER_NO_TX":
			dst = &st.NoTx
		case "RPL_SEMI_SYNC_MASTER_NO_TIMES":
			dst = &st.NoTimes
		case "RPL_SEMI_SYNC_MASTER_WAIT_SESSIONS":
			dst = &st.WaitSessions
		default:
			continue
		}
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return fmt.Errorf("status %s = %q: %w", name, value, err)
		}
		*dst, seen = n, seen+1
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if seen < 6 {
		return errors.New("the Rpl_semi_sync_master_* status variables are missing: a MariaDB older than 10.3.3 needs the semisync plugin")
	}
	return nil
}

// syncLogBinHolders lists the accounts and roles that may SET
// sql_log_bin=0, from mysql.global_priv (information_schema.USER_PRIVILEGES
// shows an account only its own rows without SELECT on mysql, and never
// roles). Not allowed to read it, it says so: whom it cannot see may
// weaken replication.
func syncLogBinHolders(ctx context.Context, c *sql.Conn, s Settings) ([]string, error) {
	rows, err := c.QueryContext(ctx, `SELECT User, Host, JSON_VALUE(Priv, '$.access'), IFNULL(JSON_EXTRACT(Priv, '$.is_role'), 'false')
FROM mysql.global_priv ORDER BY User, Host`)
	if err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) && (me.Number == 1142 || me.Number == 1044 || me.Number == 1227) {
			return []string{fmt.Sprintf("cannot tell who may SET sql_log_bin=0 (write what the standby never gets): %s may not read mysql.global_priv (GRANT SELECT ON mysql.global_priv TO '%s'@'%%')", s.Admin, s.Admin)}, nil
		}
		return nil, fmt.Errorf("list the accounts' privileges: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var user, host, access, isRole sql.NullString
		if err := rows.Scan(&user, &host, &access, &isRole); err != nil {
			return nil, err
		}
		bits, err := strconv.ParseUint(access.String, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("mysql.global_priv of %s@%s: access %q: %w", user.String, host.String, access.String, err)
		}
		u, h := user.String, host.String
		if u == s.Admin || u == "mariadb.sys" || ((u == "root" || u == "mysql") && h == "localhost") {
			continue
		}
		var privs []string
		if bits&syncBitBinlogAdmin != 0 {
			privs = append(privs, "BINLOG ADMIN")
		}
		if bits&syncBitSuper != 0 {
			privs = append(privs, "SUPER")
		}
		if len(privs) == 0 {
			continue
		}
		quote := func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
		name := quote(u) + "@" + quote(h)
		who, whose := "account "+name, "its sessions"
		switch role := isRole.String == "true" || isRole.String == "1"; {
		case role && u == "PUBLIC":
			name, who, whose = "PUBLIC", "role PUBLIC", "every session"
		case role:
			name = "`" + strings.ReplaceAll(u, "`", "``") + "`"
			who, whose = "role "+name, "sessions with it"
		}
		out = append(out, fmt.Sprintf("%s holds %s: %s may SET sql_log_bin=0 and write what the standby never gets (REVOKE %s ON *.* FROM %s)",
			who, strings.Join(privs, " and "), whose, strings.Join(privs, ", "), name))
	}
	return out, rows.Err()
}

// EnableSync makes commits at the primary s describes wait for a
// semi-sync standby's acknowledgement, verified: the option file's
// wait_point, wait_no_slave and timeout put back if they were changed at
// runtime, then rpl_semi_sync_master_enabled=ON. A side enabled but
// switched OFF (after a timeout) is switched OFF and ON again: its
// commits did not wait anyway. It does not wait for a standby.
func EnableSync(ctx context.Context, s Settings) error {
	ctx, cancel := withSyncTimeout(ctx)
	defer cancel()
	err := admin(ctx, s, func(c *sql.Conn) error {
		st, err := readSync(ctx, c, s)
		if err != nil {
			return err
		}
		var stmts []string
		if !strings.EqualFold(st.WaitPoint, "AFTER_SYNC") {
			stmts = append(stmts, "SET GLOBAL rpl_semi_sync_master_wait_point=AFTER_SYNC")
		}
		if !st.WaitNoSlave {
			stmts = append(stmts, "SET GLOBAL rpl_semi_sync_master_wait_no_slave=ON")
		}
		if st.TimeoutMS != maxSemiSyncTimeout {
			stmts = append(stmts, fmt.Sprintf("SET GLOBAL rpl_semi_sync_master_timeout=%d", uint64(maxSemiSyncTimeout)))
		}
		if st.Enabled && !st.On {
			stmts = append(stmts, "SET GLOBAL rpl_semi_sync_master_enabled=OFF")
		}
		if !st.Enabled || !st.On {
			stmts = append(stmts, "SET GLOBAL rpl_semi_sync_master_enabled=ON")
		}
		for _, q := range stmts {
			if _, err := c.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w; it needs REPLICATION MASTER ADMIN", q, err)
			}
		}
		if st, err = readSync(ctx, c, s); err != nil {
			return err
		}
		if !st.Requires() {
			return fmt.Errorf("after enabling it the server says: %s, wait point %s, wait_no_slave %s, timeout %d ms", st, st.WaitPoint, onOff(st.WaitNoSlave), st.TimeoutMS)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("make replication of mariadb at %s semi-synchronous: %w", s.Addr(), err)
	}
	return nil
}

// DisableSync lets commits at the primary s describes through without the
// standby, verified: rpl_semi_sync_master_enabled=OFF, and every commit
// that waited for an acknowledgement released (within milliseconds).
func DisableSync(ctx context.Context, s Settings) error {
	ctx, cancel := withSyncTimeout(ctx)
	defer cancel()
	err := admin(ctx, s, func(c *sql.Conn) error {
		if _, err := c.ExecContext(ctx, "SET GLOBAL rpl_semi_sync_master_enabled=OFF"); err != nil {
			return fmt.Errorf("SET GLOBAL rpl_semi_sync_master_enabled=OFF: %w; it needs REPLICATION MASTER ADMIN", err)
		}
		began := time.Now()
		for {
			st, err := readSync(ctx, c, s)
			if err != nil {
				return err
			}
			if !st.Enabled && !st.On && st.WaitSessions == 0 && st.Waiting == 0 {
				return nil
			}
			if time.Since(began) > syncSettle || sleepSync(ctx, syncPoll) != nil {
				return fmt.Errorf("%v after SET GLOBAL rpl_semi_sync_master_enabled=OFF the server still says: %s", time.Since(began).Round(time.Millisecond), st)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("make replication of mariadb at %s asynchronous: %w", s.Addr(), err)
	}
	return nil
}

// SyncedSince tells whether the standby has received everything the
// primary s had written at since, with no commit gone through without the
// acknowledgement in between; since "" starts: it returns the position to
// wait for.
//
// A position is the primary's @@gtid_binlog_pos with its
// Rpl_semi_sync_master_no_tx and _no_times at that moment, written
// "binlog=0-1-12 no_tx=0 no_times=0". Later calls say true once
//   - the side is still enabled and ON, and no_tx and no_times have not
//     moved: no commit went through without the acknowledgement, and the
//     side was never switched off, since the position was taken; and
//   - the standby's received position (Gtid_IO_Pos of its connection to
//     this primary, or its applied @@gtid_slave_pos if further) has, in
//     each domain of the position, the same or a higher sequence number
//     (strict mode numbers one history in order).
//
// Why ask the standby: the primary shows nowhere up to where it was
// acknowledged, and its counters are not positions. _yes_tx grows by one
// per group commit, for any semi-sync replica's acknowledgement of that
// group's end; a group written before the position may be acknowledged
// after it while a later one, also inside the position, waits. "_yes_tx
// grew and _no_tx did not" therefore leaves commits inside the position
// that may not have reached the standby, and says nothing without writes.
// The standby's own received position does neither, and is what the
// design records ("the standby reports a Gtid_IO_Pos covering a
// gtid_binlog_pos taken after that"). Commits acknowledged to clients
// before the side was enabled are all inside a position taken after: once
// the standby has it, no acknowledged commit is missing there, and every
// later one waits for it until no_tx or no_times move.
func SyncedSince(ctx context.Context, s, standby Settings, since string) (flushed bool, pos string, err error) {
	ctx, cancel := withSyncTimeout(ctx)
	defer cancel()
	var st SyncStatus
	err = admin(ctx, s, func(c *sql.Conn) error {
		if err := c.QueryRowContext(ctx, "SELECT @@rpl_semi_sync_master_enabled, @@server_id").Scan(&st.Enabled, &st.ServerID); err != nil {
			return err
		}
		if err := readSyncCounters(ctx, c, &st); err != nil {
			return err
		}
		// After the counters: a commit counted since is inside.
		return c.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&st.BinlogPos)
	})
	if err != nil {
		return false, "", fmt.Errorf("check semi-synchronous catch-up at mariadb %s: %w", s.Addr(), err)
	}
	now := syncPosition{binlog: st.BinlogPos, noTx: st.NoTx, noTimes: st.NoTimes}
	pos = now.String()
	if since == "" {
		return false, pos, nil
	}
	start, err := parseSyncPosition(since)
	if err != nil {
		return false, pos, err
	}
	if !st.Enabled || !st.On || st.NoTx != start.noTx || st.NoTimes != start.noTimes {
		return false, pos, nil
	}
	want, err := parseGTIDList(start.binlog)
	if err != nil {
		return false, pos, fmt.Errorf("position %q: %w", since, err)
	}
	if len(want) == 0 {
		return true, pos, nil // nothing was ever written
	}
	var have map[uint32]uint64
	err = admin(ctx, standby, func(c *sql.Conn) error {
		var slavePos string
		if err := c.QueryRowContext(ctx, "SELECT @@gtid_slave_pos").Scan(&slavePos); err != nil {
			return err
		}
		rows, err := rowsByName(ctx, c, "SHOW ALL SLAVES STATUS")
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r["Master_Server_Id"] != strconv.FormatUint(uint64(st.ServerID), 10) {
				continue
			}
			if have, err = parseGTIDList(r["Gtid_IO_Pos"]); err != nil {
				return fmt.Errorf("Gtid_IO_Pos: %w", err)
			}
			applied, err := parseGTIDList(slavePos)
			if err != nil {
				return fmt.Errorf("@@gtid_slave_pos: %w", err)
			}
			for d, n := range applied {
				have[d] = max(have[d], n)
			}
			return nil
		}
		return nil // it does not replicate from this primary
	})
	if err != nil {
		return false, pos, fmt.Errorf("check semi-synchronous catch-up: ask the standby at %s: %w", standby.Addr(), err)
	}
	for d, n := range want {
		if have[d] < n {
			return false, pos, nil
		}
	}
	return have != nil, pos, nil
}

// syncPosition is a position of SyncedSince.
type syncPosition struct {
	binlog        string
	noTx, noTimes uint64
}

func (p syncPosition) String() string {
	return fmt.Sprintf("binlog=%s no_tx=%d no_times=%d", p.binlog, p.noTx, p.noTimes)
}

func parseSyncPosition(v string) (syncPosition, error) {
	var p syncPosition
	seen := 0
	for _, f := range strings.Fields(v) {
		k, val, ok := strings.Cut(f, "=")
		var err error
		switch {
		case !ok:
			err = errors.New("not key=value")
		case k == "binlog":
			p.binlog = val
		case k == "no_tx":
			p.noTx, err = strconv.ParseUint(val, 10, 64)
		case k == "no_times":
			p.noTimes, err = strconv.ParseUint(val, 10, 64)
		default:
			err = errors.New("unknown key")
		}
		if err != nil {
			return p, fmt.Errorf("position %q of semi-synchronous catch-up: %q: %v; give one returned by SyncedSince", v, f, err)
		}
		seen++
	}
	if seen != 3 {
		return p, fmt.Errorf("position %q of semi-synchronous catch-up: want binlog=, no_tx= and no_times=; give one returned by SyncedSince", v)
	}
	return p, nil
}

func withSyncTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, defaultSyncTimeout)
}

// sleepSync sleeps for d or until ctx ends, and then returns ctx.Err().
func sleepSync(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return ctx.Err()
}

// syncControl drives semi-synchronous replication from the primary
// towards the standby (resource.Synchronous). The standby is known by its
// server_id, which SHOW SLAVE HOSTS lists.
type syncControl struct {
	primary, standby Settings
	// last holds the counters of the previous Read: commits that went
	// through without the standby since are reported once.
	last *syncLast
}

type syncLast struct {
	mu            sync.Mutex
	seen          bool
	noTx, noTimes uint64
}

var _ resource.Synchronous = syncControl{}

// newSyncControl drives semi-sync at primary towards standby; both
// settings resolved (passwords read): SyncedSince asks the standby.
func newSyncControl(primary, standby Settings) syncControl {
	return syncControl{primary: primary, standby: standby, last: &syncLast{}}
}

// Read says what the primary does now. Weakened lists, besides what
// SyncStatus.Weakened does, every other replica attached (its
// acknowledgement would count as the standby's), and, once, the commits
// that went through without the acknowledgement since the previous Read
// (Rpl_semi_sync_master_no_tx or _no_times moved: a session killed while
// its commit waited, the side switched off): the agent withdraws a
// recorded guarantee on it, and starts SyncedSince again.
func (c syncControl) Read(ctx context.Context) (resource.SyncState, error) {
	st, err := ReadSync(ctx, c.primary)
	if err != nil {
		return resource.SyncState{}, err
	}
	id := c.standby.ServerID
	out := resource.SyncState{
		Enabled:     st.Enabled,
		Requires:    st.Requires(),
		Confirms:    st.IsSync(id),
		Streaming:   st.Attached(id),
		Blocking:    st.Blocking(),
		LongestWait: st.LongestWait,
		Weakened:    st.Weakened,
	}
	for _, r := range st.Replicas {
		if int64(r.ServerID) != int64(id) {
			out.Weakened = append(out.Weakened, fmt.Sprintf("replica server_id %d (%s) is attached besides the standby (server_id %d): the primary cannot tell its acknowledgements from the standby's",
				r.ServerID, net.JoinHostPort(r.Host, strconv.Itoa(r.Port)), id))
		}
	}
	c.last.mu.Lock()
	defer c.last.mu.Unlock()
	if c.last.seen && (st.NoTx != c.last.noTx || st.NoTimes != c.last.noTimes) {
		out.Weakened = append(out.Weakened, fmt.Sprintf("commits went through without the standby's acknowledgement since the last look (Rpl_semi_sync_master_no_tx %d → %d, _no_times %d → %d): a session killed while its commit waited, or semi-sync switched off",
			c.last.noTx, st.NoTx, c.last.noTimes, st.NoTimes))
	}
	c.last.seen, c.last.noTx, c.last.noTimes = true, st.NoTx, st.NoTimes
	return out, nil
}

func (c syncControl) Require(ctx context.Context) error { return EnableSync(ctx, c.primary) }

// Release lets commits through; what it releases is not reported by the
// next Read.
func (c syncControl) Release(ctx context.Context) error {
	if err := DisableSync(ctx, c.primary); err != nil {
		return err
	}
	c.last.mu.Lock()
	c.last.seen = false
	c.last.mu.Unlock()
	return nil
}

func (c syncControl) SyncedSince(ctx context.Context, since string) (bool, string, error) {
	return SyncedSince(ctx, c.primary, c.standby, since)
}
