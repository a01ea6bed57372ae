package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/siteflip/siteflip/internal/status"
)

// Session is one location's presence in the control plane: a lease kept
// alive by the agent. Its view and its candidacy for controller live under
// the lease, so both vanish when the location dies or is cut off.
type Session struct {
	store *Store
	s     *concurrency.Session
	el    *concurrency.Election
	site  string
}

// NewSession grants a lease of ttl and keeps it alive until Close. ctx
// bounds only the grant: the session outlives it so that Close, called
// when the agent stops, can still revoke the lease.
func (s *Store) NewSession(ctx context.Context, site string, ttl time.Duration) (*Session, error) {
	secs := int(math.Ceil(ttl.Seconds()))
	resp, err := s.cli.Grant(ctx, int64(secs))
	if err != nil {
		return nil, fmt.Errorf("open control-plane session for %s: %w", site, err)
	}
	cs, err := concurrency.NewSession(s.cli, concurrency.WithLease(resp.ID), concurrency.WithTTL(secs),
		concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("open control-plane session for %s: %w", site, err)
	}
	return &Session{store: s, s: cs, el: concurrency.NewElection(cs, s.electionPrefix()), site: site}, nil
}

// ErrLeaseGone: the session's lease no longer exists in the cluster.
var ErrLeaseGone = errors.New("the session's lease is gone")

// ResumeSession takes up again the lease of a session whose keepalive the
// client gave up on: the client drops a session when it heard nothing for
// a TTL, which happens while the cluster elects a new raft leader after
// the old leader's location was lost, though the new leader extends every
// lease. If the lease still lives, the view and the candidacy under it
// are kept (a controller keeps its term: nobody else could be elected
// meanwhile); otherwise it returns ErrLeaseGone.
func (s *Store) ResumeSession(ctx context.Context, site string, lease int64, ttl time.Duration) (*Session, error) {
	resp, err := s.cli.TimeToLive(ctx, clientv3.LeaseID(lease))
	if err != nil {
		return nil, fmt.Errorf("resume the control-plane session of %s: %w", site, err)
	}
	if resp.TTL <= 0 {
		return nil, fmt.Errorf("resume the control-plane session of %s: %w", site, ErrLeaseGone)
	}
	secs := int(math.Ceil(ttl.Seconds()))
	cs, err := concurrency.NewSession(s.cli, concurrency.WithLease(clientv3.LeaseID(lease)), concurrency.WithTTL(secs),
		concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("resume the control-plane session of %s: %w", site, err)
	}
	return &Session{store: s, s: cs, el: concurrency.NewElection(cs, s.electionPrefix()), site: site}, nil
}

// Orphan stops keeping the lease alive without revoking it, so that
// ResumeSession can take it up again.
func (se *Session) Orphan() { se.s.Orphan() }

// Done is closed when the lease is lost or the session closed.
func (se *Session) Done() <-chan struct{} { return se.s.Done() }

// Lease is the session's lease ID, for logs.
func (se *Session) Lease() int64 { return int64(se.s.Lease()) }

// Close revokes the lease, so the view and any candidacy vanish at once
// instead of after the TTL.
func (se *Session) Close() error { return se.s.Close() }

// PublishView stores the location's view under the session's lease. A
// session publishes only its own location's view.
func (se *Session) PublishView(ctx context.Context, v status.View) error {
	if v.Site != se.site {
		return fmt.Errorf("publish view: session of %s cannot publish the view of %s", se.site, v.Site)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := se.store.cli.Put(ctx, se.store.viewsKey()+v.Site, string(data), clientv3.WithLease(se.s.Lease())); err != nil {
		return fmt.Errorf("publish view of %s: %w", v.Site, err)
	}
	return nil
}

// Campaign blocks until this location is elected controller, and returns
// its term: the create revision of its election key, which only grows and
// fences the writes of a deposed controller.
func (se *Session) Campaign(ctx context.Context) (int64, error) {
	val, err := json.Marshal(status.Controller{Site: se.site, Since: time.Now().UTC()})
	if err != nil {
		return 0, err
	}
	if err := se.el.Campaign(ctx, string(val)); err != nil {
		return 0, fmt.Errorf("campaign of %s for controller: %w", se.site, err)
	}
	// Campaign has been seen to return after the key was already gone
	// (lease expired while it waited). Proclaim confirms it: a write that
	// succeeds only while our key still has the create revision we were
	// elected with. It also records when the election was won (the value
	// written by Campaign says when it began).
	term := se.el.Rev()
	won, err := json.Marshal(status.Controller{Site: se.site, Since: time.Now().UTC()})
	if err != nil {
		return 0, err
	}
	if err := se.el.Proclaim(ctx, string(won)); errors.Is(err, concurrency.ErrElectionNotLeader) {
		return 0, fmt.Errorf("confirm election of %s: %w (the election key vanished)", se.site, ErrNotElected)
	} else if err != nil {
		return 0, fmt.Errorf("confirm election of %s: %w", se.site, err)
	}
	return term, nil
}

// Resign gives up the controller role, so another location takes it at once.
func (se *Session) Resign(ctx context.Context) error { return se.el.Resign(ctx) }
