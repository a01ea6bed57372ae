// Command stack measures the lab's web stack (webshop as storage, the app
// per site and HAProxy in front, lab.Options.Stack) as its clients see it:
// an HTTP client orders through the proxy every 10 ms (POST /orders, the
// lab's web writer) and records every acknowledged order, its id, the site
// whose app placed it and when. In the loopback lab:
//
//   - N switchovers back and forth: the longest gap between two
//     acknowledged orders around each, and the acknowledged orders missing
//     from the database afterwards (none may be);
//   - N power cuts at the active site (lab.Disaster: agent, etcd member,
//     database and app killed at once): time from the cut to the first order
//     acknowledged by the other site's app (RTO). The lost site is healed
//     and the group reprotected before the next cut, so the cuts alternate.
//
// The switchovers come first, so that their loss check reads a history no
// power cut has touched (a power cut may lose what the asynchronous
// standby had not received). Figures go to stdout, to a results file and to
// bench/RESULTS.md (section stack).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/bench/harness"
	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/chaos"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver/haproxy"
	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

func main() {
	n := flag.Int("n", 10, "switchovers, and power cuts at the active site")
	exe := flag.String("siteflip", "bin/siteflip", "siteflip binary the lab runs")
	dir := flag.String("dir", "/tmp/siteflip-bench-stack", "lab directory (must not exist)")
	out := flag.String("out", "bench/stack/results.txt", "results file; the stack section is replaced")
	results := flag.String("results", "bench/RESULTS.md", "the benchmarks' results; the stack section is replaced (\"\": leave it)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *n, *exe, *dir, *out, *results); err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}

// interval is how often the client orders.
const interval = 10 * time.Millisecond

// bench is a lab with its web stack and the client ordering through it.
type bench struct {
	lab    lab.Options
	topo   *config.Topology
	client *api.Client
	orders *orders
}

type result struct {
	gaps, runs    []time.Duration // per switchover: longest gap between orders; the run
	switchLoads   []float64
	switchOrders  int // acknowledged during the switchovers
	switchLost    []chaos.Ack
	rtos          []time.Duration // per power cut: cut → first order at the other site
	detect, ended []time.Duration // cut → the failover started; cut → it ended
	atController  int             // cuts at the site that held the controller
	cutLoads      []float64
	cutOrders     int
	cutLost       []chaos.Ack
}

func run(ctx context.Context, n int, exe, dir, out, results string) (err error) {
	exe, err = filepath.Abs(exe)
	if err != nil {
		return err
	}
	if _, err := haproxy.Binary(); err != nil {
		return fmt.Errorf("the bench orders through the lab's HAProxy: %w (apt-get install haproxy)", err)
	}
	o := lab.Options{Dir: dir, Exe: exe, Out: io.Discard, Stack: true,
		// Failing over again and again is the point here: no flap damping.
		FlapPeriod: time.Second}
	if err := lab.Up(ctx, o); errors.Is(err, lab.ErrRunning) {
		return err // not ours to stop
	} else if err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			err = fmt.Errorf("%w (the lab's logs: %s)", err, harness.KeepLogs(dir))
			lab.Down(o) // what Up left behind
		}
		return err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w (the lab's logs: %s)", err, harness.KeepLogs(dir))
		}
		if derr := lab.Down(o); derr != nil {
			fmt.Fprintln(os.Stderr, "stack: lab down:", derr)
		}
	}()
	b := &bench{lab: o}
	if b.topo, b.client, err = lab.Open(dir); err != nil {
		return err
	}
	defer b.client.Close()
	urls, err := lab.StackURLs(dir)
	if err != nil {
		return err
	}
	if len(urls) != 1 {
		return fmt.Errorf("the lab has no proxy to order through (its stack's URLs: %v)", urls)
	}
	log, err := os.Create(filepath.Join(dir, "bench-orders.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	b.orders = &orders{}
	w := lab.Writer{Dir: dir, URLs: urls, Interval: interval, Out: log, Acked: b.orders.add}
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan error, 1)
	go func() { writerDone <- w.Run(wctx) }()
	defer func() {
		stopWriter()
		if werr := <-writerDone; werr != nil && err == nil {
			err = fmt.Errorf("web writer: %w", werr)
		}
	}()
	fmt.Printf("lab up in %s; ordering through %s every %s\n", dir, urls[0], interval)

	var r result
	began := time.Now()
	for i := range n {
		if err := b.switchover(ctx, &r, i); err != nil {
			return fmt.Errorf("switchover %d: %w", i+1, err)
		}
	}
	switched := b.orders.since(began)
	r.switchOrders = len(switched)
	if r.switchLost, err = b.missing(ctx, switched); err != nil {
		return err
	}
	fmt.Printf("switchovers: %d orders acknowledged, %d missing from the database\n", len(switched), len(r.switchLost))

	began = time.Now()
	for i := range n {
		if err := b.powerCut(ctx, &r, i); err != nil {
			return fmt.Errorf("power cut %d: %w", i+1, err)
		}
	}
	if _, err := harness.WaitProtected(ctx, b.client); err != nil {
		return err
	}
	cut := b.orders.since(began)
	r.cutOrders = len(cut)
	if r.cutLost, err = b.missing(ctx, cut); err != nil {
		return err
	}
	fmt.Printf("power cuts: %d orders acknowledged, %d missing from the database\n", len(cut), len(r.cutLost))

	body := section(r, urls[0])
	fmt.Print("\n" + body)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := harness.WriteSection(out, "stack", body); err != nil {
		return err
	}
	if results != "" {
		return harness.WriteSection(results, "stack", body)
	}
	return nil
}

// switchover moves the group to its other site with the client ordering:
// the longest gap between acknowledged orders from the start of the run
// until a second after the first order placed at the new site.
func (b *bench) switchover(ctx context.Context, r *result, i int) error {
	g, err := harness.WaitProtected(ctx, b.client)
	if err != nil {
		return err
	}
	from, to := g.ActiveSite, other(g.ActiveSite)
	if _, err := b.orders.wait(ctx, time.Now(), func(a chaos.Ack) bool { return a.Server == from }); err != nil {
		return fmt.Errorf("no order placed at %s: %w", from, err)
	}
	load := harness.Load()
	began := time.Now()
	run, err := harness.Run(ctx, b.client, api.RunRequest{Group: g.Name, Action: plan.Switchover, To: to})
	if err != nil {
		return err
	}
	first, err := b.orders.wait(ctx, began, func(a chaos.Ack) bool { return a.Server == to })
	if err != nil {
		return fmt.Errorf("no order placed at %s after the switchover: %w", to, err)
	}
	end := first.At.Add(time.Second)
	if err := sleepUntil(ctx, end); err != nil {
		return err
	}
	gap := harness.GapIn(b.orders.since(began), began, end)
	r.gaps, r.runs, r.switchLoads = append(r.gaps, gap), append(r.runs, run.Ended.Sub(run.Started)), append(r.switchLoads, load)
	fmt.Printf("switchover %2d → %-8s run %.3fs  first order at %s %.3fs after the start  longest gap %.3fs  load %.1f\n",
		i+1, to, run.Ended.Sub(run.Started).Seconds(), to, first.At.Sub(began).Seconds(), gap.Seconds(), load)
	return nil
}

// powerCut cuts the power at the active site and measures the time until
// the other site's app places an order through the proxy; then it brings
// the site back and reprotects the group.
func (b *bench) powerCut(ctx context.Context, r *result, i int) error {
	g, err := harness.WaitProtected(ctx, b.client)
	if err != nil {
		return err
	}
	victim := g.ActiveSite
	if _, err := b.orders.wait(ctx, time.Now(), func(a chaos.Ack) bool { return a.Server == victim }); err != nil {
		return fmt.Errorf("no order placed at %s: %w", victim, err)
	}
	st, err := b.client.Status(ctx)
	if err != nil {
		return err
	}
	atController := st.Controller == victim
	load := harness.Load()
	cut := time.Now()
	if err := lab.Disaster(b.lab, victim); err != nil {
		return err
	}
	first, err := b.orders.wait(ctx, cut, func(a chaos.Ack) bool { return a.Server != victim })
	if err != nil {
		return fmt.Errorf("no order placed at the other site after the power cut at %s: %w", victim, err)
	}
	rto := first.At.Sub(cut)
	failover, err := b.backAndReprotect(ctx, g.Name, victim, cut)
	if err != nil {
		return err
	}
	r.rtos, r.cutLoads = append(r.rtos, rto), append(r.cutLoads, load)
	r.detect, r.ended = append(r.detect, failover.Started.Sub(cut)), append(r.ended, failover.Ended.Sub(cut))
	if atController {
		r.atController++
	}
	fmt.Printf("power cut  %2d at %-8s controller there %-5v  failover started %.3fs, ended %.3fs  first order at %s %.3fs (RTO)  load %.1f\n",
		i+1, victim, atController, failover.Started.Sub(cut).Seconds(), failover.Ended.Sub(cut).Seconds(), first.Server, rto.Seconds(), load)
	return nil
}

// backAndReprotect heals victim once the failover after the power cut
// there has ended, and reprotects the group toward it
// (harness.BackAndReprotect). It returns the failover's run.
func (b *bench) backAndReprotect(ctx context.Context, group, victim string, cut time.Time) (plan.Run, error) {
	var failover plan.Run
	err := harness.BackAndReprotect(ctx, b.client, group, victim, other(victim), func() error {
		var err error
		if failover, err = b.failoverSince(ctx, group, cut); err != nil {
			return err
		}
		return lab.Heal(ctx, b.lab, victim)
	})
	return failover, err
}

// failoverSince is the failover of group that started after t.
func (b *bench) failoverSince(ctx context.Context, group string, t time.Time) (plan.Run, error) {
	rs, err := b.client.Runs(ctx, group)
	if err != nil {
		return plan.Run{}, err
	}
	for _, r := range rs {
		if r.Request.Action == plan.Failover && r.Started.After(t) && r.State == plan.RunSucceeded {
			return r, nil
		}
	}
	return plan.Run{}, fmt.Errorf("no successful failover of %s since %s", group, t.Format(time.TimeOnly))
}

// missing returns the acknowledged orders the group's primary does not
// hold.
func (b *bench) missing(ctx context.Context, acks []chaos.Ack) ([]chaos.Ack, error) {
	dsn, err := lab.WriterDSN(b.topo)
	if err != nil {
		return nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return harness.Missing(qctx, dsn, "orders", acks)
}

// orders are the orders the client placed and had acknowledged, in order:
// the order's id, when the answer came, and the site whose app placed it.
type orders struct {
	mu   sync.Mutex
	acks []chaos.Ack
}

// add is the web writer's Acked: server is "SITE (URL)".
func (o *orders) add(id int64, server string) {
	at := time.Now()
	site, _, _ := strings.Cut(server, " (")
	o.mu.Lock()
	defer o.mu.Unlock()
	o.acks = append(o.acks, chaos.Ack{ID: id, At: at, Server: site})
}

// since returns the orders acknowledged from t on.
func (o *orders) since(t time.Time) []chaos.Ack {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, a := range o.acks {
		if !a.At.Before(t) {
			return append([]chaos.Ack(nil), o.acks[i:]...)
		}
	}
	return nil
}

// wait returns the first order acknowledged after t that match accepts,
// waiting up to a minute for it.
func (o *orders) wait(ctx context.Context, t time.Time, match func(chaos.Ack) bool) (chaos.Ack, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, a := range o.since(t) {
			if a.At.After(t) && match(a) {
				return a, nil
			}
		}
		select {
		case <-ctx.Done():
			return chaos.Ack{}, ctx.Err()
		case <-tick.C:
		}
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

func groupOf(st status.Status, name string) (status.GroupStatus, bool) {
	for _, g := range st.Groups {
		if g.Name == name {
			return g, true
		}
	}
	return status.GroupStatus{}, false
}

func other(site string) string {
	if site == "brussels" {
		return "antwerp"
	}
	return "brussels"
}

// section is the stack section of the results.
func section(r result, url string) string {
	var b strings.Builder
	b.WriteString("## Web stack: switchover gap and power-cut RTO through HAProxy (`go run ./bench/stack`)\n\n")
	fmt.Fprintf(&b, "Loopback lab on one machine (%s) with webshop as a web stack (`lab.Options{Stack: true}`: the storage script, the app as a service per site, HAProxy at %s in front; the group asynchronous, flap_period 1s). A client orders through the proxy every %s (`POST /orders`, the lab's web writer, which asks `/healthz` again after any failed order) and records each acknowledged order's id, the site whose app placed it and when. Switchovers go back and forth; each power cut (`lab.Disaster`: agent, etcd member, database and app of the active site killed at once) is followed by a heal and a reprotect before the next, so the cuts alternate between the sites. Load is the 1-minute load average when each trial began (median, max).\n\n",
		harness.Machine(), url, interval)
	b.WriteString("| measure | n | median | max | acknowledged orders lost | load | target |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	row := func(what string, ds []time.Duration, lost, loads, target string) {
		m, x := harness.Stats(ds)
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s |\n", what, len(ds), harness.Figure(m, len(ds)), harness.Figure(x, len(ds)), lost, loads, target)
	}
	row("switchover: longest gap between two acknowledged orders", r.gaps, fmt.Sprintf("%d of %d", len(r.switchLost), r.switchOrders), harness.Loads(r.switchLoads), "≤ 1 s / 0")
	row("switchover: the run (start → end)", r.runs, "", "", "")
	row("power cut at the active site → first order placed by the other site's app (RTO)", r.rtos, fmt.Sprintf("%d of %d", len(r.cutLost), r.cutOrders), harness.Loads(r.cutLoads), "≤ 3 s median")
	row("power cut → the failover starts", r.detect, "", "", "")
	row("power cut → the failover ends", r.ended, "", "", "")
	fmt.Fprintf(&b, "\n%d of the %d power cuts hit the site that held the controller. Orders lost in power cuts are those the killed primary acknowledged and had not replicated (asynchronous replication, within max_data_loss); a lower bound, since the new primary may hand an unreplicated order's id to another order.\n",
		r.atController, len(r.rtos))
	return b.String()
}
