package cli

import (
	"context"
	"encoding/json"
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
	"github.com/siteflip/siteflip/internal/status"
)

// newStatusCmd is `siteflip status`.
func newStatusCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "status [-o text|json] [--watch]",
		Short: "sites, who sees whom, the controller, groups and replication lag",
		Long: `status prints the status as answered by any reachable location.

With --watch it asks again every second until interrupted: as text it
redraws the screen, as JSON (-o json) it writes one object per line.`,
		Args: noArgs,
	}
	output := outputFlag(c.Flags(), "text", "json")
	watch := c.Flags().Bool("watch", false, "ask again every second until interrupted")
	c.RunE = func(*cobra.Command, []string) error { return runStatus(e, *output, *watch) }
	return c
}

// runStatus prints the status as answered by any reachable location.
func runStatus(e *env, output string, watch bool) error {
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
	return watchStatus(ctx, e, c.Status, output, watch, time.Second)
}

// watchStatus prints the status get answers, once, or with watch every
// interval until ctx ends.
func watchStatus(ctx context.Context, e *env, get func(context.Context) (status.Status, error), output string, watch bool, interval time.Duration) error {
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
			if err := json.NewEncoder(e.stdout).Encode(st); err != nil {
				return err
			}
		case output == "json":
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(st); err != nil {
				return err
			}
		default:
			if watch {
				fmt.Fprint(e.stdout, clearScreen)
			}
			printStatus(e.stdout, st)
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

func printStatus(w io.Writer, st status.Status) {
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
	fmt.Fprintf(w, "installation %s   controller %s%s   answered by %s at %s\n\n",
		st.Installation, ctrl, leader, st.AnsweredBy, st.Time.Local().Format(time.TimeOnly))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "LOCATION\tROLE\tUP\tREPORTING\tLOST BY\tSEES")
	for _, s := range st.Sites {
		fmt.Fprintf(tw, "\t%s", s.Name)
	}
	fmt.Fprintln(tw)
	for _, s := range st.Sites {
		lostBy := "-"
		if len(s.LostBy) > 0 {
			lostBy = strings.Join(s.LostBy, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t", s.Name, s.Role, yesNo(s.Up, "up", "DOWN"), yesNo(s.Reporting, "yes", "no"), lostBy)
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

	for _, g := range st.Groups {
		fmt.Fprintf(w, "\ngroup %s   active %s   epoch %d   state %s   policy %s   max data loss %s\n",
			g.Name, orDash(g.ActiveSite), g.Epoch, strings.ToUpper(g.State), g.Policy, g.MaxDataLoss)
		if g.Run != "" {
			fmt.Fprintf(w, "  run in progress: %s (siteflip run %s)\n", g.Run, g.Run)
		}
		if g.Drill != "" {
			fmt.Fprintf(w, "  drill in progress: %s (siteflip run %s)\n", g.Drill, g.Drill)
		}
		fmt.Fprintf(w, "  %s\n", drillLine(g.Drills, st.Time))
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
		fmt.Fprintln(tw, "  RESOURCE\tSITE\tROLE\tTIMELINE\tREADY\tLAG\t")
		for _, r := range g.Resources {
			for _, s := range r.Sites {
				lag := "-"
				switch {
				case s.LagBytes != nil && s.LagSeconds != nil:
					lag = fmt.Sprintf("%d B / %.3f s", *s.LagBytes, *s.LagSeconds)
				case s.LastKnownLag != nil && s.Site != g.ActiveSite:
					lag = fmt.Sprintf("last known %.3f s at %s", s.LastKnownLag.Seconds, s.LastKnownLag.MeasuredAt.Local().Format(time.TimeOnly))
				}
				role, timeline, ready := resourceCells(r.Class, s)
				fmt.Fprintf(tw, "  %s (%s)\t%s\t%s\t%s\t%s\t%s\t\n", r.Name, r.Type, s.Site, role, timeline, ready, lag)
			}
		}
		tw.Flush()
		for _, p := range g.Problems {
			fmt.Fprintf(w, "  ! %s\n", p)
		}
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
