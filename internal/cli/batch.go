package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// defaultParallel is how many runs a selection has going on at once
// unless --parallel says: enough to bring a lost site's groups home
// quickly, few enough that the agents still answer status while they do
// (the controller drives at most 128 runs at once, docs/design/scale.md).
const defaultParallel = 8

// batchPoll is how often each run of a selection is read until it ends;
// there are --parallel of them at once, so less often than one run
// followed step by step.
const batchPoll = 500 * time.Millisecond

// States of a group in a selection's summary besides its run's.
const (
	stateSkipped    = "skipped"     // the verb's own rules leave it alone
	stateRefused    = "refused"     // the agent refused to start its run
	stateNotStarted = "not started" // no agent could be asked, or interrupted first
)

// runSelection is a run verb on the groups sel selects: it starts their
// runs, at most parallel at once, follows each to its end and prints one
// table. req is the request every group's run is made of.
func runSelection(e *env, action plan.Action, sel selection, req api.RunRequest, parallel int, yes, force, dryRun bool) error {
	if action == plan.Switchover && req.To == "" {
		return usageErrorf("say where to: siteflip switchover %s --to SITE", sel)
	}
	if force {
		return usageErrorf("--force recovers one group at a time (and the lost locations' automatic groups by themselves): siteflip failover GROUP --force; nothing was changed")
	}
	if action == plan.Failover && !yes && !dryRun && !isTerminal(e.stdin) {
		return usageErrorf("failover of %s loses the writes not yet replicated, and standard input is not a terminal to confirm it: add --yes; nothing was changed", sel)
	}
	t, err := e.load()
	if err != nil {
		return err
	}
	// The sites are checked before any agent is asked (selectGroups checks
	// --site again, for itself).
	for _, f := range []struct{ flag, site string }{{"--site", sel.site}, {"--to", req.To}} {
		if f.site == "" {
			continue
		}
		if err := checkSite(t, f.flag, f.site); err != nil {
			return &exitError{code: exitRefused, err: err}
		}
	}
	c, err := api.NewClient(t)
	if err != nil {
		return err
	}
	defer c.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	st, err := c.Status(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("%w; the selection needs the status, where each group is active; nothing was changed", err)
	}
	names, err := selectGroups(t, st, sel)
	if err != nil {
		return err
	}
	targets := selectionTargets(action, req, names, st)
	if dryRun {
		return dryRunBatch(e, c, targets)
	}
	var start []string
	for _, tg := range targets {
		if tg.skip == "" {
			start = append(start, tg.req.Group)
		}
	}
	if !yes && len(start) > 0 && isTerminal(e.stdin) {
		where := "the other site"
		if req.To != "" {
			where = req.To
		}
		if action == plan.Failover {
			fmt.Fprintf(e.stdout, "Failover recovers %d group(s) at %s now (%s); writes not yet replicated are lost.\nType the number of groups (%d) to confirm: ",
				len(start), where, abridge(start, 10), len(start))
			if err := confirmTyped(e, strconv.Itoa(len(start))); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(e.stdout, "%s of %d group(s) (%s). Go ahead? [y/N] ", action, len(start), abridge(start, 10))
			if err := confirmYes(e); err != nil {
				return err
			}
		}
	}
	// Only now: an interrupt at the prompt above ends the command at once,
	// one while runs go on stops starting more and prints the table.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := runBatch(ctx, c, targets, parallel, e.stdout)
	printBatch(e.stdout, out)
	return batchErr(out)
}

// dryRunBatch asks an agent to plan the run of every target not skipped
// and prints each plan; nothing is started. It fails as the worst answer
// did: refused (3), busy (5) or unreachable (4).
func dryRunBatch(e *env, c *api.Client, targets []target) error {
	var bad []string
	var worst error
	for _, tg := range targets {
		if tg.skip != "" {
			fmt.Fprintf(e.stdout, "%s: skipped: %s\n\n", tg.req.Group, tg.skip)
			continue
		}
		r := tg.req
		r.DryRun = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		run, err := c.StartRun(ctx, r)
		cancel()
		if err != nil {
			fmt.Fprintf(e.stdout, "%s: %s: %s\n\n", tg.req.Group, dryRunVerdict(err), oneRow(err.Error()))
			bad = append(bad, tg.req.Group)
			if worst == nil || exitCode(err) > exitCode(worst) {
				worst = err
			}
			continue
		}
		printPlan(e.stdout, run)
		fmt.Fprintln(e.stdout)
	}
	if worst != nil {
		return &exitError{code: exitCode(worst), err: fmt.Errorf("%d of %d groups would not start: %s", len(bad), len(targets), abridge(bad, 10))}
	}
	return nil
}

// dryRunVerdict names, in a word, why a dry run's group would not start.
func dryRunVerdict(err error) string {
	switch exitCode(err) {
	case exitBusy:
		return "busy"
	case exitRefused:
		return "refused"
	case exitUnreachable:
		return "unreachable"
	}
	return "failed"
}

// target is one selected group: the run to ask for, or why it is skipped.
type target struct {
	req  api.RunRequest
	skip string
}

