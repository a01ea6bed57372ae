package agent

import (
	"context"
	"errors"
	"time"

	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
)

// pruneRuns keeps the run history within its retention (plan.RunsKept
// runs per group, and of the older ones those that ended within
// plan.RunsMaxAge), under the controller's term f; the controller does it
// for everybody, as it does the audit trail.
func (ctl *controller) pruneRuns(ctx context.Context, f coord.Fence) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := ctl.store.PruneRuns(pctx, plan.RunsKept, ctl.now().Add(-plan.RunsMaxAge), f)
	switch {
	case err != nil && ctx.Err() == nil && !errors.Is(err, coord.ErrNotElected):
		ctl.log.Warn("prune the run history", "error", err, "deleted", n)
	case n > 0:
		ctl.log.Info("run history pruned to its retention", "deleted", n, "keep_per_group", plan.RunsKept, "max_age", plan.RunsMaxAge)
	}
}
