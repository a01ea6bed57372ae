package cli

import (
	"bufio"
	"context"
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

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/plan"
)

// runFlags are the flags of a run verb; those a verb does not take stay
// at their zero value.
type runFlags struct {
	to, reason, ticket         string
	yes, dryRun                bool
	at                         string // switchover --at: schedule it
	cancelAt                   bool   // switchover --cancel: cancel the scheduled one
	acceptLoss, force, cleanup bool
	keep                       time.Duration
	all                        bool
	site                       string
	labels                     []string
	parallel                   int
}

// runVerbLong is each run verb's help, after its summary.
var runVerbLong = map[plan.Action]string{
	plan.Failover: `failover recovers the group at the other site now (unplanned): writes not
yet replicated are lost, up to the group's max_data_loss (--accept-data-loss
to go beyond). --force is for a lost quorum only (docs/force.md).`,
	plan.Switchover: `switchover moves the group to --to SITE with no data loss (planned).`,
	plan.Reprotect:  `reprotect rebuilds replication toward the active site: the other sites rejoin.`,
	plan.Failback:   `failback switches the group over back to its preferred site.`,
	plan.Drill: `drill recovers a copy of the group's data in a site's bubble, checks it and
tears it down; production and replication go on untouched. --cleanup
removes what the group's drills left behind, at every site.`,
}

// runVerbFoot is what every run verb's help ends with.
const runVerbFoot = `

Everything the command line can check is checked before anything is asked:
the group, the sites, the flags. On a terminal it then asks for a
confirmation unless --yes; when standard input is not a terminal it does
not ask: failover refuses without --yes (exit 2), the others go ahead.
--dry-run asks an agent to plan the run as it would start it, prints the
plan and starts nothing. Exit codes: docs/cli.md.`

// newRunCmd builds the cobra command of a run verb: failover, switchover,
// reprotect, failback or drill.
func newRunCmd(action plan.Action) func(e *env) *cobra.Command {
	return func(e *env) *cobra.Command {
		c := &cobra.Command{
			Use:  string(action) + " GROUP",
			Long: runVerbLong[action] + runVerbFoot,
			Args: maxArgs(1),
		}
		var f runFlags
		fs := c.Flags()
		fs.StringVar(&f.reason, "reason", "", "why, in a few words (`TEXT`); the run and the audit trail keep it")
		fs.StringVar(&f.ticket, "ticket", "", "the change or incident `ID` this run belongs to")
		fs.BoolVar(&f.yes, "yes", false, "do not ask for confirmation")
		fs.BoolVar(&f.dryRun, "dry-run", false, "print the plan an agent makes for this run, and start nothing")
		switch action {
		case plan.Failover:
			fs.StringVar(&f.to, "to", "", "`SITE` to recover at (default: the other site)")
			fs.BoolVar(&f.acceptLoss, "accept-data-loss", false, "go ahead although the standby is further behind than max_data_loss")
			fs.BoolVar(&f.force, "force", false, "the quorum is lost: the site (--to, default the only one whose agent answers) takes over alone; only when the other locations are gone for good")
		case plan.Switchover:
			fs.StringVar(&f.to, "to", "", "`SITE` to move to (required)")
			fs.StringVar(&f.at, "at", "", "start it later, at `TIME` (22:00, \"2026-12-05 22:00\", RFC 3339, or a duration from now): whichever location is controller then starts it")
			fs.BoolVar(&f.cancelAt, "cancel", false, "cancel the group's scheduled switchover")
		case plan.Drill:
			fs.StringVar(&f.to, "at", "", "`SITE` to drill at (default: the group's standby site)")
			fs.DurationVar(&f.keep, "keep", 0, "keep the drill's copies up this `DURATION` after the checks, then tear down")
			fs.BoolVar(&f.cleanup, "cleanup", false, "remove what the group's drills left behind, at every site, and start nothing")
		}
		// Instead of one GROUP, the verbs that bring groups back after a
		// site loss take a selection: there may be hundreds.
		if action != plan.Drill {
			c.Use += " | --all | --site SITE | --label KEY=VALUE"
			fs.BoolVar(&f.all, "all", false, "every group, instead of naming one")
			fs.StringVar(&f.site, "site", "", "every group active at `SITE`, instead of naming one")
			fs.StringArrayVar(&f.labels, "label", nil, "every group labelled `KEY=VALUE`, instead of naming one (repeatable: a group must carry every one)")
			fs.IntVar(&f.parallel, "parallel", defaultParallel, "with a selection, at most `N` runs going on at once")
		}
		c.RunE = func(_ *cobra.Command, pos []string) error { return runAction(e, action, f, pos) }
		c.ValidArgsFunction = e.completeGroups
		for _, flag := range []string{"to", "at", "site"} {
			if fs.Lookup(flag) != nil {
				_ = c.RegisterFlagCompletionFunc(flag, e.completeSites)
			}
		}
		return c
	}
}

