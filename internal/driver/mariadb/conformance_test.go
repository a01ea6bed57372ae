package mariadb

import (
	"context"
	"database/sql"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/driver/conformance"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/testbed"
)

// The driver conformance suite on a real primary and standby: the type's
// actor, reached only through resource.Actor, keeps the promises every
// data type makes.
func TestConformance(t *testing.T) {
	testbed.RequireMariaDB(t)
	p := startPair(t)
	// Servers the actions start again (a rejoin that reclones) are not
	// startPair's: stop whatever runs from the state dirs first.
	t.Cleanup(func() {
		for _, in := range []Instance{p.a, p.b} {
			if _, err := killServer(in.Dir); err != nil {
				t.Error(err)
			}
		}
	})
	at := map[string]Instance{conformance.SiteA: p.a, conformance.SiteB: p.b}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, site := range []string{conformance.SiteA, conformance.SiteB} {
			o, err := Observe(ctx, at[site].Settings)
			t.Logf("at the end, site %s: %+v (%v)", site, o, err)
		}
	})

	// A topology's settings: the accounts' passwords in files, read by
	// the actor (Resolve), and the state dirs the servers run from.
	pwDir := t.TempDir()
	pwFile := func(name, pw string) string {
		path := filepath.Join(pwDir, name)
		if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	settings := map[string]any{}
	for site, in := range at {
		s := in.Settings
		settings[site] = &Settings{
			Host: s.Host, Port: s.Port, DataDir: s.DataDir, StateDir: in.Dir, Socket: s.Socket, ServerID: s.ServerID,
			User: s.Admin, PasswordFile: pwFile(site+".admin.pw", s.AdminPassword),
			ReplicationUser: s.Repl, ReplicationPasswordFile: pwFile(site+".repl.pw", s.ReplPassword),
			ProofUser: s.Proof, ProofPasswordFile: pwFile(site+".proof.pw", s.ProofPassword),
		}
	}

	conformance.Run(t, conformance.Fixture{
		Type:     Type{},
		Settings: settings,
		End:      "end_gtid",
		Write: func(ctx context.Context, site string, id int) error {
			return write(ctx, at[site].Settings, id)
		},
		Rows: func(ctx context.Context, site string) ([]int, error) {
			db, conn, err := open(ctx, at[site].Settings, "app", "app-pw")
			if err != nil {
				return nil, err
			}
			defer db.Close()
			defer conn.Close()
			rows, err := conn.QueryContext(ctx, "SELECT id FROM shop.orders ORDER BY id")
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var ids []int
			for rows.Next() {
				var id int
				if err := rows.Scan(&id); err != nil {
					return nil, err
				}
				ids = append(ids, id)
			}
			return ids, rows.Err()
		},
		// b stops replicating (STOP SLAVE returns once both threads
		// have stopped) and keeps its replica configuration, as a
		// standby cut off from its primary does.
		Diverge: func(ctx context.Context) error {
			return admin(ctx, at[conformance.SiteB].Settings, func(c *sql.Conn) error {
				_, err := c.ExecContext(ctx, "STOP SLAVE")
				return err
			})
		},
		// A million transactions past the fenced end, in every domain.
		Beyond: func(fenced map[string]string) map[string]string {
			out := maps.Clone(fenced)
			var far []string
			for _, g := range strings.Split(fenced["end_gtid"], ",") {
				i := strings.LastIndex(g, "-")
				seq, err := strconv.ParseUint(g[i+1:], 10, 64)
				if i < 0 || err != nil {
					out["end_gtid"] = "" // the suite says what is wrong
					return out
				}
				far = append(far, g[:i+1]+strconv.FormatUint(seq+1_000_000, 10))
			}
			out["end_gtid"] = strings.Join(far, ",")
			return out
		},
		// MariaDB counts transactions: the errant ones of the old primary
		// are those its fenced end numbers past the new primary's switch
		// point, K of them, and the rejoin must say so.
		CheckLost: func(t testing.TB, l conformance.Lost) {
			t.Helper()
			end, err1 := parseGTIDList(l.Fenced["end_gtid"])
			sw, err2 := parseGTIDList(l.Promoted["switch_gtid"])
			var errant uint64
			for d, n := range end {
				errant += n - min(n, sw[d])
			}
			if err1 != nil || err2 != nil || errant != uint64(l.K) {
				t.Errorf("fenced end %q, switch point %q: %d transactions between them, want %d (%v, %v)",
					l.Fenced["end_gtid"], l.Promoted["switch_gtid"], errant, l.K, err1, err2)
			}
			r := l.Rejoined
			k := strconv.Itoa(l.K)
			if r["lost_transactions"] != k {
				t.Errorf("Rejoin says lost_transactions = %q, want %s: %v", r["lost_transactions"], k, r)
			}
			if !strings.Contains(r["lost_gtids"], l.Fenced["end_gtid"]) {
				t.Errorf("Rejoin says lost_gtids = %q, want them to end at the fenced end %s", r["lost_gtids"], l.Fenced["end_gtid"])
			}
			if !regexp.MustCompile(`\b` + k + `\b`).MatchString(r[plan.OutputDataLost]) {
				t.Errorf("%s = %q, want it to name the %s transactions", plan.OutputDataLost, r[plan.OutputDataLost], k)
			}
		},
	})
}
