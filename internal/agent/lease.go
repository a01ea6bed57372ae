package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/safety"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/watchdog"
)

// The serve lease (docs/design/fencing.md): every location asks every
// other one for the right to serve, and fences its primaries when nobody
// granted it for a whole lease. A location that granted a site nothing for
// a lease and a margin, and cannot reach the site's resources, marks the
// site lost in etcd and grants it nothing more until it removed its mark.
type serveLease struct {
	*base
	plane *plane
	marks interface {
		PutMark(ctx context.Context, m status.Mark) error
		Unmark(ctx context.Context, site, by string, snap status.Snapshot) (bool, error)
	}
	client *http.Client // asks the other locations for the lease
	// local are the resources it fences when the lease runs out; forced
	// says whether a person declared the other locations lost (force.go).
	local  *localResources
	forced func() bool
	// watchdogExe, when set, is the binary started as the watchdog (with
	// watchdogArgs), with its pid file in dataDir; watchdog is nil without
	// one, and let go (released or abandoned) once the agent stops: wdMu
	// guards both, as the stop comes while enforceLoop may be restarting
	// it.
	watchdogExe, dataDir string
	watchdogArgs         []string
	wdMu                 sync.Mutex
	watchdog             *watchdog.Guard
	wdLetGo              bool

	mu sync.Mutex
	// lease is this location's serve lease as a requester; granter is what
	// it granted the others and whom it marked lost (safety.Granter).
	lease   *safety.Lease
	granter *safety.Granter
	// unmarking: a removal of this location's mark on the site is under way.
	unmarking map[string]bool
	// markMu orders the writes and removals of this location's marks in
	// etcd, so that a late write cannot land after the removal it
	// preceded locally.
	markMu sync.Mutex
}

// newLeaseState sets the lease and the granter of an agent started at now.
func (sl *serveLease) newLeaseState(now time.Time) {
	var sites []string
	for _, s := range sl.topo.Sites {
		if s.Role == config.RoleSite {
			sites = append(sites, s.Name)
		}
	}
	c := sl.topo.Coordination
	sl.lease = safety.NewLease(c.ServeLease.D(), startupGrace, now)
	sl.granter = safety.NewGranter(sites, c.ServeLease.D()+c.FenceMargin.D(), now)
	sl.unmarking = map[string]bool{}
}

// startupGrace is how long a starting agent waits for its first grant
// before it enforces a lease it never had.
const startupGrace = 10 * time.Second

// leaseRequest is the body of POST /v1/lease.
type leaseRequest struct {
	Site string `json:"site"`
}

// handleLease grants the calling location the right to serve, unless this
// location marked it lost. It is served on the peer listener only.
func (sl *serveLease) handleLease(w http.ResponseWriter, r *http.Request) {
	info := requestInfo(r)
	var req leaseRequest
	if err := decodeJSON(w, r, 4096, &req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode lease request: %w", err))
		return
	}
	info.note.Action = "serve lease for " + req.Site
	if _, ok := sl.topo.Site(req.Site); !ok || req.Site == sl.site.Name {
		writeError(w, http.StatusBadRequest, fmt.Errorf("lease request from unknown location %q", req.Site))
		return
	}
	if p := info.principal; !p.Anonymous && p.Site != req.Site {
		writeError(w, http.StatusForbidden, fmt.Errorf("lease for %s asked by %s", req.Site, p))
		return
	}
	sl.mu.Lock()
	answer := sl.granter.Ask(req.Site, time.Now())
	sl.mu.Unlock()
	switch answer {
	case safety.NotReady:
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s has not read its marks from the control plane yet", sl.site.Name))
	case safety.Refuse:
		go sl.unmark(req.Site)
		writeError(w, http.StatusConflict, fmt.Errorf("%s: %w %s lost; it grants again once the mark is removed", sl.site.Name, errMarked, req.Site))
	default:
		writeJSON(w, http.StatusOK, map[string]int64{"lease_ms": sl.topo.Coordination.ServeLease.D().Milliseconds()})
	}
}

// errMarked is the refusal of a location that marked the asker lost.
var errMarked = errors.New("marked")

