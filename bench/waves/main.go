// Command waves measures what running the steps of a priority group side
// by side saves. It writes a topology with one group of S independent
// service resources (real processes: a start that takes 0.2 s and leaves
// a detached program behind, a status and a health command that ask for
// its pid, a stop that kills it), plans a failover to antwerp after the
// loss of brussels (plan.Build) and drives it with the engine
// (engine.Engine), whose agents call the service driver in this process
// and whose store keeps the run in memory. Two variants, N runs each,
// taken in turn: every service with priority 2 (one wave of S promotes)
// and no priority at all (one promote after the other). It writes the run
// time (Drive start → end) and the RTO (WritableAt − Started), median and
// max, to a results file and stdout, and kills every process it started
// on exit, Ctrl-C included.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/bench/harness"
	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/engine"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

const (
	group    = "stack"
	from, to = "brussels", "antwerp"
	// startDelay is how long a service's start command takes before the
	// program it starts runs.
	startDelay = "0.2"
)

func main() {
	n := flag.Int("n", 5, "runs of each variant (after one warm-up run of each)")
	services := flag.Int("services", 20, "services in the group")
	saveLatency := flag.Duration("save-latency", 0, "time each store write takes (0: in memory; an etcd write is a disk flush)")
	out := flag.String("out", "bench/waves/results.txt", "results file; the waves section is replaced")
	verbose := flag.Bool("v", false, "log the engine's steps to stderr")
	flag.Parse()
	if *n < 1 || *services < 2 {
		fmt.Fprintln(os.Stderr, "waves: -n must be at least 1 and -services at least 2")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		// The first signal cancels the run, which then cleans up; a second
		// one ends the process at once.
		stop()
	}()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if *verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	err := run(ctx, *n, *services, *saveLatency, *out, log)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "waves:", err)
		os.Exit(1)
	}
}

// variant is one way of writing the group.
type variant struct {
	name     string
	priority int // of every service; 0: none
	topo     *config.Topology
	trials   []trial
}

// trial is one failover.
type trial struct {
	total, rto time.Duration
	promotes   []time.Duration // each promote step, start to end
	// cpu is the CPU time (user and system) the run's commands and the
	// bench itself used.
	cpu time.Duration
}

func run(ctx context.Context, n, services int, saveLatency time.Duration, out string, log *slog.Logger) (err error) {
	dir, err := os.MkdirTemp("", "siteflip-bench-waves-")
	if err != nil {
		return err
	}
	procs := &processes{dir: dir, seen: map[int]bool{}}
	defer func() {
		left, cerr := procs.cleanup()
		fmt.Printf("%d programs started by the services; %d still running at the end killed\n", len(procs.seen), left)
		err = errors.Join(err, cerr)
	}()

	variants := []*variant{
		{name: "parallel", priority: 2},
		{name: "serial", priority: 0},
	}
	for _, v := range variants {
		if v.topo, err = topology(dir, services, v.priority); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		p, err := failoverPlan(v.topo)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		fmt.Printf("%s: %s\n", v.name, describe(p))
		if err := checkWaves(p, v.priority != 0); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
	}
	fmt.Printf("%d services, start command %ss, store write %v\n", services, startDelay, saveLatency)
	var loads []float64

	for i := -1; i < n; i++ { // i = -1: warm-up, not counted
		for _, v := range variants {
			load := harness.Load()
			if i >= 0 {
				loads = append(loads, load)
			}
			label := fmt.Sprintf("run %d", i+1)
			if i < 0 {
				label = "warm-up"
			}
			t, err := failover(ctx, v.topo, saveLatency, log, procs)
			if err != nil {
				return fmt.Errorf("%s %s: %w", v.name, label, err)
			}
			if i >= 0 {
				v.trials = append(v.trials, t)
			}
			m, x := harness.Stats(t.promotes)
			fmt.Printf("%-8s %-7s: %.3fs, RTO %.3fs (one promote: median %.3fs, max %.3fs), CPU %.3fs, load %.2f\n",
				v.name, label, t.total.Seconds(), t.rto.Seconds(), m.Seconds(), x.Seconds(), t.cpu.Seconds(), load)
		}
	}
	body := results(variants, services, saveLatency, harness.Loads(loads))
	fmt.Print("\n" + body)
	return harness.WriteSection(out, "waves", body)
}

