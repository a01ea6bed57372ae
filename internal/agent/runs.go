package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/engine"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// caller is the name in the client certificate of a request, or "" when
// TLS is off.
func caller(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	return r.TLS.PeerCertificates[0].Subject.CommonName
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// handleStartRun plans the requested action from a fresh snapshot and
// stores the run; the controller then drives it. Starting a run needs an
// operator credential: a client certificate, whose name the run records.
func (a *agent) handleStartRun(w http.ResponseWriter, r *http.Request) {
	by := caller(r)
	if by == "" {
		writeError(w, http.StatusForbidden, errors.New("starting a run needs an operator credential: turn TLS on (tls.ca_file) and use the operator certificate"))
		return
	}
	var req api.RunRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode run request: %w", err))
		return
	}
	g, ok := a.topo.Group(req.Group)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown group %q (groups: %s)", req.Group, groupNames(a.topo.Groups)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s cannot read the control plane: %w; ask another location", a.site.Name, err))
		return
	}
	if id, busy := snap.Running[g.Name]; busy {
		writeError(w, http.StatusConflict, fmt.Errorf("group %s: %w (run %s); follow it with `siteflip run %s`", g.Name, coord.ErrRunInProgress, id, id))
		return
	}
	st := status.Assemble(a.topo, snap, a.site.Name, time.Now().UTC())
	preq := plan.Request{Action: req.Action, To: req.To, AcceptDataLoss: req.AcceptDataLoss}
	p, err := plan.Build(g, a.known(g, snap, st), preq)
	if err != nil {
		writeError(w, http.StatusConflict, err)
		return
	}
	run := plan.NewRun(newRunID(g.Name, req.Action), by, preq, p, time.Now().UTC())
	if err := a.store.StartRun(ctx, run, snap.Records[g.Name].Revision); err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, coord.ErrRunInProgress) || errors.Is(err, coord.ErrStale) {
			code = http.StatusConflict
		}
		writeError(w, code, err)
		return
	}
	a.log.Info("run started", "run", run.ID, "group", g.Name, "action", req.Action, "from", p.From, "to", p.To, "by", by)
	writeJSON(w, http.StatusCreated, run)
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

func (a *agent) handleRuns(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	runs, err := a.store.Runs(ctx, r.URL.Query().Get("group"))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	if runs == nil {
		runs = []plan.Run{}
	}
	writeJSON(w, http.StatusOK, runs)
}

func (a *agent) handleRun(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	run, err := a.store.Run(ctx, r.PathValue("id"))
	switch {
	case errors.Is(err, coord.ErrNoRun):
		writeError(w, http.StatusNotFound, err)
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		writeJSON(w, http.StatusOK, run)
	}
}

// handleStep carries out one step on a resource of this site. Only the
// locations may ask (the controller, with its site certificate), and only
// in the group's current epoch or a newer one: a deposed controller's step
// from an older epoch is refused.
func (a *agent) handleStep(w http.ResponseWriter, r *http.Request) {
	if !a.topo.TLSEnabled() {
		writeError(w, http.StatusForbidden, errors.New("steps are taken only over mutual TLS from the locations' agents: turn TLS on (tls.ca_file)"))
		return
	}
	if !slices.Contains(a.siteCNs, caller(r)) {
		writeError(w, http.StatusForbidden, fmt.Errorf("steps are taken only from the locations' agents, not from %q", caller(r)))
		return
	}
	var req api.StepRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode step: %w", err))
		return
	}
	g, ok := a.topo.Group(req.Group)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("%s: unknown group %q in %s: the locations' configurations differ", a.site.Name, req.Group, a.topo.File))
		return
	}
	var res *config.Resource
	for i := range g.Resources {
		if g.Resources[i].Name == req.Resource {
			res = &g.Resources[i]
		}
	}
	if res == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("%s: group %s has no resource %q in %s: the locations' configurations differ", a.site.Name, req.Group, req.Resource, a.topo.File))
		return
	}
	actor, err := driver.NewActor(a.net, g, res, a.site.Name)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	// One step at a time per resource: a retry must not race the attempt
	// it retries. The fencing checks come after the wait, so that a step
	// that waited behind another is judged by the state it will act in.
	lock := a.resourceLock(g.Name + "/" + res.Name)
	lock.Lock()
	defer lock.Unlock()
	if r.Context().Err() != nil {
		return // the controller gave up on this request
	}
	rctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	rec, running, err := a.store.Guard(rctx, g.Name)
	cancel()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s cannot check the epoch of %s: %w", a.site.Name, g.Name, err))
		return
	}
	if req.Epoch != rec.Epoch || req.RunID != running {
		writeError(w, http.StatusConflict, fmt.Errorf("step %s of run %s (epoch %d) refused at %s: group %s is at epoch %d and its run in progress is %q",
			req.Kind, req.RunID, req.Epoch, a.site.Name, g.Name, rec.Epoch, running))
		return
	}
	if (req.Kind == plan.Promote || req.Kind == plan.Unfence) && !a.leaseValid() {
		writeJSON(w, http.StatusOK, api.StepResult{Error: fmt.Sprintf("%s of %s at %s: %v: no other location granted it the right to serve within %s",
			req.Kind, req.Resource, a.site.Name, errNoLease, a.topo.Coordination.ServeLease.D())})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), max(req.Timeout, time.Second))
	defer cancel()
	start := time.Now()
	var out map[string]string
	switch req.Kind {
	case plan.Fence:
		out, err = actor.Fence(ctx)
	case plan.CatchUp:
		err = actor.CatchUp(ctx, req.Input)
	case plan.Promote:
		out, err = actor.Promote(ctx)
	case plan.Rejoin:
		out, err = actor.Rejoin(ctx, req.Primary)
	case plan.Unfence:
		err = actor.Unfence(ctx)
	default:
		err = fmt.Errorf("unknown step kind %q", req.Kind)
	}
	a.log.Info("step", "run", req.RunID, "kind", req.Kind, "resource", req.Resource, "epoch", req.Epoch, "took", time.Since(start).Round(time.Millisecond), "error", err)
	// Show the step's effect in the status now, not at the next tick.
	select {
	case a.observe <- struct{}{}:
	default:
	}
	if err != nil {
		writeJSON(w, http.StatusOK, api.StepResult{Error: fmt.Sprintf("%s of %s at %s: %v", req.Kind, req.Resource, a.site.Name, err)})
		return
	}
	writeJSON(w, http.StatusOK, api.StepResult{Output: out})
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
	ap := a.newAutopilot(ctx)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		snap, err := a.store.Snapshot(rctx)
		cancel()
		if err == nil {
			a.recordLags(ctx, snap)
			a.decide(ctx, snap, sess.Fence(), ap)
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
		select {
		case <-ctx.Done():
			return
		case id := <-done:
			delete(driving, id)
		case <-tick.C:
		}
	}
}

