package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
)

// Scheduled switchovers: `siteflip switchover GROUP --to SITE --at TIME`
// stores the switchover in etcd, and the controller of that time starts
// it as your run; `siteflip switchover GROUP --cancel` removes it.

// parseAt reads --at: a time (2026-12-05T22:00:00+01:00, or 2026-12-05
// 22:00 and 22:00 in the local time zone, the next 22:00 to come), or a
// duration from now (90m).
func parseAt(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--at %s: give a duration ahead, like 90m", v)
		}
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04", v, now.Location()); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("15:04", v, now.Location()); err == nil {
		at := time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), 0, 0, now.Location())
		if !at.After(now) {
			at = at.AddDate(0, 0, 1)
		}
		return at, nil
	}
	return time.Time{}, fmt.Errorf("--at %q is neither a time (22:00, \"2026-12-05 22:00\", 2026-12-05T22:00:00Z) nor a duration from now (90m)", v)
}

// scheduleSwitchover schedules req's switchover at the time v says.
func scheduleSwitchover(e *env, t *config.Topology, req api.RunRequest, v string) error {
	now := time.Now()
	at, err := parseAt(v, now)
	if err != nil {
		return usageErr(err)
	}
	if !at.After(now) {
		return usageErr(fmt.Errorf("--at %s is not in the future; to switch over now, leave --at out", at.Format(time.RFC3339)))
	}
	c, err := api.NewClient(t)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sc, err := c.Schedule(ctx, api.ScheduleRequest{Group: req.Group, To: req.To, At: at, Reason: req.Reason, Ticket: req.Ticket})
	if err != nil {
		return &exitError{code: pauseErrCode(err), err: fmt.Errorf("%w; nothing was scheduled", err)}
	}
	fmt.Fprintf(e.stdout, "%s: switchover to %s scheduled for %s (in %s) by %s; the controller then starts it as your run\ncancel: siteflip switchover %s --cancel\n",
		sc.Group, sc.To, sc.At.Local().Format("2006-01-02 15:04:05 MST"), ago(time.Until(sc.At).Round(time.Second)), orDash(sc.By), sc.Group)
	return nil
}

// cancelScheduled cancels group's scheduled switchover; cancelling none
// is not an error.
func cancelScheduled(e *env, t *config.Topology, group string) error {
	c, err := api.NewClient(t)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := c.CancelScheduled(ctx, group)
	if err != nil {
		return &exitError{code: pauseErrCode(err), err: fmt.Errorf("%w; nothing was cancelled", err)}
	}
	if !res.Cancelled {
		fmt.Fprintf(e.stdout, "%s: no switchover scheduled: nothing changed\n", group)
		return nil
	}
	sc := res.Scheduled
	fmt.Fprintf(e.stdout, "%s: the switchover to %s scheduled for %s by %s is cancelled\n", group, sc.To, sc.At.Local().Format("2006-01-02 15:04:05 MST"), orDash(sc.By))
	return nil
}

// scheduledLine is status's line for a group's scheduled switchover.
func scheduledLine(g status.GroupStatus) string {
	sc := g.ScheduledSwitchover
	if sc == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "switchover to %s scheduled for %s by %s", sc.To, sc.At.Local().Format("2006-01-02 15:04 MST"), orDash(sc.By))
	if sc.Reason != "" {
		fmt.Fprintf(&b, " (%s)", sc.Reason)
	}
	fmt.Fprintf(&b, " — cancel: siteflip switchover %s --cancel", g.Name)
	return b.String()
}
