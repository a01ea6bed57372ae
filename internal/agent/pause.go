package agent

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/status"
)

// A person's pause of a group (docs/design/maintenance.md): stored in
// etcd by whichever location is asked, read by the controller in every
// snapshot (safety.AutomaticFailover, safety.ScheduleDrills), shown by
// status and the metrics. Operators and admins may pause and resume; the
// guard audits both.

// pauseStore is what pausing changes in the control plane.
type pauseStore interface {
	Pause(ctx context.Context, p status.Pause) (status.Pause, bool, error)
	Resume(ctx context.Context, group string) (status.Pause, bool, error)
}

// pauseRequest reads a pause or resume request (verb) of the group in
// r's path, notes it for the audit trail, and answers the caller itself
// when the request is bad or names no group of the topology (ok false).
func (srv *apiServer) pauseRequest(w http.ResponseWriter, r *http.Request, verb string) (info *reqInfo, group string, req api.PauseRequest, ok bool) {
	info = requestInfo(r)
	group = r.PathValue("group")
	info.note.Action, info.note.Group = verb+" "+group, group
	if err := decodeJSON(w, r, 1<<14, &req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode %s request: %w", verb, err))
		return info, group, req, false
	}
	info.note.Reason, info.note.Ticket = req.Reason, req.Ticket
	if err := checkWhy(req.Reason, req.Ticket); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return info, group, req, false
	}
	if _, known := srv.topo.Group(group); !known {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown group %q (groups: %s)", group, groupNames(srv.topo.Groups)))
		return info, group, req, false
	}
	return info, group, req, true
}

// handlePause pauses a group's automatic actions; pausing a paused group
// keeps the first pause and says so.
func (srv *apiServer) handlePause(w http.ResponseWriter, r *http.Request) {
	info, group, req, ok := srv.pauseRequest(w, r, "pause")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	p := status.Pause{Group: group, By: info.principal.Name, Role: info.principal.RoleName(), At: srv.now().UTC(), Reason: req.Reason}
	cur, stored, err := srv.store.Pause(ctx, p)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s cannot store the pause: %w; nothing was changed; ask another location", srv.site.Name, err))
		return
	}
	if stored {
		srv.log.Warn("group paused: no automatic failover until resumed", "group", group, "by", p.By, "role", p.Role, "reason", p.Reason, "ticket", req.Ticket)
	}
	writeJSON(w, http.StatusOK, api.PauseResult{Group: group, Paused: true, Changed: stored, Pause: &cur})
}

// handleResume lifts a group's pause; resuming a group that is not
// paused changes nothing and says so.
func (srv *apiServer) handleResume(w http.ResponseWriter, r *http.Request) {
	info, group, req, ok := srv.pauseRequest(w, r, "resume")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	lifted, was, err := srv.store.Resume(ctx, group)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s cannot lift the pause: %w; nothing was changed; ask another location", srv.site.Name, err))
		return
	}
	res := api.PauseResult{Group: group, Changed: was}
	if was {
		res.Pause = &lifted
		srv.log.Warn("group resumed: automatic failover allowed again", "group", group, "by", info.principal.Name, "paused_by", lifted.By,
			"paused_for", srv.now().Sub(lifted.At).Round(time.Second), "reason", req.Reason)
	}
	writeJSON(w, http.StatusOK, res)
}
