// Command scale measures how siteflip recovers many groups at once: a lab
// with N data-less groups (a name each, all active at brussels) and a
// power cut at brussels. For each N it writes the time from the cut until
// each group's failover ended (first, median, last), how long the lab took
// to come up with every group adopted, the latency of a full status, and
// the size of etcd's database after the recovery.
//
//	go run ./bench/scale [-groups 10,100,1000] [-siteflip bin/siteflip]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/bench/harness"
	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

func main() {
	groups := flag.String("groups", "10,100,1000", "comma-separated numbers of data-less groups, one lab each")
	exe := flag.String("siteflip", "bin/siteflip", "siteflip binary the lab runs")
	dir := flag.String("dir", "/tmp/siteflip-bench-scale", "lab directory (must not exist)")
	out := flag.String("out", "bench/scale/results.txt", "results file; the scale section is replaced")
	results := flag.String("results", "bench/RESULTS.md", "the benchmarks' results; the scale section is replaced (\"\": leave it)")
	flag.Parse()
	var ns []int
	for _, f := range strings.Split(*groups, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "scale: -groups %q: give numbers of groups, 1 or more, separated by commas\n", *groups)
			os.Exit(2)
		}
		ns = append(ns, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var rows []row
	for _, n := range ns {
		r, err := measure(ctx, n, *exe, *dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "scale: %d groups: %v\n", n, err)
			os.Exit(1)
		}
		fmt.Printf("%5d groups: up %s; status %s; idle agent %.2f cores, %.0f MB; cut → failovers ended first %s, median %s, last %s; etcd %.1f MB; load %.1f; reprotect --all %s, failback --all %s\n",
			n, r.up.Round(time.Millisecond), r.status.Round(time.Millisecond), r.cpu, float64(r.rss)/1e6, r.first.Round(time.Millisecond), r.median.Round(time.Millisecond),
			r.last.Round(time.Millisecond), float64(r.etcd)/1e6, r.load, r.reprotect.Round(10*time.Millisecond), r.failback.Round(10*time.Millisecond))
		rows = append(rows, r)
	}
	body := section(rows)
	if err := harness.WriteSection(*out, "scale", body); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
	if *results != "" {
		if err := harness.WriteSection(*results, "scale", body); err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
			os.Exit(1)
		}
	}
	fmt.Print(body)
}

// row is what one lab of n groups measured.
type row struct {
	n                   int
	up                  time.Duration // lab up, every group adopted and protected
	status              time.Duration // a full status, median of 10
	first, median, last time.Duration // power cut → each group's failover ended
	etcd                int64         // bytes of etcd's database at antwerp after the recovery
	load                float64       // 1-minute load average before the cut
	reprotect, failback time.Duration // `reprotect --all`, then `failback --all`, once brussels is healed
	cpu                 float64       // idle: the busiest agent's CPU, in cores, over idleFor before the cut
	rss                 int64         // bytes: the largest agent's resident memory then
}

// idleFor is how long the agents' idle CPU is measured.
const idleFor = 10 * time.Second

// parallel is the --parallel of the bench's reprotect --all and failback --all.
const parallel = 32

func measure(ctx context.Context, n int, exe, dir string) (r row, err error) {
	r.n = n
	exe, err = filepath.Abs(exe)
	if err != nil {
		return r, err
	}
	o := lab.Options{Dir: dir, Exe: exe, Out: io.Discard, DB: lab.DBNone, Groups: n, ReadyTimeout: 5 * time.Minute}
	began := time.Now()
	if err := lab.Up(ctx, o); errors.Is(err, lab.ErrRunning) {
		return r, err // not ours to stop
	} else if err != nil {
		if _, serr := os.Stat(dir); serr == nil {
			err = fmt.Errorf("%w (the lab's logs: %s)", err, harness.KeepLogs(dir))
			lab.Down(o)
		}
		return r, err
	}
	r.up = time.Since(began)
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w (the lab's logs: %s)", err, harness.KeepLogs(dir))
		}
		if derr := lab.Down(o); derr != nil {
			fmt.Fprintln(os.Stderr, "scale: lab down:", derr)
		}
	}()
	_, c, err := lab.Open(dir)
	if err != nil {
		return r, err
	}
	defer c.Close()
	var took []time.Duration
	for range 10 {
		t0 := time.Now()
		if _, err := c.Status(ctx); err != nil {
			return r, err
		}
		took = append(took, time.Since(t0))
	}
	r.status, _ = harness.Stats(took)
	if r.cpu, r.rss, err = agentsIdle(ctx, dir); err != nil {
		return r, err
	}

	r.load = harness.Load()
	cut := time.Now()
	if err := lab.Disaster(o, "brussels"); err != nil {
		return r, err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if _, err := c.Wait(wctx, 500*time.Millisecond, func(st status.Status) bool {
		for _, g := range st.Groups {
			if g.ActiveSite != "antwerp" || g.Run != "" {
				return false
			}
		}
		return len(st.Groups) == n
	}); err != nil {
		return r, fmt.Errorf("not every group active at antwerp 5 minutes after the cut: %w", err)
	}
	runs, err := c.Runs(ctx, "")
	if err != nil {
		return r, err
	}
	var ended []time.Duration
	for _, run := range runs {
		if run.Plan.Action != plan.Failover || run.Started.Before(cut) {
			continue
		}
		if run.State != plan.RunSucceeded {
			return r, fmt.Errorf("failover %s: %s: %s", run.ID, run.State, run.Error)
		}
		ended = append(ended, run.Ended.Sub(cut))
	}
	if len(ended) != n {
		return r, fmt.Errorf("%d failovers after the cut, want %d", len(ended), n)
	}
	slices.Sort(ended)
	r.first, r.median, r.last = ended[0], ended[len(ended)/2], ended[len(ended)-1]
	if fi, err := os.Stat(filepath.Join(dir, "antwerp", "etcd", "member", "snap", "db")); err == nil {
		r.etcd = fi.Size()
	}

	// Brussels back: every group reprotected, then failed back, as an
	// operator would after the incident.
	if err := lab.Heal(ctx, o, "brussels"); err != nil {
		return r, err
	}
	if _, err := c.Wait(wctx, 500*time.Millisecond, func(st status.Status) bool {
		s, ok := st.Site("brussels")
		return ok && s.Up && s.Reporting
	}); err != nil {
		return r, fmt.Errorf("brussels not back after the heal: %w", err)
	}
	for _, verb := range []string{"reprotect", "failback"} {
		cmd := exec.CommandContext(ctx, exe, verb, "--all", "--parallel", strconv.Itoa(parallel))
		cmd.Env = append(os.Environ(), "SITEFLIP_CONFIG="+filepath.Join(dir, "siteflip.yaml"))
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return r, fmt.Errorf("%s --all: %w; it ends:\n%s", verb, err, lastLines(string(out), 5))
		}
		if verb == "reprotect" {
			r.reprotect = time.Since(t0)
			// A failback needs every group protected: its standby
			// streaming with a lag measured.
			if _, err := c.Wait(wctx, time.Second, func(st status.Status) bool {
				for _, g := range st.Groups {
					if g.State != status.StateProtected {
						return false
					}
				}
				return true
			}); err != nil {
				return r, fmt.Errorf("not every group protected after reprotect --all: %w", err)
			}
		} else {
			r.failback = time.Since(t0)
		}
	}
	return r, nil
}

