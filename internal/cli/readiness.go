package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/jsonview"
)

// newReadinessCmd is `siteflip readiness`.
func newReadinessCmd(e *env) *cobra.Command {
	var sel selection
	var labels []string
	c := &cobra.Command{
		Use:   "readiness [GROUP...|--all|--label KEY=VALUE] [-o text|json]",
		Short: "is every group ready to fail over now? each reason, and what fixes it",
		Long: `readiness prints each group's verdict — ready, at risk or not ready — with
every reason and the command or change that fixes it (docs/design/risk.md),
then how many groups have each verdict. Without GROUP or a selection it
judges every group. It exits 0 when every group judged is ready, 1
otherwise: a script or a monitor can run it before a planned failover.`,
		Example: "  siteflip readiness\n  siteflip readiness webshop billing\n  siteflip readiness --label tier=gold -o json",
		Args:    cobra.ArbitraryArgs,
	}
	output := outputFlag(c.Flags(), "text", "json")
	c.Flags().BoolVar(&sel.all, "all", false, "every group (the default)")
	c.Flags().StringArrayVar(&labels, "label", nil, "every group labelled `KEY=VALUE` (repeatable: a group must carry every one)")
	c.ValidArgsFunction = e.completeGroups
	c.RunE = func(_ *cobra.Command, args []string) error {
		for _, arg := range labels {
			l, err := parseLabel(arg)
			if err != nil {
				return err
			}
			sel.labels = append(sel.labels, l)
		}
		if sel.given() && len(args) > 0 {
			return usageErrorf("%s and %s: name groups or select them, not both", strings.Join(args, " "), sel)
		}
		return runReadiness(e, args, sel, *output)
	}
	return c
}

// runReadiness prints the verdict of the named or selected groups, as
// the status of any reachable location has it.
func runReadiness(e *env, names []string, sel selection, output string) error {
	if err := checkOutput(output, "text", "json"); err != nil {
		return err
	}
	t, c, err := e.client()
	if err != nil {
		return err
	}
	defer c.Close()
	for _, n := range names {
		if _, ok := t.Group(n); !ok {
			return refusedErrorf("unknown group %q in %s (groups: %s)", n, t.File, strings.Join(groupList(t), ", "))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	st, err := c.Status(ctx)
	cancel()
	if err != nil {
		return err
	}
	groups := names
	switch {
	case sel.given():
		if groups, err = selectGroups(t, st, sel); err != nil {
			return &exitError{code: exitRefused, err: err}
		}
	case len(groups) == 0:
		groups = groupList(t)
	}
	doc := jsonview.ReadinessReportOf(st, groups)
	if output == "json" {
		err = jsonview.Write(e.stdout, doc)
	} else {
		printReadinessReport(e.stdout, doc)
	}
	if err != nil {
		return err
	}
	if doc.Ready < len(doc.Groups) {
		// The summary said it; no second message on stderr.
		return &exitError{code: exitFailed, err: errors.New("")}
	}
	return nil
}

// printReadinessReport writes each group's verdict with its reasons and
// fixes, and the count of each verdict.
func printReadinessReport(w io.Writer, doc jsonview.ReadinessReport) {
	for _, g := range doc.Groups {
		fmt.Fprintf(w, "%s: %s\n", g.Name, strings.ToUpper(verdictWords(g.Verdict)))
		for _, r := range g.Reasons {
			fmt.Fprintf(w, "  %s (%s): %s\n", verdictWords(r.Severity), r.Kind, r.Message)
			if r.Fix != "" {
				fmt.Fprintf(w, "    fix: %s\n", r.Fix)
			}
		}
	}
	fmt.Fprintf(w, "\n%s: %d ready, %d at risk, %d not ready (answered by %s)\n",
		plural(len(doc.Groups), "group", "groups"), doc.Ready, doc.AtRisk, doc.NotReady, doc.AnsweredBy)
}
