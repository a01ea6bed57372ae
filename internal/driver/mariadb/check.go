package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// Problem is one thing wrong with a server: what, and how to fix it.
type Problem struct {
	Server string // host:port
	What   string // e.g. "binary logging is off (log_bin)"
	Fix    string // the statement or option-file line that fixes it
}

// checkAdminPrivileges are the global privileges the driver uses as the
// admin account: what SetupAccounts grants it (actions.go). The check
// also needs SELECT on mysql.global_priv, to see every account's
// privileges (checkGlobalPriv).
var checkAdminPrivileges = []string{
	"READ_ONLY ADMIN",          // act on a read-only server
	"REPLICATION SLAVE ADMIN",  // CHANGE MASTER, START/STOP SLAVE, RESET SLAVE
	"SLAVE MONITOR",            // SHOW ALL SLAVES STATUS
	"BINLOG MONITOR",           // SHOW BINARY LOGS, the GTID positions
	"REPLICATION MASTER ADMIN", // rpl_semi_sync_master_* at runtime
	"CONNECTION ADMIN",         // KILL CONNECTION of the fence
	"PROCESS",                  // information_schema.PROCESSLIST of every session
	"RELOAD",                   // FLUSH
}

// checkGlobalPriv is the table where MariaDB keeps every account's and
// role's global privileges. information_schema.USER_PRIVILEGES shows an
// account only its own rows without SELECT on all of mysql, and never
// shows roles; SHOW GRANTS FOR needs SELECT on all of mysql too.
const checkGlobalPriv = "mysql.global_priv"

// Bits of the "access" field of mysql.global_priv's Priv (privilege.h;
// it is the stored format, so it does not move between versions).
const (
	checkBitReadOnlyAdmin = 1 << 33
	checkBitBinlogAdmin   = 1 << 36
)

// checkMinVersion is the oldest MariaDB the driver runs: READ_ONLY ADMIN
// separate from SUPER (10.11), MASTER_DEMOTE_TO_SLAVE (10.10).
var checkMinVersion = [3]int{10, 11, 0}

// CheckServer asks a server, read-only, as the admin account, everything
// the driver relies on; role says what it should be ("primary" or
// "standby"), primary is the server a standby should replicate from
// (zero for a primary).
//
// It also logs in as the replication and the proof account (when s names
// them), as the other site's server and the fence's proof do. A server
// that does not answer the admin account is an error; everything else
// found wrong is a Problem, with the statement or option-file line that
// fixes it. Statements that change accounts are written to the binary
// log: on a standby the fix is to run them on its primary, which
// replicates them (run on the standby they would be a transaction its
// primary lacks).
func CheckServer(ctx context.Context, s Settings, role string, primary Settings) ([]Problem, error) {
	switch role {
	case RolePrimary:
	case RoleStandby:
		if primary.Host == "" || primary.Port == 0 {
			return nil, fmt.Errorf("check mariadb at %s: a standby's check needs the primary it should replicate from", s.Addr())
		}
	default:
		return nil, fmt.Errorf("check mariadb at %s: role %q: want %q or %q", s.Addr(), role, RolePrimary, RoleStandby)
	}
	if s.Admin == "" {
		return nil, fmt.Errorf("check mariadb at %s: no admin account (settings not resolved)", s.Addr())
	}
	db, err := sql.Open("mysql", s.dsn(s.Admin, s.AdminPassword))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("check mariadb at %s: connect as %s: %w", s.Addr(), s.Admin, err)
	}
	defer c.Close()
	sc := &serverCheck{s: s, role: role, primary: primary, c: c}
	if err := sc.run(ctx); err != nil {
		return sc.problems, fmt.Errorf("check mariadb at %s as %s: %w", s.Addr(), s.Admin, err)
	}
	return sc.problems, nil
}

// serverCheck is one CheckServer.
type serverCheck struct {
	s, primary Settings
	role       string
	c          *sql.Conn // the admin account's
	problems   []Problem
	// adminLacks is set once the admin account is found without a
	// privilege: a query it refuses then says nothing more.
	adminLacks bool
}

