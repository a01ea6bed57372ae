package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/whatif"
)

// newWhatIfCmd is `siteflip whatif`.
func newWhatIfCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "whatif [--lose SITE[,SITE…]] [--lose-links A-B[,…]] [--at LAT,LON --radius 60km] [--level NAME] [-o text|json]",
		Short: "what a disaster would do to every group, played against the live state",
		Long: `whatif plays a disaster against the installation as any reachable location
reads it, with the safety rules the controller runs, and says for every group
whether it survives, whether it fails over by itself or needs a person, the
expected RTO and data loss, and whether the control plane keeps its quorum.
It changes nothing, and exits 0 whatever the answer (docs/whatif.md).

The disaster is any combination of:
  --lose SITE[,SITE…]        locations destroyed (the witness too)
  --lose-links A-B[,…]       links between locations cut
  --at LAT,LON --radius R    every location within R (60km, 500m, 30mi) destroyed
  --level NAME               a level of the topology's levels:`,
		Args: noArgs,
	}
	output := outputFlag(c.Flags(), "text", "json")
	lose := c.Flags().StringSlice("lose", nil, "locations destroyed: `SITE[,SITE…]`")
	links := c.Flags().StringSlice("lose-links", nil, "links cut: `A-B[,…]`")
	at := c.Flags().String("at", "", "the centre of an area destroyed: `LAT,LON` (with --radius)")
	radius := c.Flags().String("radius", "", "the area's radius: `DISTANCE` such as 60km, 500m or 30mi")
	level := c.Flags().String("level", "", "a level of the topology: `NAME`")
	c.RunE = func(*cobra.Command, []string) error {
		return runWhatIf(e, whatif.Question{Lose: *lose, LoseLinks: *links, At: *at, Radius: *radius, Level: *level}, *output)
	}
	return c
}

// runWhatIf checks the question against the topology, asks any agent
// that answers, and prints the answer.
func runWhatIf(e *env, q whatif.Question, output string) error {
	if err := checkOutput(output, "text", "json"); err != nil {
		return err
	}
	t, c, err := e.client()
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := q.Event(t); err != nil {
		return usageErrorf("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	doc, err := c.WhatIf(ctx, q)
	if err != nil {
		return err
	}
	if output == "json" {
		return jsonview.Write(e.stdout, doc)
	}
	printWhatIf(e.stdout, doc)
	return nil
}

// printWhatIf writes the answer as text: the event and the quorum, then
// one line per group with the details indented under it.
func printWhatIf(w io.Writer, doc jsonview.WhatIf) {
	cp := doc.ControlPlane
	quorum := "quorum kept"
	switch {
	case !cp.Judged:
		quorum = "quorum not judged"
	case !cp.Quorum:
		quorum = "QUORUM LOST"
	}
	fmt.Fprintf(w, "what if: %s — %s\n", doc.Event.Text, quorum)
	fmt.Fprintf(w, "  %s\n", cp.Message)
	fmt.Fprintf(w, "  (played against the state %s read at %s; nothing was changed)\n", doc.AnsweredBy, doc.ReadAt.Local().Format(time.TimeOnly))
	for _, g := range doc.Groups {
		fmt.Fprintf(w, "\n%s\n", whatIfLine(g))
		fmt.Fprintf(w, "  %s\n", g.Reason)
		if g.Fix != "" {
			fmt.Fprintf(w, "  fix: %s\n", g.Fix)
		}
		if g.Command != "" {
			fmt.Fprintf(w, "  run: %s\n", g.Command)
		}
		if moves(g) {
			fmt.Fprintf(w, "  data: %s\n", g.DataLossBasis)
		}
		if len(g.Approvals) > 0 {
			fmt.Fprintf(w, "  approvals: %s (the failover waits for `siteflip approve`)\n", strings.Join(g.Approvals, ", "))
		}
		for _, d := range g.DependenciesUnreachable {
			fmt.Fprintf(w, "  dependency %s unreachable from %s: %s\n", d.Name, d.Site, d.Why)
		}
	}
	s := doc.Summary
	fmt.Fprintf(w, "\n%d of %d groups survive (%d fail over by themselves, %d need a person); %d lost\n",
		s.Survive, len(doc.Groups), s.Automatic, s.NeedAPerson, s.Lost)
}

// moves says whether the group's outcome moves it or waits for a person:
// its RTO and data loss are then worth saying.
func moves(g jsonview.WhatIfGroup) bool {
	switch whatif.Outcome(g.Outcome) {
	case whatif.AutomaticFailover, whatif.NeedsDecision, whatif.NeedsForce:
		return true
	}
	return false
}

// whatIfLine is a group's one line: survives or not, how, and the
// expected RTO and data loss.
func whatIfLine(g jsonview.WhatIfGroup) string {
	var what string
	switch whatif.Outcome(g.Outcome) {
	case whatif.Lost:
		return g.Name + ": NOT SURVIVABLE"
	case whatif.Unaffected:
		return g.Name + ": survives — unaffected, " + g.To + " keeps serving"
	case whatif.Degraded:
		return g.Name + ": survives — degraded, " + g.To + " keeps serving unprotected"
	case whatif.AutomaticFailover:
		what = "automatic failover to " + g.To
	case whatif.NeedsDecision:
		what = "NEEDS A DECISION"
		if g.To != "" {
			what += ", failover to " + g.To
		}
	case whatif.NeedsForce:
		what = "NEEDS A FORCE at " + g.To
	default:
		what = g.Outcome
	}
	rto := "expected RTO unknown (" + strings.TrimPrefix(g.RTOBasis, "unknown: ") + ")"
	if g.ExpectedRTOSeconds != nil {
		rto = fmt.Sprintf("expected RTO %s (%s)", seconds(*g.ExpectedRTOSeconds), g.RTOBasis)
	}
	loss := "expected data loss UNKNOWN"
	switch {
	case g.ExpectedDataLossSeconds != nil && g.DataLossBoundSeconds != nil:
		loss = fmt.Sprintf("expected data loss %s, at most %s", seconds(*g.ExpectedDataLossSeconds), seconds(*g.DataLossBoundSeconds))
	case g.ExpectedDataLossSeconds != nil:
		loss = fmt.Sprintf("expected data loss %s (%s)", seconds(*g.ExpectedDataLossSeconds), g.DataLossBasis)
	}
	return fmt.Sprintf("%s: survives — %s, %s, %s", g.Name, what, rto, loss)
}

// seconds writes a number of seconds as people read it: "2.1 s".
func seconds(s float64) string {
	return strconv.FormatFloat(math.Round(s*1000)/1000, 'f', -1, 64) + " s"
}
