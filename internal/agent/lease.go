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
type leases struct {
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

func newLeases(t *config.Topology, now time.Time) *leases {
	var sites []string
	for _, s := range t.Sites {
		if s.Role == config.RoleSite {
			sites = append(sites, s.Name)
		}
	}
	c := t.Coordination
	return &leases{
		lease:     safety.NewLease(c.ServeLease.D(), startupGrace, now),
		granter:   safety.NewGranter(sites, c.ServeLease.D()+c.FenceMargin.D(), now),
		unmarking: map[string]bool{},
	}
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
func (a *agent) handleLease(w http.ResponseWriter, r *http.Request) {
	info := requestInfo(r)
	var req leaseRequest
	if err := decodeJSON(w, r, 4096, &req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode lease request: %w", err))
		return
	}
	info.note.Action = "serve lease for " + req.Site
	if _, ok := a.topo.Site(req.Site); !ok || req.Site == a.site.Name {
		writeError(w, http.StatusBadRequest, fmt.Errorf("lease request from unknown location %q", req.Site))
		return
	}
	if p := info.principal; !p.Anonymous && p.Site != req.Site {
		writeError(w, http.StatusForbidden, fmt.Errorf("lease for %s asked by %s", req.Site, p))
		return
	}
	l := a.lease
	l.mu.Lock()
	answer := l.granter.Ask(req.Site, time.Now())
	l.mu.Unlock()
	switch answer {
	case safety.NotReady:
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%s has not read its marks from the control plane yet", a.site.Name))
	case safety.Refuse:
		go a.unmark(req.Site)
		writeError(w, http.StatusConflict, fmt.Errorf("%s: %w %s lost; it grants again once the mark is removed", a.site.Name, errMarked, req.Site))
	default:
		writeJSON(w, http.StatusOK, map[string]int64{"lease_ms": a.topo.Coordination.ServeLease.D().Milliseconds()})
	}
}

// errMarked is the refusal of a location that marked the asker lost.
var errMarked = errors.New("marked")

// renewLoop asks every other location for the lease every tenth of it.
func (a *agent) renewLoop(ctx context.Context) error {
	lease := a.topo.Coordination.ServeLease.D()
	var peers []config.Site
	for _, s := range a.topo.Sites {
		if s.Name != a.site.Name {
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
				err := a.askLease(ctx, p, lease)
				switch {
				case err == nil:
					a.lease.mu.Lock()
					a.lease.lease.Granted(sent)
					a.lease.mu.Unlock()
				case errors.Is(err, errLeaseRefused):
					// A location that marked this one lost says so: this
					// site may not serve, and need not wait for the
					// startup grace to know it.
					a.lease.mu.Lock()
					if !a.lease.lease.Answered() {
						a.log.Warn("another location refuses the serve lease: enforcing it at once", "peer", p.Name, "error", err)
					}
					a.lease.lease.Refused()
					a.lease.mu.Unlock()
				}
				a.metrics.leaseRequest(p.Name, err == nil)
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

func (a *agent) askLease(ctx context.Context, p config.Site, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, _ := json.Marshal(leaseRequest{Site: a.site.Name})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.scheme()+"://"+p.Agent.LeaseAddress+"/v1/lease", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.leaseClient.Do(req)
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

func (a *agent) scheme() string {
	if a.topo.TLSEnabled() {
		return "https"
	}
	return "http"
}

// leaseValid says whether this location may serve now.
func (a *agent) leaseValid() bool {
	if a.forcedHere() {
		return true
	}
	a.lease.mu.Lock()
	defer a.lease.mu.Unlock()
	return a.lease.lease.Valid(time.Now())
}

// enforceLoop fences every local database when the lease runs out and
// keeps the watchdog told. Databases are started again by convergeLocal
// once the lease is back (local.go).
func (a *agent) enforceLoop(ctx context.Context) error {
	lease := a.topo.Coordination.ServeLease.D()
	tick := time.NewTicker(lease / 10)
	defer tick.Stop()
	targets := make([]watchdog.Target, 0, len(a.guards))
	for _, t := range a.guards {
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
		a.lease.mu.Lock()
		verdict, left, answered := a.lease.lease.Verdict(now), a.lease.lease.Left(now), a.lease.lease.Answered()
		a.lease.mu.Unlock()
		if a.forcedHere() {
			// A person declared the other locations lost (force.go).
			verdict, left = safety.Serve, lease
		}
		if verdict == safety.Wait {
			continue
		}
		if !answered && !graceTold {
			graceTold = true
			a.log.Warn("no other location granted the serve lease since the agent started; enforcing it", "after", startupGrace)
		}
		if a.watchdog != nil {
			select {
			case <-a.watchdog.Exited():
				a.log.Error("the watchdog ended; starting a new one")
				if err := a.startWatchdog(); err != nil {
					a.log.Error("cannot restart the watchdog; the agent alone fences now", "error", err)
					a.watchdog = nil
				}
			default:
			}
		}
		if a.watchdog != nil {
			if err := a.watchdog.Update(targets, left); err != nil {
				a.log.Warn("watchdog", "error", err)
			}
		}
		if verdict == safety.Serve {
			clear(fenced)
			withdrawn = false
			continue
		}
		if a.failpointLeaseLost() {
			return errors.New("failpoint: the agent fails as its serve lease runs out")
		}
		// Every database, whatever the last observation said: one whose
		// connection slots are full answers no observation and may still
		// be writing.
		a.selfFence(fenced)
		if !withdrawn {
			// Routes and records go with the primaries.
			a.net.WithdrawAll()
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
func (a *agent) selfFence(fenced map[string]fenceState) {
	for _, key := range slices.Sorted(maps.Keys(a.guards)) {
		t := a.guards[key]
		st := fenced[key]
		if t.DataDir == "" && (st.done || time.Since(st.tried) < time.Second) {
			continue
		}
		st.tried = time.Now()
		killed, err := driver.FenceNow(t)
		if err != nil {
			fenced[key] = st
			a.log.Error("serve lease ran out; fencing failed", "resource", key, "error", err)
			continue
		}
		if killed || (t.DataDir == "" && !st.done) {
			a.metrics.selfFences.Inc()
			a.log.Warn("serve lease ran out: no other location granted it; database fenced", "resource", key)
		}
		st.done = true
		fenced[key] = st
	}
	a.observeNow()
}

// markLoop marks lost every site this location granted nothing for a lease
// and a margin and whose resources it cannot reach.
func (a *agent) markLoop(ctx context.Context) error {
	c := a.topo.Coordination
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
		if !a.loadMarks(ctx, written) {
			continue
		}
		a.lease.mu.Lock()
		silent := a.lease.granter.Silent(time.Now(), probeLead)
		a.lease.mu.Unlock()
		for _, s := range a.topo.Sites {
			if s.Name == a.site.Name || s.Role != config.RoleSite {
				continue
			}
			a.lease.mu.Lock()
			marked := a.lease.granter.Marked(s.Name)
			a.lease.mu.Unlock()
			if !marked {
				written[s.Name] = false
				delete(failing, s.Name)
				if !slices.Contains(silent, s.Name) {
					delete(unreachable, s.Name)
					continue
				}
				if at, ok := unreachable[s.Name]; !ok || time.Since(at) > probeLead+c.ServeLease.D()/5 {
					if addr, ok := a.reachableResource(ctx, s.Name); ok {
						delete(unreachable, s.Name)
						a.log.Debug("site silent but its resources answer; not marking it lost", "site", s.Name, "resource", addr)
						continue
					}
					unreachable[s.Name] = time.Now()
				}
				a.lease.mu.Lock()
				// Not before the promise ran out, nor after a grant that
				// slipped in during the probe.
				marked = a.lease.granter.Mark(s.Name, time.Now())
				a.lease.mu.Unlock()
				if !marked {
					continue
				}
				delete(unreachable, s.Name)
				a.log.Warn("site lost from here: no lease request and no resource answered; marking it lost", "site", s.Name, "silent_for_over", silentFor)
			}
			if written[s.Name] {
				continue
			}
			err := a.writeMark(ctx, s.Name, silentFor)
			switch {
			case err == nil:
				written[s.Name] = true
				delete(failing, s.Name)
			case ctx.Err() == nil && !failing[s.Name]:
				failing[s.Name] = true
				a.log.Warn("cannot store the mark yet (is this location cut off?); retrying until it can or the site asks again", "site", s.Name, "error", err)
			}
		}
	}
}

// writeMark stores this location's mark on site, unless the mark was
// removed meanwhile.
func (a *agent) writeMark(ctx context.Context, site string, silentFor time.Duration) error {
	a.lease.markMu.Lock()
	defer a.lease.markMu.Unlock()
	a.lease.mu.Lock()
	still := a.lease.granter.Marked(site)
	a.lease.mu.Unlock()
	if !still {
		return nil
	}
	m := status.Mark{Site: site, By: a.site.Name, At: time.Now().UTC(),
		Reason: fmt.Sprintf("no lease request for over %s and no resource of %s answered from %s", silentFor, site, a.site.Name)}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return a.store.PutMark(wctx, m)
}

// loadMarks reads this location's own marks once, before it grants
// anything: a location that restarts must not forget whom it declared lost.
func (a *agent) loadMarks(ctx context.Context, written map[string]bool) bool {
	a.lease.mu.Lock()
	loaded := a.lease.granter.Loaded()
	a.lease.mu.Unlock()
	if loaded {
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	snap, err := a.snapshot(rctx)
	if err != nil {
		return false
	}
	var marked []string
	for site, by := range snap.Marks {
		if _, ok := by[a.site.Name]; ok {
			marked = append(marked, site)
			written[site] = true
		}
	}
	a.lease.mu.Lock()
	a.lease.granter.Load(marked)
	a.lease.mu.Unlock()
	return true
}

// probeLead is how long a probe of a site's resources may take, and how
// long before its promise runs out it starts.
const probeLead = 250 * time.Millisecond

// reachableResource returns the address of a resource of site that accepts
// a TCP connection from here, if any.
func (a *agent) reachableResource(ctx context.Context, site string) (string, bool) {
	var addrs []string
	for i := range a.topo.Groups {
		for j := range a.topo.Groups[i].Resources {
			if addr, ok := driver.Endpoint(&a.topo.Groups[i].Resources[j], site); ok && !slices.Contains(addrs, addr) {
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
func (a *agent) unmark(site string) {
	a.lease.mu.Lock()
	if a.lease.unmarking[site] {
		a.lease.mu.Unlock()
		return
	}
	a.lease.unmarking[site] = true
	a.lease.mu.Unlock()
	defer func() {
		time.Sleep(300 * time.Millisecond) // at most a few attempts a second
		a.lease.mu.Lock()
		delete(a.lease.unmarking, site)
		a.lease.mu.Unlock()
	}()
	a.lease.markMu.Lock()
	defer a.lease.markMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	snap, err := a.snapshot(ctx)
	if err != nil {
		return
	}
	ok, err := a.store.Unmark(ctx, site, a.site.Name, snap)
	if err != nil || !ok {
		return
	}
	a.lease.mu.Lock()
	a.lease.granter.Unmarked(site, time.Now())
	a.lease.mu.Unlock()
	a.log.Info("site asks for the lease again and no run depends on the mark: mark removed", "site", site)
}

// startWatchdog starts the watchdog process when the agent has one.
func (a *agent) startWatchdog() error {
	if a.opts.WatchdogExe == "" {
		return nil
	}
	dir := a.opts.DataDir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	g, err := watchdog.Start(a.opts.WatchdogExe, dir)
	if err != nil {
		return err
	}
	a.watchdog = g
	return nil
}

var errNoLease = errors.New("this site holds no serve lease")
