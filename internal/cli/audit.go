package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/spf13/cobra"
)

// newAuditCmd is `siteflip audit`.
func newAuditCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "audit [--since DURATION|TIME] [--limit N] [-o text|json]",
		Short: "who asked what of the agents, and what became of it",
		Args:  noArgs,
	}
	since := c.Flags().String("since", "24h", "from `WHEN`: a duration back from now (90m, 7d is 168h) or a time (2026-12-03T10:00:00Z)")
	limit := c.Flags().Int("limit", 1000, "at most `N` records, the newest")
	output := outputFlag(c.Flags(), "text", "json")
	c.RunE = func(*cobra.Command, []string) error { return runAudit(e, *since, *limit, *output) }
	return c
}

// runAudit prints the audit trail.
func runAudit(e *env, since string, limit int, output string) error {
	if err := checkOutput(output, "text", "json"); err != nil {
		return err
	}
	from, err := parseSince(since, time.Now())
	if err != nil {
		return err
	}
	if limit < 1 {
		return usageErrorf("--limit %d: give a positive number", limit)
	}
	_, c, err := e.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := c.Audit(ctx, from, limit)
	if err != nil {
		return err
	}
	if output == "json" {
		return jsonview.Write(e.stdout, jsonview.AuditOf(recs))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tAT\tWHO\tROLE\tFROM\tREQUEST\tACTION\tRESULT\tWHY")
	for _, r := range recs {
		why := r.Error
		if r.Result == "done" {
			why = strings.TrimSpace(strings.Join([]string{r.Reason, r.Ticket}, " "))
		}
		if r.Suppressed > 0 {
			why = fmt.Sprintf("(+%d refusals not listed) %s", r.Suppressed, why)
		}
		who := orDash(r.Who)
		if r.Via == "token" {
			who += " (token)" // a browser's login token, not the certificate itself
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.At.Local().Format("2006-01-02 15:04:05.000"), r.Site, who, r.Role,
			r.From, r.Request, orDash(r.Action), strings.ToUpper(r.Result), oneLine(why, 120))
	}
	return tw.Flush()
}

// parseSince reads --since: a duration back from now, or a time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, usageErrorf("--since %s: give a positive duration", v)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, usageErrorf("--since %q is neither a duration (90m, 24h) nor a time (2026-12-03T10:00:00Z)", v)
}

// oneLine shortens s to one line of at most n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
