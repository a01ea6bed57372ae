package cli

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/status"
)

// newStatusCmd is `siteflip status`.
func newStatusCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "status [-o text|json] [--watch] [-v]",
		Short: "sites, who sees whom, the controller, groups and replication lag",
		Long: `status prints the status as answered by any reachable location.

With --watch it asks again every second until interrupted: as text it
redraws the screen, as JSON (-o json) it writes one object per line.`,
		Args: noArgs,
	}
	output := outputFlag(c.Flags(), "text", "json")
	watch := c.Flags().Bool("watch", false, "ask again every second until interrupted")
	verbose := c.Flags().BoolP("verbose", "v", false, "with each problem, the raw error behind it")
	c.RunE = func(*cobra.Command, []string) error { return runStatus(e, *output, *watch, *verbose) }
	return c
}

// runStatus prints the status as answered by any reachable location.
func runStatus(e *env, output string, watch, verbose bool) error {
	if err := checkOutput(output, "text", "json"); err != nil {
		return err
	}
	_, c, err := e.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return watchStatus(ctx, e, c.Status, output, watch, verbose, time.Second)
}

// watchStatus prints the status get answers, once, or with watch every
// interval until ctx ends.
func watchStatus(ctx context.Context, e *env, get func(context.Context) (status.Status, error), output string, watch, verbose bool, interval time.Duration) error {
	for {
		st, err := get(ctx)
		if watch && ctx.Err() != nil {
			return nil // interrupted while asking
		}
		switch {
		case err != nil && !watch:
			return err
		case err != nil && output == "json":
			// stdout carries only status objects, one per line; a script
			// sees the gap in their times.
			fmt.Fprintf(e.stderr, "siteflip status: %s  %v\n", time.Now().Format(time.TimeOnly), err)
		case err != nil:
			fmt.Fprint(e.stdout, clearScreen)
			fmt.Fprintf(e.stdout, "%s  %v\n", time.Now().Format(time.TimeOnly), err)
		case output == "json" && watch:
			// One object per line (JSON Lines), no screen escapes.
			if err := jsonview.WriteLine(e.stdout, jsonview.StatusOf(st)); err != nil {
				return err
			}
		case output == "json":
			if err := jsonview.Write(e.stdout, jsonview.StatusOf(st)); err != nil {
				return err
			}
		default:
			if watch {
				fmt.Fprint(e.stdout, clearScreen)
			}
			printStatus(e.stdout, st, verbose)
		}
		if !watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// clearScreen moves the cursor home and clears the terminal: --watch as
// text redraws the status in place.
const clearScreen = "\033[H\033[2J"

func printStatus(w io.Writer, st status.Status, verbose bool) {
	ctrl := "none elected"
	if st.Controller != "" {
		ctrl = fmt.Sprintf("%s (term %d", st.Controller, st.ControllerTerm)
		if !st.ControllerSince.IsZero() {
			ctrl += ", since " + st.ControllerSince.Local().Format(time.TimeOnly)
		}
		ctrl += ")"
	}
	leader := ""
	if st.RaftLeader != "" {
		leader = "   raft leader " + st.RaftLeader
	}
	printMaintenance(w, st) // first: a paused group must not go unnoticed
	fmt.Fprintf(w, "installation %s   controller %s%s   answered by %s at %s\n\n",
		st.Installation, ctrl, leader, st.AnsweredBy, st.Time.Local().Format(time.TimeOnly))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "LOCATION\tROLE\tUP\tREPORTING\tVERSION\tCERTIFICATE\tLOST BY\tSEES")
	for _, s := range st.Sites {
		fmt.Fprintf(tw, "\t%s", s.Name)
	}
	fmt.Fprintln(tw)
	for _, s := range st.Sites {
		lostBy := "-"
		if len(s.LostBy) > 0 {
			lostBy = strings.Join(s.LostBy, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t", s.Name, s.Role, yesNo(s.Up, "up", "DOWN"), yesNo(s.Reporting, "yes", "no"),
			orDash(s.Version), certCell(s.CertNotAfter, st.Time), lostBy)
		for _, o := range st.Sites {
			cell := "-"
			if o.Name != s.Name && s.Reporting {
				cell = yesNo(s.Sees[o.Name], "ok", "LOST")
			}
			fmt.Fprintf(tw, "\t%s", cell)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	printProblems(w, "", st.Problems, st.Issues, verbose)

	for _, g := range st.Groups {
		fmt.Fprintf(w, "\ngroup %s   active %s   epoch %d   state %s   policy %s   max data loss %s\n",
			g.Name, orDash(g.ActiveSite), g.Epoch, stateWords(g), g.Policy, g.MaxDataLoss)
		if g.Run != "" {
			fmt.Fprintf(w, "  run in progress: %s (siteflip run %s)\n", g.Run, g.Run)
		}
		if g.Drill != "" {
			fmt.Fprintf(w, "  drill in progress: %s (siteflip run %s)\n", g.Drill, g.Drill)
		}
		printReadiness(w, "  ", g.Readiness)
		for _, l := range dependencyLines(g.Dependencies) {
			fmt.Fprintf(w, "  %s\n", l)
		}
		fmt.Fprintf(w, "  %s\n", drillLine(g.Drills, st.Time))
		if l := scheduledLine(g); l != "" {
			fmt.Fprintf(w, "  %s\n", l)
		}
		var checks, scripts, approvals []string
		for _, r := range g.Resources {
			switch r.Class {
			case string(config.ClassCheck):
				checks = append(checks, r.Name)
			case string(config.ClassScript):
				scripts = append(scripts, r.Name)
			case string(config.ClassGate):
				approvals = append(approvals, r.Name)
			}
		}
		if len(checks) > 0 {
			fmt.Fprintf(w, "  checks: %s (run at the end of every failover, switchover and failback, and in drills)\n", strings.Join(checks, ", "))
		}
		if len(scripts) > 0 {
			fmt.Fprintf(w, "  scripts: %s (run at the steps of every run)\n", strings.Join(scripts, ", "))
		}
		if len(approvals) > 0 {
			fmt.Fprintf(w, "  approvals: %s (every failover, switchover and failback waits for `siteflip approve`)\n", strings.Join(approvals, ", "))
		}
		if a := g.Awaiting; a != nil {
			fmt.Fprintf(w, "  WAITING FOR APPROVAL since %s, until %s: %s\n  run:  siteflip approve %s   (or: siteflip reject %s)\n",
				a.Since.Local().Format(time.TimeOnly), a.Until.Local().Format(time.TimeOnly), orDash(a.Message), a.Run, a.Run)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  RESOURCE\tSITE\tROLE\tTIMELINE\tREADY\tLAG / TARGET\t")
		for _, r := range g.Resources {
			for _, s := range r.Sites {
				role, timeline, ready := resourceCells(r.Class, s)
				last := lagCell(s, g.ActiveSite, st.Time)
				if r.Class == string(config.ClassTraffic) {
					// A name or a route: where it sends the clients.
					last = orDash(s.Target)
				}
				fmt.Fprintf(tw, "  %s (%s)\t%s\t%s\t%s\t%s\t%s\t\n", r.Name, r.Type, s.Site, role, timeline, ready, last)
			}
		}
		tw.Flush()
		printProblems(w, "  ", g.Problems, g.Issues, verbose)
		if d := g.Decision; d != nil {
			fmt.Fprintf(w, "  NEEDS A DECISION since %s: %s\n  to recover now, run:  %s\n", d.Since.Local().Format(time.TimeOnly), d.Reason, d.Command)
		}
	}
}

// resourceCells are the role, timeline and readiness of a resource at a
// site, in its class's terms: a database is a primary or a standby that
// streams; a traffic resource sends the clients to its site (active) or
// is parked, ready to take them or not. Why it is down or unknown is in
// the problems.
func resourceCells(class string, s status.ResourceSiteStatus) (role, timeline, ready string) {
	role, timeline, ready = s.Role, strconv.FormatInt(s.Timeline, 10), "-"
	if s.Timeline == 0 {
		timeline = "-" // a database without timelines (MariaDB), or not known
	}
	if class == string(config.ClassService) {
		timeline = "-"
		switch s.Role {
		case status.RolePrimary:
			role = "running"
		case status.RoleDown:
			role = "UNHEALTHY"
		case status.RoleStandby:
			role, ready = "stopped", "ready"
		}
		return role, timeline, ready
	}
	if class == string(config.ClassTraffic) {
		timeline = "-"
		switch s.Role {
		case status.RolePrimary:
			role = "active"
		case status.RoleStandby:
			role, ready = "parked", yesNo(s.Streaming, "ready", "NOT READY")
		}
		return role, timeline, ready
	}
	if s.Role == status.RoleStandby {
		ready = yesNo(s.Streaming, "streaming", "NOT STREAMING")
	}
	return role, timeline, ready
}

func yesNo(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printProblems writes each problem line; verbose adds the raw error
// behind it, where there is one.
func printProblems(w io.Writer, indent string, lines []string, issues []status.Problem, verbose bool) {
	detail := map[string]string{}
	for _, p := range issues {
		detail[p.Line()] = p.Detail
	}
	for _, l := range lines {
		fmt.Fprintf(w, "%s! %s\n", indent, l)
		if d := detail[l]; verbose && d != "" {
			fmt.Fprintf(w, "%s    error: %s\n", indent, d)
		}
	}
}

// stateWords is a group's state as the group line shows it: while a run
// holds the group, its phase and direction.
func stateWords(g status.GroupStatus) string {
	words := strings.ToUpper(strings.ReplaceAll(g.State, "-", " "))
	if p := g.Phase; p != nil && p.To != "" && p.Action != "reprotect" && g.State != status.StateSplitBrain && g.State != status.StateNeedsDecision {
		words += " to " + p.To
	}
	if g.Paused {
		words += " (PAUSED)"
	}
	return words
}

// certCell is how long a location's certificate has left: "-" when not
// known (no TLS, or an agent that does not say), "EXPIRED", or days, loud
// under status.CertWarning.
func certCell(notAfter, now time.Time) string {
	if notAfter.IsZero() {
		return "-"
	}
	left := notAfter.Sub(now)
	switch {
	case left <= 0:
		return "EXPIRED"
	case left < status.CertWarning:
		return fmt.Sprintf("%dd LEFT", int(left/(24*time.Hour)))
	}
	return fmt.Sprintf("%dd", int(left/(24*time.Hour)))
}

// lagCell is a standby's lag: as its primary measures it now; or, when
// the primary is not observed serving, unknown, with the last known lag
// and how long ago it was measured (on the answering location's clock
// against the primary's: an approximation, for people).
func lagCell(s status.ResourceSiteStatus, active string, now time.Time) string {
	switch {
	case s.LagBytes != nil && s.LagSeconds != nil:
		return fmt.Sprintf("%d B / %.3f s", *s.LagBytes, *s.LagSeconds)
	case s.Site == active:
		return "-"
	case s.LagUnknown != "" && s.LastKnownLag != nil:
		age := max(0, now.Sub(s.LastKnownLag.MeasuredAt)).Round(time.Second)
		return fmt.Sprintf("UNKNOWN (primary not observed); last known %.3f s, measured %s ago", s.LastKnownLag.Seconds, age)
	case s.LagUnknown != "":
		return "UNKNOWN (primary not observed)"
	case s.LastKnownLag != nil:
		return fmt.Sprintf("last known %.3f s at %s", s.LastKnownLag.Seconds, s.LastKnownLag.MeasuredAt.Local().Format(time.TimeOnly))
	}
	return "-"
}

// verdictWords is a readiness verdict or severity as people read it.
func verdictWords(v string) string { return strings.ReplaceAll(v, "_", " ") }

// printReadiness writes a group's verdict on one line, and under it each
// reason with its fix; nothing for an agent that judges none. Notes
// (geography) are counted, not written: they stand for good, and
// `siteflip readiness` lists them.
func printReadiness(w io.Writer, indent string, r *status.Readiness) {
	if r == nil {
		return
	}
	line := indent + "readiness: " + verdictWords(r.Verdict)
	counts := map[string]int{}
	for _, x := range r.Reasons {
		counts[x.Severity]++
	}
	var parts []string
	for _, sev := range []string{status.NotReady, status.AtRisk, status.SeverityNote} {
		n := counts[sev]
		switch {
		case n == 0:
		case sev == status.SeverityNote:
			parts = append(parts, plural(n, "note", "notes"))
		case sev == r.Verdict:
			parts = append(parts, plural(n, "reason", "reasons"))
		default:
			parts = append(parts, fmt.Sprintf("%d %s", n, verdictWords(sev)))
		}
	}
	if len(parts) > 0 {
		line += " — " + strings.Join(parts, ", ")
	}
	if counts[status.SeverityNote] > 0 {
		line += " (siteflip readiness lists the notes)"
	}
	fmt.Fprintln(w, line)
	for _, x := range r.Reasons {
		if x.Severity == status.SeverityNote {
			continue
		}
		fmt.Fprintf(w, "%s  %s: %s\n", indent, verdictWords(x.Severity), x.Message)
		if x.Fix != "" {
			fmt.Fprintf(w, "%s    fix: %s\n", indent, x.Fix)
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// dependencyLines are a group's dependencies, one line each, with what
// each site of the group last found of it.
func dependencyLines(deps []status.DependencyStatus) []string {
	var lines []string
	var names []string
	at := map[string][]string{}
	head := map[string]string{}
	for _, d := range deps {
		if _, ok := at[d.Name]; !ok {
			names = append(names, d.Name)
			h := d.Type
			if d.Critical {
				h += ", critical"
			}
			head[d.Name] = h
		}
		cell := "reachable"
		switch {
		case !d.Known:
			cell = "NOT PROBED"
		case !d.Reachable && d.Error != "":
			cell = "UNREACHABLE (" + d.Error + ")"
		case !d.Reachable:
			cell = "UNREACHABLE"
		}
		at[d.Name] = append(at[d.Name], d.Site+" "+cell)
	}
	for _, n := range names {
		lines = append(lines, fmt.Sprintf("dependency %s (%s): %s", n, head[n], strings.Join(at[n], ", ")))
	}
	return lines
}
