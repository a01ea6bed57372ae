// Package dbserver starts the real PostgreSQL and MariaDB servers that
// tests ask questions of (checks, dependency probes), each on a free port
// of 127.0.0.1, stopped when the test ends. It lives apart from package
// testbed, which imports the standard library only, so that only the
// tests that start a server link the drivers.
package dbserver

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/driver/mariadb"
	"github.com/siteflip/siteflip/internal/driver/postgres"
	"github.com/siteflip/siteflip/internal/testbed"
)

// PostgresPassword is the password of the superuser of the servers
// Postgres starts.
const PostgresPassword = "dbserver-secret"

// Postgres starts a PostgreSQL primary on a free port of 127.0.0.1 with a
// database named database, owned by the superuser (Settings.User, password
// PostgresPassword), and returns its settings. It skips the test in
// -short mode or when PostgreSQL cannot run here.
func Postgres(t *testing.T, database string) postgres.Settings {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping real PostgreSQL test in -short mode: it starts a server and takes a few seconds")
	}
	if _, err := user.Lookup("postgres"); os.Geteuid() == 0 && err != nil {
		t.Skip("skipping real PostgreSQL test: running as root and there is no postgres OS user to run the server as; apt-get install postgresql-15 to run it")
	}
	dir := testbed.SharedDir(t, "siteflip-pg-")
	pwFile := filepath.Join(dir, "super.pw")
	if err := os.WriteFile(pwFile, []byte(PostgresPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	s := postgres.Settings{Host: "127.0.0.1", Port: testbed.FreePort(t), Database: database, DataDir: filepath.Join(dir, "data"), PasswordFile: pwFile}
	s.SetDefaults("brussels")
	if s.BinDir == "" {
		t.Skip("skipping real PostgreSQL test: no /usr/lib/postgresql/<version>/bin/postgres; apt-get install postgresql-15 to run it")
	}
	inst := postgres.Instance{Settings: s, Site: "brussels", LogFile: filepath.Join(dir, "server.log")}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := inst.InitPrimary(ctx, PostgresPassword, "repl-secret"); err != nil {
		t.Fatal(err)
	}
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := inst.Stop(context.Background(), "fast"); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(inst.LogFile); err == nil {
				t.Logf("server log:\n%s", b)
			}
		}
	})
	return s
}

// MariaDB starts a MariaDB server on a free port of 127.0.0.1 and returns
// it, for the test to create its users and data with RootSQL. It skips the
// test in -short mode or when MariaDB cannot run here.
func MariaDB(t *testing.T) mariadb.Instance {
	t.Helper()
	testbed.RequireMariaDB(t)
	// A short prefix: the server's socket path must stay under 108 bytes.
	dir := testbed.SharedDir(t, "sf-db-")
	in := mariadb.Instance{Dir: filepath.Join(dir, "a"), Settings: mariadb.Settings{
		Host: "127.0.0.1", Port: testbed.FreePort(t), Socket: filepath.Join(dir, "a", "mariadb.sock"),
		DataDir: filepath.Join(dir, "a.data"), ServerID: 1,
	}}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := in.Init(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := in.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	return in
}

// Addr is the host:port a MariaDB instance listens on.
func Addr(in mariadb.Instance) string {
	return in.Settings.Host + ":" + strconv.Itoa(in.Settings.Port)
}
