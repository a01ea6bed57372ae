// Command scale measures how siteflip recovers many groups at once: a lab
// with N groups, all active at brussels, and a power cut at brussels. The
// groups are data-less (a name each), or with -db postgres each a small
// PostgreSQL pair and its name (lab up --groups N --db postgres). For each
// N it writes the time from the cut until each group's failover ended
// (first, median, last), how long the lab took to come up with every
// group adopted, the latency of a full status, and the size of etcd's
// database after the recovery; with -db postgres also where the time of
// the failovers went, step by step.
//
//	go run ./bench/scale [-groups 10,100,1000] [-siteflip bin/siteflip]
//	go run ./bench/scale -db postgres [-groups 30] [-runs 3] [-keep]
package main

import (
	"cmp"
	"context"
	"encoding/json"
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
	db := flag.String("db", lab.DBNone, "what each group holds, as lab up's --db with --groups: none (a name only) or postgres (a PostgreSQL pair and a name)")
	groups := flag.String("groups", "", "comma-separated numbers of groups, one lab each (default 10,100,1000; with -db postgres 30)")
	runs := flag.Int("runs", 1, "labs for each number of groups")
	serveLease := flag.Duration("serve-lease", 0, "the lab's serve_lease (0: the default, 400ms)")
	keep := flag.Bool("keep", false, "keep each lab's logs and failover runs (runs.json) in DIR.N-groups.run-K")
	exe := flag.String("siteflip", "bin/siteflip", "siteflip binary the lab runs")
	dir := flag.String("dir", "/tmp/siteflip-bench-scale", "lab directory (must not exist)")
	out := flag.String("out", "bench/scale/results.txt", "results file; the section of -db (scale, or scale-postgres) is replaced")
	results := flag.String("results", "bench/RESULTS.md", "the benchmarks' results; the section of -db is replaced (\"\": leave it)")
	flag.Parse()
	name := "scale"
	switch *db {
	case lab.DBNone:
		*groups = cmp.Or(*groups, "10,100,1000")
	case lab.DBPostgres:
		*groups, name = cmp.Or(*groups, "30"), "scale-postgres"
	default:
		fmt.Fprintf(os.Stderr, "scale: -db %q: use none or postgres\n", *db)
		os.Exit(2)
	}
	if *runs < 1 {
		fmt.Fprintf(os.Stderr, "scale: -runs %d: 1 or more\n", *runs)
		os.Exit(2)
	}
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
		for k := 1; k <= *runs; k++ {
			keepIn := ""
			if *keep {
				keepIn = fmt.Sprintf("%s.%d-groups.run-%d", *dir, n, k)
			}
			r, err := measure(ctx, n, *db, *serveLease, *exe, *dir, keepIn)
			if err != nil {
				fmt.Fprintf(os.Stderr, "scale: %d groups, run %d: %v\n", n, k, err)
				os.Exit(1)
			}
			r.run = k
			fmt.Printf("%5d groups: up %s; status %s; idle agent %.2f cores, %.0f MB; cut → failovers ended first %s, median %s, last %s; failed %s; etcd %.1f MB; load %.1f; reprotect --all %s, failback --all %s\n",
				n, r.up.Round(time.Millisecond), r.status.Round(time.Millisecond), r.cpu, float64(r.rss)/1e6, r.first.Round(time.Millisecond), r.median.Round(time.Millisecond),
				r.last.Round(time.Millisecond), r.failedText(), float64(r.etcd)/1e6, r.load, r.reprotect.Round(10*time.Millisecond), r.failback.Round(10*time.Millisecond))
			if len(r.steps) > 0 {
				fmt.Printf("       where the time went: %s\n", r.breakdown())
			}
			rows = append(rows, r)
		}
	}
	body := section(rows)
	if *db == lab.DBPostgres {
		body = sectionPG(rows)
	}
	if err := harness.WriteSection(*out, name, body); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
	if *results != "" {
		if err := harness.WriteSection(*results, name, body); err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
			os.Exit(1)
		}
	}
	fmt.Print(body)
}

