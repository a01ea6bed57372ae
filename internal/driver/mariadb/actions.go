package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Roles of a server, as Observe reads them.
const (
	RolePrimary = "primary" // writable and not replicating
	RoleStandby = "standby" // read-only and replicating by GTID
	RoleFenced  = "fenced"  // read-only and not replicating
)

// errReadOnly is MariaDB's "running with the --read-only option".
const errReadOnly = 1290

// Observation is what Observe reads from a server.
type Observation struct {
	Role string
	// GTID positions: written to its binlog, applied (current), and
	// applied from its primary (slave).
	BinlogPos, CurrentPos, SlavePos string
	// For a standby: what it received, and whether both threads run.
	IOPos                 string
	IORunning, SQLRunning bool
	Streaming             bool
	UsingGTID             string
	LastError             string
	// Upstream is the primary it replicates from (host:port); ExecFile
	// and ExecPos are the primary's binlog coordinates of the last event
	// it applied.
	Upstream string
	ExecFile string
	ExecPos  int64
}

// open connects to s as an account; the connection is closed by the
// caller.
func open(ctx context.Context, s Settings, user, password string) (*sql.DB, *sql.Conn, error) {
	db, err := sql.Open("mysql", s.dsn(user, password))
	if err != nil {
		return nil, nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("connect to mariadb at %s as %s: %w", s.Addr(), user, err)
	}
	return db, conn, nil
}

// admin runs f on a connection of the admin account.
func admin(ctx context.Context, s Settings, f func(*sql.Conn) error) error {
	db, conn, err := open(ctx, s, s.Admin, s.AdminPassword)
	if err != nil {
		return err
	}
	defer db.Close()
	defer conn.Close()
	return f(conn)
}

// Observe reads the server's role and positions.
func Observe(ctx context.Context, s Settings) (Observation, error) {
	var o Observation
	err := admin(ctx, s, func(c *sql.Conn) error {
		var err error
		o, err = observeOn(ctx, c, s)
		return err
	})
	return o, err
}

// observeOn reads the role and positions of s on the connection c.
func observeOn(ctx context.Context, c *sql.Conn, s Settings) (Observation, error) {
	var o Observation
	var readOnly bool
	if err := c.QueryRowContext(ctx, "SELECT @@read_only, @@gtid_binlog_pos, @@gtid_current_pos, @@gtid_slave_pos").
		Scan(&readOnly, &o.BinlogPos, &o.CurrentPos, &o.SlavePos); err != nil {
		return o, fmt.Errorf("observe mariadb at %s: %w", s.Addr(), err)
	}
	rows, err := slaves(ctx, c)
	if err != nil {
		return o, fmt.Errorf("observe mariadb at %s: %w", s.Addr(), err)
	}
	replicating := len(rows) > 0
	if replicating {
		r := rows[0]
		o.IOPos, o.UsingGTID = r["Gtid_IO_Pos"], r["Using_Gtid"]
		o.IORunning, o.SQLRunning = r["Slave_IO_Running"] == "Yes", r["Slave_SQL_Running"] == "Yes"
		o.Streaming = o.IORunning && o.SQLRunning
		o.LastError = strings.TrimSpace(r["Last_IO_Error"] + " " + r["Last_SQL_Error"])
		o.Upstream = net.JoinHostPort(r["Master_Host"], r["Master_Port"])
		o.ExecFile = r["Relay_Master_Log_File"]
		o.ExecPos, _ = strconv.ParseInt(r["Exec_Master_Log_Pos"], 10, 64)
	}
	switch {
	case !readOnly && !replicating:
		o.Role = RolePrimary
	case readOnly && replicating:
		o.Role = RoleStandby
	case readOnly:
		o.Role = RoleFenced
	default:
		return o, fmt.Errorf("mariadb at %s is writable and replicates at once: neither a primary nor a standby", s.Addr())
	}
	return o, nil
}

// slaves returns SHOW ALL SLAVES STATUS, each row by column name.
func slaves(ctx context.Context, c *sql.Conn) ([]map[string]string, error) {
	return rowsByName(ctx, c, "SHOW ALL SLAVES STATUS")
}

