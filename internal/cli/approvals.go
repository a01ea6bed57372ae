package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/siteflip/siteflip/internal/api"
)

// runVerdict approves or rejects the approval step a run waits at.
func runVerdict(approve bool) func(e *env, args []string) error {
	name := "reject"
	if approve {
		name = "approve"
	}
	return func(e *env, args []string) error {
		fs := e.flags(name)
		step := fs.String("step", "", "the approval `STEP` (its ID or resource name) when the run has more than one left")
		reason := fs.String("reason", "", "why, in a few words; the run and the audit trail keep it")
		pos, err := parse(fs, args, 1)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("name the run: siteflip %s RUN (`siteflip status` shows the run that waits)", name)
		}
		_, c, err := e.client()
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a, err := c.Verdict(ctx, pos[0], api.VerdictRequest{Step: *step, Approve: approve, Reason: *reason})
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
}