// topology writes the group with every service at priority (0: none) and
// loads it as the agents do.
func topology(dir string, services, priority int) (*config.Topology, error) {
	var b strings.Builder
	b.WriteString(`name: waves
sites:
  - name: brussels
    role: site
    agent: {address: "127.0.0.1:7400"}
    etcd: {peer_url: "http://127.0.0.1:2380", client_url: "http://127.0.0.1:2379"}
  - name: antwerp
    role: site
    agent: {address: "127.0.0.1:7410"}
    etcd: {peer_url: "http://127.0.0.1:2390", client_url: "http://127.0.0.1:2389"}
  - name: witness
    role: witness
    agent: {address: "127.0.0.1:7420"}
    etcd: {peer_url: "http://127.0.0.1:2400", client_url: "http://127.0.0.1:2399"}
groups:
  - name: ` + group + `
    preferred_site: brussels
    policy: manual
    resources:
`)
	for i := range services {
		name := fmt.Sprintf("app%02d", i+1)
		fmt.Fprintf(&b, "      - name: %s\n        type: service\n", name)
		if priority != 0 {
			fmt.Fprintf(&b, "        priority: %d\n", priority)
		}
		b.WriteString("        sites:\n")
		for _, site := range []string{from, to} {
			pid := filepath.Join(dir, site+"-"+name+".pid")
			fmt.Fprintf(&b, `          %s:
            start: %s
            stop: %s
            status: %s
            health: {command: %s, timeout: 2s}
            start_timeout: 20s
            stop_timeout: 10s
`, site,
				// The program detaches into a session of its own, its output
				// elsewhere, so that start returns; $! is its pid, as setsid
				// runs in a child that leads no process group.
				sh("sleep "+startDelay+"; setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! >"+pid),
				// The pid file goes with the program: a killed program
				// nobody reaps stays a zombie, which kill -0 still finds.
				sh("[ -f "+pid+" ] || exit 0; p=$(cat "+pid+"); kill $p 2>/dev/null || ! kill -0 $p 2>/dev/null || exit 1; rm -f "+pid),
				sh("[ -f "+pid+" ] && kill -0 $(cat "+pid+") 2>/dev/null"),
				sh("kill -0 $(cat "+pid+")"))
		}
	}
	path := filepath.Join(dir, fmt.Sprintf("siteflip-priority-%d.yaml", priority))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	t, probs := config.Parse(path, []byte(b.String()), driver.Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		var lines []string
		for _, p := range errs {
			lines = append(lines, p.String())
		}
		return nil, fmt.Errorf("%w:\n%s", config.ErrInvalid, strings.Join(lines, "\n"))
	}
	return t, nil
}

// sh is the argument list that runs script with /bin/sh, as YAML.
func sh(script string) string {
	b, _ := json.Marshal([]string{"sh", "-c", script}) // a JSON array is a YAML flow sequence
	return string(b)
}

// failoverPlan plans a failover of the group to antwerp after brussels
// was lost: no fence (the site is down), activate, promote every service.
// The group holds no data, so no lag is needed.
func failoverPlan(t *config.Topology) (plan.Plan, error) {
	g, ok := t.Group(group)
	if !ok {
		return plan.Plan{}, fmt.Errorf("no group %s", group)
	}
	k := plan.Known{
		Status: status.GroupStatus{Name: group, ActiveSite: from, Epoch: 1, State: status.StateProtected},
		SiteUp: map[string]bool{from: false, to: true, "witness": true},
	}
	return plan.Build(g, k, plan.Request{Action: plan.Failover, To: to})
}

// checkWaves makes sure the plan is the one the variant measures: every
// promote in one wave, or none in any.
func checkWaves(p plan.Plan, together bool) error {
	waves := map[int]int{}
	for _, s := range p.Steps {
		if s.Kind == plan.Promote {
			waves[s.Wave]++
		}
	}
	if _, single := waves[0]; len(waves) != 1 || single == together {
		return fmt.Errorf("the plan's promotes are in waves %v (wave → steps), expected them all in one wave: %t", waves, together)
	}
	return nil
}

