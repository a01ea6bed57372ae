package mariadb

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/testbed"
)

// rootSQL runs statements at a server as root over its socket.
func rootSQL(t *testing.T, in Instance, stmts string) string {
	t.Helper()
	out, err := in.RootSQL(t.Context(), stmts)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// caughtUp waits until the standby has applied all the primary wrote.
func caughtUp(t *testing.T, p *pair) {
	t.Helper()
	pos := rootSQL(t, p.a, "SELECT @@gtid_binlog_pos")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := WaitCatchUp(ctx, p.b.Settings, pos); err != nil {
		t.Fatal(err)
	}
}

func checkOK(t *testing.T, s Settings, role string, primary Settings) []Problem {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	probs, err := CheckServer(ctx, s, role, primary)
	if err != nil {
		t.Fatal(err)
	}
	return probs
}

// assertClean checks the pair as it should be: a the primary, b its
// standby, and nothing wrong with either.
func assertClean(t *testing.T, p *pair) {
	t.Helper()
	caughtUp(t, p)
	if probs := checkOK(t, p.a.Settings, RolePrimary, Settings{}); len(probs) > 0 {
		t.Fatalf("the primary a should be clean:\n%s", FormatProblems(probs))
	}
	if probs := checkOK(t, p.b.Settings, RoleStandby, p.a.Settings); len(probs) > 0 {
		t.Fatalf("the standby b should be clean:\n%s", FormatProblems(probs))
	}
}

// CheckServer on two real servers: clean, then broken one way at a time,
// each time the exact problem with its fix; then restored (often by
// running the fix it gave) and clean again.
func TestCheckServer(t *testing.T) {
	testbed.RequireMariaDB(t)
	p := startPair(t)
	a, b := p.a.Settings, p.b.Settings
	waitRole(t, b, RoleStandby, true)
	caughtUp(t, p)

	// The admin account needs SELECT on mysql.global_priv to list the
	// accounts that bypass read_only; SetupAccounts may not grant it yet.
	// Either way, once its fix has run the pair is clean.
	visibility := Problem{Server: a.Addr(),
		What: "the admin account 'siteflip'@'%' cannot read mysql.global_priv, so the accounts that bypass read_only (READ_ONLY ADMIN) cannot be listed",
		Fix:  "GRANT SELECT ON mysql.global_priv TO 'siteflip'@'%'"}
	switch probs := checkOK(t, a, RolePrimary, Settings{}); {
	case len(probs) == 0:
	case len(probs) == 1 && probs[0] == visibility:
		t.Logf("SetupAccounts does not grant it: %s", visibility.Fix)
		rootSQL(t, p.a, visibility.Fix)
	default:
		t.Fatalf("a new pair, the primary:\n%s", FormatProblems(probs))
	}
	assertClean(t, p)

	standbyFix := func(stmt string) string {
		return fmt.Sprintf("on the primary %s, which replicates it here: %s", a.Addr(), stmt)
	}
	elsewhere := a
	elsewhere.Port = testbed.FreePort(t)
	wrongRepl := a
	wrongRepl.ReplPassword = "not-the-password"
	otherID := a
	otherID.ServerID = 7

	type server struct {
		s       Settings
		role    string
		primary Settings
	}
	primaryA := server{a, RolePrimary, Settings{}}
	standbyB := server{b, RoleStandby, a}
	cases := []struct {
		name     string
		at       Instance // where break and restore run, as root
		breakSQL string
		check    server
		want     []Problem
		runFix   bool   // restore by running each fix at `at`
		restore  string // then this
	}{
		{
			name: "gtid_strict_mode off", at: p.b, breakSQL: "SET GLOBAL gtid_strict_mode=0", check: standbyB,
			want: []Problem{{b.Addr(), "GTID strict mode is off (gtid_strict_mode): transactions the other server lacks go unnoticed",
				"SET GLOBAL gtid_strict_mode=ON; and gtid_strict_mode=ON in the option file"}},
			restore: "SET GLOBAL gtid_strict_mode=1",
		},
		{
			name: "binlog_format not ROW", at: p.a, breakSQL: "SET GLOBAL binlog_format=STATEMENT", check: primaryA,
			want: []Problem{{a.Addr(), "binlog_format is STATEMENT, not ROW",
				"SET GLOBAL binlog_format=ROW; and binlog_format=ROW in the option file (sessions already open keep the old format until they reconnect)"}},
			restore: "SET GLOBAL binlog_format=ROW",
		},
		{
			name: "sync_binlog not 1", at: p.a, breakSQL: "SET GLOBAL sync_binlog=0", check: primaryA,
			want: []Problem{{a.Addr(), "sync_binlog is 0, not 1: transactions acknowledged to clients can be lost from the binary log in a crash",
				"SET GLOBAL sync_binlog=1; and sync_binlog=1 in the option file"}},
			restore: "SET GLOBAL sync_binlog=1",
		},
		{
			name: "innodb_flush_log_at_trx_commit not 1", at: p.b, breakSQL: "SET GLOBAL innodb_flush_log_at_trx_commit=2", check: standbyB,
			want: []Problem{{b.Addr(), "innodb_flush_log_at_trx_commit is 2, not 1: commits acknowledged to clients can be lost in a crash",
				"SET GLOBAL innodb_flush_log_at_trx_commit=1; and innodb_flush_log_at_trx_commit=1 in the option file"}},
			restore: "SET GLOBAL innodb_flush_log_at_trx_commit=1",
		},
		{
			name: "gtid_domain_id not 0", at: p.b, breakSQL: "SET GLOBAL gtid_domain_id=3", check: standbyB,
			want: []Problem{{b.Addr(), "gtid_domain_id is 3, not 0: siteflip compares positions in one domain",
				"SET GLOBAL gtid_domain_id=0; and gtid_domain_id=0 in the option file"}},
			restore: "SET GLOBAL gtid_domain_id=0",
		},
		{
			name: "writable standby", at: p.b, breakSQL: "SET GLOBAL read_only=0", check: standbyB,
			want:   []Problem{{b.Addr(), "the standby is writable (read_only=OFF): clients can write to it what its primary never sees", "SET GLOBAL read_only=ON"}},
			runFix: true,
		},
		{
			name: "replica by file and position", at: p.b, check: standbyB,
			breakSQL: "STOP SLAVE; CHANGE MASTER TO MASTER_USE_GTID=no; START SLAVE",
			want: []Problem{{b.Addr(), "the standby replicates by binlog file and position (Using_Gtid=No), not by GTID: it cannot follow another primary after a failover",
				"STOP SLAVE; CHANGE MASTER TO MASTER_USE_GTID=slave_pos; START SLAVE"}},
			runFix: true,
		},
		{
			name: "replica of the wrong primary", check: server{b, RoleStandby, elsewhere},
			want: []Problem{{b.Addr(), fmt.Sprintf("the standby replicates from %s, not from its primary %s", a.Addr(), elsewhere.Addr()),
				fmt.Sprintf("STOP SLAVE; CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='<the password in replication_password_file>', MASTER_USE_GTID=slave_pos; START SLAVE", elsewhere.Port)}},
		},
		{
			name: "a standby that does not replicate", check: server{a, RoleStandby, b},
			want: []Problem{
				{a.Addr(), "the standby is writable (read_only=OFF): clients can write to it what its primary never sees", "SET GLOBAL read_only=ON"},
				{a.Addr(), fmt.Sprintf("the standby does not replicate: no replica connection to its primary %s", b.Addr()),
					fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='<the password in replication_password_file>', MASTER_USE_GTID=slave_pos; START SLAVE", b.Port)},
			},
		},
		{
			name: "a primary set to replicate", at: p.a, check: primaryA,
			breakSQL: fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=slave_pos", b.Port),
			want:     []Problem{{a.Addr(), fmt.Sprintf("the primary is set to replicate from %s (Slave_IO_Running=No, Slave_SQL_Running=No)", b.Addr()), "STOP SLAVE; RESET SLAVE ALL"}},
			runFix:   true,
		},
		{
			name: "a named replica connection", at: p.b, check: standbyB,
			breakSQL: "CHANGE MASTER 'other' TO MASTER_HOST='127.0.0.1', MASTER_PORT=9, MASTER_USER='repl', MASTER_USE_GTID=slave_pos",
			want: []Problem{{b.Addr(), "it replicates from 127.0.0.1:9 through the named connection 'other': siteflip stops and resets only the default one",
				"STOP SLAVE 'other'; RESET SLAVE 'other' ALL"}},
			runFix: true,
		},
		{
			name: "server_id differs from the topology", check: server{otherID, RolePrimary, Settings{}},
			want: []Problem{{a.Addr(), "server_id is 1, the topology says 7: GTIDs would name the wrong site",
				"SET GLOBAL server_id=7; and server_id=7 in the option file (or, if this server is right, server_id: 1 in the topology)"}},
		},
		{
			name: "repl lacks REPLICATION SLAVE", at: p.a, breakSQL: "REVOKE REPLICATION SLAVE ON *.* FROM 'repl'@'%'", check: primaryA,
			want:   []Problem{{a.Addr(), "the replication account 'repl'@'%' lacks REPLICATION SLAVE: a standby cannot replicate from this server", "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'"}},
			runFix: true,
		},
		{
			name: "repl lacks REPLICATION SLAVE, seen at the standby", at: p.a, breakSQL: "REVOKE REPLICATION SLAVE ON *.* FROM 'repl'@'%'", check: standbyB,
			want: []Problem{{b.Addr(), "the replication account 'repl'@'%' lacks REPLICATION SLAVE: a standby cannot replicate from this server",
				standbyFix("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'")}},
			restore: "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'",
		},
		{
			name: "repl's password is not the one in the settings", check: server{wrongRepl, RolePrimary, Settings{}},
			want: []Problem{{a.Addr(), "the replication account repl cannot log in with the password in replication_password_file: Error 1045 (28000): Access denied for user 'repl'@'127.0.0.1' (using password: YES)",
				"CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY '<that password>'; ALTER USER 'repl'@'%' IDENTIFIED BY '<that password>'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'"}},
		},
		{
			name: "an application account with READ_ONLY ADMIN", at: p.a, check: primaryA,
			breakSQL: "CREATE USER app2@'%' IDENTIFIED BY 'app2-pw'; GRANT READ_ONLY ADMIN ON *.* TO app2@'%'",
			want: []Problem{{a.Addr(), "the account 'app2'@'%' holds READ_ONLY ADMIN: it writes through read_only, so a fence does not stop it",
				"REVOKE READ_ONLY ADMIN ON *.* FROM 'app2'@'%'"}},
			runFix: true, restore: "DROP USER app2@'%'",
		},
		{
			name: "a role with READ_ONLY ADMIN, seen at the standby", at: p.a, check: standbyB,
			breakSQL: "CREATE ROLE writer; GRANT READ_ONLY ADMIN ON *.* TO writer; GRANT writer TO app@'%'; SET DEFAULT ROLE writer FOR app@'%'",
			want: []Problem{{b.Addr(), "the role `writer` holds READ_ONLY ADMIN: it writes through read_only, so a fence does not stop it",
				standbyFix("REVOKE READ_ONLY ADMIN ON *.* FROM `writer`")}},
			restore: "REVOKE READ_ONLY ADMIN ON *.* FROM `writer`; SET DEFAULT ROLE NONE FOR app@'%'; DROP ROLE writer",
		},
		{
			name: "an account with BINLOG ADMIN", at: p.a, check: primaryA,
			breakSQL: "CREATE USER ops@'10.%' IDENTIFIED BY 'ops-pw'; GRANT BINLOG ADMIN ON *.* TO ops@'10.%'",
			want: []Problem{{a.Addr(), "the account 'ops'@'10.%' holds BINLOG ADMIN: with SET sql_log_bin=0 it writes what the standby never receives",
				"REVOKE BINLOG ADMIN ON *.* FROM 'ops'@'10.%'"}},
			runFix: true, restore: "DROP USER ops@'10.%'",
		},
		{
			name: "the admin account lacks privileges", at: p.a, breakSQL: "REVOKE CONNECTION ADMIN, PROCESS ON *.* FROM 'siteflip'@'%'", check: primaryA,
			want: []Problem{{a.Addr(), "the admin account 'siteflip'@'%' lacks CONNECTION ADMIN, PROCESS, which the driver needs",
				"GRANT CONNECTION ADMIN, PROCESS ON *.* TO 'siteflip'@'%'"}},
			runFix: true,
		},
		{
			// Without SLAVE MONITOR it cannot read the replica status: that
			// the grant fixes too.
			name: "the admin account lacks SLAVE MONITOR, at the standby", at: p.a, breakSQL: "REVOKE SLAVE MONITOR ON *.* FROM 'siteflip'@'%'", check: standbyB,
			want: []Problem{{b.Addr(), "the admin account 'siteflip'@'%' lacks SLAVE MONITOR, which the driver needs",
				standbyFix("GRANT SLAVE MONITOR ON *.* TO 'siteflip'@'%'")}},
			restore: "GRANT SLAVE MONITOR ON *.* TO 'siteflip'@'%'",
		},
		{
			name: "the admin account cannot list the privileges", at: p.a, breakSQL: "REVOKE SELECT ON mysql.global_priv FROM 'siteflip'@'%'", check: primaryA,
			want: []Problem{visibility}, runFix: true,
		},
		{
			name: "the proof account cannot write the heartbeat", at: p.a, breakSQL: "REVOKE UPDATE ON siteflip.heartbeat FROM 'siteflip_hb'@'%'", check: primaryA,
			want: []Problem{{a.Addr(), "the proof account 'siteflip_hb'@'%' lacks UPDATE on siteflip.heartbeat: the fence and the promotion cannot prove themselves",
				"GRANT UPDATE ON siteflip.heartbeat TO 'siteflip_hb'@'%'"}},
			runFix: true,
		},
		{
			name: "no heartbeat table", at: p.a, breakSQL: "DROP TABLE siteflip.heartbeat", check: primaryA,
			want: []Problem{{a.Addr(), "the table siteflip.heartbeat is missing (or the admin account cannot see it): the fence and the promotion cannot prove themselves",
				"CREATE DATABASE IF NOT EXISTS siteflip; CREATE TABLE IF NOT EXISTS siteflip.heartbeat (resource VARCHAR(64) PRIMARY KEY, epoch BIGINT UNSIGNED NOT NULL, seq BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB"}},
			runFix: true,
		},
	}
	for _, tc := range cases {
		ok := t.Run(tc.name, func(t *testing.T) {
			if tc.breakSQL != "" {
				rootSQL(t, tc.at, tc.breakSQL)
				caughtUp(t, p)
			}
			got := checkOK(t, tc.check.s, tc.check.role, tc.check.primary)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if tc.runFix {
				for _, pr := range tc.want {
					rootSQL(t, tc.at, pr.Fix)
				}
			}
			if tc.restore != "" {
				rootSQL(t, tc.at, tc.restore)
			}
			assertClean(t, p)
		})
		if !ok {
			t.Fatalf("%s: stopped, as the pair may not be clean", tc.name)
		}
	}

	// log_bin and log_slave_updates are read at start only: restart the
	// standby with both off.
	t.Run("log_bin and log_slave_updates off", func(t *testing.T) {
		orig, err := os.ReadFile(p.b.OptionFile())
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(string(orig), "\n") {
			switch {
			case strings.HasPrefix(l, "log_bin="):
			case strings.HasPrefix(l, "log_slave_updates="):
				lines = append(lines, "log_slave_updates=OFF")
			default:
				lines = append(lines, l)
			}
		}
		restart := func(options []byte) {
			t.Helper()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			if err := p.b.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p.b.OptionFile(), options, 0o644); err != nil {
				t.Fatal(err)
			}
			srv, err := p.b.Start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Kill)
		}
		restart([]byte(strings.Join(lines, "\n")))
		got := checkOK(t, b, RoleStandby, a)
		want := []Problem{
			{b.Addr(), "binary logging is off (log_bin): there are no GTIDs and nothing to replicate",
				fmt.Sprintf("log_bin=%s/binlog in the option file's [mariadbd] section, then restart the server (log_bin cannot be set at runtime)", b.DataDir)},
			{b.Addr(), "what it replicates is not written to its binary log (log_slave_updates=OFF): after a failover the other server cannot follow it",
				"log_slave_updates=ON in the option file's [mariadbd] section, then restart the server (it cannot be set at runtime)"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("problems (-want +got):\n%s", diff)
		}
		restart(orig)
		// It boots behind its guard: read-only and not replicating.
		rootSQL(t, p.b, "START SLAVE")
		waitRole(t, b, RoleStandby, true)
		assertClean(t, p)
	})

	t.Run("errors", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		bad := a
		bad.AdminPassword = "wrong"
		_, err := CheckServer(ctx, bad, RolePrimary, Settings{})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("check mariadb at %s: connect as siteflip: ", a.Addr())) || !strings.Contains(err.Error(), "Error 1045") {
			t.Errorf("check with the wrong admin password: %v", err)
		}
		if _, err := CheckServer(ctx, a, "leader", Settings{}); err == nil || !strings.Contains(err.Error(), `role "leader"`) {
			t.Errorf("check with role leader: %v", err)
		}
		if _, err := CheckServer(ctx, b, RoleStandby, Settings{}); err == nil || !strings.Contains(err.Error(), "needs the primary") {
			t.Errorf("check of a standby without its primary: %v", err)
		}
	})
}

