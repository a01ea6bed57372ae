// Command synccommit measures what synchronous replication costs a
// committing client. It builds a primary and a streaming standby on two
// loopback addresses in a temporary directory, and from one client commits
// N single-row INSERTs one after the other with asynchronous replication,
// then N more after EnableSync. Then it stops the standby and, R times,
// enables synchronous replication again, lets a commit block, and times
// DisableSync releasing it. It writes the commit latencies (median, p99,
// max), the added cost and the timings of the primitives into
// bench/RESULTS.md, and removes its servers and directory on exit,
// Ctrl-C included.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/siteflip/siteflip/bench/harness"
	"github.com/siteflip/siteflip/internal/driver/postgres"
)

const (
	primaryHost = "127.0.1.1"
	standbyHost = "127.0.2.1"
)

func main() {
	n := flag.Int("n", 2000, "commits measured in each mode")
	releases := flag.Int("releases", 20, "blocked commits released by DisableSync")
	out := flag.String("out", "bench/RESULTS.md", "results file; the synccommit section is replaced")
	flag.Parse()
	if *n < 1 || *releases < 1 {
		fmt.Fprintln(os.Stderr, "synccommit: -n and -releases must be at least 1")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		// The first signal cancels the run, which then cleans up; a second
		// one ends the process at once.
		stop()
	}()
	err := run(ctx, *n, *releases, *out)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "synccommit:", err)
		os.Exit(1)
	}
}

// pair is a primary and its standby in a directory of their own.
type pair struct {
	dir              string
	primary, standby postgres.Instance
}

