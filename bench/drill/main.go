// Command drill measures drills of the lab's webshop group (loopback lab)
// with a writer that gives every write a unique id (up to 200 writes/s
// through the multi-host connection string the lab's demo writer uses):
//
//   - each drill end to end (clone, start, checks, teardown), and its
//     steps, median and max over N drills;
//   - the writer's failures and longest gap between acknowledged writes
//     during each drill, against the same span just before it without one;
//   - the standby's replication lag while the drill runs.
//
// Figures go to bench/RESULTS.md (section drill).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/siteflip/siteflip/bench/harness"
	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/chaos"
	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

func main() {
	drills := flag.Int("drills", 10, "number of drills")
	exe := flag.String("siteflip", "bin/siteflip", "siteflip binary the lab runs")
	dir := flag.String("dir", "/tmp/siteflip-bench-drill", "lab directory (must not exist)")
	out := flag.String("out", "bench/RESULTS.md", "results file; the drill section is replaced")
	flag.Parse()
	if err := run(*drills, *exe, *dir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "drill:", err)
		os.Exit(1)
	}
}

// trial is one drill and the same span of production without one.
type trial struct {
	total          time.Duration
	steps          map[plan.Kind]time.Duration
	dataAge        string
	failed, before int
	gap, gapBefore time.Duration
	lag            float64 // the standby's largest lag during the drill, seconds
}

func run(n int, exe, dir, out string) error {
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

	var trials []trial
	for i := range n {
		if _, err := harness.WaitProtected(ctx, c); err != nil {
			return err
		}
		// Production without a drill, for as long as the last drill took.
		span := 5 * time.Second
		if len(trials) > 0 {
			span = trials[len(trials)-1].total
		}
		f0 := w.Failed()
		b0 := time.Now()
		time.Sleep(span)
		tr := trial{before: w.Failed() - f0, gapBefore: harness.GapIn(w.Acks(), b0, time.Now())}

		lagCtx, stopLag := context.WithCancel(ctx)
		var lagMu sync.Mutex
		go watchLag(lagCtx, c, func(s float64) { lagMu.Lock(); tr.lag = max(tr.lag, s); lagMu.Unlock() })
		f1, start := w.Failed(), time.Now()
		r, err := harness.Run(ctx, c, api.RunRequest{Group: "webshop", Action: plan.Drill})
		stopLag()
		if err != nil {
			return fmt.Errorf("drill %d: %w", i+1, err)
		}
		if r.Verification != plan.Verified {
			return fmt.Errorf("drill %d: checks: %s", i+1, r.Verification)
		}
		tr.failed, tr.gap = w.Failed()-f1, harness.GapIn(w.Acks(), start, time.Now())
		tr.total = r.Ended.Sub(r.Started)
		tr.steps = map[plan.Kind]time.Duration{}
		for j, s := range r.Plan.Steps {
			st := r.Steps[j]
			tr.steps[s.Kind] += st.Ended.Sub(st.Started)
			if s.Kind == plan.Clone {
				tr.dataAge = st.Output["data_age"]
			}
		}
		lagMu.Lock()
		trials = append(trials, tr)
		lagMu.Unlock()
		fmt.Printf("drill %2d: %.2fs (clone %.2fs start %.2fs checks %.2fs teardown %.2fs) data age %ss; writer: %d failures, longest gap %.3fs (before: %d, %.3fs); standby lag ≤ %.3fs\n",
			i+1, tr.total.Seconds(), tr.steps[plan.Clone].Seconds(), tr.steps[plan.Start].Seconds(), tr.steps[plan.Check].Seconds(), tr.steps[plan.Teardown].Seconds(),
			tr.dataAge, tr.failed, tr.gap.Seconds(), tr.before, tr.gapBefore.Seconds(), tr.lag)
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
	return write(out, trials, lost)
}

// watchLag reports the standby's replication lag every 200 ms.
func watchLag(ctx context.Context, c *api.Client, report func(seconds float64)) {
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.Status(qctx)
		cancel()
		if err == nil && len(st.Groups) > 0 {
			report(standbyLag(st.Groups[0]))
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func standbyLag(g status.GroupStatus) float64 {
	for _, r := range g.Resources {
		for _, s := range r.Sites {
			if s.Site != g.ActiveSite && s.LagSeconds != nil {
				return *s.LagSeconds
			}
		}
	}
	return 0
}

func write(path string, trials []trial, lost int) error {
	pick := func(f func(trial) time.Duration) []time.Duration {
		var out []time.Duration
		for _, t := range trials {
			out = append(out, f(t))
		}
		return out
	}
	row := func(b *strings.Builder, what string, ds []time.Duration, target string) {
		m, x := harness.Stats(ds)
		fmt.Fprintf(b, "| %s | %d | %.3fs | %.3fs | %s |\n", what, len(ds), m.Seconds(), x.Seconds(), target)
	}
	var b strings.Builder
	b.WriteString("## Drill (`go run ./bench/drill`)\n\n")
	fmt.Fprintf(&b, "Loopback lab on one machine (%s); `siteflip drill webshop` at the standby site antwerp: `pg_basebackup` of the standby, the copy started on antwerp's bubble address, the lab's two checks (recent orders, the name), teardown. A writer inserts unique ids at up to 200/s through `host=brussels,antwerp target_session_attrs=read-write` throughout; each drill is compared with the same span of production just before it.\n\n", harness.Machine())
	b.WriteString("| measure | n | median | max | target |\n| --- | --- | --- | --- | --- |\n")
	row(&b, "drill end to end", pick(func(t trial) time.Duration { return t.total }), "≤ 10 s median")
	for _, k := range []plan.Kind{plan.Clone, plan.Start, plan.Check, plan.Teardown} {
		row(&b, "step: "+string(k), pick(func(t trial) time.Duration { return t.steps[k] }), "")
	}
	row(&b, "writer: longest gap during a drill", pick(func(t trial) time.Duration { return t.gap }), "no more than without")
	row(&b, "writer: longest gap, same span without a drill", pick(func(t trial) time.Duration { return t.gapBefore }), "")
	failed, before, maxLag := 0, 0, 0.0
	var ages []string
	for _, t := range trials {
		failed, before, maxLag = failed+t.failed, before+t.before, max(maxLag, t.lag)
		ages = append(ages, t.dataAge)
	}
	slices.Sort(ages)
	fmt.Fprintf(&b, "\nWriter failures during drills: %d (without: %d); acknowledged writes lost: %d. Largest standby lag seen during a drill: %.3f s. Data age of the copies (the drill's RPO), seconds: %s.\n",
		failed, before, lost, maxLag, strings.Join(ages, ", "))
	return harness.WriteSection(path, "drill", b.String())
}