// A server that does not answer is an error naming it and the account.
func TestCheckServerNotAnswering(t *testing.T) {
	s := Settings{Host: "127.0.0.1", Port: testbed.FreePort(t), Admin: "siteflip", AdminPassword: "x", ServerID: 1}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	probs, err := CheckServer(ctx, s, RolePrimary, Settings{})
	want := fmt.Sprintf("check mariadb at %s: connect as siteflip: ", s.Addr())
	if err == nil || !strings.Contains(err.Error(), want) || len(probs) != 0 {
		t.Errorf("check with nothing listening: %v, %v; want an error with %q", probs, err, want)
	}
}

func TestCheckFormatProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []Problem
		want string
	}{
		{"none", nil, ""},
		{
			"one",
			[]Problem{{"127.0.0.1:3306", "binary logging is off (log_bin)", "log_bin=binlog in the option file, then restart"}},
			"mariadb at 127.0.0.1:3306:\n" +
				"- binary logging is off (log_bin)\n" +
				"  fix: log_bin=binlog in the option file, then restart\n",
		},
		{
			"grouped by server in the order they first appear",
			[]Problem{
				{"b:3306", "sync_binlog is 0, not 1", "SET GLOBAL sync_binlog=1"},
				{"a:3306", "GTID strict mode is off", "SET GLOBAL gtid_strict_mode=ON"},
				{"b:3306", "binlog_format is MIXED, not ROW", "SET GLOBAL binlog_format=ROW"},
			},
			"mariadb at b:3306:\n" +
				"- sync_binlog is 0, not 1\n" +
				"  fix: SET GLOBAL sync_binlog=1\n" +
				"- binlog_format is MIXED, not ROW\n" +
				"  fix: SET GLOBAL binlog_format=ROW\n" +
				"\n" +
				"mariadb at a:3306:\n" +
				"- GTID strict mode is off\n" +
				"  fix: SET GLOBAL gtid_strict_mode=ON\n",
		},
		{
			"lines after the first indented",
			[]Problem{{"[::1]:3306", "replicates by file\nand position", "STOP SLAVE;\nCHANGE MASTER TO MASTER_USE_GTID=slave_pos;\nSTART SLAVE\n"}},
			"mariadb at [::1]:3306:\n" +
				"- replicates by file\n" +
				"  and position\n" +
				"  fix: STOP SLAVE;\n" +
				"       CHANGE MASTER TO MASTER_USE_GTID=slave_pos;\n" +
				"       START SLAVE\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatProblems(tc.in); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s\n(-want +got):\n%s", got, tc.want, cmp.Diff(tc.want, got))
			}
		})
	}
}

func TestCheckVersion(t *testing.T) {
	for _, tc := range []struct {
		version string
		old     bool
	}{
		{"10.11.19-MariaDB-0+deb12u1-log", false},
		{"10.11.0-MariaDB", false},
		{"10.10.7-MariaDB", true},
		{"10.6.21-MariaDB", true},
		{"11.4.2-MariaDB", false},
		{"nonsense", true},
	} {
		v, ok := checkParseVersion(tc.version)
		if got := !ok || checkOlder(v, checkMinVersion); got != tc.old {
			t.Errorf("%s: older than %v = %v, want %v", tc.version, checkMinVersion, got, tc.old)
		}
	}
}
