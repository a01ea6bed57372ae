package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/status"
)

// maxScheduleAhead is how far ahead a switchover may be scheduled.
const maxScheduleAhead = 90 * 24 * time.Hour

// scheduleAPIStore is what the API changes of scheduled switchovers.
type scheduleAPIStore interface {
	Schedule(ctx context.Context, sc status.ScheduledSwitchover) (status.ScheduledSwitchover, error)
	CancelScheduled(ctx context.Context, group string) (status.ScheduledSwitchover, bool, error)
}

// handleSchedule schedules a switchover of a group to one of its sites,
// at a later time; the controller of that time starts it.
func (srv *apiServer) handleSchedule(w http.ResponseWriter, r *http.Request) {
	info := requestInfo(r)
	var req api.ScheduleRequest
	if err := decodeJSON(w, r, 1<<14, &req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode schedule request: %w", err))
		return
	}
	info.note.Group, info.note.Reason, info.note.Ticket = req.Group, req.Reason, req.Ticket
	info.note.Action = fmt.Sprintf("switchover %s --to %s --at %s", req.Group, req.To, req.At.UTC().Format(time.RFC3339))
	if err := checkWhy(req.Reason, req.Ticket); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	g, ok := srv.topo.Group(req.Group)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown group %q (groups: %s)", req.Group, groupNames(srv.topo.Groups)))
		return
	}
	if !slices.Contains(g.Sites, req.To) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("--to %q is not a site of group %s (its sites: %s); nothing was scheduled", req.To, g.Name, strings.Join(g.Sites, ", ")))
		return
	}
	now := srv.now()
	switch {
	case !req.At.After(now):
		writeError(w, http.StatusBadRequest, fmt.Errorf("--at %s is not in the future (it is %s here); for now, run the switchover without --at", req.At.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
		return
	case req.At.Sub(now) > maxScheduleAhead:
		writeError(w, http.StatusBadRequest, fmt.Errorf("--at %s is more than %s ahead; schedule it closer to the time", req.At.UTC().Format(time.RFC3339), maxScheduleAhead))
		return
	}
	sc := status.ScheduledSwitchover{Group: g.Name, To: req.To, At: req.At.UTC(), By: info.principal.Name, Role: info.principal.RoleName(),
		Reason: req.Reason, Ticket: req.Ticket, Since: now.UTC()}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	stored, err := srv.store.Schedule(ctx, sc)
	if err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, coord.ErrScheduled) {
			code = http.StatusConflict
		}
		writeError(w, code, err)
		return
	}
	srv.log.Info("switchover scheduled", "group", g.Name, "to", sc.To, "at", sc.At, "by", sc.By, "reason", sc.Reason, "ticket", sc.Ticket)
	writeJSON(w, http.StatusCreated, stored)
}

// handleCancelScheduled cancels a group's scheduled switchover;
// cancelling none changes nothing and says so.
func (srv *apiServer) handleCancelScheduled(w http.ResponseWriter, r *http.Request) {
	info := requestInfo(r)
	group := r.PathValue("group")
	info.note.Action, info.note.Group = "switchover "+group+" --cancel", group
	if _, ok := srv.topo.Group(group); !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown group %q (groups: %s)", group, groupNames(srv.topo.Groups)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	sc, was, err := srv.store.CancelScheduled(ctx, group)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	res := api.CancelResult{Group: group, Cancelled: was}
	if was {
		res.Scheduled = &sc
		srv.log.Info("scheduled switchover cancelled", "group", group, "to", sc.To, "at", sc.At, "by", info.principal.Name)
	}
	writeJSON(w, http.StatusOK, res)
}