// row is what one lab of n groups measured.
type row struct {
	n, run              int
	up                  time.Duration // lab up, every group adopted and protected
	status              time.Duration // a full status, median of 10
	first, median, last time.Duration // power cut → each group's failover ended
	etcd                int64         // bytes of etcd's database at antwerp after the recovery
	load                float64       // 1-minute load average before the cut
	reprotect, failback time.Duration // `reprotect --all`, then `failback --all`, once brussels is healed
	cpu                 float64       // idle: the busiest agent's CPU, in cores, over idleFor before the cut
	rss                 int64         // bytes: the largest agent's resident memory then
	// failed is the number of failover runs after the cut that did not
	// succeed (a group failed over by a later run counts once per failed
	// run).
	failed int
	// stuck is the number of failovers still running when the bench
	// stopped waiting (a minute for PostgreSQL groups): the figures are
	// then those of the others, and nothing is measured after.
	stuck       int
	stuckGroups []string
	// declared is the time from the cut until the last location had
	// declared brussels lost (the runs' incident), started the time
	// until each failover run started; steps the durations of each
	// step of the failovers, by step.
	declared, startedFirst, startedLast time.Duration
	// wFirst, wMedian and wLast are from the cut until each group's
	// databases accepted writes at antwerp (writableAt): what clients
	// wait for, before the run's last steps (the name) and its end.
	wFirst, wMedian, wLast time.Duration
	steps                  map[string][]time.Duration
	stepOrder              []string
}

// idleFor is how long the agents' idle CPU is measured.
const idleFor = 10 * time.Second

// parallel is the --parallel of the bench's reprotect --all and failback --all.
const parallel = 32

