package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
)

// Synchronous resources (docs/design/fencing.md, "Synchronous mode"): at
// the active site the agent makes the standby confirm every commit, and
// records in etcd, per epoch, whether it does. The record says "sync" only
// once the standby is synchronous and has flushed everything written
// before; a failover trusts it instead of the last measured lag. When the
// standby stops confirming, commits wait; after syncTimeout the agent
// records "degraded" — which needs the quorum, so a site cut off from the
// others keeps waiting until its lease runs out — and only then lets
// commits through without the standby.

// syncTimeout is how long commits may wait for a standby that does not
// confirm before replication is degraded to asynchronous.
func (lr *localResources) syncTimeout() time.Duration { return lr.topo.Coordination.ServeLease.D() }

type syncTrack struct {
	stuckSince time.Time // since when the standby has not confirmed
	since      string    // WAL position the standby must flush before "sync" is recorded
	holdUntil  time.Time // no new attempt before (after a failed one)
	weakened   string    // the weakening last logged
}

func (lr *localResources) syncLoop(ctx context.Context) error {
	type res struct {
		g *config.Group
		r *config.Resource
		s resource.Synchronous
	}
	var list []res
	for i := range lr.topo.Groups {
		g := &lr.topo.Groups[i]
		for j := range g.Resources {
			r := &g.Resources[j]
			if _, here := r.Settings[lr.site.Name]; !here || !r.Synchronous {
				continue
			}
			s, err := driver.NewSync(g, r, lr.site.Name)
			if err != nil {
				return fmt.Errorf("agent of %s: %w", lr.site.Name, err)
			}
			list = append(list, res{g, r, s})
		}
	}
	if len(list) == 0 {
		return nil
	}
	track := map[string]*syncTrack{}
	// Without the quorum nothing changes: waiting commits wait.
	return lr.plane.withSnapshots(ctx, 200*time.Millisecond, func(snap status.Snapshot) {
		for _, x := range list {
			key := x.g.Name + "/" + x.r.Name
			if track[key] == nil {
				track[key] = &syncTrack{}
			}
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			lr.keepSync(sctx, snap, x.g, x.r, x.s, track[key])
			cancel()
		}
	})
}

func (lr *localResources) keepSync(ctx context.Context, snap status.Snapshot, g *config.Group, r *config.Resource, s resource.Synchronous, t *syncTrack) {
	rec, ok := snap.Records[g.Name]
	v, _ := lr.view(g.Name + "/" + r.Name)
	if !ok || rec.ActiveSite != lr.site.Name || !v.Up || v.Role != status.RolePrimary || snap.Running[g.Name] != "" {
		*t = syncTrack{}
		return
	}
	var standbySite string
	for _, site := range g.Sites {
		if site != lr.site.Name {
			standbySite = site
			break
		}
	}
	st, err := s.Read(ctx)
	if err != nil {
		return
	}
	now := lr.now()
	cur := snap.Sync[g.Name][r.Name]
	on := cur.State == status.SyncOn && cur.Epoch == rec.Epoch
	stuck := st.Blocking || st.LongestWait > lr.syncTimeout()
	if !stuck {
		t.stuckSince = time.Time{}
	} else if t.stuckSince.IsZero() {
		t.stuckSince = now
	}
	stuckLong := stuck && now.Sub(t.stuckSince) >= lr.syncTimeout()
	log := lr.log.With("group", g.Name, "resource", r.Name, "standby", standbySite, "epoch", rec.Epoch)
	defer func() { t.weakened = strings.Join(st.Weakened, "; ") }()

	weakened := strings.Join(st.Weakened, "; ")
	if on {
		switch {
		case weakened != "":
			// The record promises what the server no longer keeps: a role or
			// database setting lets commits through without the standby.
			d := status.SyncRecord{Group: g.Name, Resource: r.Name, Epoch: rec.Epoch, State: status.SyncDegraded, Since: now.UTC(),
				Reason: "synchronous replication is weakened: " + weakened}
			if stored, err := lr.syncs.PutSync(ctx, d, rec.Revision); err == nil && stored {
				log.Warn("synchronous guarantee withdrawn: a setting lets commits through without the standby; remove it to have it back", "weakened", weakened)
				return
			}
			// Not recorded (cut off?): a failover would trust a guarantee
			// the server does not keep. Stop serving.
			if t, ok := lr.guards[g.Name+"/"+r.Name]; ok {
				if _, err := driver.FenceNow(t); err != nil {
					log.Error("synchronous commit is weakened and the degrade cannot be recorded; fencing failed", "weakened", weakened, "error", err)
					return
				}
				lr.metrics.selfFences.Inc()
				log.Error("synchronous commit is weakened and the degrade cannot be recorded: database fenced", "weakened", weakened)
			}
		case !st.Requires:
			// Recorded as synchronous but not configured so (a restart
			// from an older configuration): require the standby again.
			if err := s.Require(ctx); err != nil {
				log.Warn("cannot make replication synchronous again", "error", err)
			}
		case stuckLong:
			d := status.SyncRecord{Group: g.Name, Resource: r.Name, Epoch: rec.Epoch, State: status.SyncDegraded, Since: now.UTC(),
				Reason: fmt.Sprintf("%s did not confirm commits for %s", standbySite, now.Sub(t.stuckSince).Round(time.Millisecond))}
			stored, err := lr.syncs.PutSync(ctx, d, rec.Revision)
			if err != nil || !stored {
				log.Warn("standby does not confirm commits and the degrade to asynchronous could not be recorded; commits keep waiting", "error", err)
				return
			}
			if err := s.Release(ctx); err != nil {
				log.Error("degrade recorded but replication still synchronous", "error", err)
				return
			}
			t.since, t.holdUntil = "", now.Add(5*time.Second)
			log.Warn("standby does not confirm commits: replication degraded to asynchronous with the quorum's agreement", "waited", now.Sub(t.stuckSince).Round(time.Millisecond))
		}
		return
	}

	// Not guaranteed in this epoch: make it so when the standby streams.
	switch {
	case !st.Streaming || now.Before(t.holdUntil) || stuckLong:
		if st.Enabled {
			// A setting copied from the other site, or a standby that
			// cannot keep up: commits must not wait for it.
			if err := s.Release(ctx); err != nil {
				log.Warn("cannot make replication asynchronous", "error", err)
				return
			}
			if stuckLong {
				t.holdUntil = now.Add(5 * time.Second)
			}
		}
		t.since = ""
	case !st.Requires:
		if err := s.Require(ctx); err != nil {
			log.Warn("cannot make replication synchronous", "error", err)
			t.holdUntil = now.Add(5 * time.Second)
		}
		t.since = ""
	case weakened != "":
		if t.weakened != weakened {
			log.Warn("replication is synchronous, but the guarantee is not recorded while a setting weakens it", "weakened", weakened)
		}
		t.since = ""
	case st.Confirms:
		flushed, pos, err := s.SyncedSince(ctx, t.since)
		if err != nil {
			return
		}
		if t.since == "" {
			t.since = pos
			return
		}
		if !flushed {
			return
		}
		d := status.SyncRecord{Group: g.Name, Resource: r.Name, Epoch: rec.Epoch, State: status.SyncOn, Standby: standbySite, Since: now.UTC(),
			Reason: fmt.Sprintf("%s confirms every commit and has flushed past %s", standbySite, t.since)}
		if stored, err := lr.syncs.PutSync(ctx, d, rec.Revision); err == nil && stored {
			log.Info("replication synchronous: no acknowledged commit is missing at the standby")
		}
		t.since = ""
	}
}