// renewLoop asks every other location for the lease every tenth of it.
func (sl *serveLease) renewLoop(ctx context.Context) error {
	lease := sl.topo.Coordination.ServeLease.D()
	var peers []config.Site
	for _, s := range sl.topo.Sites {
		if s.Name != sl.site.Name {
			peers = append(peers, s)
		}
	}
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(lease / 10)
			defer tick.Stop()
			for {
				sent := time.Now()
				err := sl.askLease(ctx, p, lease)
				switch {
				case err == nil:
					sl.mu.Lock()
					sl.lease.Granted(sent)
					sl.mu.Unlock()
				case errors.Is(err, errLeaseRefused):
					// A location that marked this one lost says so: this
					// site may not serve, and need not wait for the
					// startup grace to know it.
					sl.mu.Lock()
					if !sl.lease.Answered() {
						sl.log.Warn("another location refuses the serve lease: enforcing it at once", "peer", p.Name, "error", err)
					}
					sl.lease.Refused()
					sl.mu.Unlock()
				}
				sl.metrics.leaseRequest(p.Name, err == nil)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

func (sl *serveLease) askLease(ctx context.Context, p config.Site, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, _ := json.Marshal(leaseRequest{Site: sl.site.Name})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sl.scheme()+"://"+p.Agent.LeaseAddress+"/v1/lease", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := sl.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusConflict:
		return fmt.Errorf("%w by %s: %s", errLeaseRefused, p.Name, strings.TrimSpace(string(msg)))
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s withholds the lease: %s", p.Name, strings.TrimSpace(string(msg)))
	}
	return nil
}

// errLeaseRefused: a location answered that it marked this one lost.
var errLeaseRefused = errors.New("serve lease refused")

// valid says whether this location may serve now.
func (sl *serveLease) valid() bool {
	return sl.forced() || sl.granted()
}

// enforceLoop fences every local database when the lease runs out and
// keeps the watchdog told. Databases are started again by convergeLocal
// once the lease is back (local.go).
func (sl *serveLease) enforceLoop(ctx context.Context) error {
	lease := sl.topo.Coordination.ServeLease.D()
	tick := time.NewTicker(lease / 10)
	defer tick.Stop()
	targets := make([]watchdog.Target, 0, len(sl.local.guards))
	for _, t := range sl.local.guards {
		targets = append(targets, t)
	}
	fenced := map[string]fenceState{} // in this loss of the lease
	withdrawn, graceTold := false, false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := time.Now()
		sl.mu.Lock()
		verdict, left, answered := sl.lease.Verdict(now), sl.lease.Left(now), sl.lease.Answered()
		sl.mu.Unlock()
		if sl.forced() {
			// A person declared the other locations lost (force.go).
			verdict, left = safety.Serve, lease
		}
		if verdict == safety.Wait {
			continue
		}
		if !answered && !graceTold {
			graceTold = true
			sl.log.Warn("no other location granted the serve lease since the agent started; enforcing it", "after", startupGrace)
		}
		if w := sl.guard(); w != nil {
			select {
			case <-w.Exited():
				sl.log.Error("the watchdog ended; starting a new one")
				if err := sl.startWatchdog(); err != nil {
					sl.log.Error("cannot restart the watchdog; the agent alone fences now", "error", err)
				}
			default:
			}
		}
		if w := sl.guard(); w != nil {
			if err := w.Update(targets, left); err != nil {
				sl.log.Warn("cannot tell the watchdog what to guard and for how long", "error", err)
			}
		}
		if verdict == safety.Serve {
			clear(fenced)
			withdrawn = false
			continue
		}
		if failpointLeaseLost() {
			return errors.New("failpoint: the agent fails as its serve lease runs out")
		}
		// Every database, whatever the last observation said: one whose
		// connection slots are full answers no observation and may still
		// be writing.
		sl.selfFence(fenced)
		if !withdrawn {
			// Routes and records go with the primaries, and so do the
			// services that may act on the data.
			sl.local.net.WithdrawAll()
			sl.local.yieldAll()
			withdrawn = true
		}
	}
}

// fenceState is what became of one database in one loss of the lease.
type fenceState struct {
	done  bool
	tried time.Time
}

