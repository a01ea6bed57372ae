package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/safety"
	"github.com/siteflip/siteflip/internal/status"
)

// failuresToDown is how many probes in a row must fail before a peer is
// declared unreachable: one lost probe on a lossy link is not a lost site.
const failuresToDown = 2

// probeLoop probes every other location's agent each probe interval.
func (a *agent) probeLoop(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, s := range a.topo.Sites {
		if s.Name == a.site.Name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.probePeer(ctx, s)
		}()
	}
	wg.Wait()
	return nil
}

func (a *agent) probePeer(ctx context.Context, peer config.Site) {
	scheme := "http"
	if a.topo.TLSEnabled() {
		scheme = "https"
	}
	// The peer listener: other traffic cannot starve it.
	url := scheme + "://" + peer.Agent.LeaseAddress + "/healthz"
	tick := time.NewTicker(a.topo.Coordination.ProbeInterval.D())
	defer tick.Stop()
	failures := 0
	for {
		start := time.Now()
		started, err := a.probe(ctx, url)
		rtt := time.Since(start)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
		} else {
			failures = 0
		}
		a.metrics.probe(peer.Name, err == nil, rtt)
		a.mu.Lock()
		prev, known := a.peers[peer.Name]
		next := prev
		switch {
		case err == nil:
			next.Reachable, next.RTTMs, next.Error = true, float64(rtt.Microseconds())/1000, ""
			if !started.IsZero() {
				next.Started = started
			}
		case failures >= failuresToDown || !known:
			next.Reachable, next.Error = false, err.Error()
		}
		flipped := !known || prev.Reachable != next.Reachable
		if flipped {
			next.Since = a.now().UTC()
		}
		a.peers[peer.Name] = next
		a.mu.Unlock()
		if flipped {
			a.log.Info("peer reachability changed", "peer", peer.Name, "reachable", next.Reachable, "error", next.Error)
		}
		if known && !prev.Started.IsZero() && !prev.Started.Equal(next.Started) {
			a.log.Info("peer agent started anew", "peer", peer.Name, "started", next.Started)
		}
		if flipped || !prev.Started.Equal(next.Started) {
			a.notify()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// handleHealthz answers "ok SITE STARTED": the peers learn from it when
// this agent started, and so which of its views are from this run.
func (a *agent) handleHealthz(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "ok %s %s\n", a.site.Name, a.started.Format(time.RFC3339Nano))
}

// probe asks a peer's /healthz; it returns when the peer's agent started
// (zero if its answer does not say).
func (a *agent) probe(ctx context.Context, url string) (time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return time.Time{}, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return time.Time{}, err
	}
	// Read to the end so the connection is reused: a TLS handshake per
	// probe is slow, and on a lossy link more likely to fail than the probe.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return time.Time{}, fmt.Errorf("healthz answered %s", resp.Status)
	}
	return parseHealthz(string(body)), nil
}

