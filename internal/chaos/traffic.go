// Package chaos drives the lab through failures — a site killed, cut off,
// behind a lossy link, a witness or standby lost, a controller or an agent
// killed — and checks what clients saw: a writer that gives every write a
// unique id and records which were acknowledged, and a probe that asks
// every database every 50 ms whether it accepts writes. The scenarios are
// in chaos_test.go (build tag chaos); the benchmarks reuse the writer and
// the probe.
package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Ack is one acknowledged write: its id, when the commit returned, and the
// server that acknowledged it (its cluster_name: the site, even when the
// writer reaches it through a service address both sites have).
type Ack struct {
	ID     int64
	At     time.Time
	Server string
}

// Writer inserts rows with increasing ids into table through DSN (a
// multi-host string with target_session_attrs=read-write, as a real
// application would use) every Interval, reconnecting after any error.
type Writer struct {
	DSN      string
	Table    string
	Interval time.Duration
	// Setup runs on every new connection (a client that turns off
	// synchronous commit); IDBase offsets the ids, so that two writers
	// share a table.
	Setup  string
	IDBase int64
	// Dial, when set, replaces DSN: it connects to whichever server accepts
	// writes (a MariaDB group, whose clients pick the writable server).
	Dial func(ctx context.Context) (Session, error)

	mu     sync.Mutex
	acks   []Ack
	failed int
}

// connectTimeout is how long the writer waits for a connection before it
// tries again, as a client tuned for failover does: a connection attempt
// made while no site announces the service address is not answered, and
// the kernel would only send its SYN again a second later.
const connectTimeout = 250 * time.Millisecond

// Run writes until ctx ends.
func (w *Writer) Run(ctx context.Context) {
	var conn Session
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	dial := w.Dial
	if dial == nil {
		dial = func(ctx context.Context) (Session, error) { return dialPostgres(ctx, w.DSN, w.Setup) }
	}
	tick := time.NewTicker(w.Interval)
	defer tick.Stop()
	id := w.IDBase
	for ctx.Err() == nil {
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, connectTimeout)
			c, err := dial(cctx)
			cancel()
			if err != nil {
				w.fail()
				sleep(ctx, 50*time.Millisecond)
				continue
			}
			conn = c
		}
		id++
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := conn.Insert(wctx, w.Table, id)
		cancel()
		now := time.Now()
		if err != nil {
			w.fail()
			conn.Close()
			conn = nil
			continue
		}
		w.mu.Lock()
		w.acks = append(w.acks, Ack{ID: id, At: now, Server: conn.Server()})
		w.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

func (w *Writer) fail() {
	w.mu.Lock()
	w.failed++
	w.mu.Unlock()
}

// Acks returns the acknowledged writes so far, in order.
func (w *Writer) Acks() []Ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Ack(nil), w.acks...)
}

// Failed is how many writes or connections failed.
func (w *Writer) Failed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

// Session is one connection of the writer or the probe to a database.
type Session interface {
	// Insert writes id into table (the writer's table).
	Insert(ctx context.Context, table string, id int64) error
	// Mark writes a row naming site into table (the probe's table).
	Mark(ctx context.Context, table, site string) error
	// Server names the server: its site.
	Server() string
	Close()
}

// pgSession is a PostgreSQL connection.
type pgSession struct {
	c      *pgx.Conn
	server string
}

// dialPostgres connects with dsn and runs setup on the new connection.
func dialPostgres(ctx context.Context, dsn, setup string) (Session, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if setup != "" {
		if _, err := c.Exec(ctx, setup); err != nil {
			c.Close(context.Background())
			return nil, err
		}
	}
	s := &pgSession{c: c, server: remote(c)}
	var name string
	if err := c.QueryRow(ctx, "SELECT current_setting('cluster_name')").Scan(&name); err == nil && name != "" {
		s.server = name
	}
	return s, nil
}

func (s *pgSession) Insert(ctx context.Context, table string, id int64) error {
	_, err := s.c.Exec(ctx, "INSERT INTO "+table+" (id) VALUES ($1)", id)
	return err
}

func (s *pgSession) Mark(ctx context.Context, table, site string) error {
	_, err := s.c.Exec(ctx, "INSERT INTO "+table+" (site) VALUES ($1)", site)
	return err
}

func (s *pgSession) Server() string { return s.server }
func (s *pgSession) Close()         { s.c.Close(context.Background()) }

