package check

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/testbed/dbserver"
)

// startMariaDB starts a MariaDB server on a free port of 127.0.0.1 with a
// database shop, whose table orders has three rows written now, readable
// by check@'%' with password check-pw; it returns the server's host:port.
// It skips the test in -short mode or when MariaDB cannot run here.
func startMariaDB(t *testing.T) string {
	t.Helper()
	in := dbserver.MariaDB(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := in.RootSQL(ctx, `CREATE USER 'check'@'%' IDENTIFIED BY 'check-pw';
CREATE DATABASE shop;
CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB;
INSERT INTO shop.orders (id) VALUES (1), (2), (3);
GRANT SELECT ON shop.* TO 'check'@'%'`); err != nil {
		t.Fatal(err)
	}
	return dbserver.Addr(in)
}

// A check asks a real MariaDB, in a read-only transaction, and judges
// what it returns.
func TestSQLMariaDB(t *testing.T) {
	addr := startMariaDB(t)
	t.Setenv("SITEFLIP_CHECK_PW", "check-pw")
	targets := map[string]string{"news": addr}
	sqlCheck := func(query, more string) string {
		return `{sql: {resource: news, database: shop, user: check, password_env: SITEFLIP_CHECK_PW, query: "` + query + `"` + more + `}}`
	}
	runCases(t, targets, []verifyCase{
		{"count", sqlCheck("SELECT COUNT(*) AS n FROM orders", `, expect: "3"`), "n=3", ""},
		{"count differs", sqlCheck("SELECT COUNT(*) AS n FROM orders", `, expect: "4"`), "n=3", `check c: expected n "4", seen n "3"`},
		{"rows", sqlCheck("SELECT id FROM orders ORDER BY id", ", min_rows: 3"), "id=1, 3 rows", ""},
		{"denied", sqlCheck("SELECT user FROM mysql.user", ""), "SELECT command denied to user 'check'@'127.0.0.1' for table `mysql`.`user`",
			"check c: expected rows from mariadb at " + addr + ", seen SELECT command denied to user 'check'@'127.0.0.1' for table `mysql`.`user`"},
	})
	out, err := verifierOf(t, sqlCheck("SELECT MAX(created_at) AS newest FROM orders", ", newer_than: 10m")).Verify(t.Context(), targets)
	if err != nil || !strings.HasPrefix(out[resource.OutputSeen], "newest=") || !strings.HasSuffix(out[resource.OutputSeen], "s old)") {
		t.Errorf("newer_than: %v, %v", out, err)
	}
	out, err = verifierOf(t, sqlCheck("SELECT 1; DELETE FROM orders", "")).Verify(t.Context(), targets)
	if err == nil {
		t.Errorf("two statements: no error (%v)", out)
	}
}
