package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/plan"
)

// runAction starts failover, switchover, reprotect or failback of a group
// and follows the run to its end.
func runAction(action plan.Action) func(e *env, args []string) error {
	return func(e *env, args []string) error {
		fs := e.flags(string(action))
		var to *string
		var yes, acceptLoss *bool
		switch action {
		case plan.Failover:
			to = fs.String("to", "", "`SITE` to recover at (default: the other site)")
			yes = fs.Bool("yes", false, "do not ask for confirmation")
			acceptLoss = fs.Bool("accept-data-loss", false, "go ahead although the standby is further behind than max_data_loss")
		case plan.Switchover:
			to = fs.String("to", "", "`SITE` to move to (required)")
		}
		pos, err := parse(fs, args, 1)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("name the group: siteflip %s GROUP", action)
		}
		group := pos[0]
		req := api.RunRequest{Group: group, Action: action}
		if to != nil {
			req.To = *to
		}
		if action == plan.Switchover && req.To == "" {
			return fmt.Errorf("say where to: siteflip switchover %s --to SITE", group)
		}
		if acceptLoss != nil {
			req.AcceptDataLoss = *acceptLoss
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
		fmt.Fprintf(e.stdout, "run %s: %s, started by %s\n", run.ID, describe(run), run.By)
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

// follow polls the run and prints every step as it changes, until the
// run ends.
func follow(ctx context.Context, c *api.Client, run plan.Run, w io.Writer) (plan.Run, error) {
	printed := map[string]string{}
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := c.Run(qctx, run.ID)
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
	switch {
	case r.DataLost != "":
		fmt.Fprintf(w, "  data lost: %s\n", r.DataLost)
	case r.State == plan.RunSucceeded && (r.Plan.Action == plan.Switchover || r.Plan.Action == plan.Failback):
		fmt.Fprintln(w, "  data lost: none (the standby replayed everything the fenced primary wrote)")
	case r.Plan.Action == plan.Failover:
		fmt.Fprintf(w, "  data lost: known after `siteflip reprotect %s` rewinds the old primary\n", r.Group)
	case r.State == plan.RunSucceeded && r.Plan.Action == plan.Reprotect:
		fmt.Fprintln(w, "  data lost: none (no WAL existed only at the rejoined site)")
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  %s\n", r.Error)
	}
}

// runRuns lists the runs of a group, or of every group.
func runRuns(e *env, args []string) error {
	fs := e.flags("runs")
	output := fs.String("o", "text", "output `FORMAT`: text or json")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("-o %q: use text or json", *output)
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
	if *output == "json" {
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
					kv = append(kv, k+"="+v)
				}
				sort.Strings(kv)
				detail = strings.Join(kv, " ")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\n", s.ID, st.State, start, took, st.Attempts, detail)
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
	if r.Plan.Action == plan.Reprotect {
		return fmt.Sprintf("reprotect of %s: the other sites rejoin %s (epoch %d)", r.Group, r.Plan.To, r.Plan.Epoch)
	}
	return fmt.Sprintf("%s of %s from %s to %s (epoch %d)", r.Plan.Action, r.Group, r.Plan.From, r.Plan.To, r.Plan.Epoch)
}