// describe says how the plan's steps are grouped: "activate@antwerp,
// 20 × promote (wave 1)".
func describe(p plan.Plan) string {
	var parts []string
	for i := 0; i < len(p.Steps); {
		j := i + 1
		for j < len(p.Steps) && p.Steps[j].Kind == p.Steps[i].Kind && p.Steps[j].Wave == p.Steps[i].Wave {
			j++
		}
		s := p.Steps[i]
		switch {
		case j-i == 1:
			parts = append(parts, s.ID)
		case s.Wave != 0:
			parts = append(parts, fmt.Sprintf("%d × %s@%s side by side (wave %d)", j-i, s.Kind, s.Site, s.Wave))
		default:
			parts = append(parts, fmt.Sprintf("%d × %s@%s one after the other", j-i, s.Kind, s.Site))
		}
		i = j
	}
	return strings.Join(parts, ", ")
}

// failover stops every service at antwerp, plans the failover and drives
// it. The figures are the engine's only: stopping the services before is
// not measured.
func failover(ctx context.Context, t *config.Topology, saveLatency time.Duration, log *slog.Logger, procs *processes) (trial, error) {
	if err := stopAll(ctx, t, to); err != nil {
		return trial{}, err
	}
	p, err := failoverPlan(t)
	if err != nil {
		return trial{}, err
	}
	store := &memStore{latency: saveLatency, record: status.Record{Group: group, ActiveSite: from, Epoch: p.Epoch}}
	e := &engine.Engine{
		Store:  store,
		Agents: &localAgents{topo: t},
		Fence:  coord.Fence{Key: "bench/waves", Term: 1},
		Log:    log,
		Now:    time.Now,
		Sleep: func(ctx context.Context, d time.Duration) {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		},
	}
	req := plan.Request{Action: plan.Failover, To: to}
	cpu0 := cpuTime()
	began := time.Now()
	r := plan.NewRun("waves-"+strconv.FormatInt(began.UnixNano(), 36), "bench", req, p, began.UTC())
	r, err = e.Drive(ctx, r)
	total := time.Since(began)
	cpu := cpuTime() - cpu0
	procs.note(t, to)
	if err != nil {
		return trial{}, err
	}
	if r.State != plan.RunSucceeded {
		return trial{}, fmt.Errorf("run %s %s: %s", r.ID, r.State, r.Error)
	}
	if r.WritableAt.IsZero() {
		return trial{}, fmt.Errorf("run %s succeeded without WritableAt", r.ID)
	}
	tr := trial{total: total, rto: r.WritableAt.Sub(r.Started), cpu: cpu}
	for i, s := range p.Steps {
		if s.Kind == plan.Promote {
			tr.promotes = append(tr.promotes, r.Steps[i].Ended.Sub(r.Steps[i].Started))
		}
	}
	return tr, nil
}

// cpuTime is the CPU time this process and its children that ended used
// so far: the commands the driver runs are such children (the programs
// they leave behind only sleep).
func cpuTime() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

