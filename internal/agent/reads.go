package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// handleStatus answers with the assembled status, or 503 when this
// location cannot read the control plane (no quorum): the client then asks
// another location.
func (srv *apiServer) handleStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	_, st, err := srv.readStatus(ctx)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, srv.unavailable(err))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// unavailable is the answer of an agent that cannot read the control
// plane: GET /v1/status's 503, the events' unavailable.
func (srv *apiServer) unavailable(err error) map[string]string {
	return map[string]string{
		"error": fmt.Sprintf("%s cannot read the control plane (%v): its etcd member has no quorum or is unreachable; ask another location, and check this agent's log", srv.site.Name, err),
		"site":  srv.site.Name,
	}
}

// runPlansRead is how many runs in progress status reads the records of,
// to show each one's direction; the others are shown by their IDs alone.
const runPlansRead = 32

// runPlans reads the action and direction of the runs in progress, by
// group. What it cannot read, status takes from the run's ID.
func (srv *apiServer) runPlans(ctx context.Context, running map[string]string) map[string]status.RunPlan {
	out := map[string]status.RunPlan{}
	for group, id := range running {
		if len(out) == runPlansRead {
			break
		}
		r, err := srv.store.Run(ctx, id)
		if err != nil {
			continue
		}
		out[group] = status.RunPlan{Action: string(r.Plan.Action), From: r.Plan.From, To: r.Plan.To}
	}
	return out
}

func (srv *apiServer) handleRuns(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	runs, err := srv.store.Runs(ctx, r.URL.Query().Get("group"))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	if runs == nil {
		runs = []plan.Run{}
	}
	writeJSON(w, http.StatusOK, runs)
}

func (srv *apiServer) handleRun(w http.ResponseWriter, r *http.Request) {
	if run, ok := srv.readRun(w, r); ok {
		writeJSON(w, http.StatusOK, run)
	}
}

// readRun reads the run the request's path names; when it cannot, it
// answers 404 (no such run) or 503 (the control plane cannot be read here)
// and returns false.
func (srv *apiServer) readRun(w http.ResponseWriter, r *http.Request) (plan.Run, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	run, err := srv.store.Run(ctx, r.PathValue("id"))
	switch {
	case errors.Is(err, coord.ErrNoRun):
		writeError(w, http.StatusNotFound, err)
		return plan.Run{}, false
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s: %w; ask another location", srv.site.Name, err))
		return plan.Run{}, false
	}
	return run, true
}

// handleAudit answers with the audit trail: ?since=RFC3339 time (default:
// a day ago) and ?limit=N records at most (default and cap 10,000, the
// newest).
func (srv *apiServer) handleAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since := srv.now().Add(-24 * time.Hour)
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("since=%q is not an RFC 3339 time such as 2026-12-03T10:00:00Z", v))
			return
		}
		since = t
	}
	limit := 10000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit=%q is not a positive number", v))
			return
		}
		limit = min(n, limit)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	recs, err := srv.store.Audit(ctx, since, limit)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s: %w; ask another location", srv.site.Name, err))
		return
	}
	if recs == nil {
		recs = []audit.Record{}
	}
	writeJSON(w, http.StatusOK, recs)
}
