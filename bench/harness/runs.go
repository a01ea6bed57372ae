package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// Run starts a run and waits for it to succeed, retrying the start while
// the control plane settles after a failure.
func Run(ctx context.Context, c *api.Client, req api.RunRequest) (plan.Run, error) {
	var r plan.Run
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err = c.StartRun(qctx, req)
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		return r, err
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	got, err := c.WaitRun(wctx, r.ID, 50*time.Millisecond)
	if err != nil {
		return got, err
	}
	if got.State != plan.RunSucceeded {
		return got, fmt.Errorf("run %s %s: %s", got.ID, got.State, got.Error)
	}
	return got, nil
}

// WaitProtected waits until the first group is protected and the
// controller has recorded its standby's lag since it streams again (a
// failover is judged on that record).
func WaitProtected(ctx context.Context, c *api.Client) (status.GroupStatus, error) {
	qctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	st, err := c.Wait(qctx, 100*time.Millisecond, func(st status.Status) bool {
		if len(st.Groups) == 0 || st.Groups[0].State != status.StateProtected {
			return false
		}
		g := st.Groups[0]
		for _, s := range g.Resources[0].Sites {
			if s.Site == g.ActiveSite {
				continue
			}
			if s.FailoverReady == nil || !*s.FailoverReady {
				return false
			}
		}
		return true
	})
	if err != nil {
		return status.GroupStatus{}, fmt.Errorf("group not protected: %w", err)
	}
	return st.Groups[0], nil
}

// BackAndReprotect waits until group is active at to with no run in
// progress (the failover away from victim has ended), brings victim back
// (back), waits until it reports again and is no longer marked lost, and
// reprotects the group toward it.
func BackAndReprotect(ctx context.Context, c *api.Client, group, victim, to string, back func() error) error {
	wait := func(what string, cond func(status.Status) bool) error {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if _, err := c.Wait(wctx, 100*time.Millisecond, cond); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	where := to
	if to == "" {
		where = "a site other than " + victim
	}
	if err := wait("failover to "+where, func(st status.Status) bool {
		for _, g := range st.Groups {
			if g.Name == group {
				moved := g.ActiveSite == to || to == "" && g.ActiveSite != "" && g.ActiveSite != victim
				return moved && g.Run == ""
			}
		}
		return false
	}); err != nil {
		return err
	}
	if err := back(); err != nil {
		return err
	}
	// The old site's agent must be back in the control plane and no
	// longer marked lost before it can be rejoined.
	if err := wait(victim+" back", func(st status.Status) bool {
		s, _ := st.Site(victim)
		return s.Up && s.Reporting && !s.Lost
	}); err != nil {
		return err
	}
	_, err := Run(ctx, c, api.RunRequest{Group: group, Action: plan.Reprotect})
	return err
}
