package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
)

// App is the web application of the lab's stack at one site (`siteflip
// lab app`): it takes the webshop's orders over HTTP and writes them to
// the database at its own site only, so that it serves only where that
// database accepts writes and the site's storage is read-write: at the
// group's active site. Its service resource starts it there and stops it
// everywhere else.
type App struct {
	Dir  string
	Site string
	Out  io.Writer
}

// orderRequest is the body of POST /orders; both fields may be left out.
type orderRequest struct {
	Item        string `json:"item"`
	AmountCents int    `json:"amount_cents"`
}

// orderPlaced is the answer to POST /orders: the order's id and the site
// whose app placed it.
type orderPlaced struct {
	ID   int64  `json:"id"`
	Site string `json:"site"`
}

// recentOrder is one order of GET /orders/recent.
type recentOrder struct {
	ID          int64     `json:"id"`
	PlacedAt    time.Time `json:"placed_at"`
	Item        string    `json:"item"`
	AmountCents int       `json:"amount_cents"`
}

// Run serves until ctx ends.
func (a App) Run(ctx context.Context) error {
	st, err := loadState(a.Dir)
	if err != nil {
		return err
	}
	addr, err := st.appAddr(a.Site)
	if err != nil {
		return err
	}
	t, err := config.Load(filepath.Join(st.Dir, "siteflip.yaml"), driver.Types())
	if err != nil {
		return err
	}
	dsn, err := siteDSN(t, a.Site, "siteflip-lab-app")
	if err != nil {
		return err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return err
	}
	db := &appDB{cfg: cfg}
	defer db.close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("the app at %s: %w", a.Site, err)
	}
	h := &appHandler{dir: st.Dir, site: a.Site, db: db, out: a.Out}
	srv := &http.Server{Handler: h.routes(), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(a.Out, "%s the app of %s at %s listens on http://%s; its database is %s:%d\n",
		stamp(), demoGroup, a.Site, addr, cfg.Host, cfg.Port)
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	fmt.Fprintf(a.Out, "%s the app at %s stopped\n", stamp(), a.Site)
	return err
}

// appDB is the app's one connection to its site's database, made when
// first needed and again after any error; requests take turns on it.
type appDB struct {
	cfg  *pgx.ConnConfig
	mu   sync.Mutex
	conn *pgx.Conn
}

// do runs f on the connection.
func (d *appDB) do(ctx context.Context, f func(*pgx.Conn) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil {
		conn, err := pgx.ConnectConfig(ctx, d.cfg)
		if err != nil {
			return err
		}
		d.conn = conn
	}
	err := f(d.conn)
	if err != nil {
		// Whatever it was (a server shut down, fenced, restarted as a
		// standby), the next request starts afresh.
		d.conn.Close(context.Background())
		d.conn = nil
	}
	return err
}

func (d *appDB) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		d.conn.Close(context.Background())
		d.conn = nil
	}
}

// appHandler answers the app's requests.
type appHandler struct {
	dir, site string
	db        *appDB
	out       io.Writer

	mu      sync.Mutex
	created bool   // the orders table exists
	health  string // what the last health check said, to log its changes
}

func (h *appHandler) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("POST /orders", h.placeOrder)
	mux.HandleFunc("GET /orders/recent", h.recentOrders)
	return mux
}

// requestTimeout bounds the database's part of one request.
const requestTimeout = 2 * time.Second

// healthz answers "ok SITE" when the app can take orders: its site's
// database accepts writes and its site's storage is read-write.
func (h *appHandler) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	err := h.ready(ctx)
	h.noteHealth(err)
	if err != nil {
		unavailable(w, err)
		return
	}
	io.WriteString(w, "ok "+h.site)
}

// ready says why the app cannot take orders, or nil.
func (h *appHandler) ready(ctx context.Context) error {
	if err := h.storageWritable(); err != nil {
		return err
	}
	var recovery bool
	var readOnly string
	err := h.db.do(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')").Scan(&recovery, &readOnly)
	})
	switch {
	case err != nil:
		return fmt.Errorf("the database at %s: %w", h.site, err)
	case recovery:
		return fmt.Errorf("the database at %s is a standby: it accepts no writes", h.site)
	case readOnly == "on":
		return fmt.Errorf("the database at %s is read-only", h.site)
	}
	return nil
}

func (h *appHandler) storageWritable() error {
	mode, err := readStorage(h.dir, h.site)
	if err != nil {
		return err
	}
	if mode != StorageReadWrite {
		return fmt.Errorf("the storage at %s is %s", h.site, mode)
	}
	return nil
}

// noteHealth logs the health when it changes.
func (h *appHandler) noteHealth(err error) {
	said := "ok"
	if err != nil {
		said = err.Error()
	}
	h.mu.Lock()
	changed := said != h.health
	h.health = said
	h.mu.Unlock()
	if changed {
		fmt.Fprintf(h.out, "%s health: %s\n", stamp(), said)
	}
}