// stopAll stops every service of the group at site with the driver's
// Fence (stop, then status until stopped), all at once.
func stopAll(ctx context.Context, t *config.Topology, site string) error {
	g, _ := t.Group(group)
	errs := make([]error, len(g.Resources))
	var wg sync.WaitGroup
	for i := range g.Resources {
		wg.Go(func() {
			a, err := driver.NewActor(nil, g, &g.Resources[i], site)
			if err == nil {
				_, err = a.Fence(ctx)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// localAgents carries steps out in this process, as a site's agent
// would: the resource's actor from the driver table, bounded by the step's
// timeout, a failure answered in the result.
type localAgents struct {
	topo *config.Topology
}

var _ engine.Agents = (*localAgents)(nil)

func (a *localAgents) Step(ctx context.Context, site string, req api.StepRequest) (api.StepResult, error) {
	g, ok := a.topo.Group(req.Group)
	if !ok {
		return api.StepResult{}, &api.RequestError{Status: 404, Msg: "no group " + req.Group}
	}
	i := slices.IndexFunc(g.Resources, func(r config.Resource) bool { return r.Name == req.Resource })
	if i < 0 {
		return api.StepResult{}, &api.RequestError{Status: 404, Msg: "no resource " + req.Resource}
	}
	actor, err := driver.NewActor(nil, g, &g.Resources[i], site)
	if err != nil {
		return api.StepResult{Error: err.Error()}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	var out map[string]string
	switch req.Kind {
	case plan.Fence:
		out, err = actor.Fence(ctx)
	case plan.CatchUp:
		err = actor.CatchUp(ctx, nil)
	case plan.Promote:
		out, err = actor.Promote(ctx)
	case plan.Rejoin:
		other := from
		if site == from {
			other = to
		}
		out, err = actor.Rejoin(ctx, other)
	case plan.Unfence:
		err = actor.Unfence(ctx)
	default:
		err = fmt.Errorf("step kind %q is not carried out by this bench", req.Kind)
	}
	if err != nil {
		return api.StepResult{Output: out, Error: err.Error()}, nil
	}
	return api.StepResult{Output: out}, nil
}

// memStore is the control plane's store in memory: the group's record,
// its runs, and approvals (none is ever given). Every write can be made
// to take latency, as an etcd write does.
type memStore struct {
	latency  time.Duration
	mu       sync.Mutex
	record   status.Record
	runs     []plan.Run // by first save
	awaiting *status.Awaiting
}

var _ engine.Store = (*memStore)(nil)

func (s *memStore) write(ctx context.Context) error {
	if s.latency <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.latency):
		return nil
	}
}

// save keeps a copy of run; the caller holds mu.
func (s *memStore) save(run plan.Run) {
	run.Steps, run.Rollback = slices.Clone(run.Steps), slices.Clone(run.Rollback)
	for i := range s.runs {
		if s.runs[i].ID == run.ID {
			s.runs[i] = run
			return
		}
	}
	s.runs = append(s.runs, run)
}

func (s *memStore) SaveRun(ctx context.Context, run plan.Run, _ coord.Fence) error {
	if err := s.write(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.save(run)
	return nil
}

func (s *memStore) Activate(ctx context.Context, run plan.Run, epoch int64, to string, _ coord.Fence) (int64, error) {
	if err := s.write(ctx); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.record.Epoch == epoch+1 && s.record.ActiveSite == to: // done before; resumed
	case s.record.Epoch != epoch:
		return 0, fmt.Errorf("activate %s at %s: %w (epoch %d, the run was planned at %d)", run.Group, to, coord.ErrStale, s.record.Epoch, epoch)
	default:
		s.record.ActiveSite, s.record.Epoch, s.record.UpdatedAt = to, epoch+1, time.Now().UTC()
		s.record.Reason = fmt.Sprintf("%s run %s", run.Plan.Action, run.ID)
	}
	s.save(run)
	return s.record.Epoch, nil
}

func (s *memStore) Record(_ context.Context, g string) (status.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.record, g == s.record.Group, nil
}

func (s *memStore) Runs(_ context.Context, g string) ([]plan.Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []plan.Run
	for _, r := range s.runs {
		if r.Group == g {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *memStore) FillDataLost(ctx context.Context, g, failoverID, text, by string, _ coord.Fence) error {
	if err := s.write(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.runs {
		r := &s.runs[i]
		switch {
		case r.ID != failoverID:
			continue
		case r.Group != g || r.Plan.Action != plan.Failover || !r.Done():
			return fmt.Errorf("run %s is not a finished failover of group %s", failoverID, g)
		case r.DataLostBy == by && r.DataLost == text:
			return nil
		case r.DataLostBy != "":
			return fmt.Errorf("run %s: %w (found by run %s)", failoverID, coord.ErrDataLostKnown, r.DataLostBy)
		}
		r.DataLost, r.DataLostBy = text, by
		return nil
	}
	return fmt.Errorf("run %s: %w", failoverID, coord.ErrNoRun)
}

func (s *memStore) PutAwaiting(ctx context.Context, a status.Awaiting, _ coord.Fence) (status.Awaiting, error) {
	if err := s.write(ctx); err != nil {
		return a, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.awaiting != nil && s.awaiting.Run == a.Run && s.awaiting.Step == a.Step {
		return *s.awaiting, nil // a resumed wait keeps its deadline
	}
	s.awaiting = &a
	return a, nil
}

func (s *memStore) DeleteAwaiting(ctx context.Context, g string, _ coord.Fence) error {
	if err := s.write(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.awaiting != nil && s.awaiting.Group == g {
		s.awaiting = nil
	}
	return nil
}

func (s *memStore) Approval(context.Context, string, string) (status.Approval, bool, error) {
	return status.Approval{}, false, nil
}

// processes remembers every program the services started, by the pid
// files they wrote, so that none outlives the bench.
type processes struct {
	dir  string
	mu   sync.Mutex
	seen map[int]bool
}

// note records the pids the services of the group at site wrote.
func (p *processes) note(t *config.Topology, site string) {
	g, _ := t.Group(group)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range g.Resources {
		b, err := os.ReadFile(filepath.Join(p.dir, site+"-"+r.Name+".pid"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			p.seen[pid] = true
		}
	}
}

// cleanup kills every program that still runs (whether its service was
// stopped or not: pid files of both sites and every pid ever seen) and
// removes the directory; left is how many it had to kill.
func (p *processes) cleanup() (left int, err error) {
	files, _ := filepath.Glob(filepath.Join(p.dir, "*.pid"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				p.seen[pid] = true
			}
		}
	}
	var errs []error
	for pid := range p.seen {
		if !ours(pid) {
			continue // ended (or reaped, its pid maybe reused)
		}
		left++
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
		}
	}
	if len(errs) > 0 {
		return left, fmt.Errorf("%w; %s is left in place", errors.Join(errs...), p.dir)
	}
	return left, os.RemoveAll(p.dir)
}

// ours says whether pid is a live program a service started (sleep 300),
// not a zombie and not another program that reused the pid.
func ours(pid int) bool {
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || string(cmd) != "sleep\x00300\x00" {
		return false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command's closing parenthesis.
	i := strings.LastIndexByte(string(st), ')')
	return i >= 0 && i+2 < len(st) && st[i+2] != 'Z'
}

func results(vs []*variant, services int, saveLatency time.Duration, load string) string {
	pick := func(ts []trial, f func(trial) time.Duration) []time.Duration {
		var out []time.Duration
		for _, t := range ts {
			out = append(out, f(t))
		}
		return out
	}
	var b strings.Builder
	b.WriteString("## Priority waves (`go run ./bench/waves`)\n\n")
	store := "a store in memory"
	if saveLatency > 0 {
		store = fmt.Sprintf("a store in memory whose every write takes %v", saveLatency)
	}
	fmt.Fprintf(&b, "One machine (%s; 1-minute load average when each run began: %s), no lab: a group of %d independent `service` resources, each with argv commands through `sh -c` — a start that takes %s s and leaves `setsid sleep 300` behind with its pid in a file, a status and a health command that ask for that pid, a stop that kills it. "+
		"A failover to antwerp after brussels was lost (`plan.Build`: activate, then one promote per service; no fence, the site is down) is driven by `engine.Engine`, with agents that call the service driver in the bench's process and %s. "+
		"Parallel: every service has `priority: 2`, so the %d promotes are one wave; serial: no priority, one promote after the other. The variants take turns, after one warm-up run each. Run time is from `Drive` called to `Drive` returned; RTO is `WritableAt − Started` (the last promote done).\n\n",
		harness.Machine(), load, services, startDelay, store, services)
	b.WriteString("| measure | n | median | max |\n| --- | --- | --- | --- |\n")
	row := func(what string, ds []time.Duration) {
		m, x := harness.Stats(ds)
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", what, len(ds), harness.Figure(m, len(ds)), harness.Figure(x, len(ds)))
	}
	medians := map[string]time.Duration{}
	for _, v := range vs {
		row(v.name+": run (Drive start → end)", pick(v.trials, func(t trial) time.Duration { return t.total }))
		row(v.name+": RTO (WritableAt − Started)", pick(v.trials, func(t trial) time.Duration { return t.rto }))
		var steps []time.Duration
		for _, t := range v.trials {
			steps = append(steps, t.promotes...)
		}
		row(v.name+": one promote step", steps)
		row(v.name+": CPU time used by the run (bench and commands, user + system)", pick(v.trials, func(t trial) time.Duration { return t.cpu }))
		medians[v.name], _ = harness.Stats(pick(v.trials, func(t trial) time.Duration { return t.total }))
	}
	if p, s := medians["parallel"], medians["serial"]; p > 0 {
		fmt.Fprintf(&b, "\nThe wave runs the failover %.1f× faster than the serial plan (median run %.3f s against %.3f s).\n", float64(s)/float64(p), p.Seconds(), s.Seconds())
	}
	return b.String()
}