// runAction starts failover, switchover, reprotect, failback or drill of a
// group, or of a selection of groups, and follows the runs to their end.
func runAction(e *env, action plan.Action, f runFlags, pos []string) error {
	toFlag := "--to"
	if action == plan.Drill {
		toFlag = "--at"
	}
	var sel selection
	sel.all, sel.site = f.all, f.site
	selectable := action != plan.Drill
	if selectable && f.parallel < 1 {
		return usageErrorf("--parallel %d: give 1 or more", f.parallel)
	}
	for _, arg := range f.labels {
		l, err := parseLabel(arg)
		if err != nil {
			return err
		}
		sel.labels = append(sel.labels, l)
	}
	if f.dryRun && f.force {
		return usageErrorf("--dry-run and --force: a forced failover restarts the control plane first, and has no plan to show before; leave out one")
	}
	if f.dryRun && f.cleanup {
		return usageErrorf("--dry-run and --cleanup: --cleanup starts no run; leave out one")
	}
	if f.cleanup && (f.to != "" || f.keep != 0) {
		return usageErrorf("--cleanup removes what the group's drills left behind at every site: it takes no --at or --keep")
	}
	if f.keep < 0 {
		return usageErrorf("--keep %s: give a duration of 0 or more", f.keep)
	}
	scheduling := action == plan.Switchover && f.at != ""
	if (scheduling || f.cancelAt) && f.dryRun {
		return usageErrorf("--dry-run plans a switchover now: leave out --at and --cancel, or --dry-run")
	}
	req := api.RunRequest{Action: action, To: f.to, AcceptDataLoss: f.acceptLoss, Keep: f.keep, Reason: f.reason, Ticket: f.ticket}
	if sel.given() {
		if scheduling || f.cancelAt {
			return usageErrorf("--at and --cancel take one group: siteflip switchover GROUP --to SITE --at TIME")
		}
		if len(pos) > 0 {
			return usageErrorf("%s and %s: name one group or select groups, not both: siteflip %s %s, or siteflip %s %s",
				pos[0], sel, action, pos[0], action, sel)
		}
		return runSelection(e, action, sel, req, f.parallel, f.yes, f.force, f.dryRun)
	}
	if len(pos) != 1 {
		if selectable {
			return usageErrorf("name the group: siteflip %s GROUP, or select groups with --all, --site SITE or --label KEY=VALUE", action)
		}
		return usageErrorf("name the group: siteflip %s GROUP", action)
	}
	group := pos[0]
	req.Group = group
	if f.cancelAt && (scheduling || req.To != "") {
		return usageErrorf("--cancel takes neither --to nor --at: siteflip switchover %s --cancel", group)
	}
	if action == plan.Switchover && req.To == "" && !f.cancelAt {
		return usageErrorf("say where to: siteflip switchover %s --to SITE", group)
	}
	t, err := e.load()
	if err != nil {
		return err
	}
	g, ok := t.Group(group)
	if !ok {
		var names []string
		for _, g := range t.Groups {
			names = append(names, g.Name)
		}
		return refusedErrorf("unknown group %q in %s (groups: %s)", group, t.File, strings.Join(names, ", "))
	}
	if req.To != "" && !slices.Contains(g.Sites, req.To) {
		if _, known := t.Site(req.To); !known {
			return &exitError{code: exitRefused, err: fmt.Errorf("%w; nothing was changed", checkSite(t, toFlag, req.To))}
		}
		return refusedErrorf("%s %q is not a site of group %s (its sites: %s); nothing was changed", toFlag, req.To, group, strings.Join(g.Sites, ", "))
	}
	if f.force {
		return forceFailover(e, t, group, req, f.yes)
	}
	if f.cancelAt {
		return cancelScheduled(e, t, group)
	}
	if scheduling {
		return scheduleSwitchover(e, t, req, f.at)
	}
	if f.cleanup {
		return drillCleanup(e, t, group)
	}
	if f.dryRun {
		return dryRun(e, t, req)
	}
	if err := confirmRun(e, action, group, req.To, f.yes); err != nil {
		return err
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
		return &exitError{code: exitFailed, err: fmt.Errorf("run %s %s: %s", final.ID, final.State, final.Error)}
	}
	return nil
}