// measure brings up a lab of n groups holding db, cuts brussels' power
// and measures the recovery; with keepIn, the lab's logs and the failover
// runs are kept there.
func measure(ctx context.Context, n int, db string, serveLease time.Duration, exe, dir, keepIn string) (r row, err error) {
	r.n = n
	exe, err = filepath.Abs(exe)
	if err != nil {
		return r, err
	}
	o := lab.Options{Dir: dir, Exe: exe, Out: io.Discard, DB: db, Groups: n, ServeLease: serveLease, ReadyTimeout: 5 * time.Minute}
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
	var kept []byte // the failovers, as JSON, for keepIn
	defer func() {
		switch {
		case err != nil:
			err = fmt.Errorf("%w (the lab's logs: %s)", err, harness.KeepLogs(dir))
		case keepIn != "":
			os.RemoveAll(keepIn)
			if rerr := os.Rename(harness.KeepLogs(dir), keepIn); rerr != nil {
				fmt.Fprintln(os.Stderr, "scale: keep the logs:", rerr)
			} else if kept != nil {
				_ = os.WriteFile(filepath.Join(keepIn, "runs.json"), kept, 0o644)
			}
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
	// A failover stuck for minutes is a finding, not the end of the
	// bench: it counts as failed, and the rest of the lab's figures are
	// left out.
	settle := 5 * time.Minute
	if db == lab.DBPostgres {
		settle = time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx, settle)
	defer cancel()
	_, err = c.Wait(wctx, 500*time.Millisecond, func(st status.Status) bool {
		for _, g := range st.Groups {
			if g.ActiveSite != "antwerp" || g.Run != "" {
				return false
			}
		}
		return len(st.Groups) == n
	})
	settled := err == nil
	if !settled && db != lab.DBPostgres {
		return r, fmt.Errorf("not every group active at antwerp %s after the cut: %w", settle, err)
	}
	runs, err := c.Runs(ctx, "")
	if err != nil {
		return r, err
	}
	var ended, started, writable []time.Duration
	var failovers []plan.Run
	var failed []string
	for _, run := range runs {
		if run.Plan.Action != plan.Failover || run.Started.Before(cut) {
			continue
		}
		failovers = append(failovers, run)
		if run.State == plan.RunRunning {
			r.stuck++
			r.stuckGroups = append(r.stuckGroups, run.Group)
			failed = append(failed, fmt.Sprintf("%s of %s: still running %s after the cut", run.ID, run.Group, settle))
			continue
		}
		if run.State != plan.RunSucceeded {
			r.failed++
			failed = append(failed, fmt.Sprintf("%s of %s: %s: %s", run.ID, run.Group, run.State, run.Error))
			continue
		}
		ended = append(ended, run.Ended.Sub(cut))
		started = append(started, run.Started.Sub(cut))
		if in := run.Incident; in != nil && !in.DeclaredLost.IsZero() {
			r.declared = max(r.declared, in.DeclaredLost.Sub(cut))
		}
		r.addSteps(run)
		if w, ok := writableAt(run); ok {
			writable = append(writable, w.Sub(cut))
		}
	}
	if keepIn != "" {
		kept, _ = json.MarshalIndent(failovers, "", "  ")
	}
	if len(failed) > 0 {
		fmt.Fprintf(os.Stderr, "scale: %d groups: failed failovers:\n  %s\n", n, strings.Join(failed, "\n  "))
	}
	if len(ended) == 0 || (settled && len(ended) != n) {
		return r, fmt.Errorf("%d succeeded failovers after the cut, want %d (%d failed)", len(ended), n, r.failed)
	}
	slices.Sort(ended)
	slices.Sort(started)
	r.first, r.median, r.last = ended[0], ended[len(ended)/2], ended[len(ended)-1]
	r.startedFirst, r.startedLast = started[0], started[len(started)-1]
	if len(writable) > 0 {
		slices.Sort(writable)
		r.wFirst, r.wMedian, r.wLast = writable[0], writable[len(writable)/2], writable[len(writable)-1]
	}
	if fi, err := os.Stat(filepath.Join(dir, "antwerp", "etcd", "member", "snap", "db")); err == nil {
		r.etcd = fi.Size()
	}
	if !settled {
		return r, nil
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

// writableAt is when the last database of run, a failover, accepted
// writes at its new site: its promote step's start, the slot_wait the
// agent reports and the writable_after the driver reports (postgres).
func writableAt(run plan.Run) (time.Time, bool) {
	var at time.Time
	for i, st := range run.Steps {
		if i >= len(run.Plan.Steps) || run.Plan.Steps[i].Kind != plan.Promote || st.Started.IsZero() {
			continue
		}
		// The agent reports how long the step waited for one of its
		// promotion slots before it began promoting (slot_wait).
		wait, _ := time.ParseDuration(st.Output["slot_wait"])
		if d, err := time.ParseDuration(st.Output["writable_after"]); err == nil && st.Started.Add(wait+d).After(at) {
			at = st.Started.Add(wait + d)
		}
	}
	return at, !at.IsZero()
}

// addSteps adds the durations of the steps of run, a failover that
// succeeded, each named by its kind, resource and site.
func (r *row) addSteps(run plan.Run) {
	if r.steps == nil {
		r.steps = map[string][]time.Duration{}
	}
	for i, st := range run.Steps {
		if st.Started.IsZero() || st.Ended.IsZero() || i >= len(run.Plan.Steps) {
			continue
		}
		p := run.Plan.Steps[i]
		key := string(p.Kind)
		if p.Resource != "" {
			key += " " + p.Resource
		}
		key += "@" + p.Site
		if _, ok := r.steps[key]; !ok {
			r.stepOrder = append(r.stepOrder, key)
		}
		r.steps[key] = append(r.steps[key], st.Ended.Sub(st.Started))
	}
	// The controller's own time: from the run's start to its first step,
	// between steps, and from the last step to the run's end.
	var between time.Duration
	prev := run.Started
	for _, st := range run.Steps {
		if st.Started.IsZero() || st.Ended.IsZero() {
			continue
		}
		between += st.Started.Sub(prev)
		prev = st.Ended
	}
	between += run.Ended.Sub(prev)
	const key = "controller between steps"
	if _, ok := r.steps[key]; !ok {
		r.stepOrder = append(r.stepOrder, key)
	}
	r.steps[key] = append(r.steps[key], between)
}

// breakdown says where the failovers' time went: the cut until the site
// was declared lost and until the runs started, then each step's median
// and longest duration.
func (r row) breakdown() string {
	parts := []string{fmt.Sprintf("cut → brussels declared lost %s; → failovers started %s–%s", ms(r.declared), ms(r.startedFirst), ms(r.startedLast))}
	if r.wLast > 0 {
		parts = append(parts, fmt.Sprintf("→ databases writable %s / %s / %s (first / median / last)", ms(r.wFirst), ms(r.wMedian), ms(r.wLast)))
	}
	for _, key := range r.stepOrder {
		med, longest := harness.Stats(r.steps[key])
		parts = append(parts, fmt.Sprintf("%s %s (max %s)", key, ms(med), ms(longest)))
	}
	return strings.Join(parts, "; ")
}

// failedText is the failed failovers, and the stuck ones when any.
func (r row) failedText() string {
	if r.stuck > 0 {
		return fmt.Sprintf("%d + %d stuck", r.failed, r.stuck)
	}
	return fmt.Sprint(r.failed)
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

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

// sectionPG is the results of labs of PostgreSQL groups, one row per lab,
// and where the time of each lab's failovers went.
func sectionPG(rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Scale: a power cut at the site of N PostgreSQL groups (`go run ./bench/scale -db postgres`)\n\n")
	fmt.Fprintf(&b, "Loopback lab on one machine (%s): `lab up --groups N --db postgres` (`lab.Options{DB: postgres, Groups: N}`): N groups pg-NNNN, each a PostgreSQL database of its own, a primary at brussels and a streaming standby at antwerp (2N servers, shared_buffers 16MB, max_connections 20), and a name on the site's shared DNS listener that depends on it; policy automatic, max_data_loss 5s, no writes. `lab.Disaster(brussels)` kills its agent, etcd member and every server there at once; the figures are from the cut to each group's failover run's end, as the runs record it; failed counts the failovers that did not succeed, and stuck those still running a minute after the cut (the figures are then the others', and nothing is measured after). Up is `lab up` until every group is protected (standbys streaming, lag measured); status, idle agent, etcd and load as for the data-less groups above. Then brussels is healed, and `siteflip reprotect --all --parallel %d` (every old primary rewound and streaming again) and `siteflip failback --all --parallel %d` are timed, each to its summary.\n\n", harness.Machine(), parallel, parallel)
	b.WriteString("| groups | run | up | status | idle agent | cut → first failover ended | median | last | failed | etcd db | load | reprotect --all | failback --all | target |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		reprotect, failback := "–", "–"
		if r.stuck == 0 {
			reprotect, failback = r.reprotect.Round(10*time.Millisecond).String(), r.failback.Round(10*time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %d | %d | %s | %s | %.2f cores, %.0f MB | %s | %s | %s | %s | %.1f MB | %.1f | %s | %s | last ≤ 5 s |\n", r.n, r.run, r.up.Round(10*time.Millisecond), r.status.Round(time.Millisecond),
			r.cpu, float64(r.rss)/1e6, ms(r.first), ms(r.median), ms(r.last), r.failedText(), float64(r.etcd)/1e6, r.load, reprotect, failback)
	}
	b.WriteString("\nWhere the time went, per lab: from the cut until the last location declared brussels lost, until the first and the last failover started, until each group's database accepted writes at antwerp (the promote step's start, the time it waited for one of the agent's promotion slots and the writable_after it reports), then each step of the failovers (kind, resource and site) and the controller's own time between them, median and longest over the groups.\n\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "- %d groups, run %d: %s", r.n, r.run, r.breakdown())
		if len(r.stuckGroups) > 0 {
			slices.Sort(r.stuckGroups)
			fmt.Fprintf(&b, "; stuck: %s", strings.Join(r.stuckGroups, ", "))
		}
		b.WriteString("\n")
	}
	b.WriteString("\nWhy failovers stick and where the time goes: docs/design/scale.md, \"A site of PostgreSQL groups\".\n")
	return b.String()
}