func (sc *serverCheck) add(what, fix string) {
	sc.problems = append(sc.problems, Problem{Server: sc.s.Addr(), What: what, Fix: fix})
}

// onPrimary is the fix for an account problem: the statement, on a
// standby to be run on its primary.
func (sc *serverCheck) onPrimary(stmt string) string {
	if sc.role == RoleStandby {
		return fmt.Sprintf("on the primary %s, which replicates it here: %s", sc.primary.Addr(), stmt)
	}
	return stmt
}

// skip says whether err is a refusal the admin account's missing
// privileges, already reported, explain.
func (sc *serverCheck) skip(err error) bool {
	return sc.adminLacks && checkDenied(err)
}

func (sc *serverCheck) run(ctx context.Context) error {
	if err := sc.variables(ctx); err != nil {
		return err
	}
	if err := sc.adminPrivileges(ctx); err != nil {
		return err
	}
	if err := sc.holders(ctx); err != nil {
		return err
	}
	if err := sc.replication(ctx); err != nil {
		return err
	}
	if err := sc.replAccount(ctx); err != nil {
		return err
	}
	return sc.proofAccount(ctx)
}

// variables checks the server's settings.
func (sc *serverCheck) variables(ctx context.Context) error {
	var (
		version, binlogFormat                   string
		logBin, strict, slaveUpdates, readOnly  bool
		serverID, domainID, syncBinlog, flushAt int64
	)
	err := sc.c.QueryRowContext(ctx, `SELECT @@version, @@server_id, @@log_bin, @@gtid_strict_mode, @@log_slave_updates,
@@binlog_format, @@sync_binlog, @@innodb_flush_log_at_trx_commit, @@gtid_domain_id, @@read_only`).
		Scan(&version, &serverID, &logBin, &strict, &slaveUpdates, &binlogFormat, &syncBinlog, &flushAt, &domainID, &readOnly)
	if err != nil {
		return fmt.Errorf("read its settings: %w", err)
	}
	if v, ok := checkParseVersion(version); !ok || checkOlder(v, checkMinVersion) {
		sc.add(fmt.Sprintf("MariaDB %s: the driver needs %d.%d.%d or later (READ_ONLY ADMIN apart from SUPER)", version, checkMinVersion[0], checkMinVersion[1], checkMinVersion[2]),
			fmt.Sprintf("upgrade the server to MariaDB %d.%d.%d or later", checkMinVersion[0], checkMinVersion[1], checkMinVersion[2]))
	}
	if serverID != int64(sc.s.ServerID) {
		sc.add(fmt.Sprintf("server_id is %d, the topology says %d: GTIDs would name the wrong site", serverID, sc.s.ServerID),
			fmt.Sprintf("SET GLOBAL server_id=%d; and server_id=%d in the option file (or, if this server is right, server_id: %d in the topology)", sc.s.ServerID, sc.s.ServerID, serverID))
	}
	if !logBin {
		binlog := "binlog"
		if sc.s.DataDir != "" {
			binlog = filepath.Join(sc.s.DataDir, "binlog")
		}
		sc.add("binary logging is off (log_bin): there are no GTIDs and nothing to replicate",
			fmt.Sprintf("log_bin=%s in the option file's [mariadbd] section, then restart the server (log_bin cannot be set at runtime)", binlog))
	}
	if !strict {
		sc.add("GTID strict mode is off (gtid_strict_mode): transactions the other server lacks go unnoticed",
			"SET GLOBAL gtid_strict_mode=ON; and gtid_strict_mode=ON in the option file")
	}
	if !slaveUpdates {
		sc.add("what it replicates is not written to its binary log (log_slave_updates=OFF): after a failover the other server cannot follow it",
			"log_slave_updates=ON in the option file's [mariadbd] section, then restart the server (it cannot be set at runtime)")
	}
	if !strings.EqualFold(binlogFormat, "ROW") {
		sc.add(fmt.Sprintf("binlog_format is %s, not ROW", binlogFormat),
			"SET GLOBAL binlog_format=ROW; and binlog_format=ROW in the option file (sessions already open keep the old format until they reconnect)")
	}
	if syncBinlog != 1 {
		sc.add(fmt.Sprintf("sync_binlog is %d, not 1: transactions acknowledged to clients can be lost from the binary log in a crash", syncBinlog),
			"SET GLOBAL sync_binlog=1; and sync_binlog=1 in the option file")
	}
	if flushAt != 1 {
		sc.add(fmt.Sprintf("innodb_flush_log_at_trx_commit is %d, not 1: commits acknowledged to clients can be lost in a crash", flushAt),
			"SET GLOBAL innodb_flush_log_at_trx_commit=1; and innodb_flush_log_at_trx_commit=1 in the option file")
	}
	if domainID != 0 {
		sc.add(fmt.Sprintf("gtid_domain_id is %d, not 0: siteflip compares positions in one domain", domainID),
			"SET GLOBAL gtid_domain_id=0; and gtid_domain_id=0 in the option file")
	}
	if sc.role == RoleStandby && !readOnly {
		sc.add("the standby is writable (read_only=OFF): clients can write to it what its primary never sees",
			"SET GLOBAL read_only=ON")
	}
	return nil
}

