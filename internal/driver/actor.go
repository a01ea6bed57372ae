package driver

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver/postgres"
)

// Actor carries out the recovery steps of one resource at one site. Every
// method is idempotent. Outputs are small string maps stored with the step
// (and fed to later steps of the same resource).
type Actor interface {
	// Fence stops the resource serving, verified.
	Fence(ctx context.Context) (map[string]string, error)
	// CatchUp waits until the resource here has all that the fenced one
	// wrote; fenced is the Fence step's output.
	CatchUp(ctx context.Context, fenced map[string]string) error
	// Promote makes the resource here serve, verified.
	Promote(ctx context.Context) (map[string]string, error)
	// Rejoin makes the resource here follow the one at primarySite.
	Rejoin(ctx context.Context, primarySite string) (map[string]string, error)
	// Unfence puts a fenced resource back in service (rollback).
	Unfence(ctx context.Context) error
}

// NewActor returns the actor of resource r of group g at site; network
// resources are found in rt, which runs them.
func NewActor(rt *Runtime, g *config.Group, r *config.Resource, site string) (Actor, error) {
	if IsNetwork(r.Type) {
		n, ok := rt.Get(g.Name + "/" + r.Name)
		if !ok {
			return nil, fmt.Errorf("group %s, resource %s: not running at %s", g.Name, r.Name, site)
		}
		return netActor{n}, nil
	}
	switch r.Type {
	case "postgres":
		s, ok := r.Settings[site].(*postgres.Settings)
		if !ok {
			return nil, fmt.Errorf("group %s, resource %s: no settings for site %s", g.Name, r.Name, site)
		}
		return &pgActor{r: r, site: site, inst: pgInstance(*s, site)}, nil
	}
	return nil, fmt.Errorf("group %s, resource %s: type %q has no recovery actions", g.Name, r.Name, r.Type)
}

// pgInstance is the managed instance behind settings; its server log goes
// next to the data directory.
func pgInstance(s postgres.Settings, site string) postgres.Instance {
	return postgres.Instance{Settings: s, Site: site, LogFile: filepath.Join(filepath.Dir(s.DataDir), "postgres.log")}
}

type pgActor struct {
	r    *config.Resource
	site string
	inst postgres.Instance
}

var _ Actor = (*pgActor)(nil)

func (a *pgActor) Fence(ctx context.Context) (map[string]string, error) {
	res, err := a.inst.Fence(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]string{
		"end_lsn":  res.EndLSN,
		"timeline": strconv.FormatInt(res.Timeline, 10),
		"clean":    strconv.FormatBool(res.Clean),
	}, nil
}

func (a *pgActor) CatchUp(ctx context.Context, fenced map[string]string) error {
	lsn := fenced["end_lsn"]
	if lsn == "" {
		return fmt.Errorf("catch up %s at %s: the fence step reported no end LSN", a.r.Name, a.site)
	}
	return postgres.WaitCatchUp(ctx, a.inst.Settings, lsn)
}

func (a *pgActor) Promote(ctx context.Context) (map[string]string, error) {
	res, err := postgres.Promote(ctx, a.inst.Settings)
	if err != nil {
		return nil, err
	}
	if a.r.Synchronous {
		// The configuration came from the old primary and may name this
		// server as its synchronous standby: commits would wait forever.
		// The new epoch starts asynchronous; the agent makes it synchronous
		// again once a standby streams.
		if err := postgres.DisableSync(ctx, a.inst.Settings); err != nil {
			return nil, err
		}
	}
	return map[string]string{
		"timeline":       strconv.FormatInt(res.Timeline, 10),
		"switch_lsn":     res.SwitchLSN,
		"writable_after": res.WritableAfter.String(),
	}, nil
}

func (a *pgActor) Rejoin(ctx context.Context, primarySite string) (map[string]string, error) {
	p, ok := a.r.Settings[primarySite].(*postgres.Settings)
	if !ok {
		return nil, fmt.Errorf("rejoin %s at %s: no settings for the primary's site %s", a.r.Name, a.site, primarySite)
	}
	pw, err := a.inst.Settings.ReplicationPassword()
	if err != nil {
		return nil, err
	}
	res, err := a.inst.Rejoin(ctx, *p, pw)
	if err != nil {
		return nil, err
	}
	out := map[string]string{
		"rewound":  strconv.FormatBool(res.Rewound),
		"recloned": strconv.FormatBool(res.Recloned),
	}
	if res.LostBytes > 0 {
		out["lost_from"], out["lost_to"] = res.LostFrom, res.LostTo
		out["lost_bytes"] = strconv.FormatInt(res.LostBytes, 10)
	}
	return out, nil
}

// Unfence starts the fenced primary again as the primary: its boot guard
// would otherwise bring it up read-only.
func (a *pgActor) Unfence(ctx context.Context) error { return a.inst.StartPrimary(ctx) }
