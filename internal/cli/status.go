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

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
)

// runStatus prints the status as answered by any reachable location.
func runStatus(e *env, args []string) error {
	fs := e.flags("status")
	output := fs.String("o", "text", "output `FORMAT`: text or json")
	watch := fs.Bool("watch", false, "redraw every second until interrupted")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("-o %q: use text or json", *output)
	}
	_, c, err := e.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	for {
		st, err := c.Status(ctx)
		if *watch {
			fmt.Fprint(e.stdout, "\033[H\033[2J")
		}
		switch {
		case err != nil && !*watch:
			return err
		case err != nil:
			fmt.Fprintf(e.stdout, "%s  %v\n", time.Now().Format(time.TimeOnly), err)
		case *output == "json":
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(st); err != nil {
				return err
			}
		default:
			printStatus(e.stdout, st)
		}
		if !*watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

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
	printMaintenance(w, st) // first: a paused group must not go unnoticed
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
			g.Name, orDash(g.ActiveSite), g.Epoch, groupState(g), g.Policy, g.MaxDataLoss)
		if g.Run != "" {
			fmt.Fprintf(w, "  run in progress: %s (siteflip run %s)\n", g.Run, g.Run)
		}
		if g.Drill != "" {
			fmt.Fprintf(w, "  drill in progress: %s (siteflip run %s)\n", g.Drill, g.Drill)
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