// adminPrivileges checks that the admin account holds what the driver
// uses, from its own rows of information_schema.USER_PRIVILEGES.
func (sc *serverCheck) adminPrivileges(ctx context.Context) error {
	var current string
	if err := sc.c.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&current); err != nil {
		return err
	}
	account := checkAccountOf(current)
	held, err := checkStrings(ctx, sc.c, "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?", checkGrantee(current))
	if err != nil {
		return fmt.Errorf("read the privileges of %s: %w", account, err)
	}
	has := map[string]bool{}
	for _, p := range held {
		has[p] = true
	}
	var missing []string
	for _, p := range checkAdminPrivileges {
		if !has[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		sc.adminLacks = true
		sc.add(fmt.Sprintf("the admin account %s lacks %s, which the driver needs", account, strings.Join(missing, ", ")),
			sc.onPrimary(fmt.Sprintf("GRANT %s ON *.* TO %s", strings.Join(missing, ", "), account)))
	}
	_, err = checkStrings(ctx, sc.c, "SELECT 1 FROM "+checkGlobalPriv+" LIMIT 0")
	switch {
	case checkDenied(err):
		sc.adminLacks = true
		sc.add(fmt.Sprintf("the admin account %s cannot read %s, so the accounts that bypass read_only (READ_ONLY ADMIN) cannot be listed", account, checkGlobalPriv),
			sc.onPrimary(fmt.Sprintf("GRANT SELECT ON %s TO %s", checkGlobalPriv, account)))
	case err != nil:
		return fmt.Errorf("read %s: %w", checkGlobalPriv, err)
	}
	return nil
}