func remote(c *pgx.Conn) string {
	if a := c.PgConn().Conn().RemoteAddr(); a != nil {
		if host, _, err := net.SplitHostPort(a.String()); err == nil {
			return host
		}
		return a.String()
	}
	return "?"
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Sample is one probe of one database: whether a write was accepted
// between Start and End.
type Sample struct {
	Site       string
	Start, End time.Time
	Writable   bool
}

// Probe asks every database (site → DSN of that one server) every
// Interval whether it accepts a write, with synchronous_commit = local:
// it asks whether the server accepts writes, not whether its standby
// confirms them.
type Probe struct {
	Targets  map[string]string
	Table    string
	Interval time.Duration
	// Dial, when set, connects to the server of one site instead (a
	// MariaDB group).
	Dial func(ctx context.Context, site string) (Session, error)

	mu      sync.Mutex
	samples []Sample
}

// Run probes until ctx ends.
func (p *Probe) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for site, dsn := range p.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.probe(ctx, site, dsn)
		}()
	}
	wg.Wait()
}

func (p *Probe) probe(ctx context.Context, site, dsn string) {
	var conn Session
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	dial := func(ctx context.Context) (Session, error) {
		if p.Dial != nil {
			return p.Dial(ctx, site)
		}
		// It asks whether the server accepts writes, not whether its
		// standby confirms them.
		return dialPostgres(ctx, dsn, "SET synchronous_commit = local")
	}
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	for ctx.Err() == nil {
		start := time.Now()
		ok := false
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			if c, err := dial(cctx); err == nil {
				conn = c
			}
			cancel()
		}
		if conn != nil {
			wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			err := conn.Mark(wctx, p.Table, site)
			cancel()
			if err == nil {
				ok = true
			} else {
				conn.Close()
				conn = nil
			}
		}
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		p.samples = append(p.samples, Sample{Site: site, Start: start, End: time.Now(), Writable: ok})
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// Samples returns the samples so far.
func (p *Probe) Samples() []Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Sample(nil), p.samples...)
}

// TwoWritable returns pairs of samples of different sites that both
// accepted a write and whose intervals overlap: moments when two
// databases accepted writes at the same time.
func TwoWritable(samples []Sample) [][2]Sample {
	var w []Sample
	for _, s := range samples {
		if s.Writable {
			w = append(w, s)
		}
	}
	sort.Slice(w, func(i, j int) bool { return w[i].Start.Before(w[j].Start) })
	var out [][2]Sample
	for i := range w {
		for j := i + 1; j < len(w) && w[j].Start.Before(w[i].End); j++ {
			if w[j].Site != w[i].Site {
				out = append(out, [2]Sample{w[i], w[j]})
			}
		}
	}
	return out
}

// Lost returns the acknowledged writes whose ids are not in present.
func Lost(acks []Ack, present map[int64]bool) []Ack {
	var out []Ack
	for _, a := range acks {
		if !present[a.ID] {
			out = append(out, a)
		}
	}
	return out
}

// FirstAckAfter returns the first write acknowledged after t by a server
// other than not.
func FirstAckAfter(acks []Ack, t time.Time, not string) (Ack, bool) {
	for _, a := range acks {
		if a.At.After(t) && a.Server != not {
			return a, true
		}
	}
	return Ack{}, false
}

// LastAckBy returns the last write acknowledged by server.
func LastAckBy(acks []Ack, server string) (Ack, bool) {
	for i := len(acks) - 1; i >= 0; i-- {
		if acks[i].Server == server {
			return acks[i], true
		}
	}
	return Ack{}, false
}

// LongestGap is the longest time between two consecutive acknowledged
// writes from after on.
func LongestGap(acks []Ack, after time.Time) time.Duration {
	var longest time.Duration
	var prev time.Time
	for _, a := range acks {
		if a.At.Before(after) {
			prev = a.At
			continue
		}
		if !prev.IsZero() && a.At.Sub(prev) > longest {
			longest = a.At.Sub(prev)
		}
		prev = a.At
	}
	return longest
}

// Describe is a one-line account of a sample pair, for errors.
func Describe(p [2]Sample) string {
	return fmt.Sprintf("%s writable %s–%s and %s writable %s–%s",
		p[0].Site, p[0].Start.Format("15:04:05.000"), p[0].End.Format("15:04:05.000"),
		p[1].Site, p[1].Start.Format("15:04:05.000"), p[1].End.Format("15:04:05.000"))
}

func countLines(path, substr string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(data), substr)
}
