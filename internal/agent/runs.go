package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/siteflip/siteflip/internal/access"
	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/safety"
	"github.com/siteflip/siteflip/internal/status"
)

// known is what the planner needs to know about group g, from snap.
func (srv *apiServer) known(g *config.Group, snap status.Snapshot, st status.Status) plan.Known {
	return safety.Known(srv.topo, g, snap, st)
}

// handleStartRun plans the requested action from a fresh snapshot and
// stores the run; the controller then drives it. The caller's role must
// allow the action (access.RunRole); the run records who started it, with
// their role, reason and ticket.
func (srv *apiServer) handleStartRun(w http.ResponseWriter, r *http.Request) {
	info := requestInfo(r)
	var req api.RunRequest
	if err := decodeJSON(w, r, 1<<16, &req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode run request: %w", err))
		return
	}
	info.note.Group, info.note.Reason, info.note.Ticket = req.Group, req.Reason, req.Ticket
	info.note.Action = runAction(req)
	if err := checkWhy(req.Reason, req.Ticket); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if ok, why := access.AllowRole(access.RunRole(string(req.Action), req.AcceptDataLoss), info.principal); !ok {
		writeError(w, http.StatusForbidden, fmt.Errorf("%s: %s; nothing was changed", info.note.Action, why))
		return
	}
	g, ok := srv.topo.Group(req.Group)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown group %q (groups: %s)", req.Group, groupNames(srv.topo.Groups)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	snap, err := srv.plane.snapshot(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s cannot read the control plane: %w; ask another location", srv.site.Name, err))
		return
	}
	if id, busy := snap.Running[g.Name]; busy {
		writeBusy(w, fmt.Errorf("group %s: %w (run %s); follow it with `siteflip run %s`", g.Name, coord.ErrRunInProgress, id, id))
		return
	}
	if busy := snap.Drilling[g.Name]; busy != "" && req.Action == plan.Drill {
		writeBusy(w, fmt.Errorf("group %s: %w (drill %s); follow it with `siteflip run %s`", g.Name, coord.ErrDrillInProgress, busy, busy))
		return
	}
	preq := plan.Request{Action: req.Action, To: req.To, AcceptDataLoss: req.AcceptDataLoss, Keep: req.Keep}
	p, err := plan.Build(g, srv.known(g, snap, srv.plane.assembleGroup(snap, g)), preq)
	if err != nil {
		writeError(w, http.StatusConflict, err)
		return
	}
	run := plan.NewRun(newRunID(g.Name, req.Action), info.principal.Name, preq, p, srv.now().UTC())
	run.Role, run.Reason, run.Ticket = info.principal.RoleName(), req.Reason, req.Ticket
	if req.DryRun {
		// Admitted as a run would be; answered, neither stored nor started.
		writeJSON(w, http.StatusOK, run)
		return
	}
	info.note.Run = run.ID
	if err := srv.store.StartRun(ctx, run, snap.Records[g.Name].Revision); err != nil {
		if errors.Is(err, coord.ErrRunInProgress) || errors.Is(err, coord.ErrDrillInProgress) {
			writeBusy(w, err)
			return
		}
		code := http.StatusServiceUnavailable
		if errors.Is(err, coord.ErrRunInProgress) || errors.Is(err, coord.ErrDrillInProgress) || errors.Is(err, coord.ErrStale) {
			code = http.StatusConflict
		}
		writeError(w, code, err)
		return
	}
	srv.log.Info("run started", "run", run.ID, "group", g.Name, "action", req.Action, "from", p.From, "to", p.To, "by", run.By, "role", run.Role, "reason", run.Reason, "ticket", run.Ticket)
	writeJSON(w, http.StatusCreated, run)
}

// runAction says in words what a run request asks.
func runAction(req api.RunRequest) string {
	s := string(req.Action) + " " + req.Group
	if req.To != "" {
		s += " --to " + req.To
	}
	if req.AcceptDataLoss {
		s += " --accept-data-loss"
	}
	if req.DryRun {
		s += " --dry-run"
	}
	return s
}

// writeBusy refuses a run because another run or a drill holds the group:
// 409, with the code that tells the client to ask again later.
func writeBusy(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error(), "code": api.CodeBusy})
}

// checkWhy refuses a reason or ticket that a log or a terminal would
// misread.
func checkWhy(reason, ticket string) error {
	for _, f := range []struct{ name, v string }{{"reason", reason}, {"ticket", ticket}} {
		if len(f.v) > 500 {
			return fmt.Errorf("the %s is %d bytes long; keep it under 500", f.name, len(f.v))
		}
		for _, c := range f.v {
			if c < ' ' || c == 0x7f {
				return fmt.Errorf("the %s holds a control character (%q); write it on one line", f.name, c)
			}
		}
	}
	return nil
}

func groupNames(gs []config.Group) string {
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return fmt.Sprint(names)
}

// newRunID is sortable by time and unique: 20261122T010203-webshop-switchover-1a2b.
func newRunID(group string, action plan.Action) string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102T150405") + "-" + group + "-" + string(action) + "-" + hex.EncodeToString(b)
}
