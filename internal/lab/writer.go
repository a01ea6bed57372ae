package lab

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/driver/bgp"
	"github.com/siteflip/siteflip/internal/driver/postgres"
)

// Writer is the lab's demo client: it inserts an order every interval
// through a multi-host connection string with target_session_attrs=
// read-write, the way a PostgreSQL application follows its primary, and
// logs what was acknowledged.
type Writer struct {
	Dir      string
	Interval time.Duration
	Out      io.Writer
}

// Run writes until ctx ends.
func (w Writer) Run(ctx context.Context) error {
	t, err := config.Load(filepath.Join(w.Dir, "siteflip.yaml"), driver.Types())
	if err != nil {
		return err
	}
	dsn, err := WriterDSN(t)
	if err != nil {
		return err
	}
	var (
		conn           *pgx.Conn
		acked, failed  int
		lastErr        string
		lastID         int64
		report         = time.NewTicker(5 * time.Second)
		tick           = time.NewTicker(w.Interval)
		server, before string
	)
	defer report.Stop()
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if conn != nil {
				conn.Close(context.Background())
			}
			fmt.Fprintf(w.Out, "%s writer stopped: %d orders acknowledged, %d failed\n", stamp(), acked, failed)
			return nil
		case <-report.C:
			fmt.Fprintf(w.Out, "%s %d orders acknowledged (last id %d) via %s, %d failed%s\n", stamp(), acked, lastID, orNone(server), failed, suffix(lastErr))
			continue
		case <-tick.C:
		}
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			conn, err = pgx.Connect(cctx, dsn)
			cancel()
			if err != nil {
				failed++
				lastErr = err.Error()
				conn = nil
				continue
			}
			server = conn.PgConn().Conn().RemoteAddr().String()
			if server != before {
				fmt.Fprintf(w.Out, "%s connected to the primary at %s\n", stamp(), server)
				before = server
			}
			if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS orders (
				id bigserial PRIMARY KEY,
				placed_at timestamptz NOT NULL DEFAULT now(),
				item text NOT NULL,
				amount_cents integer NOT NULL)`); err != nil {
				lastErr = err.Error()
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := conn.QueryRow(wctx, `INSERT INTO orders (item, amount_cents) VALUES ($1, $2) RETURNING id`,
			items[acked%len(items)], 100+acked%5000).Scan(&lastID)
		cancel()
		if err != nil {
			failed++
			lastErr = err.Error()
			conn.Close(context.Background())
			conn = nil
			continue
		}
		acked++
		lastErr = ""
	}
}

var items = []string{"waffles", "pralines", "speculoos", "beer", "fries", "chocolate"}

// WriterDSN is the connection string of the lab's clients: every site's
// database, in order, taking whichever accepts writes
// (target_session_attrs=read-write), as a PostgreSQL application would.
func WriterDSN(t *config.Topology) (string, error) {
	g, ok := t.Group(demoGroup)
	if !ok {
		return "", fmt.Errorf("group %s is not in the lab topology", demoGroup)
	}
	var hosts, ports []string
	var first *postgres.Settings
	for _, site := range g.Sites {
		for _, r := range g.Resources {
			if s, ok := r.Settings[site].(*postgres.Settings); ok {
				hosts = append(hosts, s.Host)
				ports = append(ports, fmt.Sprint(s.Port))
				if first == nil {
					first = s
				}
			}
		}
	}
	pw, err := first.Password()
	if err != nil {
		return "", err
	}
	// With a network, clients use the service address the router
	// forwards to the active site.
	for _, r := range g.Resources {
		if s, ok := r.Settings[g.Sites[0]].(*bgp.Settings); ok && len(s.Prefixes) > 0 {
			if p, err := netip.ParsePrefix(s.Prefixes[0]); err == nil {
				hosts, ports = []string{p.Addr().String()}, ports[:1]
			}
		}
	}
	return fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=%s target_session_attrs=read-write connect_timeout=2 application_name=siteflip-lab-writer",
		strings.Join(hosts, ","), strings.Join(ports, ","), first.Database, first.User, pw), nil
}

func stamp() string { return time.Now().Format(time.TimeOnly) }

func orNone(s string) string {
	if s == "" {
		return "no server"
	}
	return s
}

func suffix(err string) string {
	if err == "" {
		return ""
	}
	return "; last error: " + err
}

// SiteDSN is the connection string of the lab's database at site alone.
func SiteDSN(t *config.Topology, site string) (string, error) {
	g, ok := t.Group(demoGroup)
	if !ok {
		return "", fmt.Errorf("group %s is not in the lab topology", demoGroup)
	}
	for _, r := range g.Resources {
		if s, ok := r.Settings[site].(*postgres.Settings); ok {
			pw, err := s.Password()
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s connect_timeout=1 application_name=siteflip-lab-probe",
				s.Host, s.Port, s.Database, s.User, pw), nil
		}
	}
	return "", fmt.Errorf("%s has no database in the lab", site)
}