// holders lists the accounts and roles other than the driver's and the
// socket-only system accounts that hold READ_ONLY ADMIN (they write
// through read_only, so a fence does not stop them) or BINLOG ADMIN (SET
// sql_log_bin=0 writes what the standby never receives).
func (sc *serverCheck) holders(ctx context.Context) error {
	rows, err := sc.c.QueryContext(ctx, "SELECT User, Host, JSON_VALUE(Priv, '$.access'), IFNULL(JSON_EXTRACT(Priv, '$.is_role'), 'false') FROM "+checkGlobalPriv+" ORDER BY User, Host")
	if err != nil {
		if sc.skip(err) {
			return nil
		}
		return fmt.Errorf("list the accounts' privileges: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var user, host, access, isRole sql.NullString
		if err := rows.Scan(&user, &host, &access, &isRole); err != nil {
			return err
		}
		bits, err := strconv.ParseUint(access.String, 10, 64)
		if err != nil {
			return fmt.Errorf("%s of %s@%s: access %q: %w", checkGlobalPriv, user.String, host.String, access.String, err)
		}
		if sc.exempt(user.String, host.String) {
			continue
		}
		who, kind := checkQuote(user.String)+"@"+checkQuote(host.String), "account"
		if r := isRole.String; r == "true" || r == "1" {
			who, kind = "`"+strings.ReplaceAll(user.String, "`", "``")+"`", "role"
		}
		if bits&checkBitReadOnlyAdmin != 0 {
			sc.add(fmt.Sprintf("the %s %s holds READ_ONLY ADMIN: it writes through read_only, so a fence does not stop it", kind, who),
				sc.onPrimary("REVOKE READ_ONLY ADMIN ON *.* FROM "+who))
		}
		if bits&checkBitBinlogAdmin != 0 {
			sc.add(fmt.Sprintf("the %s %s holds BINLOG ADMIN: with SET sql_log_bin=0 it writes what the standby never receives", kind, who),
				sc.onPrimary("REVOKE BINLOG ADMIN ON *.* FROM "+who))
		}
	}
	return rows.Err()
}

// exempt says whether an account may hold READ_ONLY ADMIN: the driver's
// own, MariaDB's mariadb.sys, and root and mysql on the local socket.
func (sc *serverCheck) exempt(user, host string) bool {
	switch {
	case user == sc.s.Admin, user == "mariadb.sys":
		return true
	case (user == "root" || user == "mysql") && host == "localhost":
		return true
	}
	return false
}

// replication checks the server's replica connections against its role.
func (sc *serverCheck) replication(ctx context.Context) error {
	rows, err := slaves(ctx, sc.c)
	if err != nil {
		if sc.skip(err) {
			return nil
		}
		return fmt.Errorf("SHOW ALL SLAVES STATUS: %w", err)
	}
	var def map[string]string
	for _, r := range rows {
		name := r["Connection_name"]
		if name == "" {
			def = r
			continue
		}
		sc.add(fmt.Sprintf("it replicates from %s through the named connection '%s': siteflip stops and resets only the default one", checkUpstream(r), name),
			fmt.Sprintf("STOP SLAVE %s; RESET SLAVE %s ALL", checkQuote(name), checkQuote(name)))
	}
	if sc.role == RolePrimary {
		if def != nil {
			sc.add(fmt.Sprintf("the primary is set to replicate from %s (Slave_IO_Running=%s, Slave_SQL_Running=%s)", checkUpstream(def), def["Slave_IO_Running"], def["Slave_SQL_Running"]),
				"STOP SLAVE; RESET SLAVE ALL")
		}
		return nil
	}
	p := sc.primary
	follow := fmt.Sprintf("STOP SLAVE; CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD='<the password in replication_password_file>', MASTER_USE_GTID=slave_pos; START SLAVE",
		checkQuote(p.Host), p.Port, checkQuote(checkOr(p.Repl, defaultReplUser)))
	if def == nil {
		sc.add(fmt.Sprintf("the standby does not replicate: no replica connection to its primary %s", p.Addr()),
			strings.TrimPrefix(follow, "STOP SLAVE; "))
		return nil
	}
	if !checkSameHost(ctx, def["Master_Host"], p.Host) || def["Master_Port"] != strconv.Itoa(p.Port) {
		sc.add(fmt.Sprintf("the standby replicates from %s, not from its primary %s", checkUpstream(def), p.Addr()), follow)
		return nil
	}
	if p.Repl != "" && def["Master_User"] != p.Repl {
		sc.add(fmt.Sprintf("the standby replicates as %s, not as the replication account %s", def["Master_User"], p.Repl),
			fmt.Sprintf("STOP SLAVE; CHANGE MASTER TO MASTER_USER=%s, MASTER_PASSWORD='<the password in replication_password_file>'; START SLAVE", checkQuote(p.Repl)))
	}
	switch g := def["Using_Gtid"]; g {
	case "Slave_Pos":
	case "No":
		sc.add("the standby replicates by binlog file and position (Using_Gtid=No), not by GTID: it cannot follow another primary after a failover",
			"STOP SLAVE; CHANGE MASTER TO MASTER_USE_GTID=slave_pos; START SLAVE")
	default:
		sc.add(fmt.Sprintf("the standby replicates with Using_Gtid=%s, not Slave_Pos: its own binlog would decide where it starts", g),
			"STOP SLAVE; CHANGE MASTER TO MASTER_USE_GTID=slave_pos; START SLAVE")
	}
	return nil
}

// replAccount logs in as the replication account, as the other site's
// server does, and checks it holds REPLICATION SLAVE (its own rows of
// USER_PRIVILEGES). On a standby it matters after a failover.
func (sc *serverCheck) replAccount(ctx context.Context) error {
	s := sc.s
	if s.Repl == "" {
		return nil
	}
	account := checkQuote(s.Repl) + "@'%'"
	held, current, err := sc.privilegesAs(ctx, s.Repl, s.ReplPassword, "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES")
	switch {
	case err != nil && !checkDenied(err):
		return fmt.Errorf("log in as %s: %w", s.Repl, err)
	case err != nil:
		sc.add(fmt.Sprintf("the replication account %s cannot log in with the password in replication_password_file: %v", s.Repl, err),
			sc.onPrimary(fmt.Sprintf("CREATE USER IF NOT EXISTS %s IDENTIFIED BY '<that password>'; ALTER USER %s IDENTIFIED BY '<that password>'; GRANT REPLICATION SLAVE ON *.* TO %s", account, account, account)))
		return nil
	}
	if current != "" {
		account = checkAccountOf(current)
	}
	if !checkContains(held, "REPLICATION SLAVE") {
		sc.add(fmt.Sprintf("the replication account %s lacks REPLICATION SLAVE: a standby cannot replicate from this server", account),
			sc.onPrimary(fmt.Sprintf("GRANT REPLICATION SLAVE ON *.* TO %s", account)))
	}
	return nil
}

// proofAccount checks the heartbeat table and that the proof account can
// write it: the fence and the promotion prove themselves by that write.
func (sc *serverCheck) proofAccount(ctx context.Context) error {
	var n int
	if err := sc.c.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'siteflip' AND TABLE_NAME = 'heartbeat'").Scan(&n); err != nil {
		return fmt.Errorf("look for siteflip.heartbeat: %w", err)
	}
	if n == 0 {
		sc.add("the table siteflip.heartbeat is missing (or the admin account cannot see it): the fence and the promotion cannot prove themselves",
			sc.onPrimary("CREATE DATABASE IF NOT EXISTS siteflip; CREATE TABLE IF NOT EXISTS siteflip.heartbeat (resource VARCHAR(64) PRIMARY KEY, epoch BIGINT UNSIGNED NOT NULL, seq BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB"))
	}
	s := sc.s
	if s.Proof == "" {
		return nil
	}
	account := checkQuote(s.Proof) + "@'%'"
	held, current, err := sc.privilegesAs(ctx, s.Proof, s.ProofPassword, `SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = 'siteflip' AND TABLE_NAME = 'heartbeat'
UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE TABLE_SCHEMA = 'siteflip'
UNION SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES`)
	switch {
	case err != nil && !checkDenied(err):
		return fmt.Errorf("log in as %s: %w", s.Proof, err)
	case err != nil:
		sc.add(fmt.Sprintf("the proof account %s cannot log in with the password in proof_password_file: %v", s.Proof, err),
			sc.onPrimary(fmt.Sprintf("CREATE USER IF NOT EXISTS %s IDENTIFIED BY '<that password>'; ALTER USER %s IDENTIFIED BY '<that password>'; GRANT SELECT, INSERT, UPDATE ON siteflip.heartbeat TO %s", account, account, account)))
		return nil
	}
	if current != "" {
		account = checkAccountOf(current)
	}
	var missing []string
	for _, p := range []string{"SELECT", "INSERT", "UPDATE"} {
		if !checkContains(held, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		sc.add(fmt.Sprintf("the proof account %s lacks %s on siteflip.heartbeat: the fence and the promotion cannot prove themselves", account, strings.Join(missing, ", ")),
			sc.onPrimary(fmt.Sprintf("GRANT %s ON siteflip.heartbeat TO %s", strings.Join(missing, ", "), account)))
	}
	return nil
}

// privilegesAs logs in as an account and returns the first column of
// query, and the account as CURRENT_USER() names it.
func (sc *serverCheck) privilegesAs(ctx context.Context, user, password, query string) (held []string, current string, err error) {
	db, err := sql.Open("mysql", sc.s.dsn(user, password))
	if err != nil {
		return nil, "", err
	}
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	if err := c.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&current); err != nil {
		return nil, "", err
	}
	held, err = checkStrings(ctx, c, query)
	return held, current, err
}

