package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
)

// Maintenance (docs/design/maintenance.md): `siteflip pause` stops what
// siteflip starts on its own for a group — automatic failover, scheduled
// drills — until `siteflip resume`; a person's runs still work, as
// patronictl's pause still allows a manual switchover.

func newPauseCmd(e *env) *cobra.Command  { return pauseCmd(e, true) }
func newResumeCmd(e *env) *cobra.Command { return pauseCmd(e, false) }

// pauseCmd builds `pause` (pause true) or `resume`.
func pauseCmd(e *env, pause bool) *cobra.Command {
	verb, short, long := "resume", "let siteflip act on its own again for the group (undo pause)",
		"Resume lifts a group's pause: automatic failover and scheduled drills start again as the group's policy says.\n"+
			"If the group's active site is lost at that moment, its automatic failover starts at once.\n"+
			"Resuming a group that is not paused changes nothing and is not an error."
	if pause {
		verb, short, long = "pause", "maintenance: no automatic failover nor scheduled drill for the group until resume",
			"Pause stops what siteflip starts on its own for a group: no automatic failover and no scheduled drill\n"+
				"until `siteflip resume`. Your own runs (switchover, failover, reprotect, failback, drill) still work,\n"+
				"and a run already in progress goes on. The pause is kept in etcd: it holds across agent restarts\n"+
				"and changes of controller. Pausing a paused group keeps the first pause and is not an error."
	}
	var sel selection
	var labels []string
	var reason, ticket string
	c := &cobra.Command{
		Use:   verb + " GROUP | --all | --site SITE | --label KEY=VALUE",
		Short: short,
		Long:  long,
		Example: fmt.Sprintf("  siteflip %s webshop%s\n  siteflip %s --site brussels\n  siteflip %s --label tier=gold",
			verb, map[bool]string{true: ` --reason "kernel upgrade at brussels"`, false: ""}[pause], verb, verb),
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErr(fmt.Errorf("unexpected argument(s): %s; name one group, or select groups with --all, --site SITE or --label KEY=VALUE", strings.Join(args[1:], " ")))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			for _, arg := range labels {
				l, err := parseLabel(arg)
				if err != nil {
					return usageErr(err)
				}
				sel.labels = append(sel.labels, l)
			}
			switch {
			case sel.given() && len(args) == 1:
				return usageErr(fmt.Errorf("%s and %s: name one group or select groups, not both: siteflip %s %s, or siteflip %s %s",
					args[0], sel, verb, args[0], verb, sel))
			case !sel.given() && len(args) == 0:
				return usageErr(fmt.Errorf("name the group: siteflip %s GROUP, or select groups with --all, --site SITE or --label KEY=VALUE", verb))
			}
			if err := checkReason(reason, ticket); err != nil {
				return usageErr(err)
			}
			return runPause(e, pause, args, sel, reason, ticket)
		},
	}
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	f := c.Flags()
	f.StringVar(&e.config, "config", e.config, "topology `FILE`")
	f.BoolVar(&sel.all, "all", false, "every group, instead of naming one")
	f.StringVar(&sel.site, "site", "", "every group active at `SITE`, instead of naming one")
	f.StringArrayVar(&labels, "label", nil, "every group labelled `KEY=VALUE`, instead of naming one (repeatable: a group must carry every one)")
	f.StringVar(&reason, "reason", "", "why, in a few words: the `TEXT` status, the pause and the audit trail keep")
	f.StringVar(&ticket, "ticket", "", "the change or incident `ID` this belongs to (kept in the audit trail)")
	return c
}

// usageErr is a command line that is wrong: exit code exitUsage.
func usageErr(err error) error { return &exitError{code: exitUsage, err: err} }

// checkReason refuses a reason or ticket the agent would refuse, before any
// agent is asked.
func checkReason(reason, ticket string) error {
	for _, f := range []struct{ flag, v string }{{"--reason", reason}, {"--ticket", ticket}} {
		if len(f.v) > 500 {
			return fmt.Errorf("%s is %d bytes long; keep it under 500", f.flag, len(f.v))
		}
		if strings.ContainsFunc(f.v, func(c rune) bool { return c < ' ' || c == 0x7f }) {
			return fmt.Errorf("%s holds a control character; write it on one line", f.flag)
		}
	}
	return nil
}