// confirmRun asks, on a terminal, for the confirmation of one group's run
// unless --yes. Off a terminal nobody can answer: a failover is refused
// without --yes, the other runs go ahead.
func confirmRun(e *env, action plan.Action, group, to string, yes bool) error {
	if yes {
		return nil
	}
	where := to
	switch {
	case where != "":
	case action == plan.Drill:
		where = "the group's standby site"
	default:
		where = "the other site"
	}
	if !isTerminal(e.stdin) {
		if action == plan.Failover {
			return usageErrorf("failover of %s at %s loses the writes not yet replicated, and standard input is not a terminal to confirm it: add --yes; nothing was changed", group, where)
		}
		return nil
	}
	switch action {
	case plan.Failover:
		fmt.Fprintf(e.stdout, "Failover recovers %s at %s now; writes not yet replicated are lost.\nType the group name to confirm: ", group, where)
		return confirmTyped(e, group)
	case plan.Drill:
		fmt.Fprintf(e.stdout, "Drill copies %s's data at %s and starts the copy in that site's bubble; production and replication go on untouched.\nType the group name to confirm: ", group, where)
		return confirmTyped(e, group)
	case plan.Switchover:
		fmt.Fprintf(e.stdout, "Switchover moves %s to %s: its clients pause while the primary is fenced and the standby catches up. Go ahead? [y/N] ", group, where)
	case plan.Failback:
		fmt.Fprintf(e.stdout, "Failback moves %s back to its preferred site: its clients pause while the primary is fenced and the standby catches up. Go ahead? [y/N] ", group)
	default:
		fmt.Fprintf(e.stdout, "Reprotect makes the other sites of %s rejoin its active site as standbys (rewound or recloned). Go ahead? [y/N] ", group)
	}
	return confirmYes(e)
}

// confirmTyped reads one line and goes ahead only when it is want.
func confirmTyped(e *env, want string) error {
	line, _ := bufio.NewReader(e.stdin).ReadString('\n')
	if strings.TrimSpace(line) != want {
		return fmt.Errorf("not confirmed: nothing was changed")
	}
	return nil
}