// agentsIdle measures the lab's agents over idleFor: the busiest one's
// CPU (in cores) and the largest one's resident memory, from /proc.
func agentsIdle(ctx context.Context, dir string) (cpu float64, rss int64, err error) {
	marker := filepath.Join(dir, "siteflip.yaml")
	pids, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		return 0, 0, err
	}
	ticks := func(pid string) (int64, bool) {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return 0, false
		}
		// The fields after the command's closing parenthesis: utime and
		// stime are the 12th and 13th of them.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			return 0, false
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return u + st, true
	}
	before := map[string]int64{}
	for _, p := range pids {
		b, err := os.ReadFile(p)
		args := strings.Split(string(b), "\x00")
		if err != nil || len(args) < 2 || args[1] != "agent" || !slices.Contains(args, marker) {
			continue
		}
		pid := filepath.Base(filepath.Dir(p))
		if t, ok := ticks(pid); ok {
			before[pid] = t
		}
	}
	if len(before) == 0 {
		return 0, 0, fmt.Errorf("no agent of the lab in %s found in /proc", dir)
	}
	select {
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-time.After(idleFor):
	}
	for pid, t0 := range before {
		if t1, ok := ticks(pid); ok {
			cpu = max(cpu, float64(t1-t0)/100/idleFor.Seconds()) // USER_HZ is 100 on Linux
		}
		b, err := os.ReadFile("/proc/" + pid + "/status")
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			if kb, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(kb), " kB"), 10, 64)
				rss = max(rss, n*1024)
			}
		}
	}
	return cpu, rss, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func section(rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Scale: a power cut at the site of N data-less groups (`go run ./bench/scale`)\n\n")
	fmt.Fprintf(&b, "Loopback lab on one machine (%s): `lab.Options{DB: none, Groups: N}`, N groups of one name each (a dns resource served by every agent on its site's one listener), all active at brussels, policy automatic. `lab.Disaster(brussels)` kills its agent and etcd member; the figures are from the cut to each group's failover run's end, as the runs record it. Up is `lab up` until every group is adopted and protected; status is one full `status` (every group) through the API, median of 10, before the cut; etcd is the size of antwerp's etcd database after the recovery; load is the 1-minute load average before the cut. Idle agent is, over %s before the cut, the busiest agent's CPU (in cores) and the largest agent's resident memory. Then brussels is healed, and `siteflip reprotect --all --parallel %d` and `siteflip failback --all --parallel %d` are timed, each to its summary.\n\n", harness.Machine(), idleFor, parallel, parallel)
	b.WriteString("| groups | up | status | idle agent | cut → first failover ended | median | last | etcd db | load | reprotect --all | failback --all | target |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		target := ""
		if r.n >= 1000 {
			target = "last ≤ 10 s; status ≤ 100 ms"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %.2f cores, %.0f MB | %s | %s | %s | %.1f MB | %.1f | %s | %s | %s |\n", r.n, r.up.Round(10*time.Millisecond), r.status.Round(time.Millisecond),
			r.cpu, float64(r.rss)/1e6, r.first.Round(time.Millisecond), r.median.Round(time.Millisecond), r.last.Round(time.Millisecond), float64(r.etcd)/1e6, r.load,
			r.reprotect.Round(10*time.Millisecond), r.failback.Round(10*time.Millisecond), target)
	}
	return b.String()
}