func run(ctx context.Context, n, releases int, out string) (err error) {
	p, err := newPair()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := p.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	fmt.Printf("primary at %s, standby at %s, in %s\n", p.primary.Settings.Host, p.standby.Settings.Host, p.dir)
	if err := p.start(ctx); err != nil {
		return err
	}
	a, b := p.primary.Settings, p.standby.Settings
	if err := waitStreaming(ctx, a); err != nil {
		return err
	}

	conn, err := connect(ctx, a)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var version string
	if err := conn.QueryRow(ctx, `SHOW server_version`).Scan(&version); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE bench_commits (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	c := &client{conn: conn}

	if _, err := c.commits(ctx, n/10); err != nil { // warm-up
		return err
	}
	async, err := c.commits(ctx, n)
	if err != nil {
		return fmt.Errorf("asynchronous commits: %w", err)
	}
	report("asynchronous", async)

	var enables []time.Duration
	began := time.Now()
	if err := postgres.EnableSync(ctx, a, b.ApplicationName); err != nil {
		return err
	}
	enables = append(enables, time.Since(began))
	st, err := postgres.WaitSync(ctx, a, b.ApplicationName)
	if err != nil {
		return err
	}
	untilSync := time.Since(began)
	fmt.Printf("EnableSync %v, standby sync %v after the call: %s\n", enables[0].Round(time.Microsecond), untilSync.Round(time.Microsecond), st)

	if _, err := c.commits(ctx, n/10); err != nil {
		return err
	}
	sync, err := c.commits(ctx, n)
	if err != nil {
		return fmt.Errorf("synchronous commits: %w", err)
	}
	report("synchronous", sync)
	// The figures are only synchronous if the standby confirmed them all.
	if st, err := postgres.ReadSync(ctx, a); err != nil || !st.IsSync(b.ApplicationName) {
		return fmt.Errorf("after the synchronous run the standby is not sync: %s (%v)", st, err)
	}

	// Degrade: the standby is gone, a commit blocks, DisableSync releases it.
	if err := p.standby.Stop(ctx, "fast"); err != nil {
		return err
	}
	var disables, released []time.Duration
	for i := range releases {
		began := time.Now()
		if err := postgres.EnableSync(ctx, a, b.ApplicationName); err != nil {
			return err
		}
		enables = append(enables, time.Since(began))
		dis, rel, err := c.release(ctx, a)
		if err != nil {
			return fmt.Errorf("release %d: %w", i+1, err)
		}
		disables, released = append(disables, dis), append(released, rel)
	}
	fmt.Printf("DisableSync with a blocked commit: median %v; blocked commit returned a median %v after DisableSync began\n",
		median(disables).Round(time.Microsecond), median(released).Round(time.Microsecond))

	return write(out, writeArgs{
		n: n, version: version, fs: fsType(p.dir),
		async: async, sync: sync,
		enables: enables, untilSync: untilSync, disables: disables, released: released,
	})
}

// client is the one client that commits.
type client struct {
	conn *pgx.Conn
	id   int64
}

// commits runs n single-row INSERTs in autocommit and returns how long
// each took.
func (c *client) commits(ctx context.Context, n int) ([]time.Duration, error) {
	ds := make([]time.Duration, 0, n)
	for range n {
		c.id++
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		began := time.Now()
		_, err := c.conn.Exec(cctx, `INSERT INTO bench_commits (id) VALUES ($1)`, c.id)
		d := time.Since(began)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("commit %d: %w", c.id, err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// release commits in the background, waits until the primary shows the
// commit waiting for the standby, and calls DisableSync. It returns how
// long DisableSync took and how long after it began the commit returned.
func (c *client) release(ctx context.Context, a postgres.Settings) (disable, released time.Duration, err error) {
	c.id++
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	type result struct {
		at  time.Time
		err error
	}
	done := make(chan result, 1)
	go func() {
		_, err := c.conn.Exec(cctx, `INSERT INTO bench_commits (id) VALUES ($1)`, c.id)
		done <- result{time.Now(), err}
	}()
	defer func() {
		if err != nil {
			cancel()
			<-done
		}
	}()
	for {
		st, err := postgres.ReadSync(ctx, a)
		if err != nil {
			return 0, 0, err
		}
		if st.Waiting == 1 {
			break
		}
		select {
		case r := <-done:
			done <- r
			return 0, 0, fmt.Errorf("the commit returned (%v) although no standby is connected: %s", r.err, st)
		case <-time.After(5 * time.Millisecond):
		}
	}
	began := time.Now()
	if err := postgres.DisableSync(ctx, a); err != nil {
		return 0, 0, err
	}
	disable = time.Since(began)
	r := <-done
	if r.err != nil {
		return 0, 0, fmt.Errorf("the blocked commit failed: %w", r.err)
	}
	return disable, r.at.Sub(began), nil
}

func newPair() (*pair, error) {
	dir, err := os.MkdirTemp("", "siteflip-bench-synccommit-")
	if err != nil {
		return nil, err
	}
	p := &pair{dir: dir}
	// The servers run as the postgres OS user and must reach into it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return p, err
	}
	pwFile := filepath.Join(dir, "super.pw")
	if err := os.WriteFile(pwFile, []byte("bench-super\n"), 0o600); err != nil {
		return p, err
	}
	run := strconv.Itoa(os.Getpid()) // distinct cluster names per run
	settings := func(host, site string) (postgres.Settings, error) {
		port, err := freePort(host)
		if err != nil {
			return postgres.Settings{}, err
		}
		s := postgres.Settings{
			Host:         host,
			Port:         port,
			Database:     "siteflip",
			DataDir:      filepath.Join(dir, site, "data"),
			SocketDir:    filepath.Join(dir, site, "run"),
			PasswordFile: pwFile,
		}
		s.SetDefaults("synccommit-" + run + "-" + site)
		if errs := s.Check(); len(errs) > 0 {
			return s, fmt.Errorf("settings for %s: %v", site, errs)
		}
		return s, nil
	}
	for _, x := range []struct {
		inst       *postgres.Instance
		host, site string
	}{{&p.primary, primaryHost, "a"}, {&p.standby, standbyHost, "b"}} {
		s, err := settings(x.host, x.site)
		if err != nil {
			return p, err
		}
		if err := os.MkdirAll(filepath.Join(dir, x.site), 0o755); err != nil {
			return p, err
		}
		*x.inst = postgres.Instance{Settings: s, Site: s.ApplicationName, LogFile: filepath.Join(dir, x.site, "postgres.log")}
	}
	return p, nil
}

// start makes the primary and clones the standby, and starts both as
// their data directories say (Instance.Start).
func (p *pair) start(ctx context.Context) error {
	if err := p.primary.InitPrimary(ctx, "bench-super", "bench-repl"); err != nil {
		return err
	}
	if err := p.primary.Start(ctx); err != nil {
		return err
	}
	if err := p.standby.CloneStandby(ctx, p.primary.Settings, "bench-repl"); err != nil {
		return err
	}
	return p.standby.Start(ctx)
}

// close stops both servers at once and removes the directory. It runs
// after a cancelled run too, so it gets a context of its own.
func (p *pair) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for _, in := range []postgres.Instance{p.standby, p.primary} {
		if in.Settings.DataDir == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(in.Settings.DataDir, "PG_VERSION")); err != nil {
			continue // never made, or half made and not running
		}
		if err := in.Stop(ctx, "immediate"); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; %s is left in place", errors.Join(errs...), p.dir)
	}
	if err := os.RemoveAll(p.dir); err != nil {
		return err
	}
	fmt.Printf("servers stopped, %s removed\n", p.dir)
	return nil
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func connect(ctx context.Context, s postgres.Settings) (*pgx.Conn, error) {
	pw, err := s.Password()
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s user=%s application_name=synccommit-client connect_timeout=5",
		s.Host, s.Port, s.Database, s.User))
	if err != nil {
		return nil, err
	}
	cfg.Password = pw
	return pgx.ConnectConfig(ctx, cfg)
}