// siteLost says, from a fresh snapshot, whether every other location
// marked site lost. Without a snapshot it is not known to be lost.
func (a *agent) siteLost(site string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		return false
	}
	return snap.Lost(site, a.topo.SiteNames())
}

// recordLags keeps the last lag each primary reported for its standbys,
// so that it is still known when the primary's site is gone. While the
// active site's primary serves and a standby is not streaming, the record
// says so: what that standby lacks is unknown from then on.
func (a *agent) recordLags(ctx context.Context, snap status.Snapshot) {
	st := status.Assemble(a.topo, snap, a.site.Name, time.Now().UTC())
	for _, g := range st.Groups {
		for _, r := range g.Resources {
			if driver.IsNetwork(r.Type) {
				continue // no data, no lag
			}
			primaryServes := false
			for _, s := range r.Sites {
				primaryServes = primaryServes || (s.Site == g.ActiveSite && s.Observed && s.Up && s.Role == status.RolePrimary)
			}
			if !primaryServes {
				continue // the last record stands: it is the last known lag
			}
			for _, s := range r.Sites {
				if s.Site == g.ActiveSite {
					continue
				}
				// Judged by what the serving primary reports: when the
				// primary dies, its last report still lists the standby,
				// so the standby noticing first is not mistaken for a
				// standby that stopped streaming while the primary served.
				prev, known := snap.Lags[g.Name][r.Name][s.Site]
				var l status.Lag
				switch {
				case s.SenderState == "streaming" && s.LagSeconds != nil && s.LagBytes != nil:
					if known && prev.Streaming && time.Since(prev.MeasuredAt) < time.Second {
						continue
					}
					l = status.Lag{Seconds: *s.LagSeconds, Bytes: *s.LagBytes, MeasuredAt: time.Now().UTC(), Streaming: true}
				case s.SenderState == "streaming":
					continue // streaming, lag not measured at this instant
				case known && !prev.Streaming:
					continue // already recorded as not streaming
				default:
					l = status.Lag{Seconds: prev.Seconds, Bytes: prev.Bytes, MeasuredAt: time.Now().UTC(), Streaming: false}
				}
				if err := a.store.PutLag(ctx, g.Name, r.Name, s.Site, l); err != nil && ctx.Err() == nil {
					a.log.Warn("record lag", "group", g.Name, "resource", r.Name, "site", s.Site, "error", err)
				}
			}
		}
	}
}

// failpointEnv names a test hook: "exit-after-step=KIND" makes the
// controller's agent exit at once, like a crash, right after it stored a
// step of that kind as done (for example catch-up, between the two halves
// of a switchover). The next controller must finish the run. With
// failpointOnceEnv naming a file, only the first agent to create that file
// fires: one crash per test, whoever is controller.
const (
	failpointEnv     = "SITEFLIP_FAILPOINT"
	failpointOnceEnv = "SITEFLIP_FAILPOINT_ONCE"
)

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
