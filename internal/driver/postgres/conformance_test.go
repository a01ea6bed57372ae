package postgres

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/siteflip/siteflip/internal/driver/conformance"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/testbed"
)

// The driver conformance suite on a real primary and standby: the type's
// actor, reached only through resource.Actor, keeps the promises every
// data type makes.
func TestConformance(t *testing.T) {
	const appPassword = "app-secret"
	// Sockets outside the data dirs let pg_rewind work (see Rejoin); the
	// rejoins read the replication password from a file.
	p := startPair(t, func(dir string, s *Settings) {
		s.SocketDir = filepath.Join(dir, "run")
		s.ReplicationPasswordFile = filepath.Join(dir, "repl.pw")
		if err := os.WriteFile(s.ReplicationPasswordFile, []byte(testReplPassword+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	stopAtEnd(t, p.primary, p.standby)
	// The servers the actions start log next to the data dirs (see
	// instance), not to the lab's per-site logs.
	t.Cleanup(func() {
		log := filepath.Join(filepath.Dir(p.primary.Settings.DataDir), "postgres.log")
		if b, err := os.ReadFile(log); err == nil && t.Failed() {
			t.Logf("log of the servers the actions started (%s):\n%s", log, b)
		}
	})
	at := map[string]Settings{conformance.SiteA: p.primary.Settings, conformance.SiteB: p.standby.Settings}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	execSQL(t, ctx, at[conformance.SiteA],
		`CREATE ROLE app LOGIN PASSWORD '`+appPassword+`'`,
		`CREATE TABLE conformance (id bigint PRIMARY KEY)`,
		`GRANT SELECT, INSERT ON conformance TO app`)
	if err := WaitCatchUp(ctx, at[conformance.SiteB], currentLSN(t, ctx, at[conformance.SiteA])); err != nil {
		t.Fatal(err)
	}

	// app connects to site as the application: its own role, no rights
	// beyond the table.
	app := func(ctx context.Context, site string) (*pgx.Conn, error) {
		s := at[site]
		s.User = "app"
		cfg, err := connConfig(s, "siteflip-conformance", appPassword)
		if err != nil {
			return nil, err
		}
		return connectConfig(ctx, s, cfg)
	}
	settings := map[string]any{}
	for site, s := range at {
		settings[site] = &s
	}
	conformance.Run(t, conformance.Fixture{
		Type:     Type{},
		Settings: settings,
		End:      "end_lsn",
		Write: func(ctx context.Context, site string, id int) error {
			conn, err := app(ctx, site)
			if err != nil {
				return err
			}
			defer closeConn(conn)
			_, err = conn.Exec(ctx, `INSERT INTO conformance (id) VALUES ($1)`, id)
			return err
		},
		Rows: func(ctx context.Context, site string) ([]int, error) {
			conn, err := app(ctx, site)
			if err != nil {
				return nil, err
			}
			defer closeConn(conn)
			rows, err := conn.Query(ctx, `SELECT id FROM conformance ORDER BY id`)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, pgx.RowTo[int])
		},
		// b forgets its primary: its WAL receiver stops, and nothing a
		// writes from then on reaches it.
		Diverge: func(ctx context.Context) error {
			b := at[conformance.SiteB]
			bc, err := connect(ctx, b, "siteflip-conformance")
			if err != nil {
				return err
			}
			defer closeConn(bc)
			ac, err := connect(ctx, at[conformance.SiteA], "siteflip-conformance")
			if err != nil {
				return err
			}
			defer closeConn(ac)
			if _, err := bc.Exec(ctx, `ALTER SYSTEM SET primary_conninfo = ''`); err != nil {
				return err
			}
			if _, err := bc.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
				return err
			}
			var receivers, senders int
			var qerr error
			if !testbed.Poll(15*time.Second, func() bool {
				if qerr = bc.QueryRow(ctx, `SELECT count(*) FROM pg_stat_wal_receiver`).Scan(&receivers); qerr != nil {
					return false
				}
				qerr = ac.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE application_name = $1`, b.ApplicationName).Scan(&senders)
				return qerr == nil && receivers == 0 && senders == 0
			}) {
				return fmt.Errorf("b still receives WAL from a after primary_conninfo was cleared: %d receivers at b, %d senders to it at a (%v)", receivers, senders, qerr)
			}
			return nil
		},
		// 4 GiB past the fenced end: more WAL than the test writes.
		Beyond: func(fenced map[string]string) map[string]string {
			out := maps.Clone(fenced)
			end, err := parseLSN(fenced["end_lsn"])
			if err != nil {
				out["end_lsn"] = "" // the suite says what is wrong
				return out
			}
			out["end_lsn"] = formatLSN(end + 4<<30)
			return out
		},
		// PostgreSQL states the lost WAL, not transactions: exactly the
		// range from the promotion's switch point to the fenced end. K is
		// not in it; that the K rows are gone the suite checks itself.
		CheckLost: func(t testing.TB, l conformance.Lost) {
			t.Helper()
			r := l.Rejoined
			if r["lost_from"] != l.Promoted["switch_lsn"] || r["lost_to"] != l.Fenced["end_lsn"] {
				t.Errorf("Rejoin says WAL %s..%s was lost, want %s (b's switch point) .. %s (a's fenced end)",
					r["lost_from"], r["lost_to"], l.Promoted["switch_lsn"], l.Fenced["end_lsn"])
			}
			from, ferr := parseLSN(l.Promoted["switch_lsn"])
			to, terr := parseLSN(l.Fenced["end_lsn"])
			if ferr != nil || terr != nil || to <= from {
				t.Fatalf("switch point %q, fenced end %q: want two WAL positions, the first lower", l.Promoted["switch_lsn"], l.Fenced["end_lsn"])
			}
			want := strconv.FormatUint(to-from, 10)
			if r["lost_bytes"] != want {
				t.Errorf("Rejoin says %s bytes were lost, want %s", r["lost_bytes"], want)
			}
			if !regexp.MustCompile(`\b` + want + ` bytes of WAL\b`).MatchString(r[plan.OutputDataLost]) {
				t.Errorf("%s = %q, want it to say %s bytes of WAL", plan.OutputDataLost, r[plan.OutputDataLost], want)
			}
			if r["rewound"] != "true" && r["recloned"] != "true" {
				t.Errorf("Rejoin neither rewound nor recloned a diverged primary: %v", r)
			}
			t.Logf("%d transactions lost as %s bytes of WAL: %s", l.K, want, r[plan.OutputDataLost])
		},
	})
}
