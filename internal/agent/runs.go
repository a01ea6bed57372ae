package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/siteflip/siteflip/internal/access"
	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/engine"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// handleStartRun plans the requested action from a fresh snapshot and
// stores the run; the controller then drives it. The caller's role must
// allow the action (access.RunRole); the run records who started it, with
// their role, reason and ticket.
func (a *agent) handleStartRun(w http.ResponseWriter, r *http.Request) {
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
	g, ok := a.topo.Group(req.Group)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown group %q (groups: %s)", req.Group, groupNames(a.topo.Groups)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	snap, err := a.snapshot(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s cannot read the control plane: %w; ask another location", a.site.Name, err))
		return
	}
	if id, busy := snap.Running[g.Name]; busy {
		writeError(w, http.StatusConflict, fmt.Errorf("group %s: %w (run %s); follow it with `siteflip run %s`", g.Name, coord.ErrRunInProgress, id, id))
		return
	}
	preq := plan.Request{Action: req.Action, To: req.To, AcceptDataLoss: req.AcceptDataLoss}
	p, err := plan.Build(g, a.known(g, snap, a.assemble(snap)), preq)
	if err != nil {
		writeError(w, http.StatusConflict, err)
		return
	}
	run := plan.NewRun(newRunID(g.Name, req.Action), info.principal.Name, preq, p, a.now().UTC())
	run.Role, run.Reason, run.Ticket = info.principal.RoleName(), req.Reason, req.Ticket
	info.note.Run = run.ID
	if err := a.store.StartRun(ctx, run, snap.Records[g.Name].Revision); err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, coord.ErrRunInProgress) || errors.Is(err, coord.ErrStale) {
			code = http.StatusConflict
		}
		writeError(w, code, err)
		return
	}
	a.log.Info("run started", "run", run.ID, "group", g.Name, "action", req.Action, "from", p.From, "to", p.To, "by", run.By, "role", run.Role, "reason", run.Reason, "ticket", run.Ticket)
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
	return s
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

func (a *agent) resourceLock(key string) *sync.Mutex {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.locks == nil {
		a.locks = map[string]*sync.Mutex{}
	}
	if a.locks[key] == nil {
		a.locks[key] = &sync.Mutex{}
	}
	return a.locks[key]
}

// driveRuns is the controller's run loop: every run in progress is driven
// by one goroutine until it ends or the term does.
func (a *agent) driveRuns(ctx context.Context, sess *coord.Session) {
	eng := &engine.Engine{
		Store: a.store, Agents: a.peerAPI, Fence: sess.Fence(), Log: a.log,
		SiteLost: a.siteLost,
		Now:      time.Now,
		Sleep: func(ctx context.Context, d time.Duration) {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		},
	}
	eng.AfterStep = a.failpoint()
	driving := map[string]bool{}
	done := make(chan string)
	ap := a.newMemory(ctx)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	// A mark stored or removed is decided on at once, not at the next poll.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	marks := a.store.WatchMarks(wctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		snap, err := a.snapshot(rctx)
		cancel()
		again := false
		if err == nil {
			a.recordLags(ctx, snap)
			// A failover just started is driven at once: read again.
			again = a.decide(ctx, snap, sess.Fence(), ap)
			for _, id := range snap.Running {
				if driving[id] {
					continue
				}
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				run, err := a.store.Run(rctx, id)
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						a.log.Warn("cannot read a run in progress; it stays locked until it can be read", "run", id, "error", err)
					}
					continue
				}
				driving[id] = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					a.log.Info("driving run", "run", run.ID, "group", run.Group, "action", run.Plan.Action)
					final, err := eng.Drive(ctx, run)
					if err != nil && ctx.Err() == nil {
						a.log.Warn("run interrupted", "run", run.ID, "error", err)
					} else if err == nil {
						a.log.Info("run ended", "run", run.ID, "state", final.State, "rto", final.RTO())
					}
					select {
					case done <- run.ID:
					case <-ctx.Done():
					}
				}()
			}
		}
		if again {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case id := <-done:
			delete(driving, id)
		case <-marks:
		case <-tick.C:
		}
	}
}

// siteLost says, from a fresh snapshot, whether every other location
// marked site lost. Without a snapshot it is not known to be lost.
func (a *agent) siteLost(site string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	snap, err := a.snapshot(ctx)
	if err != nil {
		return false
	}
	return snap.Lost(site, a.topo.SiteNames())
}

// recordLags keeps the last lag each primary reported for its standbys,
// so that it is still known when the primary's site is gone (lags.go).
func (a *agent) recordLags(ctx context.Context, snap status.Snapshot) {
	for _, u := range lagUpdates(a.topo, snap) {
		if err := a.store.PutLag(ctx, u.group, u.resource, u.site, u.lag); err != nil && ctx.Err() == nil {
			a.log.Warn("record lag", "group", u.group, "resource", u.resource, "site", u.site, "error", err)
		}
	}
}

// failpointEnv names a test hook: "exit-after-step=KIND" makes the
// controller's agent exit at once, like a crash, right after it stored a
// step of that kind as done (for example catch-up, between the two halves
// of a switchover). The next controller must finish the run. With
// failpointOnceEnv naming a file, only the first agent to create that file
// fires: one crash per test, whoever is controller.
//
// "error-on-lease-loss" makes the agent fail (return an error, as a
// broken component would) at the moment its serve lease runs out, before
// it fences anything itself: its watchdog must fence.
const (
	failpointEnv     = "SITEFLIP_FAILPOINT"
	failpointOnceEnv = "SITEFLIP_FAILPOINT_ONCE"
)

// failpointLeaseLost says whether the agent must fail now that its lease
// ran out.
func (a *agent) failpointLeaseLost() bool {
	return os.Getenv(failpointEnv) == "error-on-lease-loss"
}

func (a *agent) failpoint() func(plan.Run, plan.Step) {
	kind, ok := strings.CutPrefix(os.Getenv(failpointEnv), "exit-after-step=")
	if !ok {
		return nil
	}
	once := os.Getenv(failpointOnceEnv)
	return func(run plan.Run, s plan.Step) {
		if string(s.Kind) != kind {
			return
		}
		if once != "" {
			f, err := os.OpenFile(once, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return // fired before
			}
			f.Close()
		}
		a.log.Warn("failpoint: exiting after step", "run", run.ID, "step", s.ID)
		os.Exit(3)
	}
}
