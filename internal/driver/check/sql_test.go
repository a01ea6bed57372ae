package check

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/siteflip/siteflip/internal/driver/postgres"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/testbed/dbserver"
)

// startPostgres starts a PostgreSQL primary on a free port of 127.0.0.1
// with a database webshop, whose table orders has three rows written now
// and table archive one row of 2001, and returns its settings. It skips
// the test in -short mode or when PostgreSQL is not installed.
func startPostgres(t *testing.T) postgres.Settings {
	t.Helper()
	s := dbserver.Postgres(t, "webshop")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	u := url.URL{Scheme: "postgres", User: url.UserPassword(s.User, dbserver.PostgresPassword), Host: pgAddr(s), Path: "/webshop"}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		"CREATE TABLE orders (id int PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now())",
		"INSERT INTO orders (id) VALUES (1), (2), (3)",
		"CREATE TABLE archive (id int, created_at timestamp)",
		"INSERT INTO archive VALUES (1, '2001-02-03 04:05:06')",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return s
}

func pgAddr(s postgres.Settings) string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// A check asks a real PostgreSQL, in a read-only transaction, and judges
// what it returns.
func TestSQLPostgres(t *testing.T) {
	s := startPostgres(t)
	targets := map[string]string{"db": pgAddr(s)}
	// sqlCheck is the settings of an sql check of query on db; more adds
	// keys to the sql block.
	sqlCheck := func(query, more string) string {
		return `{sql: {resource: db, database: webshop, user: postgres, password_file: "` + s.PasswordFile + `", query: "` + query + `"` + more + `}}`
	}
	recent := "SELECT count(*) FROM orders WHERE created_at > now() - interval '1 hour'"
	runCases(t, targets, []verifyCase{
		{"count", sqlCheck(recent, `, expect: "3"`), "count=3", ""},
		{"count differs", sqlCheck(recent, `, expect: "4"`), "count=3", `check c: expected count "4", seen count "3"`},
		{"rows", sqlCheck("SELECT id FROM orders ORDER BY id", ", min_rows: 3"), "id=1, 3 rows", ""},
		{"too few rows", sqlCheck("SELECT id FROM orders WHERE id > 1 ORDER BY id", ", min_rows: 3"), "id=2, 2 rows",
			"check c: expected at least 3 rows, seen 2 rows"},
		{"as psql shows it", sqlCheck("SELECT pg_is_in_recovery() AS standby", ", expect: f"), "standby=f", ""},
		{"no rows", sqlCheck("SELECT id FROM orders WHERE id > 3", ", min_rows: 1"), "no rows", "check c: expected at least 1 row, seen 0 rows"},
	})

	// The age of the newest row depends on the clock: judged apart.
	for _, tc := range []struct {
		query string
		err   string
	}{
		{"SELECT max(created_at) FROM orders", ""},
		{"SELECT max(created_at) FROM archive", "check c: expected max at most 10m0s old, seen 2001-02-03 04:05:06, "},
		{"SELECT 'yesterday'::text AS day", `check c: expected day at most 10m0s old, seen "yesterday", not a timestamp`},
	} {
		out, err := verifierOf(t, sqlCheck(tc.query, ", newer_than: 10m")).Verify(t.Context(), targets)
		seen := out[resource.OutputSeen]
		switch {
		case tc.err == "" && (err != nil || !strings.HasSuffix(seen, "s old)")):
			t.Errorf("%s: seen %q, %v; want its age", tc.query, seen, err)
		case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
			t.Errorf("%s: seen %q, %v; want an error starting %q", tc.query, seen, err, tc.err)
		}
	}

	// A check never writes, even with a statement that returns rows or
	// with a second statement after a first.
	for _, q := range []string{
		"INSERT INTO orders (id) VALUES (4) RETURNING id",
		"SELECT 1; DELETE FROM orders",
		"COMMIT; DELETE FROM orders",
	} {
		out, err := verifierOf(t, sqlCheck(q, "")).Verify(t.Context(), targets)
		if err == nil {
			t.Errorf("%s: no error (%v)", q, out)
		}
	}
	if _, err := verifierOf(t, sqlCheck("SELECT count(*) FROM orders", `, expect: "3"`)).Verify(t.Context(), targets); err != nil {
		t.Errorf("after the attempts to write: %v", err)
	}

	// What the server refuses is said as it says it.
	bad := filepath.Join(t.TempDir(), "bad.pw")
	if err := os.WriteFile(bad, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ settings, says string }{
		{`{sql: {resource: db, database: webshop, user: postgres, password_file: "` + bad + `", query: "SELECT 1"}}`, "password authentication failed"},
		{`{sql: {resource: db, database: nosuch, user: postgres, password_file: "` + s.PasswordFile + `", query: "SELECT 1"}}`, `database "nosuch" does not exist`},
		{sqlCheck("SELECT nosuch FROM orders", ""), `column "nosuch" does not exist`},
	} {
		out, err := verifierOf(t, tc.settings).Verify(t.Context(), targets)
		if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(out[resource.OutputSeen], tc.says) {
			t.Errorf("%s: seen %q, %v; want both to say %q", tc.settings, out[resource.OutputSeen], err, tc.says)
		}
		t.Logf("%v (seen %q)", err, out[resource.OutputSeen])
	}

	// Without an address for the database here, the check says so.
	_, err := verifierOf(t, sqlCheck("SELECT 1", "")).Verify(t.Context(), map[string]string{})
	if want := "check c: sql.resource: no address for resource db here: an sql check connects over TCP to its server's host and port at this site"; err == nil || err.Error() != want {
		t.Errorf("without targets: %v\nwant: %s", err, want)
	}
}
