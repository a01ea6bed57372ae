package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/status"
)

// presence keeps this location present in the control plane: it probes
// the other locations' agents, and publishes its view (what it sees of
// them and of its own resources) under a session whose lease also carries
// the candidacy for controller (run by onSession).
type presence struct {
	*base
	sessions interface {
		NewSession(ctx context.Context, site string, ttl time.Duration) (*coord.Session, error)
		ResumeSession(ctx context.Context, site string, lease int64, ttl time.Duration) (*coord.Session, error)
	}
	client *http.Client // probes the other agents
	// resources returns the last observation of the local resources.
	resources func() map[string]status.ResourceView
	// dependencies returns the last probes of the outside services this
	// site's groups require (nil without any).
	dependencies func() map[string]status.DependencyView
	// leftovers is what drills left here that could not be removed.
	leftovers func() map[string][]string
	// onSession does the rest of a session's work (the controller's
	// candidacy) until ctx ends; an error ends the session.
	onSession func(ctx context.Context, sess *coord.Session) error
	// raftLeader names the raft leader the embedded member knows (nil
	// without one).
	raftLeader func() string

	mu      sync.Mutex
	peers   map[string]status.PeerView
	changed chan struct{} // a change worth publishing at once
}

// peer returns what the probes found of another location.
func (p *presence) peer(name string) (status.PeerView, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.peers[name]
	return v, ok
}

// notify asks the presence loop to publish the view now.
func (p *presence) notify() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// view returns the location's current view.
func (p *presence) view() status.View {
	resources := p.resources()
	leader := ""
	if p.raftLeader != nil {
		leader = p.raftLeader()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	v := status.View{
		Site: p.site.Name, Role: p.site.Role, Version: p.version,
		StartedAt: p.started, PublishedAt: p.now().UTC(),
		Peers:     make(map[string]status.PeerView, len(p.peers)),
		Resources: resources, RaftLeader: leader,
		CertNotAfter: p.certNotAfter,
	}
	if p.leftovers != nil {
		v.DrillLeftovers = p.leftovers()
	}
	if p.dependencies != nil {
		v.Dependencies = p.dependencies()
	}
	for k, peer := range p.peers {
		v.Peers[k] = peer
	}
	return v
}

// reachablePeers lists the other locations whose agents answer the probes.
func (p *presence) reachablePeers() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for name, peer := range p.peers {
		if peer.Reachable {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// failuresToDown is how many probes in a row must fail before a peer is
// declared unreachable: one lost probe on a lossy link is not a lost site.
const failuresToDown = 2

// probeLoop probes every other location's agent each probe interval.
func (p *presence) probeLoop(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, s := range p.topo.Sites {
		if s.Name == p.site.Name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.probePeer(ctx, s)
		}()
	}
	wg.Wait()
	return nil
}

func (p *presence) probePeer(ctx context.Context, peer config.Site) {
	// The peer listener: other traffic cannot starve it.
	url := p.scheme() + "://" + peer.Agent.LeaseAddress + "/healthz"
	tick := time.NewTicker(p.topo.Coordination.ProbeInterval.D())
	defer tick.Stop()
	failures := 0
	for {
		start, send := time.Now(), p.now()
		h, err := p.probe(ctx, url)
		rtt := time.Since(start)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
		} else {
			failures = 0
		}
		p.metrics.probe(peer.Name, err == nil, rtt)
		p.mu.Lock()
		prev, known := p.peers[peer.Name]
		next := prev
		switch {
		case err == nil:
			next.Reachable, next.RTTMs, next.Error = true, float64(rtt.Microseconds())/1000, ""
			if !h.started.IsZero() {
				next.Started = h.started
			}
			next.ClockOffsetMs = clockOffsetMs(h.now, send, rtt)
			p.metrics.clock(peer.Name, next.ClockOffsetMs)
		case failures >= failuresToDown || !known:
			next.Reachable, next.Error = false, err.Error()
		}
		flipped := !known || prev.Reachable != next.Reachable
		if flipped {
			next.Since = p.now().UTC()
		}
		p.peers[peer.Name] = next
		p.mu.Unlock()
		if flipped {
			p.log.Info("peer reachability changed", "peer", peer.Name, "reachable", next.Reachable, "error", next.Error)
		}
		if known && !prev.Started.IsZero() && !prev.Started.Equal(next.Started) {
			p.log.Info("peer agent started anew", "peer", peer.Name, "started", next.Started)
		}
		if flipped || !prev.Started.Equal(next.Started) {
			p.notify()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// handleHealthz answers "ok SITE STARTED NOW": the peers learn from it
// when this agent started, and so which of its views are from this run,
// and how far its clock is from theirs. Readers of the first three fields
// ignore the fourth.
func (p *presence) handleHealthz(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "ok %s %s %s\n", p.site.Name, p.started.Format(time.RFC3339Nano), p.now().UTC().Format(time.RFC3339Nano))
}

// healthz is what a peer's /healthz says: when its agent started and its
// time when it answered; each zero when the answer does not say.
type healthz struct {
	started, now time.Time
}

// clockOffsetMs estimates, as NTP does, how far a peer's clock is ahead
// of this one's in milliseconds: its time when it answered, less the
// middle of the round trip (sent at send, on this clock, taking rtt).
// Nil when the peer did not say its time.
func clockOffsetMs(peer, send time.Time, rtt time.Duration) *float64 {
	if peer.IsZero() {
		return nil
	}
	off := float64(peer.Sub(send.Add(rtt/2)).Microseconds()) / 1000
	return &off
}

// probe asks a peer's /healthz.
func (p *presence) probe(ctx context.Context, url string) (healthz, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return healthz{}, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return healthz{}, err
	}
	// Read to the end so the connection is reused: a TLS handshake per
	// probe is slow, and on a lossy link more likely to fail than the probe.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return healthz{}, fmt.Errorf("healthz answered %s", resp.Status)
	}
	return parseHealthz(string(body)), nil
}

// parseHealthz reads the start time and the time of the answer from a
// /healthz answer; an older agent's says only the first.
func parseHealthz(body string) healthz {
	f := strings.Fields(body)
	if len(f) < 3 || f[0] != "ok" {
		return healthz{}
	}
	at := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}
		}
		return t.UTC()
	}
	h := healthz{started: at(f[2])}
	if len(f) > 3 {
		h.now = at(f[3])
	}
	return h
}