// runPause pauses or resumes the named group or the selected ones, and
// prints one line per group. The exit code is the worst of the groups':
// refused (exitRefused) or no agent answered (exitUnreachable).
func runPause(e *env, pause bool, args []string, sel selection, reason, ticket string) error {
	t, err := e.load()
	if err != nil {
		return err
	}
	var groups []string
	if len(args) == 1 {
		if _, ok := t.Group(args[0]); !ok {
			return &exitError{code: exitRefused, err: fmt.Errorf("unknown group %q in %s (groups: %s); nothing was changed", args[0], t.File, strings.Join(groupList(t), ", "))}
		}
		groups = args
	}
	if sel.site != "" {
		if err := checkSite(t, "--site", sel.site); err != nil {
			return &exitError{code: exitRefused, err: err}
		}
	}
	c, err := api.NewClient(t)
	if err != nil {
		return err
	}
	defer c.Close()
	if sel.given() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := c.Status(sctx)
		cancel()
		if err != nil {
			return &exitError{code: exitUnreachable, err: fmt.Errorf("%w; the selection needs the status, where each group is active; nothing was changed", err)}
		}
		if groups, err = selectGroups(t, st, sel); err != nil {
			return &exitError{code: exitRefused, err: err}
		}
	}
	code := exitOK
	var failed []string
	for _, g := range groups {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		var res api.PauseResult
		if pause {
			res, err = c.Pause(ctx, g, api.PauseRequest{Reason: reason, Ticket: ticket})
		} else {
			res, err = c.Resume(ctx, g, api.ResumeRequest{Reason: reason, Ticket: ticket})
		}
		cancel()
		if err != nil {
			fmt.Fprintf(e.stdout, "%s: not %s: %v\n", g, map[bool]string{true: "paused", false: "resumed"}[pause], err)
			failed = append(failed, g)
			code = max(code, pauseErrCode(err))
			continue
		}
		printPauseResult(e.stdout, pause, res, time.Now())
	}
	if len(failed) == 0 {
		return nil
	}
	verb := map[bool]string{true: "pause", false: "resume"}[pause]
	if len(groups) == 1 {
		return &exitError{code: code, err: errors.New("nothing was changed")}
	}
	return &exitError{code: code, err: fmt.Errorf("%d of %d groups not changed: %s; `siteflip %s` them again once the cause is fixed", len(failed), len(groups), abridge(failed, 10), verb)}
}

// pauseErrCode is the exit code of a failed pause or resume: refused by
// the agent (a role, an unknown group), or no agent answered.
func pauseErrCode(err error) int {
	var re *api.RequestError
	if errors.As(err, &re) {
		return exitRefused
	}
	return exitUnreachable
}

// printPauseResult says what a pause or resume did to one group.
func printPauseResult(w io.Writer, pause bool, res api.PauseResult, now time.Time) {
	p := res.Pause
	switch {
	case pause && res.Changed:
		fmt.Fprintf(w, "%s: paused%s: no automatic failover and no scheduled drill until `siteflip resume %s`; your own runs still work\n",
			res.Group, pauseWhy(p), res.Group)
	case pause:
		fmt.Fprintf(w, "%s: already paused by %s %s ago%s: nothing changed\n", res.Group, p.Who(), ago(now.Sub(p.At)), pauseWhy(p))
	case res.Changed && p != nil:
		fmt.Fprintf(w, "%s: resumed (paused by %s for %s%s): automatic failover and scheduled drills are on again\n",
			res.Group, p.Who(), ago(now.Sub(p.At)), pauseWhy(p))
	default:
		fmt.Fprintf(w, "%s: not paused: nothing changed\n", res.Group)
	}
}

// pauseWhy is the reason of a pause, as a parenthesis, or "".
func pauseWhy(p *status.Pause) string {
	if p == nil || p.Reason == "" {
		return ""
	}
	return ": " + p.Reason
}

// printMaintenance prints, above everything else in status, one loud line
// per paused group.
func printMaintenance(w io.Writer, st status.Status) {
	paused := false
	for _, g := range st.Groups {
		if !g.Paused {
			continue
		}
		paused = true
		why := ""
		if g.PauseReason != "" {
			why = ": " + g.PauseReason
		}
		fmt.Fprintf(w, "MAINTENANCE: %s paused %s ago by %s%s — no automatic failover — resume: siteflip resume %s\n",
			g.Name, ago(st.Time.Sub(g.PausedAt)), orDash(g.PausedBy), why, g.Name)
		if g.Run != "" {
			fmt.Fprintf(w, "  run %s goes on: a pause stops only what siteflip starts by itself (siteflip run %s)\n", g.Run, g.Run)
		}
	}
	if paused {
		fmt.Fprintln(w)
	}
}

// ago is a duration as a person says it: 40s, 12m, 2h, 3d.
func ago(d time.Duration) string {
	switch d = max(d, 0); {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// groupList is the names of t's groups.
func groupList(t *config.Topology) []string {
	var names []string
	for _, g := range t.Groups {
		names = append(names, g.Name)
	}
	return names
}