// parseHealthz reads the start time from a /healthz answer.
func parseHealthz(body string) time.Time {
	f := strings.Fields(body)
	if len(f) < 3 || f[0] != "ok" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, f[2])
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// observeLoop observes the local resources each probe interval.
func (a *agent) observeLoop(ctx context.Context, observers map[string]driver.Observer) error {
	if len(observers) == 0 {
		return nil
	}
	tick := time.NewTicker(a.topo.Coordination.ProbeInterval.D())
	defer tick.Stop()
	for {
		for key, o := range observers {
			octx, cancel := context.WithTimeout(ctx, a.topo.Coordination.ProbeTimeout.D())
			v := o.Observe(octx)
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			// Timed on this agent's clock, as its view's publication is:
			// the controller subtracts the two (lags.go).
			v.ObservedAt = a.now().UTC()
			a.metrics.resource(v)
			a.mu.Lock()
			prev, known := a.resources[key]
			a.resources[key] = v
			a.mu.Unlock()
			if !known || prev.Up != v.Up || prev.Role != v.Role || prev.Streaming != v.Streaming || prev.Timeline != v.Timeline {
				a.log.Info("resource changed", "resource", key, "up", v.Up, "role", v.Role, "streaming", v.Streaming, "timeline", v.Timeline, "error", v.Error)
				a.notify()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-a.observe:
		}
	}
}

// presenceLoop keeps the location present in the control plane: a session
// whose lease carries the view and the candidacy. When the session is lost
// (lease expired, location cut off) it starts a new one.
func (a *agent) presenceLoop(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	ttl := a.topo.Coordination.LeaseTTL.D()
	var resume int64 // the lease of a session the client dropped, to take up again
	for ctx.Err() == nil {
		var sess *coord.Session
		var err error
		if resume != 0 {
			// Blocks until the cluster has a leader again.
			rctx, cancel := context.WithTimeout(ctx, 2*ttl)
			sess, err = a.store.ResumeSession(rctx, a.site.Name, resume, ttl)
			cancel()
			if err == nil {
				a.log.Info("control-plane session taken up again: its lease outlived the client's keepalive", "lease", fmt.Sprintf("%x", resume))
			} else if ctx.Err() == nil {
				a.log.Warn("control-plane session gone; opening a new one", "error", err)
			}
			resume = 0
		}
		if sess == nil {
			// Blocks while the cluster has no quorum; that is the wait we want.
			sess, err = a.store.NewSession(ctx, a.site.Name, ttl)
			if err != nil {
				if ctx.Err() == nil {
					a.log.Warn("no control-plane session yet; retrying", "error", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			a.log.Info("control-plane session opened", "lease", fmt.Sprintf("%x", sess.Lease()))
		}
		backoff = 200 * time.Millisecond
		dropped := a.runSession(ctx, sess)
		a.metrics.controller.Set(0)
		if dropped && ctx.Err() == nil {
			// The client gave up on the lease; the cluster may not have.
			sess.Orphan()
			resume = sess.Lease()
			a.log.Warn("control-plane session dropped by the client; taking its lease up again if it still lives")
			continue
		}
		// Revoke at once on a clean stop, so the view and the candidacy do
		// not linger for a TTL.
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if ctx.Err() != nil {
			if err := sess.Resign(cctx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Debug("resign", "error", err)
			}
		}
		sess.Close()
		cancel()
		if ctx.Err() == nil {
			a.log.Warn("control-plane session ended; opening a new one")
		}
	}
	return nil
}

// runSession publishes the view and campaigns for controller until the
// session ends or ctx does.
// It says whether it ended because the session's keepalive was dropped.
func (a *agent) runSession(ctx context.Context, sess *coord.Session) (dropped bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lost atomic.Bool
	go func() {
		select {
		case <-sess.Done():
			lost.Store(true)
			cancel()
		case <-ctx.Done():
		}
	}()
	defer func() { dropped = lost.Load() }()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); a.publishLoop(ctx, sess) }()
	go func() {
		defer wg.Done()
		// A candidacy that failed (a watch broken by compaction, a lost
		// confirmation) would otherwise keep its place in the queue with
		// nobody acting on it: end the session and start afresh.
		if err := a.campaign(ctx, sess); err != nil && ctx.Err() == nil {
			a.log.Warn("candidacy for controller failed; renewing the session", "error", err)
			cancel()
		}
	}()
	go func() { defer wg.Done(); a.watchController(ctx) }()
	wg.Wait()
	return
}

// publishLoop publishes the view at once on a change, and at least every
// third of the lease TTL so the published time stays fresh.
func (a *agent) publishLoop(ctx context.Context, sess *coord.Session) {
	refresh := time.NewTicker(a.topo.Coordination.LeaseTTL.D() / 3)
	defer refresh.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := sess.PublishView(pctx, a.view())
		cancel()
		if err != nil && ctx.Err() == nil {
			a.metrics.publishErrors.Inc()
			a.log.Warn("publish view", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.changed:
		case <-refresh.C:
		}
	}
}

// campaign waits to be elected controller and then does the controller's
// work for as long as the session lasts.
func (a *agent) campaign(ctx context.Context, sess *coord.Session) error {
	term, err := sess.Campaign(ctx)
	if err != nil {
		return err
	}
	a.log.Info("elected controller", "term", term)
	a.metrics.controller.Set(1)
	defer a.log.Info("no longer controller", "term", term)
	runsDone := make(chan struct{})
	go func() {
		defer close(runsDone)
		a.driveRuns(ctx, sess)
	}()
	defer func() { <-runsDone }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var pruned time.Time
	for {
		a.adoptGroups(ctx, term)
		if time.Since(pruned) > time.Minute {
			pruned = time.Now()
			a.pruneAudit(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// pruneAudit keeps the audit trail within its retention (audit.Keep
// records, audit.MaxAge); the controller does it for everybody.
func (a *agent) pruneAudit(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := a.store.PruneAudit(pctx, audit.Keep, a.now().Add(-audit.MaxAge))
	switch {
	case err != nil && ctx.Err() == nil:
		a.log.Warn("prune the audit trail", "error", err)
	case n > 0:
		a.log.Info("audit trail pruned to its retention", "deleted", n, "keep", audit.Keep, "max_age", audit.MaxAge)
	}
}

// adoptGroups gives every group without a record its first record: the
// active site is the one site where all the group's resources serve as
// primary. With none or several, the group stays initializing and status
// says why: guessing would record a wrong active site.
func (a *agent) adoptGroups(ctx context.Context, term int64) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	snap, err := a.snapshot(rctx)
	if err != nil {
		return
	}
	// Judge from the assembled status, which does not trust the lingering
	// view of a site that is down.
	st := a.assemble(snap)
	for i := range a.topo.Groups {
		g := &a.topo.Groups[i]
		if _, ok := snap.Records[g.Name]; ok {
			continue
		}
		active := primarySites(g, st.Groups[i])
		if len(active) != 1 {
			continue
		}
		rec := status.Record{
			Group: g.Name, ActiveSite: active[0], Epoch: 1, UpdatedAt: a.now().UTC(),
			Reason: fmt.Sprintf("adopted by controller %s: every resource is primary at %s", a.site.Name, active[0]),
		}
		ok, err := a.store.AdoptGroup(rctx, rec, term)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("adopt group", "group", g.Name, "error", err)
			}
			continue
		}
		if ok {
			a.log.Info("adopted group", "group", g.Name, "active_site", rec.ActiveSite, "epoch", rec.Epoch)
		}
	}
}

// primarySites lists the sites of a group where every resource that holds
// data is observed up as primary (network resources follow the record).
func primarySites(g *config.Group, gs status.GroupStatus) []string {
	count := map[string]int{}
	data := 0
	for i, r := range g.Resources {
		if !r.Data || i >= len(gs.Resources) {
			continue
		}
		data++
		for _, s := range gs.Resources[i].Sites {
			if s.Up && s.Role == status.RolePrimary {
				count[s.Site]++
			}
		}
	}
	var out []string
	for _, s := range g.Sites {
		if data > 0 && count[s] == data {
			out = append(out, s)
		}
	}
	return out
}

// watchController evicts a controller whose location every other location
// has lost, instead of waiting out its lease (safety.ControllerLost and
// coord.EvictController).
func (a *agent) watchController(ctx context.Context) {
	tick := time.NewTicker(a.topo.Coordination.ProbeInterval.D())
	defer tick.Stop()
	// The marks on the controller's site evict it the moment they are all
	// there: the failover must not wait for the eviction.
	marks := a.store.WatchMarks(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-marks:
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		snap, err := a.snapshot(rctx)
		if err == nil && snap.Controller != nil {
			if lost, why := safety.ControllerLost(a.topo, snap, a.site.Name); lost {
				c := snap.Controller
				if ok, err := a.store.EvictController(rctx, c.Site, c.Term); err != nil && ctx.Err() == nil {
					a.log.Warn("evict controller", "controller", c.Site, "error", err)
				} else if ok {
					a.log.Warn("evicted controller", "controller", c.Site, "term", c.Term, "why", why)
				}
			}
		}
		cancel()
	}
}

// withSnapshots calls f every interval with a fresh snapshot of the
// control plane, skipping the ticks when it cannot be read (no quorum:
// nothing is decided then), until ctx ends.
func (a *agent) withSnapshots(ctx context.Context, interval time.Duration, f func(status.Snapshot)) error {
	return every(ctx, interval, func() {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		snap, err := a.snapshot(rctx)
		cancel()
		if err == nil {
			f(snap)
		}
	})
}

// every calls f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		f()
	}
}

// leadFromWitness hands the raft leadership of the embedded etcd cluster to
// the witness whenever this site's member holds it and the witness has
// been reachable for a while: the loss of a site then never waits for a
// new raft leader before its marks are stored (docs/design/safety-core.md).
func (a *agent) leadFromWitness(ctx context.Context) error {
	if a.member == nil || a.site.Role != config.RoleSite {
		return nil
	}
	var witness string
	for _, s := range a.topo.Sites {
		if s.Role == config.RoleWitness {
			witness = s.Name
			break
		}
	}
	if witness == "" {
		return nil
	}
	return every(ctx, time.Second, func() {
		a.mu.Lock()
		p, known := a.peers[witness]
		a.mu.Unlock()
		if !known || !p.Reachable || a.now().Sub(p.Since) < witnessSteady {
			return
		}
		m, _, err := a.member.current()
		if err != nil || m == nil {
			return
		}
		mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		moved, err := m.HandLeadershipTo(mctx, witness)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.Warn("cannot hand the raft leadership to the witness", "witness", witness, "error", err)
		case moved:
			a.log.Info("raft leadership handed to the witness", "witness", witness)
		}
	})
}

// witnessSteady is how long the witness must have been reachable before
// the raft leadership goes to it: a flapping witness does not move it back
// and forth.
const witnessSteady = 10 * time.Second
