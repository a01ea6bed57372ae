package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// handleVerdict stores a person's verdict on an approval step of a run in
// progress (`siteflip approve` and `siteflip reject`). The controller
// driving the run reads it; the first verdict stands.
func (srv *apiServer) handleVerdict(w http.ResponseWriter, r *http.Request) {
	info := requestInfo(r)
	id := r.PathValue("id")
	var req api.VerdictRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("read the verdict: %w", err))
		return
	}
	verb := "reject"
	if req.Approve {
		verb = "approve"
	}
	info.note.Action, info.note.Run, info.note.Reason = verb+" "+req.Step, id, req.Reason
	run, err := srv.store.Run(r.Context(), id)
	switch {
	case errors.Is(err, coord.ErrNoRun):
		writeError(w, http.StatusNotFound, err)
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	info.note.Group = run.Group
	step, err := awaitedStep(run, req.Step)
	if err != nil {
		writeError(w, http.StatusConflict, err)
		return
	}
	by := info.principal.Name
	if by == "" {
		by = info.principal.RoleName()
	}
	v := status.Approval{Run: run.ID, Step: step, Approved: req.Approve, By: by, At: srv.now().UTC(), Reason: req.Reason}
	stored, err := srv.store.PutApproval(r.Context(), v)
	switch {
	case errors.Is(err, coord.ErrDecided):
		what := "rejected"
		if stored.Approved {
			what = "approved"
		}
		writeError(w, http.StatusConflict, fmt.Errorf("step %s of run %s was already %s by %s at %s", step, run.ID, what, stored.By, stored.At.Format(time.RFC3339)))
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		writeJSON(w, http.StatusOK, stored)
	}
}

// awaitedStep picks the approval step of run a verdict is about: the one
// named (by step ID or resource name), or the only one not done yet.
func awaitedStep(run plan.Run, named string) (string, error) {
	if run.Done() {
		return "", fmt.Errorf("run %s already ended (%s): there is nothing to approve", run.ID, run.State)
	}
	var open []string
	for i, s := range run.Plan.Steps {
		if s.Kind != plan.Approve {
			continue
		}
		if named != "" && (named == s.ID || named == s.Resource) {
			if st := run.Steps[i].State; st == plan.StepDone || st == plan.StepFailed {
				return "", fmt.Errorf("step %s of run %s is %s already", s.ID, run.ID, st)
			}
			return s.ID, nil
		}
		if st := run.Steps[i].State; st != plan.StepDone && st != plan.StepFailed {
			open = append(open, s.ID)
		}
	}
	switch {
	case named != "":
		return "", fmt.Errorf("run %s has no approval step %q (its approval steps not done yet: %s)", run.ID, named, orNone(open))
	case len(open) == 0:
		return "", fmt.Errorf("run %s has no approval step left to decide", run.ID)
	case len(open) > 1:
		return "", fmt.Errorf("run %s has %d approval steps left (%s): name one with --step", run.ID, len(open), strings.Join(open, ", "))
	}
	return open[0], nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
