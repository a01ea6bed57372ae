// Command semisync measures what semi-synchronous replication costs a
// committing MariaDB client: it starts the lab with the news group on
// MariaDB (root), asynchronous, and from one client commits N single-row
// INSERTs one after the other at the primary; then the same in a lab
// whose group is synchronous, once the agent has recorded the standby as
// confirming. It writes the commit latencies (median, p99, max) and the
// added cost into bench/RESULTS.md (section semisync).
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/siteflip/siteflip/bench/harness"
	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/status"
)

func main() {
	n := flag.Int("n", 2000, "commits measured in each mode")
	exe := flag.String("siteflip", "bin/siteflip", "siteflip binary the lab runs")
	dir := flag.String("dir", "/tmp/siteflip-bench-semisync", "lab directory (must not exist)")
	out := flag.String("out", "bench/RESULTS.md", "results file; the semisync section is replaced")
	flag.Parse()
	if err := lab.MariaDBAvailable(); err != nil {
		fmt.Fprintln(os.Stderr, "semisync:", err)
		os.Exit(1)
	}
	var lat [2][]time.Duration
	for i, sync := range []bool{false, true} {
		var err error
		if lat[i], err = measure(*exe, *dir, sync, *n); err != nil {
			fmt.Fprintln(os.Stderr, "semisync:", err)
			os.Exit(1)
		}
	}
	if err := write(*out, *n, lat); err != nil {
		fmt.Fprintln(os.Stderr, "semisync:", err)
		os.Exit(1)
	}
}

// measure starts a lab, commits n times at the news primary and stops it.
func measure(exe, dir string, synchronous bool, n int) ([]time.Duration, error) {
	exe, err := filepath.Abs(exe)
	if err != nil {
		return nil, err
	}
	o := lab.Options{Dir: dir, Exe: exe, Out: io.Discard, DB: lab.DBMariaDB, Synchronous: synchronous}
	ctx := context.Background()
	if err := lab.Up(ctx, o); err != nil {
		return nil, err
	}
	defer lab.Down(o)
	t, c, err := lab.Open(dir)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := c.Wait(wctx, 200*time.Millisecond, func(st status.Status) bool {
		g := st.Groups[0]
		if g.State != status.StateProtected {
			return false
		}
		sr := g.Resources[0].Synchronous
		return !synchronous || (sr != nil && sr.State == "sync")
	}); err != nil {
		return nil, fmt.Errorf("lab (synchronous %v) not ready: %w", synchronous, err)
	}
	dsns, err := lab.NewsDSNs(t, dir)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", dsns["brussels"])
	if err != nil {
		return nil, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS bench_commits (id BIGINT PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		return nil, err
	}
	out := make([]time.Duration, 0, n)
	for i := range n {
		began := time.Now()
		if _, err := conn.ExecContext(ctx, "INSERT INTO bench_commits VALUES (?)", i); err != nil {
			return nil, fmt.Errorf("commit %d (synchronous %v): %w", i, synchronous, err)
		}
		out = append(out, time.Since(began))
	}
	return out, nil
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func write(path string, n int, lat [2][]time.Duration) error {
	var b strings.Builder
	b.WriteString("## MariaDB semi-synchronous commit cost (`go run ./bench/semisync`, root)\n\n")
	fmt.Fprintf(&b, "The lab's news group on MariaDB 10.11 (%s), primary at brussels, replica at antwerp, both on loopback; one client commits %d single-row INSERTs one after the other at the primary, first with the group asynchronous, then in a lab whose group is synchronous (AFTER_SYNC semi-synchronous replication, the agent's record saying the standby confirms). Both servers sync their binlog and the replica its relay log at every commit (`sync_binlog=1`, `sync_relay_log=1`, `innodb_flush_log_at_trx_commit=1`).\n\n", harness.Machine(), n)
	b.WriteString("| mode | median | p99 | max |\n| --- | --- | --- | --- |\n")
	for i, name := range []string{"asynchronous", "semi-synchronous"} {
		fmt.Fprintf(&b, "| %s | %.3f ms | %.3f ms | %.3f ms |\n", name, ms(pct(lat[i], 0.5)), ms(pct(lat[i], 0.99)), ms(pct(lat[i], 1)))
	}
	fmt.Fprintf(&b, "\nSemi-synchronous replication adds %.3f ms to the median commit here (plus the round trip between real sites).\n", ms(pct(lat[1], 0.5)-pct(lat[0], 0.5)))
	return harness.WriteSection(path, "semisync", b.String())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
