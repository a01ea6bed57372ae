package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
)

// runAction starts failover, switchover, reprotect or failback of a group
// and follows the run to its end.
func runAction(action plan.Action) func(e *env, args []string) error {
	return func(e *env, args []string) error {
		fs := e.flags(string(action))
		var to, at *string
		var yes, acceptLoss, force, cancelAt *bool
		reason := fs.String("reason", "", "why, in a few words; the run and the audit trail keep it")
		ticket := fs.String("ticket", "", "the change or incident `ID` this run belongs to")
		switch action {
		case plan.Failover:
			to = fs.String("to", "", "`SITE` to recover at (default: the other site)")
			yes = fs.Bool("yes", false, "do not ask for confirmation")
			acceptLoss = fs.Bool("accept-data-loss", false, "go ahead although the standby is further behind than max_data_loss")
			force = fs.Bool("force", false, "the quorum is lost: the site (--to, default the only one whose agent answers) takes over alone; only when the other locations are gone for good")
		case plan.Switchover:
			to = fs.String("to", "", "`SITE` to move to (required)")
			at = fs.String("at", "", "start it later, at `TIME` (22:00, \"2026-12-05 22:00\", RFC 3339, or a duration from now): whichever location is controller then starts it")
			cancelAt = fs.Bool("cancel", false, "cancel the group's scheduled switchover")
		case plan.Drill:
			to = fs.String("at", "", "`SITE` to drill at (default: the group's standby site)")
			yes = fs.Bool("yes", false, "do not ask for confirmation")
		}
		var keep *time.Duration
		var cleanup *bool
		if action == plan.Drill {
			keep = fs.Duration("keep", 0, "keep the drill's copies up this `DURATION` after the checks, then tear down")
			cleanup = fs.Bool("cleanup", false, "remove what the group's drills left behind, at every site, and start nothing")
		}
		// Instead of one GROUP, the verbs that bring groups back after a
		// site loss take a selection: there may be hundreds.
		var sel selection
		var labels []string
		parallel := defaultParallel
		selectable := action != plan.Drill
		if selectable {
			fs.BoolVar(&sel.all, "all", false, "every group, instead of naming one")
			fs.StringVar(&sel.site, "site", "", "every group active at `SITE`, instead of naming one")
			fs.Func("label", "every group labelled `KEY=VALUE`, instead of naming one (repeatable: a group must carry every one)", func(s string) error {
				labels = append(labels, s)
				return nil
			})
			fs.IntVar(&parallel, "parallel", defaultParallel, "with a selection, at most `N` runs going on at once")
		}
		pos, err := parse(fs, args, 1)
		if err != nil {
			return err
		}
		if parallel < 1 {
			return fmt.Errorf("--parallel %d: give 1 or more", parallel)
		}
		for _, arg := range labels {
			l, err := parseLabel(arg)
			if err != nil {
				return err
			}
			sel.labels = append(sel.labels, l)
		}
		scheduling := at != nil && *at != ""
		if sel.given() {
			if scheduling || (cancelAt != nil && *cancelAt) {
				return usageErr(fmt.Errorf("--at and --cancel take one group: siteflip switchover GROUP --to SITE --at TIME"))
			}
			if len(pos) > 0 {
				return fmt.Errorf("%s and %s: name one group or select groups, not both: siteflip %s %s, or siteflip %s %s",
					pos[0], sel, action, pos[0], action, sel)
			}
			req := api.RunRequest{Action: action, Reason: *reason, Ticket: *ticket}
			if to != nil {
				req.To = *to
			}
			if acceptLoss != nil {
				req.AcceptDataLoss = *acceptLoss
			}
			return runSelection(e, action, sel, req, parallel, yes != nil && *yes, force != nil && *force)
		}
		if len(pos) != 1 {
			if selectable {
				return fmt.Errorf("name the group: siteflip %s GROUP, or select groups with --all, --site SITE or --label KEY=VALUE", action)
			}
			return fmt.Errorf("name the group: siteflip %s GROUP", action)
		}
		group := pos[0]
		req := api.RunRequest{Group: group, Action: action, Reason: *reason, Ticket: *ticket}
		if to != nil {
			req.To = *to
		}
		canceling := cancelAt != nil && *cancelAt
		if canceling && (scheduling || req.To != "") {
			return usageErr(fmt.Errorf("--cancel takes neither --to nor --at: siteflip switchover %s --cancel", group))
		}
		if action == plan.Switchover && req.To == "" && !canceling {
			return fmt.Errorf("say where to: siteflip switchover %s --to SITE", group)
		}
		if acceptLoss != nil {
			req.AcceptDataLoss = *acceptLoss
		}
		if keep != nil {
			if *keep < 0 {
				return fmt.Errorf("--keep %s: give a duration of 0 or more", *keep)
			}
			req.Keep = *keep
		}
		t, err := e.load()
		if err != nil {
			return err
		}
		if _, ok := t.Group(group); !ok {
			var names []string
			for _, g := range t.Groups {
				names = append(names, g.Name)
			}
			return fmt.Errorf("unknown group %q in %s (groups: %s)", group, t.File, strings.Join(names, ", "))
		}
		if force != nil && *force {
			return forceFailover(e, t, group, req, *yes)
		}
		if canceling {
			return cancelScheduled(e, t, group)
		}
		if scheduling {
			return scheduleSwitchover(e, t, req, *at)
		}
		if cleanup != nil && *cleanup {
			return drillCleanup(e, t, group)
		}
		if action == plan.Drill && !*yes {
			where := "the group's standby site"
			if req.To != "" {
				where = req.To
			}
			fmt.Fprintf(e.stdout, "Drill copies %s's data at %s and starts the copy in that site's bubble; production and replication go on untouched.\nType the group name to confirm: ", group, where)
			line, _ := bufio.NewReader(e.stdin).ReadString('\n')
			if strings.TrimSpace(line) != group {
				return fmt.Errorf("not confirmed: nothing was changed")
			}
		}
		if action == plan.Failover && !*yes {
			where := "the other site"
			if req.To != "" {
				where = req.To
			}
			fmt.Fprintf(e.stdout, "Failover recovers %s at %s now; writes not yet replicated are lost.\nType the group name to confirm: ", group, where)
			line, _ := bufio.NewReader(e.stdin).ReadString('\n')
			if strings.TrimSpace(line) != group {
				return fmt.Errorf("not confirmed: nothing was changed")
			}
		}
		c, err := api.NewClient(t)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		run, err := c.StartRun(sctx, req)
		cancel()
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "run %s: %s, started by %s\n", run.ID, describe(run), startedBy(run))
		final, err := follow(ctx, c, run, e.stdout)
		if err != nil {
			return fmt.Errorf("%w; the run goes on without this command: `siteflip run %s` shows it", err, run.ID)
		}
		summary(e.stdout, final)
		if final.State != plan.RunSucceeded {
			return &exitError{code: 1, err: fmt.Errorf("run %s %s: %s", final.ID, final.State, final.Error)}
		}
		return nil
	}
}