// waitStreaming waits until the primary lists one streaming standby.
func waitStreaming(ctx context.Context, s postgres.Settings) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		st, err := postgres.ReadSync(ctx, s)
		if err == nil && len(st.Standbys) == 1 && st.Standbys[0].State == "streaming" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the standby does not stream: %s (%v)", st, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func report(mode string, ds []time.Duration) {
	fmt.Printf("%-12s n=%d median %v p99 %v max %v\n", mode, len(ds),
		median(ds).Round(time.Microsecond), quantile(ds, 0.99).Round(time.Microsecond), slices.Max(ds).Round(time.Microsecond))
}

func median(ds []time.Duration) time.Duration {
	m, _ := harness.Stats(ds)
	return m
}

// quantile is the q-quantile of ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// fsType names the file system dir is on.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "an unknown file system"
	}
	switch uint64(st.Type) {
	case 0xEF53:
		return "ext4"
	case 0x01021994:
		return "tmpfs"
	case 0x794c7630:
		return "overlayfs"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	}
	return fmt.Sprintf("file system type %#x", st.Type)
}

type writeArgs struct {
	n                  int
	version, fs        string
	async, sync        []time.Duration
	enables            []time.Duration
	untilSync          time.Duration
	disables, released []time.Duration
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func write(path string, w writeArgs) error {
	var b strings.Builder
	b.WriteString("## Synchronous commit cost (`go run ./bench/synccommit`)\n\n")
	fmt.Fprintf(&b, "One machine (%s), PostgreSQL %s: a primary on %s and a streaming standby on %s, data dirs on %s with fsync on. "+
		"One client commits single-row INSERTs one after the other (autocommit): %d with asynchronous replication, then %d after EnableSync "+
		"(synchronous_commit = on: the standby has flushed the commit's WAL before the client hears of it). "+
		"Loopback, so the added cost is the standby's WAL flush and a local round trip; between sites, add the round-trip time to every commit.\n\n",
		harness.Machine(), w.version, primaryHost, standbyHost, w.fs, w.n, w.n)
	b.WriteString("| commit latency | n | median | p99 | max |\n| --- | --- | --- | --- | --- |\n")
	row := func(name string, ds []time.Duration) {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s |\n", name, len(ds), ms(median(ds)), ms(quantile(ds, 0.99)), ms(slices.Max(ds)))
	}
	row("asynchronous", w.async)
	row("synchronous (EnableSync)", w.sync)
	am, sm := median(w.async), median(w.sync)
	fmt.Fprintf(&b, "| added by synchronous replication | | +%s (×%.1f) | +%s | |\n\n",
		ms(sm-am), float64(sm)/float64(am), ms(quantile(w.sync, 0.99)-quantile(w.async, 0.99)))

	b.WriteString("| primitive | n | median | max |\n| --- | --- | --- | --- |\n")
	stat := func(name string, ds []time.Duration) {
		m, x := harness.Stats(ds)
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", name, len(ds), ms(m), ms(x))
	}
	stat("EnableSync (connect, ALTER SYSTEM, reload, new values seen)", w.enables)
	stat("EnableSync called → standby shown sync (WaitSync)", []time.Duration{w.untilSync})
	stat("DisableSync with a commit blocked for the stopped standby", w.disables)
	stat("DisableSync called → the blocked commit returns, committed", w.released)
	return harness.WriteSection(path, "synccommit", b.String())
}