// selfFence fences every local database. Those on this machine are killed
// on every call (cheap when nothing runs; something may start them
// again); a fence command runs until it is verified once in this loss of
// the lease, at most once a second.
func (sl *serveLease) selfFence(fenced map[string]fenceState) {
	for _, key := range slices.Sorted(maps.Keys(sl.local.guards)) {
		t := sl.local.guards[key]
		st := fenced[key]
		if t.DataDir == "" && (st.done || time.Since(st.tried) < time.Second) {
			continue
		}
		st.tried = time.Now()
		killed, err := driver.FenceNow(t)
		if err != nil {
			fenced[key] = st
			sl.log.Error("serve lease ran out; fencing failed", "resource", key, "error", err)
			continue
		}
		if killed || (t.DataDir == "" && !st.done) {
			sl.metrics.selfFences.Inc()
			sl.log.Warn("serve lease ran out: no other location granted it; database fenced", "resource", key)
		}
		st.done = true
		fenced[key] = st
	}
	sl.local.observeNow()
}

// markLoop marks lost every site this location granted nothing for a lease
// and a margin and whose resources it cannot reach.
func (sl *serveLease) markLoop(ctx context.Context) error {
	c := sl.topo.Coordination
	silentFor := c.ServeLease.D() + c.FenceMargin.D()
	tick := time.NewTicker(c.ServeLease.D() / 10)
	defer tick.Stop()
	written := map[string]bool{} // marks stored in etcd
	failing := map[string]bool{} // marks whose storing failed (logged once)
	// The resources are probed from probeLead before the promise runs out,
	// so that the mark is not late by a probe's timeout; a probe that found
	// nothing counts for probeLead and two ticks.
	unreachable := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if !sl.loadMarks(ctx, written) {
			continue
		}
		sl.mu.Lock()
		silent := sl.granter.Silent(time.Now(), probeLead)
		sl.mu.Unlock()
		for _, s := range sl.topo.Sites {
			if s.Name == sl.site.Name || s.Role != config.RoleSite {
				continue
			}
			sl.mu.Lock()
			marked := sl.granter.Marked(s.Name)
			sl.mu.Unlock()
			if !marked {
				written[s.Name] = false
				delete(failing, s.Name)
				if !slices.Contains(silent, s.Name) {
					delete(unreachable, s.Name)
					continue
				}
				if at, ok := unreachable[s.Name]; !ok || time.Since(at) > probeLead+c.ServeLease.D()/5 {
					if addr, ok := sl.reachableResource(ctx, s.Name); ok {
						delete(unreachable, s.Name)
						sl.log.Debug("site silent but its resources answer; not marking it lost", "peer", s.Name, "resource", addr)
						continue
					}
					unreachable[s.Name] = time.Now()
				}
				sl.mu.Lock()
				// Not before the promise ran out, nor after a grant that
				// slipped in during the probe.
				marked = sl.granter.Mark(s.Name, time.Now())
				sl.mu.Unlock()
				if !marked {
					continue
				}
				delete(unreachable, s.Name)
				sl.log.Warn("site lost from here: no lease request and no resource answered; marking it lost", "peer", s.Name, "silent_for_over", silentFor)
			}
			if written[s.Name] {
				continue
			}
			err := sl.writeMark(ctx, s.Name, silentFor)
			switch {
			case err == nil:
				written[s.Name] = true
				delete(failing, s.Name)
				// Observed from now on, this site's standbys have all
				// they will get from the lost site.
				sl.local.observeAndPublish()
			case ctx.Err() == nil && !failing[s.Name]:
				failing[s.Name] = true
				sl.log.Warn("cannot store the mark yet (is this location cut off?); retrying until it can or the site asks again", "peer", s.Name, "error", err)
			}
		}
	}
}

// writeMark stores this location's mark on site, unless the mark was
// removed meanwhile.
func (sl *serveLease) writeMark(ctx context.Context, site string, silentFor time.Duration) error {
	sl.markMu.Lock()
	defer sl.markMu.Unlock()
	sl.mu.Lock()
	still := sl.granter.Marked(site)
	sl.mu.Unlock()
	if !still {
		return nil
	}
	// On the clock its views are published and observed with: a
	// failover compares this site's observations with its marks.
	m := status.Mark{Site: site, By: sl.site.Name, At: sl.now().UTC(),
		Reason: fmt.Sprintf("no lease request for over %s and no resource of %s answered from %s", silentFor, site, sl.site.Name)}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return sl.marks.PutMark(wctx, m)
}