// rowsByName runs a statement and returns its rows by column name (the
// columns of SHOW statements differ between versions).
func rowsByName(ctx context.Context, c *sql.Conn, query string) ([]map[string]string, error) {
	rows, err := c.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		m := make(map[string]string, len(cols))
		for i, c := range cols {
			m[c] = vals[i].String
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// proofWrite writes the heartbeat as the proof account: refused with
// error 1290 on a read-only server.
func proofWrite(ctx context.Context, s Settings) error {
	db, conn, err := open(ctx, s, s.Proof, s.ProofPassword)
	if err != nil {
		return err
	}
	defer db.Close()
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "INSERT INTO siteflip.heartbeat (resource, epoch, seq) VALUES ('proof', 0, 1) ON DUPLICATE KEY UPDATE seq = seq + 1")
	return err
}

func isReadOnly(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == errReadOnly
}

// FenceResult is where a fenced server's writes end.
type FenceResult struct {
	EndGTID string
}

// Fence stops the server accepting writes, verified: read_only, then every
// client session ended (not the replication threads: the standby still
// receives everything), then a write of the proof account refused. It
// reports gtid_binlog_pos once two reads agree: where its writes end.
// Killing the sessions matters: a commit that waits for a semi-synchronous
// acknowledgement is still acknowledged after read_only is set, but not
// once its session is gone.
func Fence(ctx context.Context, s Settings) (FenceResult, error) {
	var res FenceResult
	err := admin(ctx, s, func(c *sql.Conn) error {
		if _, err := c.ExecContext(ctx, "SET STATEMENT max_statement_time=2 FOR SET GLOBAL read_only=1"); err != nil {
			return fmt.Errorf("fence mariadb at %s: set read_only: %w", s.Addr(), err)
		}
		for range 2 {
			if err := killClients(ctx, c); err != nil {
				return fmt.Errorf("fence mariadb at %s: %w", s.Addr(), err)
			}
		}
		switch err := proofWrite(ctx, s); {
		case err == nil:
			return fmt.Errorf("fence mariadb at %s: read_only is set but a write of %s still went through", s.Addr(), s.Proof)
		case !isReadOnly(err):
			return fmt.Errorf("fence mariadb at %s: cannot prove it read-only: %w", s.Addr(), err)
		}
		for range 20 {
			var a, b string
			if err := c.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&a); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
			if err := c.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&b); err != nil {
				return err
			}
			if a == b {
				res.EndGTID = a
				if localState(s.StateDir) {
					return clearMark(s.StateDir)
				}
				return nil
			}
		}
		return fmt.Errorf("fence mariadb at %s: its binlog position still moves after a second", s.Addr())
	})
	return res, err
}

// killClients ends every session but this one, the replication threads
// and the server's own.
func killClients(ctx context.Context, c *sql.Conn) error {
	rows, err := c.QueryContext(ctx, `SELECT ID FROM information_schema.PROCESSLIST
WHERE ID <> CONNECTION_ID() AND USER <> 'system user' AND COMMAND NOT IN ('Binlog Dump', 'Daemon')`)
	if err != nil {
		return fmt.Errorf("list the client sessions: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		var me *mysql.MySQLError
		if _, err := c.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)); err != nil && !(errors.As(err, &me) && me.Number == 1094) {
			return fmt.Errorf("end client session %d: %w", id, err)
		}
	}
	return nil
}

// WaitCatchUp waits until the server has applied everything up to gtid
// (the fenced primary's end), in one-second waits on the server, until
// ctx ends.
func WaitCatchUp(ctx context.Context, s Settings, gtid string) error {
	if gtid == "" {
		return nil // the fenced primary had written nothing
	}
	return admin(ctx, s, func(c *sql.Conn) error {
		notYet := func(err error) error {
			// A new connection: the cancelled wait may have ended this one.
			cur := "an unknown position"
			qctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if o, oerr := Observe(qctx, s); oerr == nil {
				cur = o.CurrentPos
			}
			return fmt.Errorf("catch up mariadb at %s: it has applied %s, not yet %s: %w", s.Addr(), cur, gtid, err)
		}
		for {
			var r sql.NullInt64
			if err := c.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 1)", gtid).Scan(&r); err != nil {
				if ctx.Err() != nil {
					return notYet(ctx.Err())
				}
				return fmt.Errorf("catch up mariadb at %s to %s: %w", s.Addr(), gtid, err)
			}
			switch {
			case !r.Valid:
				return fmt.Errorf("catch up mariadb at %s: MASTER_GTID_WAIT(%q) returned NULL", s.Addr(), gtid)
			case r.Int64 == 0:
				return nil
			}
			if err := ctx.Err(); err != nil {
				return notYet(err)
			}
		}
	})
}

// PromoteResult says where the new primary's history leaves the old one:
// what it had applied from it (the switch point; transactions of the old
// primary past it are lost when it rejoins).
type PromoteResult struct {
	SwitchGTID string
}