// placeOrder inserts one order and answers 201 with its id and the site.
func (h *appHandler) placeOrder(w http.ResponseWriter, r *http.Request) {
	var req orderRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		http.Error(w, "the order is not JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.Item == "" {
		req.Item = items[0]
	}
	if req.AmountCents <= 0 {
		req.AmountCents = 100
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	// An order keeps its invoice on the site's storage.
	if err := h.storageWritable(); err != nil {
		unavailable(w, err)
		return
	}
	var id int64
	err := h.db.do(ctx, func(c *pgx.Conn) error {
		if err := h.ensureTable(ctx, c); err != nil {
			return err
		}
		return c.QueryRow(ctx, insertOrder, req.Item, req.AmountCents).Scan(&id)
	})
	if err != nil {
		unavailable(w, fmt.Errorf("the database at %s: %w", h.site, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(orderPlaced{ID: id, Site: h.site})
}

// ensureTable creates the orders table once, as the demo writer does.
func (h *appHandler) ensureTable(ctx context.Context, c *pgx.Conn) error {
	h.mu.Lock()
	created := h.created
	h.mu.Unlock()
	if created {
		return nil
	}
	if _, err := c.Exec(ctx, ordersDDL); err != nil {
		return err
	}
	h.mu.Lock()
	h.created = true
	h.mu.Unlock()
	return nil
}

// recentOrders answers the newest orders, newest first (?n=, default 10).
func (h *appHandler) recentOrders(w http.ResponseWriter, r *http.Request) {
	n := 10
	if s := r.URL.Query().Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 1000 {
			http.Error(w, "n must be a number from 1 to 1000", http.StatusBadRequest)
			return
		}
		n = v
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	var out []recentOrder
	err := h.db.do(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, "SELECT id, placed_at, item, amount_cents FROM orders ORDER BY id DESC LIMIT $1", n)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[recentOrder])
		return err
	})
	if err != nil {
		unavailable(w, fmt.Errorf("the database at %s: %w", h.site, err))
		return
	}
	if out == nil {
		out = []recentOrder{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// unavailable answers 503 with the reason.
func unavailable(w http.ResponseWriter, err error) {
	http.Error(w, err.Error(), http.StatusServiceUnavailable)
}

// The lab's storage "array": a file per site, DIR/SITE/storage.mode,
// holding its mode. The app writes only where it is read-write; the
// storage script of webshop turns it (`lab storage`).
const (
	StorageReadOnly  = "read-only"
	StorageReadWrite = "read-write"
)

func storagePath(dir, site string) string { return filepath.Join(dir, site, "storage.mode") }

// storageStuckPath, when the file exists, makes the storage of a site
// refuse to turn read-only, with the file's text as the reason: a test's
// failing fence (the rollback turns it read-write again).
func storageStuckPath(dir, site string) string { return filepath.Join(dir, site, "storage.stuck") }

func readStorage(dir, site string) (string, error) {
	b, err := os.ReadFile(storagePath(dir, site))
	if err != nil {
		return "", fmt.Errorf("the storage at %s: %w", site, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeStorage sets the mode of site's storage, atomically.
func writeStorage(dir, site, mode string) error {
	path := storagePath(dir, site)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(mode+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// SetStorage turns the storage of site read-only or read-write, as the
// storage script of webshop asks at the steps of a run, and says what it
// did; why names the step (from the script's SITEFLIP_* environment).
// Setting the mode it has already changes nothing.
func SetStorage(o Options, site, mode, why string) error {
	if mode != StorageReadOnly && mode != StorageReadWrite {
		return fmt.Errorf("storage mode %q: use %s or %s", mode, StorageReadOnly, StorageReadWrite)
	}
	st, err := loadState(o.Dir)
	if err != nil {
		return err
	}
	if _, err := st.appAddr(site); err != nil {
		return err
	}
	if why, err := os.ReadFile(storageStuckPath(st.Dir, site)); err == nil && mode == StorageReadOnly {
		return fmt.Errorf("the storage array at %s does not answer: %s", site, strings.TrimSpace(string(why)))
	}
	was, err := readStorage(st.Dir, site)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := writeStorage(st.Dir, site, mode); err != nil {
		return fmt.Errorf("the storage at %s: %w", site, err)
	}
	if why != "" {
		why = " (" + why + ")"
	}
	switch was {
	case mode:
		fmt.Fprintf(o.Out, "storage at %s: %s already%s\n", site, mode, why)
	case "":
		fmt.Fprintf(o.Out, "storage at %s: %s%s\n", site, mode, why)
	default:
		fmt.Fprintf(o.Out, "storage at %s: %s, was %s%s\n", site, mode, was, why)
	}
	return nil
}