// drillCleanup asks the agent of every site of the group to remove what
// its drills left behind.
func drillCleanup(e *env, t *config.Topology, group string) error {
	g, _ := t.Group(group)
	c, err := api.NewClient(t)
	if err != nil {
		return err
	}
	defer c.Close()
	var failed []string
	for _, site := range g.Sites {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		removed, err := c.DrillCleanup(ctx, site, group)
		cancel()
		switch {
		case err != nil:
			failed = append(failed, site)
			fmt.Fprintf(e.stdout, "%s: %v\n", site, err)
		case len(removed) == 0:
			fmt.Fprintf(e.stdout, "%s: nothing left behind\n", site)
		default:
			fmt.Fprintf(e.stdout, "%s: removed %s\n", site, strings.Join(removed, ", "))
		}
	}
	if len(failed) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("drill leftovers of %s not removed at %s: run it again once their agents answer", group, strings.Join(failed, ", "))}
	}
	return nil
}

// forceFailover is `failover GROUP --force`: with the quorum lost, the
// agent of one site restarts its etcd member as a new single-member
// cluster, declares the other locations lost and recovers the group there
// (docs/force.md).
func forceFailover(e *env, t *config.Topology, group string, req api.RunRequest, yes bool) error {
	g, _ := t.Group(group)
	if req.To != "" && !slices.Contains(g.Sites, req.To) {
		return fmt.Errorf("--to %q is not a site of group %s (its sites: %s); nothing was changed", req.To, group, strings.Join(g.Sites, ", "))
	}
	c, err := api.NewClient(t)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	site := req.To
	if site == "" {
		// The site to keep is the one left: the only one whose agent answers.
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		errs := make([]error, len(g.Sites))
		var wg sync.WaitGroup
		for i, s := range g.Sites {
			wg.Go(func() { errs[i] = c.Ping(pctx, s) })
		}
		wg.Wait()
		cancel()
		var alive, why []string
		for i, s := range g.Sites {
			if errs[i] == nil {
				alive = append(alive, s)
			} else {
				why = append(why, fmt.Sprintf("%s: %v", s, errs[i]))
			}
		}
		switch len(alive) {
		case 0:
			return fmt.Errorf("no agent of the sites of %s answers (%s): start the surviving site's agent, or name the site with --to SITE; nothing was changed",
				group, strings.Join(why, "; "))
		case 1:
			site = alive[0]
		default:
			return fmt.Errorf("the agents of %s all answer: more than one site is alive, so --force is not the way (`siteflip status` shows why nothing happens); "+
				"if the quorum is lost all the same, name the one site to keep with --to SITE; nothing was changed", strings.Join(alive, " and "))
		}
	}
	var others []string
	for _, s := range t.Sites {
		if s.Name != site {
			others = append(others, s.Name)
		}
	}
	if !yes {
		fmt.Fprintf(e.stdout, `FORCED FAILOVER of %[1]s at %[2]s, with the quorum lost:
  - the etcd member of %[2]s restarts as the only member of a new control plane;
    %[3]s are declared lost for good and removed from it;
  - %[2]s then serves without anybody's consent, and %[1]s is recovered there
    (other groups active at a lost site with policy automatic fail over too).
Only use this when the other locations are gone for good. If they are alive and
only cut off from %[2]s, this makes two primaries that both accept writes, and
the data diverges for good.
Type the group name to confirm: `, group, site, strings.Join(others, " and "))
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if strings.TrimSpace(line) != group {
			return fmt.Errorf("not confirmed: nothing was changed")
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	res, err := c.Force(fctx, site, api.ForceRequest{Group: group, AcceptDataLoss: req.AcceptDataLoss, Reason: req.Reason, Ticket: req.Ticket})
	cancel()
	if err != nil {
		return err
	}
	f := res.Forced
	if res.Restarted {
		fmt.Fprintf(e.stdout, "%s runs the control plane alone: its etcd member restarted as a new cluster in %.2fs; declared lost: %s\n",
			site, res.Took.Seconds(), strings.Join(f.Lost, ", "))
	} else {
		fmt.Fprintf(e.stdout, "%s was forced before (by %s at %s)\n", site, f.By, f.At.Local().Format(time.DateTime))
	}
	after := "The lost locations come back only as new members, their old etcd data set aside: read docs/force.md before starting them again."
	if res.Run == nil {
		fmt.Fprintf(e.stdout, "%s\n%s\n", res.Note, after)
		return nil
	}
	run := *res.Run
	fmt.Fprintf(e.stdout, "run %s: %s, started by %s\n", run.ID, describe(run), run.By)
	final, err := followWith(ctx, func(ctx context.Context, id string) (plan.Run, error) { return c.RunAt(ctx, site, id) }, run, e.stdout)
	if err != nil {
		return fmt.Errorf("%w; the run goes on without this command: `siteflip run %s` shows it", err, run.ID)
	}
	summary(e.stdout, final)
	fmt.Fprintln(e.stdout, after)
	if final.State != plan.RunSucceeded {
		return &exitError{code: 1, err: fmt.Errorf("run %s %s: %s", final.ID, final.State, final.Error)}
	}
	return nil
}

// follow polls the run and prints every step as it changes, until the
// run ends.
func follow(ctx context.Context, c *api.Client, run plan.Run, w io.Writer) (plan.Run, error) {
	return followWith(ctx, c.Run, run, w)
}

// followWith is follow, reading the run with get.
func followWith(ctx context.Context, get func(context.Context, string) (plan.Run, error), run plan.Run, w io.Writer) (plan.Run, error) {
	printed := map[string]string{}
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := get(qctx, run.ID)
		cancel()
		if err == nil {
			run = r
			show := func(steps []plan.Step, states []plan.StepState) {
				for i, s := range steps {
					st := states[i]
					if printed[s.ID] == st.State || st.State == plan.StepPending {
						continue
					}
					printed[s.ID] = st.State
					line := fmt.Sprintf("  %7s  %-28s %s", elapsed(run.Started, st), s.ID, st.State)
					if st.Error != "" && st.State != plan.StepRunning {
						line += ": " + st.Error
					}
					fmt.Fprintln(w, line)
				}
			}
			show(run.Plan.Steps, run.Steps)
			show(run.Plan.Rollback, run.Rollback)
			if run.Done() {
				return run, nil
			}
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func elapsed(start time.Time, st plan.StepState) string {
	at := st.Started
	if !st.Ended.IsZero() {
		at = st.Ended
	}
	if at.IsZero() {
		return ""
	}
	return fmt.Sprintf("%.2fs", at.Sub(start).Seconds())
}

func summary(w io.Writer, r plan.Run) {
	fmt.Fprintf(w, "\nrun %s %s", r.ID, r.State)
	if !r.Ended.IsZero() {
		fmt.Fprintf(w, " in %.2fs", r.Ended.Sub(r.Started).Seconds())
	}
	fmt.Fprintln(w)
	if rto := r.RTO(); rto > 0 {
		fmt.Fprintf(w, "  writable at %s after %.3fs (RTO)\n", r.Plan.To, rto.Seconds())
	}
	if r.Plan.Action == plan.Drill {
		if rto := r.MeasuredRTO(); rto > 0 {
			fmt.Fprintf(w, "  copies started and checked at %s after %.3fs (the drill's RTO)\n", r.Plan.To, rto.Seconds())
		}
		for i, s := range r.Plan.Steps {
			if age := r.Steps[i].Output["data_age"]; s.Kind == plan.Clone && age != "" {
				fmt.Fprintf(w, "  %s: the copy's data was %ss old (the RPO a failover would have had)\n", s.Resource, age)
			}
		}
	}
	if r.Verification != "" {
		fmt.Fprintf(w, "  checks: %s\n", r.Verification)
	}
	switch {
	case r.DataLost != "" && r.DataLostBy != "":
		fmt.Fprintf(w, "  data lost: %s (found by run %s)\n", r.DataLost, r.DataLostBy)
	case r.DataLost != "":
		fmt.Fprintf(w, "  data lost: %s\n", r.DataLost)
	case r.DataLostBy != "":
		fmt.Fprintf(w, "  data lost: none (run %s rejoined %s and found nothing that existed only there)\n", r.DataLostBy, r.Plan.From)
	case r.State == plan.RunSucceeded && (r.Plan.Action == plan.Switchover || r.Plan.Action == plan.Failback):
		fmt.Fprintln(w, "  data lost: none (the standby replayed everything the fenced primary wrote)")
	case r.Plan.Action == plan.Failover && r.Plan.From == r.Plan.To:
		fmt.Fprintf(w, "  data lost: none (the primary at %s started again from its own data)\n", r.Plan.To)
	case r.Plan.Action == plan.Failover && (r.Activated() || !r.Done()):
		fmt.Fprintf(w, "  data lost: known after `siteflip reprotect %s` rewinds the old primary\n", r.Group)
	case r.State == plan.RunSucceeded && r.Plan.Action == plan.Reprotect:
		fmt.Fprintln(w, "  data lost: none (no WAL existed only at the rejoined site)")
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  %s\n", r.Error)
	}
}

// runRuns lists the runs of a group, or of every group, oldest first:
// with -o json every stored field of every run, so that the history can
// be kept elsewhere before the controller prunes it (plan.RunsKept,
// plan.RunsMaxAge).
func runRuns(e *env, args []string) error {
	fs := e.flags("runs")
	output := fs.String("o", "text", "output `FORMAT`: text or json")
	since := fs.String("since", "", "only the runs started from `WHEN` on: a duration back from now (720h) or a time (2026-12-03T10:00:00Z); all when empty")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("-o %q: use text or json", *output)
	}
	var from time.Time
	if *since != "" {
		if from, err = parseSince(*since, time.Now()); err != nil {
			return err
		}
	}
	group := ""
	if len(pos) == 1 {
		group = pos[0]
	}
	_, c, err := e.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runs, err := c.Runs(ctx, group)
	if err != nil {
		return err
	}
	runs = slices.DeleteFunc(runs, func(r plan.Run) bool { return r.Started.Before(from) })
	if *output == "json" {
		if runs == nil {
			runs = []plan.Run{} // an empty list, not null
		}
		return jsonOut(e.stdout, runs)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tGROUP\tACTION\tFROM\tTO\tSTATE\tRTO\tBY\tSTARTED")
	for _, r := range runs {
		rto := "-"
		if d := r.RTO(); d > 0 {
			rto = fmt.Sprintf("%.2fs", d.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Group, r.Plan.Action, r.Plan.From, r.Plan.To, r.State, rto, r.By, r.Started.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

// runRun shows one run's timeline.
func runRun(e *env, args []string) error {
	fs := e.flags("run")
	output := fs.String("o", "text", "output `FORMAT`: text or json")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("name the run: siteflip run ID (`siteflip runs` lists them)")
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("-o %q: use text or json", *output)
	}
	_, c, err := e.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Run(ctx, pos[0])
	if err != nil {
		return err
	}
	if *output == "json" {
		return jsonOut(e.stdout, r)
	}
	fmt.Fprintf(e.stdout, "run %s: %s, started by %s at %s\n", r.ID, describe(r), r.By, r.Started.Local().Format(time.DateTime))
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  STEP\tSTATE\tSTART\tTOOK\tATTEMPTS\tOUTPUT / ERROR")
	rows := func(steps []plan.Step, states []plan.StepState) {
		for i, s := range steps {
			st := states[i]
			start, took := "-", "-"
			if !st.Started.IsZero() {
				start = fmt.Sprintf("+%.3fs", st.Started.Sub(r.Started).Seconds())
			}
			if !st.Ended.IsZero() && !st.Started.IsZero() {
				took = fmt.Sprintf("%.3fs", st.Ended.Sub(st.Started).Seconds())
			}
			detail := st.Error
			if detail == "" && len(st.Output) > 0 {
				var kv []string
				for k, v := range st.Output {
					// A command's output (a script's, a service's) keeps its
					// lines: one row shows them side by side.
					if v = strings.ReplaceAll(strings.TrimSpace(v), "\n", " | "); v != "" {
						kv = append(kv, k+"="+v)
					}
				}
				sort.Strings(kv)
				detail = strings.Join(kv, " ")
			}
			id := s.ID
			if s.Wave != 0 {
				id += fmt.Sprintf(" ∥%d", s.Wave) // side by side with the others of its wave
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\n", id, st.State, start, took, st.Attempts, detail)
		}
	}
	rows(r.Plan.Steps, r.Steps)
	if len(r.Plan.Rollback) > 0 {
		fmt.Fprintln(tw, "  rollback:\t\t\t\t\t")
		rows(r.Plan.Rollback, r.Rollback)
	}
	tw.Flush()
	summary(e.stdout, r)
	return nil
}

func jsonOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// describe says what a run does, in words.
func describe(r plan.Run) string {
	if r.Plan.Action == plan.Failover && r.Plan.From == r.Plan.To {
		// A forced recovery where the group already was (docs/force.md).
		return fmt.Sprintf("recovery of %s at %s after a force (epoch %d)", r.Group, r.Plan.To, r.Plan.Epoch)
	}
	if r.Plan.Action == plan.Reprotect {
		return fmt.Sprintf("reprotect of %s: the other sites rejoin %s (epoch %d)", r.Group, r.Plan.To, r.Plan.Epoch)
	}
	return fmt.Sprintf("%s of %s from %s to %s (epoch %d)", r.Plan.Action, r.Group, r.Plan.From, r.Plan.To, r.Plan.Epoch)
}

// startedBy says who started a run, with their role.
func startedBy(r plan.Run) string {
	if r.Role == "" {
		return r.By
	}
	return r.By + " (" + r.Role + ")"
}
