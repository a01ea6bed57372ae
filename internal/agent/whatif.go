package agent

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/whatif"
)

// whatIfRuns is how many of the newest runs a what-if reads for the
// groups' measured failovers and drills: one read of the run history,
// whatever its size; the drill records of the snapshot add each group's
// last drills.
const whatIfRuns = 500

// handleWhatIf answers GET /v1/whatif?lose=A,B&lose_links=A-B&at=LAT,LON&
// radius=60km&level=NAME with what that disaster would do, played against
// the installation as this location reads it (jsonview.WhatIf,
// docs/whatif.md). It changes nothing. A question that names nothing, or
// what the topology does not know, is 400; a location that cannot read
// the control plane answers 503, and the client asks another.
func (srv *apiServer) handleWhatIf(w http.ResponseWriter, r *http.Request) {
	ev, err := whatif.QuestionOf(r.URL.Query()).Event(srv.topo)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("what-if at %s: %w", srv.site.Name, err))
		return
	}
	snap, st, err := srv.states.state()
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, srv.unavailable(err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	runs, err := srv.store.RecentRuns(ctx, whatIfRuns)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s cannot read the run history (%w); ask another location", srv.site.Name, err))
		return
	}
	res := whatif.Play(srv.topo, snap, st, whatif.HistoryOf(runs, snap.Drills), ev, srv.now())
	writeJSON(w, http.StatusOK, jsonview.WhatIfOf(res))
}