// Promote makes the server the primary: what it received is applied,
// replication is stopped and forgotten, read_only is lifted, and a write
// of the proof account goes through. On a primary it only proves it.
func Promote(ctx context.Context, s Settings) (PromoteResult, error) {
	var res PromoteResult
	err := admin(ctx, s, func(c *sql.Conn) error {
		rows, err := slaves(ctx, c)
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			io := rows[0]["Gtid_IO_Pos"]
			if _, err := c.ExecContext(ctx, "STOP SLAVE IO_THREAD"); err != nil {
				return fmt.Errorf("promote mariadb at %s: stop receiving: %w", s.Addr(), err)
			}
			if io != "" {
				if err := waitApplied(ctx, c, io); err != nil {
					return fmt.Errorf("promote mariadb at %s: apply what it received (%s): %w", s.Addr(), io, err)
				}
			}
			for _, q := range []string{"STOP SLAVE", "RESET SLAVE ALL"} {
				if _, err := c.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("promote mariadb at %s: %s: %w", s.Addr(), q, err)
				}
			}
		}
		if err := c.QueryRowContext(ctx, "SELECT @@gtid_slave_pos").Scan(&res.SwitchGTID); err != nil {
			return err
		}
		// A new epoch starts asynchronous (the agent requires the standby
		// again once one streams): a setting left from an earlier epoch as
		// primary would hold every commit, the proof's too, with no standby
		// attached yet.
		if _, err := c.ExecContext(ctx, "SET GLOBAL rpl_semi_sync_master_enabled=OFF"); err != nil {
			return fmt.Errorf("promote mariadb at %s: start asynchronous: %w", s.Addr(), err)
		}
		// The mark first: a hard fence must kill this server from the
		// moment it may write.
		if localState(s.StateDir) {
			if err := setMark(s.StateDir); err != nil {
				return fmt.Errorf("promote mariadb at %s: %w", s.Addr(), err)
			}
		}
		if _, err := c.ExecContext(ctx, "SET GLOBAL read_only=0"); err != nil {
			return fmt.Errorf("promote mariadb at %s: lift read_only: %w", s.Addr(), err)
		}
		if err := proofWrite(ctx, s); err != nil {
			return fmt.Errorf("promote mariadb at %s: read_only is lifted but a write of %s fails: %w", s.Addr(), s.Proof, err)
		}
		return nil
	})
	return res, err
}

// waitApplied waits, in one-second waits, until pos is applied.
func waitApplied(ctx context.Context, c *sql.Conn, pos string) error {
	for {
		var r sql.NullInt64
		if err := c.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 1)", pos).Scan(&r); err != nil {
			return err
		}
		if r.Valid && r.Int64 == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// SetupAccounts creates the admin, replication and proof accounts and the
// heartbeat table on a new server, as root over the socket. logged says
// whether the statements go to its binlog: on a primary they must (the
// standby gets them by replication); on a standby set up before it
// follows they must not (they would be transactions its primary lacks).
func SetupAccounts(ctx context.Context, in Instance, logged bool) error {
	s := in.Settings
	q := func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
	stmts := []string{
		"CREATE USER IF NOT EXISTS " + q(s.Admin) + "@'%' IDENTIFIED BY " + q(s.AdminPassword),
		"GRANT READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, SLAVE MONITOR, BINLOG MONITOR, REPLICATION MASTER ADMIN, CONNECTION ADMIN, PROCESS, RELOAD ON *.* TO " + q(s.Admin) + "@'%'",
		"CREATE USER IF NOT EXISTS " + q(s.Repl) + "@'%' IDENTIFIED BY " + q(s.ReplPassword),
		"GRANT REPLICATION SLAVE ON *.* TO " + q(s.Repl) + "@'%'",
		"CREATE DATABASE IF NOT EXISTS siteflip",
		"CREATE TABLE IF NOT EXISTS siteflip.heartbeat (resource VARCHAR(64) PRIMARY KEY, epoch BIGINT UNSIGNED NOT NULL, seq BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB",
		"CREATE USER IF NOT EXISTS " + q(s.Proof) + "@'%' IDENTIFIED BY " + q(s.ProofPassword),
		"GRANT SELECT, INSERT, UPDATE ON siteflip.heartbeat TO " + q(s.Proof) + "@'%'",
		"GRANT SELECT, INSERT, UPDATE ON siteflip.* TO " + q(s.Admin) + "@'%'",
		// The check reads every account's and role's global privileges
		// there: who else may write through read_only (check.go).
		"GRANT SELECT ON mysql.global_priv TO " + q(s.Admin) + "@'%'",
	}
	if !logged {
		stmts = append([]string{"SET SESSION sql_log_bin=0"}, stmts...)
	}
	_, err := in.RootSQL(ctx, strings.Join(stmts, ";\n"))
	return err
}

// Follow makes the server replicate from primary by GTID, from what it
// has applied.
func Follow(ctx context.Context, s, primary Settings) error {
	return admin(ctx, s, func(c *sql.Conn) error {
		if _, err := c.ExecContext(ctx, "CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos",
			primary.Host, primary.Port, primary.Repl, primary.ReplPassword); err != nil {
			return fmt.Errorf("mariadb at %s: follow %s: %w", s.Addr(), primary.Addr(), err)
		}
		if _, err := c.ExecContext(ctx, "START SLAVE"); err != nil {
			return fmt.Errorf("mariadb at %s: start replication: %w", s.Addr(), err)
		}
		return nil
	})
}
