package depprobe

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/testbed/dbserver"
)

func TestSQLPostgres(t *testing.T) {
	s := dbserver.Postgres(t, "app")
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	down := closedAddr(t)
	dsn := func(addr, password string) string {
		return "postgres://" + s.User + ":" + password + "@" + addr + "/app?sslmode=disable"
	}
	t.Setenv("SITEFLIP_TEST_DEP_DSN", dsn(addr, dbserver.PostgresPassword))
	runProbes(t, []probeCase{
		{"up", config.DependencySQL, config.DependencySite{Engine: EnginePostgres, DSN: dsn(addr, dbserver.PostgresPassword)}, "postgres " + addr + "/app", true, ""},
		{"up from the environment", config.DependencySQL, config.DependencySite{Engine: EnginePostgres, DSNEnv: "SITEFLIP_TEST_DEP_DSN"}, "postgres " + addr + "/app", true, ""},
		{"wrong port", config.DependencySQL, config.DependencySite{Engine: EnginePostgres, DSN: dsn(down, dbserver.PostgresPassword)}, "postgres " + down + "/app", false, "connect: connection refused"},
		{"wrong password", config.DependencySQL, config.DependencySite{Engine: EnginePostgres, DSN: dsn(addr, "not-"+dbserver.PostgresPassword)}, "postgres " + addr + "/app", false, "password authentication failed"},
		{"no such variable", config.DependencySQL, config.DependencySite{Engine: EnginePostgres, DSNEnv: "SITEFLIP_TEST_DEP_UNSET"}, "postgres", false,
			"environment variable SITEFLIP_TEST_DEP_UNSET (dsn_env) is not set"},
	})
	// No password in what a probe says, whatever goes wrong.
	for _, site := range []config.DependencySite{
		{Engine: EnginePostgres, DSN: dsn(addr, "not-"+dbserver.PostgresPassword)},
		{Engine: EnginePostgres, DSN: dsn(down, dbserver.PostgresPassword)},
		{Engine: EnginePostgres, DSN: "host=" + s.Host + " port=" + strconv.Itoa(s.Port) + " password=" + dbserver.PostgresPassword + " sslmode=bogus"},
	} {
		r := Probe(t.Context(), config.Dependency{Name: "db", Type: config.DependencySQL}, site)
		if r.Err == nil {
			t.Fatalf("%s: reachable, want an error", r.Target)
		}
		for _, said := range []string{r.Target, r.Err.Error()} {
			if strings.Contains(said, dbserver.PostgresPassword) {
				t.Errorf("the probe shows the password: %q", said)
			}
		}
	}
}

func TestSQLMariaDB(t *testing.T) {
	in := dbserver.MariaDB(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := in.RootSQL(ctx, `CREATE USER 'probe'@'%' IDENTIFIED BY 'probe-pw'; CREATE DATABASE app; GRANT SELECT ON app.* TO 'probe'@'%'`); err != nil {
		t.Fatal(err)
	}
	addr, down := dbserver.Addr(in), closedAddr(t)
	dsn := func(addr, password string) string { return "probe:" + password + "@tcp(" + addr + ")/app" }
	runProbes(t, []probeCase{
		{"up", config.DependencySQL, config.DependencySite{Engine: EngineMariaDB, DSN: dsn(addr, "probe-pw")}, "mariadb " + addr + "/app", true, ""},
		{"wrong port", config.DependencySQL, config.DependencySite{Engine: EngineMariaDB, DSN: dsn(down, "probe-pw")}, "mariadb " + down + "/app", false, "connection refused"},
		{"wrong password", config.DependencySQL, config.DependencySite{Engine: EngineMariaDB, DSN: dsn(addr, "wrong-pw")}, "mariadb " + addr + "/app", false, "Access denied"},
		{"does not parse", config.DependencySQL, config.DependencySite{Engine: EngineMariaDB, DSN: "probe:probe-pw@" + addr}, "mariadb", false, "does not parse"},
	})
}

// Probe ends with ctx, whatever the dependency's timeout.
func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := Probe(ctx, config.Dependency{Name: "ldap", Type: config.DependencyTCP}, config.DependencySite{Address: "192.0.2.1:389"})
	if r.Reachable || r.Err == nil {
		t.Errorf("reachable %v, error %v after the context ended; want unreachable", r.Reachable, r.Err)
	}
}
