// Command recovery measures planned switchovers in the lab with a writer
// that gives every write a unique id and records every acknowledged commit
// (200 writes/s through the multi-host connection string the lab's demo
// writer uses). It runs N switchovers back and forth and writes to
// bench/RESULTS.md the longest gap in acknowledged writes per switchover
// and the acknowledged writes missing from the final primary. Failovers
// are measured by bench/failover.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/siteflip/siteflip/bench/harness"
	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/chaos"
	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/plan"
)

func main() {
	switchovers := flag.Int("switchovers", 20, "number of switchovers")
	exe := flag.String("siteflip", "bin/siteflip", "siteflip binary the lab runs")
	dir := flag.String("dir", "/tmp/siteflip-bench-recovery", "lab directory (must not exist)")
	out := flag.String("out", "bench/RESULTS.md", "results file; the recovery section is replaced")
	flag.Parse()
	if err := run(*switchovers, *exe, *dir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "recovery:", err)
		os.Exit(1)
	}
}

func run(switchovers int, exe, dir, out string) error {
	l, err := harness.StartLab(exe, dir)
	if err != nil {
		return err
	}
	defer l.Stop()
	t, c, ctx := l.Topology, l.Client, context.Background()
	dsn, err := lab.WriterDSN(t)
	if err != nil {
		return err
	}
	if err := harness.CreateWritesTable(ctx, dsn); err != nil {
		return err
	}
	w := &chaos.Writer{DSN: dsn + " connect_timeout=1", Table: chaos.WritesTable, Interval: 5 * time.Millisecond}
	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	go w.Run(wctx)
	time.Sleep(2 * time.Second)

	var gaps []time.Duration
	for i := 0; i < switchovers; i++ {
		st, err := harness.WaitProtected(ctx, c)
		if err != nil {
			return err
		}
		to := "antwerp"
		if st.ActiveSite == "antwerp" {
			to = "brussels"
		}
		start := time.Now()
		r, err := harness.Run(ctx, c, api.RunRequest{Group: "webshop", Action: plan.Switchover, To: to})
		if err != nil {
			return fmt.Errorf("switchover %d: %w", i+1, err)
		}
		time.Sleep(500 * time.Millisecond)
		gap := harness.GapIn(w.Acks(), start, time.Now())
		gaps = append(gaps, gap)
		fmt.Printf("switchover %2d → %-8s run %.2fs  longest write gap %.3fs\n", i+1, to, r.Ended.Sub(r.Started).Seconds(), gap.Seconds())
	}
	stopWriter()
	time.Sleep(200 * time.Millisecond)
	acks := w.Acks()
	missing, err := harness.Missing(ctx, dsn, chaos.WritesTable, acks)
	if err != nil {
		return err
	}
	lost, acked := len(missing), len(acks)
	fmt.Printf("%d writes acknowledged, %d lost\n", acked, lost)
	return write(out, gaps, lost)
}

func write(path string, gaps []time.Duration, lost int) error {
	var b strings.Builder
	b.WriteString("## Switchover (`go run ./bench/recovery`)\n\n")
	fmt.Fprintf(&b, "Lab on one machine (%s); a writer inserts unique ids at up to 200/s through `host=brussels,antwerp target_session_attrs=read-write` and records every acknowledged commit.\n\n", harness.Machine())
	b.WriteString("| measure | n | median | max | acknowledged writes lost | target |\n| --- | --- | --- | --- | --- | --- |\n")
	gm, gx := harness.Stats(gaps)
	fmt.Fprintf(&b, "| switchover: longest gap in acknowledged writes | %d | %.3fs | %.3fs | %d | ≤ 1 s / 0 |\n", len(gaps), gm.Seconds(), gx.Seconds(), lost)
	b.WriteString("\nFailovers are measured by `bench/failover` (section below).\n")
	return harness.WriteSection(path, "recovery", b.String())
}
