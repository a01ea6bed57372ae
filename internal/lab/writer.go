package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	Group string
	// URLs, when set, make it the web writer: it orders over HTTP, at
	// the lab's proxy or at whichever of the sites' apps answers.
	URLs     []string
	Interval time.Duration
	Out      io.Writer
	// Acked, when set, is told every acknowledged write: its id and the
	// server that acknowledged it (a test's loss check).
	Acked func(id int64, server string)
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
	if len(w.URLs) > 0 {
		c = newWebClient(w.URLs)
	} else if w.Group == newsGroup {
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
		if s, ok := c.(servedBy); ok {
			server = s.servedBy()
		}
		if server != before {
			fmt.Fprintf(w.Out, "%s writing to the primary at %s\n", stamp(), server)
			before = server
		}
		lastID = id
		acked++
		lastErr = ""
		if w.Acked != nil {
			w.Acked(id, server)
		}
	}
}

// servedBy is a client whose every write may be served by another
// server (a proxy's backend): servedBy names the last one.
type servedBy interface {
	servedBy() string
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
	_, err = conn.Exec(ctx, ordersDDL)
	return conn.PgConn().Conn().RemoteAddr().String(), err
}

func (c *shopClient) write(ctx context.Context, n int) (id int64, err error) {
	err = c.conn.QueryRow(ctx, insertOrder, items[n%len(items)], 100+n%5000).Scan(&id)
	return id, err
}

// The webshop's orders, as the demo writer and the lab's app write them.
const (
	ordersDDL = `CREATE TABLE IF NOT EXISTS orders (
		id bigserial PRIMARY KEY,
		placed_at timestamptz NOT NULL DEFAULT now(),
		item text NOT NULL,
		amount_cents integer NOT NULL)`
	insertOrder = `INSERT INTO orders (item, amount_cents) VALUES ($1, $2) RETURNING id`
)

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
	// With a network, clients use the service address the router
	// forwards to the active site.
	for _, r := range g.Resources {
		if s, ok := r.Settings[g.Sites[0]].(*bgp.Settings); ok && len(s.Prefixes) > 0 {
			if p, err := netip.ParsePrefix(s.Prefixes[0]); err == nil {
				hosts, ports = []string{p.Addr().String()}, ports[:1]
			}
		}
	}
	return dsn(first, hosts, ports, "target_session_attrs=read-write connect_timeout=2 application_name=siteflip-lab-writer")
}

// dsn is a connection string to the database of s, as its user, at
// hosts and ports (one or more of each), with params added.
func dsn(s *postgres.Settings, hosts, ports []string, params string) (string, error) {
	pw, err := s.Password()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=%s %s",
		strings.Join(hosts, ","), strings.Join(ports, ","), s.Database, s.User, pw, params), nil
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
	return siteDSN(t, site, "siteflip-lab-probe")
}

// siteDSN is the connection string of the lab's database at site alone,
// for the client named app.
func siteDSN(t *config.Topology, site, app string) (string, error) {
	g, ok := t.Group(demoGroup)
	if !ok {
		return "", fmt.Errorf("group %s is not in the lab topology", demoGroup)
	}
	for _, r := range g.Resources {
		if s, ok := r.Settings[site].(*postgres.Settings); ok {
			return dsn(s, []string{s.Host}, []string{fmt.Sprint(s.Port)}, "connect_timeout=1 application_name="+app)
		}
	}
	return "", fmt.Errorf("%s has no database in the lab", site)
}

// webClient orders over HTTP, through the lab's web stack: at the first of
// its URLs whose app says it is healthy (a proxy's URL alone, or every
// site's app, as a multi-host connection string names every database).
type webClient struct {
	urls []string
	http *http.Client
	url  string // the URL it orders at, once connected
	site string // the site whose app answered last
}

func newWebClient(urls []string) *webClient {
	return &webClient{urls: urls, http: &http.Client{Timeout: 2 * time.Second}}
}

func (c *webClient) what() string { return "orders" }

func (c *webClient) connect(ctx context.Context) (string, error) {
	var errs []error
	for _, u := range c.urls {
		site, err := c.healthy(ctx, u)
		if err == nil {
			c.url, c.site = u, site
			return c.servedBy(), nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// healthy asks the app at u whether it takes orders, and which site's
// app answered.
func (c *webClient) healthy(ctx context.Context, u string) (site string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/healthz", nil)
	if err != nil {
		return "", err
	}
	body, err := c.do(req, http.StatusOK)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(strings.TrimSpace(string(body)), "ok "), nil
}

func (c *webClient) write(ctx context.Context, n int) (int64, error) {
	order, _ := json.Marshal(orderRequest{Item: items[n%len(items)], AmountCents: 100 + n%5000})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/orders", bytes.NewReader(order))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	body, err := c.do(req, http.StatusCreated)
	if err != nil {
		return 0, err
	}
	var placed orderPlaced
	if err := json.Unmarshal(body, &placed); err != nil {
		return 0, fmt.Errorf("POST %s/orders: %w", c.url, err)
	}
	c.site = placed.Site
	return placed.ID, nil
}

// do sends req and returns the body of an answer with status want, or an
// error with the status and the reason the app gave.
func (c *webClient) do(req *http.Request, want int) ([]byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func (c *webClient) servedBy() string {
	if c.site == "" {
		return c.url
	}
	return c.site + " (" + c.url + ")"
}

func (c *webClient) close() {
	c.url, c.site = "", ""
	c.http.CloseIdleConnections()
}