// run keeps the location present in the control plane: a session
// whose lease carries the view and the candidacy. When the session is lost
// (lease expired, location cut off) it starts a new one.
func (p *presence) run(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	ttl := p.topo.Coordination.LeaseTTL.D()
	var resume int64 // the lease of a session the client dropped, to take up again
	for ctx.Err() == nil {
		var sess *coord.Session
		var err error
		if resume != 0 {
			// Blocks until the cluster has a leader again.
			rctx, cancel := context.WithTimeout(ctx, 2*ttl)
			sess, err = p.sessions.ResumeSession(rctx, p.site.Name, resume, ttl)
			cancel()
			if err == nil {
				p.log.Info("control-plane session taken up again: its lease outlived the client's keepalive", "lease", fmt.Sprintf("%x", resume))
			} else if ctx.Err() == nil {
				p.log.Warn("control-plane session gone; opening a new one", "error", err)
			}
			resume = 0
		}
		if sess == nil {
			// Blocks while the cluster has no quorum; that is the wait we want.
			sess, err = p.sessions.NewSession(ctx, p.site.Name, ttl)
			if err != nil {
				if ctx.Err() == nil {
					p.log.Warn("no control-plane session yet; retrying", "error", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			p.log.Info("control-plane session opened", "lease", fmt.Sprintf("%x", sess.Lease()))
		}
		backoff = 200 * time.Millisecond
		dropped := p.runSession(ctx, sess)
		if dropped && ctx.Err() == nil {
			// The client gave up on the lease; the cluster may not have.
			sess.Orphan()
			resume = sess.Lease()
			p.log.Warn("control-plane session dropped by the client; taking its lease up again if it still lives")
			continue
		}
		// Revoke at once on a clean stop, so the view and the candidacy do
		// not linger for a TTL.
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if ctx.Err() != nil {
			if err := sess.Resign(cctx); err != nil && !errors.Is(err, context.Canceled) {
				p.log.Debug("resign", "error", err)
			}
		}
		sess.Close()
		cancel()
		if ctx.Err() == nil {
			p.log.Warn("control-plane session ended; opening a new one")
		}
	}
	return nil
}

// runSession publishes the view and runs onSession (the candidacy for
// controller) until the session ends or ctx does.
// It says whether it ended because the session's keepalive was dropped.
func (p *presence) runSession(ctx context.Context, sess *coord.Session) (dropped bool) {
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
	wg.Add(2)
	go func() { defer wg.Done(); p.publishLoop(ctx, sess) }()
	go func() {
		defer wg.Done()
		// A candidacy that failed (a watch broken by compaction, a lost
		// confirmation) would otherwise keep its place in the queue with
		// nobody acting on it: end the session and start afresh.
		if err := p.onSession(ctx, sess); err != nil && ctx.Err() == nil {
			p.log.Warn("candidacy for controller failed; renewing the session", "error", err)
			cancel()
		}
	}()
	wg.Wait()
	return
}

// publishLoop publishes the view at once on a change, and at least every
// third of the lease TTL so the published time stays fresh.
func (p *presence) publishLoop(ctx context.Context, sess *coord.Session) {
	refresh := time.NewTicker(p.topo.Coordination.LeaseTTL.D() / 3)
	defer refresh.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := sess.PublishView(pctx, p.view())
		cancel()
		if err != nil && ctx.Err() == nil {
			p.metrics.publishErrors.Inc()
			p.log.Warn("publish view", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-p.changed:
		case <-refresh.C:
		}
	}
}