// selectionTargets makes one target per selected group, in order.
func selectionTargets(action plan.Action, req api.RunRequest, names []string, st status.Status) []target {
	byName := map[string]status.GroupStatus{}
	for _, g := range st.Groups {
		byName[g.Name] = g
	}
	targets := make([]target, len(names))
	for i, name := range names {
		r := req
		r.Group = name
		targets[i] = target{req: r, skip: skipReason(action, req.To, byName[name])}
	}
	return targets
}

// runner starts runs and waits for their end: an *api.Client, or a fake
// in the tests.
type runner interface {
	StartRun(ctx context.Context, req api.RunRequest) (plan.Run, error)
	WaitRun(ctx context.Context, id string, poll time.Duration) (plan.Run, error)
}

var _ runner = (*api.Client)(nil)

// outcome is what became of one selected group.
type outcome struct {
	group string
	run   plan.Run // as last read; no ID when none was started
	state string   // the run's state, or stateSkipped, stateRefused, stateNotStarted
	note  string   // why it was skipped, the agent's refusal, the run's error
}

// ok says whether the group got what was asked, or was left alone for a
// reason the verb documents.
func (o outcome) ok() bool { return o.state == plan.RunSucceeded || o.state == stateSkipped }

// runBatch starts the targets' runs, at most parallel going on at once,
// and waits for each to end; it prints a line as each starts and ends.
// Once ctx ends it starts no more, and stops waiting: the runs go on in
// the agents.
func runBatch(ctx context.Context, r runner, targets []target, parallel int, w io.Writer) []outcome {
	out := make([]outcome, len(targets))
	var mu sync.Mutex // one progress line at a time
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, format+"\n", args...)
	}
	slots := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, tg := range targets {
		o := &out[i]
		o.group = tg.req.Group
		if tg.skip != "" {
			o.state, o.note = stateSkipped, tg.skip
			say("%s: skipped: %s", o.group, tg.skip)
			continue
		}
		if ctx.Err() == nil {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			o.state, o.note = stateNotStarted, "interrupted before its run was started"
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			*o = runOne(ctx, r, tg.req, say)
		})
	}
	wg.Wait()
	return out
}

// runOne starts one group's run and waits for its end.
func runOne(ctx context.Context, r runner, req api.RunRequest, say func(string, ...any)) outcome {
	o := outcome{group: req.Group}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	run, err := r.StartRun(sctx, req)
	cancel()
	var refused *api.RequestError
	switch {
	case errors.As(err, &refused):
		o.state, o.note = stateRefused, refused.Msg
		say("%s: refused: %s", o.group, oneRow(o.note))
		return o
	case err != nil:
		o.state, o.note = stateNotStarted, err.Error()
		say("%s: not started: %s", o.group, oneRow(o.note))
		return o
	}
	say("%s: run %s: %s, started by %s", o.group, run.ID, describe(run), startedBy(run))
	final, err := r.WaitRun(ctx, run.ID, batchPoll)
	if err != nil {
		if final.ID != "" {
			run = final
		}
		o.run, o.state = run, run.State
		o.note = fmt.Sprintf("goes on without this command: `siteflip run %s` shows it", run.ID)
		return o
	}
	o.run, o.state, o.note = final, final.State, final.Error
	if final.State == plan.RunSucceeded && final.DataLost != "" {
		o.note = "data lost: " + final.DataLost
	}
	say("%s: run %s %s in %s", o.group, final.ID, final.State, took(final))
	return o
}

// printBatch prints one row per selected group, in the selection's order,
// then how many ended how.
func printBatch(w io.Writer, out []outcome) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tRUN\tSTATE\tTOOK\tERROR / NOTE")
	var states []string
	count := map[string]int{}
	for _, o := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.group, orDash(o.run.ID), o.state, took(o.run), orDash(oneRow(o.note)))
		if count[o.state] == 0 {
			states = append(states, o.state)
		}
		count[o.state]++
	}
	tw.Flush()
	var parts []string
	for _, s := range states {
		parts = append(parts, fmt.Sprintf("%d %s", count[s], s))
	}
	fmt.Fprintf(w, "%d group(s): %s\n", len(out), strings.Join(parts, ", "))
}

// batchErr is nil when every group got what was asked or was skipped, and
// otherwise an exit status of 1 naming the others.
func batchErr(out []outcome) error {
	var bad []string
	for _, o := range out {
		if !o.ok() {
			bad = append(bad, fmt.Sprintf("%s (%s)", o.group, o.state))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return &exitError{code: exitFailed, err: fmt.Errorf("%d of %d groups failed: %s", len(bad), len(out), abridge(bad, 10))}
}

// took is how long a run took, "-" while it has not ended.
func took(r plan.Run) string {
	if r.Ended.IsZero() || r.Started.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%.2fs", r.Ended.Sub(r.Started).Seconds())
}

// abridge lists at most n items, and how many more there are.
func abridge(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// oneRow puts a message of several lines (no location answered: one per
// location) on one line of a table.
func oneRow(s string) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range lines {
		lines[i] = strings.TrimSpace(strings.ReplaceAll(lines[i], "\t", " "))
	}
	lines = slices.DeleteFunc(lines, func(l string) bool { return l == "" })
	var b strings.Builder
	for i, l := range lines {
		switch {
		case i == 0:
		case strings.HasSuffix(lines[i-1], ":"):
			b.WriteString(" ")
		default:
			b.WriteString("; ")
		}
		b.WriteString(l)
	}
	return b.String()
}