// confirmYes reads one line and goes ahead only on y or yes.
func confirmYes(e *env) error {
	line, _ := bufio.NewReader(e.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return fmt.Errorf("not confirmed: nothing was changed")
}

// dryRun asks an agent to plan req as it would start it, and prints the
// plan; nothing is started or stored.
func dryRun(e *env, t *config.Topology, req api.RunRequest) error {
	c, err := api.NewClient(t)
	if err != nil {
		return err
	}
	defer c.Close()
	req.DryRun = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run, err := c.StartRun(ctx, req)
	if err != nil {
		return err
	}
	printPlan(e.stdout, run)
	return nil
}

// printPlan prints the plan of a dry run: the steps in order, each with
// the site whose agent carries it out, then the steps per site, the
// checks and approvals that apply, and the rollback.
func printPlan(w io.Writer, r plan.Run) {
	p := r.Plan
	fmt.Fprintf(w, "dry run: %s; nothing was started\n", describe(r))
	if p.Why != "" {
		fmt.Fprintf(w, "  why %s: %s\n", p.To, p.Why)
	}
	fmt.Fprintln(w, "  admitted: your role allows it, no run holds the group, and the plan passes the safety rules as the agent sees the group now; a real run is checked again when it starts")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\n  #\tSTEP\tKIND\tSITE\tTIMEOUT\tRETRIES\tNOTE")
	rows := func(steps []plan.Step) {
		for i, s := range steps {
			var note []string
			if s.Wave != 0 {
				note = append(note, fmt.Sprintf("side by side (wave %d)", s.Wave))
			}
			if s.BestEffort {
				note = append(note, "best effort")
			}
			if s.Message != "" {
				note = append(note, fmt.Sprintf("asks: %q", s.Message))
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%d\t%s\n", i+1, s.ID, s.Kind, s.Site, s.Timeout, s.Retries, orDash(strings.Join(note, "; ")))
		}
	}
	rows(p.Steps)
	tw.Flush()
	// Per site, in order.
	var sites []string
	bySite := map[string][]string{}
	var checks, approvals []string
	for _, s := range p.Steps {
		if _, ok := bySite[s.Site]; !ok {
			sites = append(sites, s.Site)
		}
		what := string(s.Kind)
		if s.Resource != "" {
			what += " " + s.Resource
		}
		bySite[s.Site] = append(bySite[s.Site], what)
		switch s.Kind {
		case plan.Check:
			checks = append(checks, s.Resource+" at "+s.Site)
		case plan.Approve:
			approvals = append(approvals, s.Resource)
		}
	}
	fmt.Fprintln(w, "\n  per site, in order:")
	for _, site := range sites {
		fmt.Fprintf(w, "    %s: %s\n", site, strings.Join(bySite[site], ", "))
	}
	if len(checks) > 0 {
		fmt.Fprintf(w, "  checks: %s\n", strings.Join(checks, ", "))
	} else {
		fmt.Fprintln(w, "  checks: none configured (the group has no check resources)")
	}
	if len(approvals) > 0 {
		fmt.Fprintf(w, "  approvals: %s (the run waits for `siteflip approve`)\n", strings.Join(approvals, ", "))
	}
	if len(p.Rollback) > 0 {
		fmt.Fprintln(w, "\n  rollback, if a step before activate fails:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for i, s := range p.Rollback {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", i+1, s.ID, s.Kind, s.Site, s.Timeout)
		}
		tw.Flush()
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
			return &exitError{code: exitUnreachable, err: fmt.Errorf("no agent of the sites of %s answers (%s): start the surviving site's agent, or name the site with --to SITE; nothing was changed",
				group, strings.Join(why, "; "))}
		case 1:
			site = alive[0]
		default:
			return refusedErrorf("the agents of %s all answer: more than one site is alive, so --force is not the way (`siteflip status` shows why nothing happens); "+
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
		terminal := isTerminal(e.stdin)
		fmt.Fprintf(e.stdout, `FORCED FAILOVER of %[1]s at %[2]s, with the quorum lost:
  - the etcd member of %[2]s restarts as the only member of a new control plane;
    %[3]s are declared lost for good and removed from it;
  - %[2]s then serves without anybody's consent, and %[1]s is recovered there
    (other groups active at a lost site with policy automatic fail over too).
Only use this when the other locations are gone for good. If they are alive and
only cut off from %[2]s, this makes two primaries that both accept writes, and
the data diverges for good.
`, group, site, strings.Join(others, " and "))
		if !terminal {
			return usageErrorf("not confirmed: standard input is not a terminal to confirm a forced failover; add --yes once you are sure; nothing was changed")
		}
		fmt.Fprint(e.stdout, "Type the group name to confirm: ")
		if err := confirmTyped(e, group); err != nil {
			return err
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

// newRunsCmd is `siteflip runs`.
func newRunsCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "runs [GROUP] [--since DURATION|TIME] [-o text|json]",
		Short: "history of runs, who started them, RTO",
		Long: `runs lists the runs of a group, or of every group, oldest first; with
-o json every stored field of every run. A group that is neither in the
topology nor on record is refused (exit 3).`,
		Args: maxArgs(1),
	}
	output := outputFlag(c.Flags(), "text", "json")
	since := c.Flags().String("since", "", "only the runs started from `WHEN` on: a duration back from now (720h) or a time (2026-12-03T10:00:00Z); all when empty")
	c.RunE = func(_ *cobra.Command, pos []string) error { return runRuns(e, pos, *output, *since) }
	c.ValidArgsFunction = e.completeGroups
	return c
}

// newRunShowCmd is `siteflip run`.
func newRunShowCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "run ID [-o text|json]",
		Short: "one run's timeline, step by step",
		Long:  "run shows one run's timeline, step by step; an unknown ID is refused (exit 3).",
		Args:  maxArgs(1),
	}
	output := outputFlag(c.Flags(), "text", "json")
	c.RunE = func(_ *cobra.Command, pos []string) error { return runRun(e, pos, *output) }
	return c
}

// runRuns lists the runs of a group, or of every group, oldest first:
// with -o json every stored field of every run, so that the history can
// be kept elsewhere before the controller prunes it (plan.RunsKept,
// plan.RunsMaxAge).
func runRuns(e *env, pos []string, output, since string) error {
	if err := checkOutput(output, "text", "json"); err != nil {
		return err
	}
	var from time.Time
	if since != "" {
		var err error
		if from, err = parseSince(since, time.Now()); err != nil {
			return err
		}
	}
	group := ""
	if len(pos) == 1 {
		group = pos[0]
	}
	t, c, err := e.client()
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
	if _, known := t.Group(group); group != "" && !known && len(runs) == 0 {
		// A group since removed from the topology still has its history;
		// a name that has neither is a mistake, not an empty history.
		var names []string
		for _, g := range t.Groups {
			names = append(names, g.Name)
		}
		return refusedErrorf("unknown group %q in %s (groups: %s), and no run of it on record", group, t.File, strings.Join(names, ", "))
	}
	runs = slices.DeleteFunc(runs, func(r plan.Run) bool { return r.Started.Before(from) })
	if output == "json" {
		return jsonview.Write(e.stdout, jsonview.RunsOf(runs))
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
func runRun(e *env, pos []string, output string) error {
	if len(pos) != 1 {
		return usageErrorf("name the run: siteflip run ID (`siteflip runs` lists them)")
	}
	if err := checkOutput(output, "text", "json"); err != nil {
		return err
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
	if output == "json" {
		return jsonview.Write(e.stdout, jsonview.RunOf(r))
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
