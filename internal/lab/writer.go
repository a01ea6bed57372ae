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
	Dir string
	// Group is the group written to: the webshop (PostgreSQL) when empty,
	// or news (MariaDB).
	Group    string
	Interval time.Duration
	Out      io.Writer
}

// demoClient is how the writer reaches one kind of database: connect
// (to the primary, named by the returned server), write one row (its id),
// close.
type demoClient interface {
	connect(ctx context.Context) (server string, err error)
	write(ctx context.Context, n int) (id int64, err error)
	close()
	// what the rows are, for the log: "orders", "articles".
	what() string
}

// Run writes until ctx ends.
func (w Writer) Run(ctx context.Context) error {
	t, err := config.Load(filepath.Join(w.Dir, "siteflip.yaml"), driver.Types())
	if err != nil {
		return err
	}
	var c demoClient
	if w.Group == newsGroup {
		if c, err = newNewsClient(t, w.Dir); err != nil {
			return err
		}
	} else {
		dsn, err := WriterDSN(t)
		if err != nil {
			return err
		}
		c = &shopClient{dsn: dsn}
	}
	var (
		connected      bool
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
			if connected {
				c.close()
			}
			fmt.Fprintf(w.Out, "%s writer stopped: %d %s acknowledged, %d failed\n", stamp(), acked, c.what(), failed)
			return nil
		case <-report.C:
			fmt.Fprintf(w.Out, "%s %d %s acknowledged (last id %d) via %s, %d failed%s\n", stamp(), acked, c.what(), lastID, orNone(server), failed, suffix(lastErr))
			continue
		case <-tick.C:
		}
		if !connected {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			server, err = c.connect(cctx)
			cancel()
			if err != nil {
				failed++
				lastErr = err.Error()
				continue
			}
			connected = true
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		id, err := c.write(wctx, acked)
		cancel()
		if err != nil {
			failed++
			lastErr = err.Error()
			c.close()
			connected, server = false, ""
			continue
		}
		if server != before {
			fmt.Fprintf(w.Out, "%s writing to the primary at %s\n", stamp(), server)
			before = server
		}
		lastID = id
		acked++
		lastErr = ""
	}
}

// shopClient writes orders to the webshop group through its multi-host
// connection string.
type shopClient struct {
	dsn  string
	conn *pgx.Conn
}

func (c *shopClient) what() string { return "orders" }

func (c *shopClient) connect(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		return "", err
	}
	c.conn = conn
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS orders (
		id bigserial PRIMARY KEY,
		placed_at timestamptz NOT NULL DEFAULT now(),
		item text NOT NULL,
		amount_cents integer NOT NULL)`)
	return conn.PgConn().Conn().RemoteAddr().String(), err
}

func (c *shopClient) write(ctx context.Context, n int) (id int64, err error) {
	err = c.conn.QueryRow(ctx, `INSERT INTO orders (item, amount_cents) VALUES ($1, $2) RETURNING id`,
		items[n%len(items)], 100+n%5000).Scan(&id)
	return id, err
}

func (c *shopClient) close() { c.conn.Close(context.Background()) }

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
