package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/api"
)

// newVerdictCmd is `siteflip approve` or `siteflip reject`.
func newVerdictCmd(approve bool) func(e *env) *cobra.Command {
	name, short := "reject", "stop a run waiting at an approval step"
	if approve {
		name, short = "approve", "let a run waiting at an approval step go on"
	}
	return func(e *env) *cobra.Command {
		c := &cobra.Command{
			Use:   name + " RUN [--step STEP] [--reason TEXT]",
			Short: short,
			Args:  maxArgs(1),
		}
		step := c.Flags().String("step", "", "the approval `STEP` (its ID or resource name) when the run has more than one left")
		reason := c.Flags().String("reason", "", "why, in a few words (`TEXT`); the run and the audit trail keep it")
		c.RunE = func(_ *cobra.Command, pos []string) error { return runVerdict(e, approve, name, pos, *step, *reason) }
		return c
	}
}

// runVerdict approves or rejects the approval step a run waits at.
func runVerdict(e *env, approve bool, name string, pos []string, step, reason string) error {
	if len(pos) != 1 {
		return usageErrorf("name the run: siteflip %s RUN (`siteflip status` shows the run that waits)", name)
	}
	_, c, err := e.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := c.Verdict(ctx, pos[0], api.VerdictRequest{Step: step, Approve: approve, Reason: reason})
	if err != nil {
		return err
	}
	what := "rejected: the run rolls back (or, after its activation, fails)"
	if a.Approved {
		what = "approved: the run goes on"
	}
	fmt.Fprintf(e.stdout, "step %s of run %s %s; follow it with `siteflip run %s`\n", a.Step, a.Run, what, a.Run)
	return nil
}