// FormatProblems formats problems for people: one block per server, in
// the order the servers first appear, each problem what is wrong and
// then "fix: …". No problems format as "".
func FormatProblems(problems []Problem) string {
	var order []string
	by := map[string][]Problem{}
	for _, p := range problems {
		if _, seen := by[p.Server]; !seen {
			order = append(order, p.Server)
		}
		by[p.Server] = append(by[p.Server], p)
	}
	var b strings.Builder
	for i, server := range order {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "mariadb at %s:\n", server)
		for _, p := range by[server] {
			fmt.Fprintf(&b, "- %s\n", checkIndent(p.What, "  "))
			fmt.Fprintf(&b, "  fix: %s\n", checkIndent(p.Fix, "       "))
		}
	}
	return b.String()
}

// checkIndent indents the lines of s after the first.
func checkIndent(s, indent string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+indent)
}

// checkStrings returns the first column of a query's rows.
func checkStrings(ctx context.Context, c *sql.Conn, query string, args ...any) ([]string, error) {
	rows, err := c.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v.String)
	}
	return out, rows.Err()
}

func checkContains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// checkDenied says whether err is MariaDB refusing an account access.
func checkDenied(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1044, 1045, 1142, 1143, 1227:
		return true
	}
	return false
}

// checkQuote quotes a name as an SQL string.
func checkQuote(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// checkAccountOf turns CURRENT_USER()'s user@host into 'user'@'host'.
func checkAccountOf(current string) string {
	i := strings.LastIndexByte(current, '@')
	if i < 0 {
		return checkQuote(current)
	}
	return checkQuote(current[:i]) + "@" + checkQuote(current[i+1:])
}

// checkGrantee is information_schema's GRANTEE of CURRENT_USER()'s
// user@host: 'user'@'host', quotes not doubled.
func checkGrantee(current string) string {
	i := strings.LastIndexByte(current, '@')
	if i < 0 {
		return "'" + current + "'"
	}
	return "'" + current[:i] + "'@'" + current[i+1:] + "'"
}

func checkUpstream(r map[string]string) string {
	return net.JoinHostPort(r["Master_Host"], r["Master_Port"])
}

// checkSameHost says whether two host names or addresses name the same
// host: equal, or resolving to a common address.
func checkSameHost(ctx context.Context, a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	as, err := net.DefaultResolver.LookupHost(ctx, a)
	if err != nil {
		return false
	}
	bs, err := net.DefaultResolver.LookupHost(ctx, b)
	if err != nil {
		return false
	}
	for _, x := range as {
		if checkContains(bs, x) {
			return true
		}
	}
	return false
}

func checkOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

var checkVersionRE = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`)

// checkParseVersion reads major.minor.patch from @@version.
func checkParseVersion(v string) ([3]int, bool) {
	m := checkVersionRE.FindStringSubmatch(v)
	if m == nil {
		return [3]int{}, false
	}
	var out [3]int
	for i := range out {
		out[i], _ = strconv.Atoi(m[i+1])
	}
	return out, true
}

// checkOlder says whether version v is older than least.
func checkOlder(v, least [3]int) bool {
	for i := range v {
		if v[i] != least[i] {
			return v[i] < least[i]
		}
	}
	return false
}