// loadMarks reads this location's own marks once, before it grants
// anything: a location that restarts must not forget whom it declared lost.
func (sl *serveLease) loadMarks(ctx context.Context, written map[string]bool) bool {
	sl.mu.Lock()
	loaded := sl.granter.Loaded()
	sl.mu.Unlock()
	if loaded {
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	snap, err := sl.plane.snapshot(rctx)
	if err != nil {
		return false
	}
	var marked []string
	for site, by := range snap.Marks {
		if _, ok := by[sl.site.Name]; ok {
			marked = append(marked, site)
			written[site] = true
		}
	}
	sl.mu.Lock()
	sl.granter.Load(marked)
	sl.mu.Unlock()
	return true
}

// probeLead is how long a probe of a site's resources may take, and how
// long before its promise runs out it starts.
const probeLead = 250 * time.Millisecond

// reachableResource returns the address of a resource of site that accepts
// a TCP connection from here, if any.
func (sl *serveLease) reachableResource(ctx context.Context, site string) (string, bool) {
	var addrs []string
	for i := range sl.topo.Groups {
		for j := range sl.topo.Groups[i].Resources {
			if addr, ok := driver.Endpoint(&sl.topo.Groups[i].Resources[j], site); ok && !slices.Contains(addrs, addr) {
				addrs = append(addrs, addr)
			}
		}
	}
	d := net.Dialer{Timeout: probeLead}
	for _, addr := range addrs {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
			return addr, true
		}
	}
	return "", false
}

// unmark removes this location's mark on site after the site asked for the
// lease again, if no run depends on the mark; only then does it grant.
func (sl *serveLease) unmark(site string) {
	sl.mu.Lock()
	if sl.unmarking[site] {
		sl.mu.Unlock()
		return
	}
	sl.unmarking[site] = true
	sl.mu.Unlock()
	defer func() {
		time.Sleep(300 * time.Millisecond) // at most a few attempts a second
		sl.mu.Lock()
		delete(sl.unmarking, site)
		sl.mu.Unlock()
	}()
	sl.markMu.Lock()
	defer sl.markMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	snap, err := sl.plane.snapshot(ctx)
	if err != nil {
		return
	}
	ok, err := sl.marks.Unmark(ctx, site, sl.site.Name, snap)
	if err != nil || !ok {
		return
	}
	sl.mu.Lock()
	sl.granter.Unmarked(site, time.Now())
	sl.mu.Unlock()
	sl.log.Info("site asks for the lease again and no run depends on the mark: mark removed", "peer", site)
}

// startWatchdog starts the watchdog process when the agent has one, unless
// the agent let it go (it stops).
func (sl *serveLease) startWatchdog() error {
	sl.wdMu.Lock()
	defer sl.wdMu.Unlock()
	sl.watchdog = nil
	if sl.watchdogExe == "" || sl.wdLetGo {
		return nil
	}
	dir := sl.dataDir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	g, err := watchdog.Start(sl.watchdogExe, dir, sl.watchdogArgs...)
	if err != nil {
		return err
	}
	sl.watchdog = g
	return nil
}

var errNoLease = errors.New("this site holds no serve lease")

// granted says whether another location granted the lease (forced or not).
func (sl *serveLease) granted() bool {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return sl.lease.Valid(time.Now())
}

// declare: a force declared these sites lost; they are granted nothing
// until their marks are removed.
func (sl *serveLease) declare(sites []string) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	for _, s := range sites {
		sl.granter.Declare(s)
	}
}

// guard is the running watchdog, nil without one.
func (sl *serveLease) guard() *watchdog.Guard {
	sl.wdMu.Lock()
	defer sl.wdMu.Unlock()
	return sl.watchdog
}

// releaseWatchdog stops the watchdog without fencing: the agent stops
// deliberately (docs/design/fencing.md, "A clean stop of the agent does
// not fence"). It is called the moment the stop begins: from then on
// nobody renews the lease, and winding the agent down takes longer than
// what is left of it.
func (sl *serveLease) releaseWatchdog() {
	if w := sl.letGo(); w != nil {
		w.Release()
	}
}

// abandonWatchdog lets go of the watchdog armed: the agent fails, and
// the watchdog fences when the lease runs out.
func (sl *serveLease) abandonWatchdog() {
	if w := sl.letGo(); w != nil {
		w.Abandon()
	}
}

func (sl *serveLease) letGo() *watchdog.Guard {
	sl.wdMu.Lock()
	defer sl.wdMu.Unlock()
	w := sl.watchdog
	sl.watchdog, sl.wdLetGo = nil, true
	return w
}
