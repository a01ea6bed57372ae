package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// Marks reads only the marks (Snapshot.Marks): what a run asks before
// each best-effort step, cheap also with thousands of groups, whose views
// a snapshot reads too.
func (s *Store) Marks(ctx context.Context) (map[string]map[string]status.Mark, error) {
	resp, err := s.cli.Get(ctx, s.lostKey(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read the marks: %w", err)
	}
	return decodeMarks(resp.Kvs)
}

// decodeMarks decodes the marks by lost site and marking location.
func decodeMarks(kvs []*mvccpb.KeyValue) (map[string]map[string]status.Mark, error) {
	marks := map[string]map[string]status.Mark{}
	for _, kv := range kvs {
		var m status.Mark
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		if marks[m.Site] == nil {
			marks[m.Site] = map[string]status.Mark{}
		}
		marks[m.Site][m.By] = m
	}
	return marks, nil
}

// decodeFencing fills the snapshot's marks, decisions and sync records
// from the responses of their prefix reads.
func (s *Store) decodeFencing(snap *status.Snapshot, marks, decisions, syncs *etcdserverpb.ResponseOp) error {
	var err error
	if snap.Marks, err = decodeMarks(marks.GetResponseRange().Kvs); err != nil {
		return err
	}
	snap.Decisions = map[string]status.Decision{}
	for _, kv := range decisions.GetResponseRange().Kvs {
		var d status.Decision
		if err := json.Unmarshal(kv.Value, &d); err != nil {
			return fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		snap.Decisions[d.Group] = d
	}
	snap.Sync = map[string]map[string]status.SyncRecord{}
	for _, kv := range syncs.GetResponseRange().Kvs {
		var r status.SyncRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		if snap.Sync[r.Group] == nil {
			snap.Sync[r.Group] = map[string]status.SyncRecord{}
		}
		snap.Sync[r.Group][r.Resource] = r
	}
	return nil
}

func (s *Store) markKey(site, by string) string { return s.lostKey() + site + "/" + by }

// PutMark stores m: its author declares m.Site lost. The mark has no lease:
// it must outlive its author, who is then no longer there to say it
// changed its mind.
func (s *Store) PutMark(ctx context.Context, m status.Mark) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, s.markKey(m.Site, m.By), string(data)); err != nil {
		return fmt.Errorf("mark %s lost: %w", m.Site, err)
	}
	return nil
}

// Unmark removes by's mark on site, and only if, as of snap, no run is in
// progress for a group active at site and no such group's record changed:
// a failover that was started from the marks must not lose them under its
// feet. It reports whether the mark is gone.
func (s *Store) Unmark(ctx context.Context, site, by string, snap status.Snapshot) (bool, error) {
	var cmps []clientv3.Cmp
	for g, rec := range snap.Records {
		if rec.ActiveSite != site {
			continue
		}
		cmps = append(cmps,
			clientv3.Compare(clientv3.CreateRevision(s.runningKey()+g), "=", 0),
			clientv3.Compare(clientv3.ModRevision(s.groupsKey()+g), "=", rec.Revision))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(clientv3.OpDelete(s.markKey(site, by))).Commit()
	if err != nil {
		return false, fmt.Errorf("unmark %s: %w", site, err)
	}
	return resp.Succeeded, nil
}

// StartFailover stores run, an automatic failover away from lost, as
// StartRun does, and only while every location in markedBy still marks
// lost and the group is not paused (ErrPaused).
func (s *Store) StartFailover(ctx context.Context, run plan.Run, recordRevision int64, lost string, markedBy []string) error {
	cmps := []clientv3.Cmp{s.unpaused(run.Group)}
	for _, by := range markedBy {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.markKey(lost, by)), ">", 0))
	}
	return s.whyNotStarted(ctx, run.Group, s.startRun(ctx, run, recordRevision, cmps...))
}

// StartAutomaticRun stores run, one the controller starts on its own (a
// scheduled drill), as StartRun does, and only while the group is not
// paused (ErrPaused).
func (s *Store) StartAutomaticRun(ctx context.Context, run plan.Run, recordRevision int64) error {
	return s.whyNotStarted(ctx, run.Group, s.startRun(ctx, run, recordRevision, s.unpaused(run.Group)))
}

// PutDecision records that a group waits for a person, while f holds.
func (s *Store) PutDecision(ctx context.Context, d status.Decision, f Fence) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = s.cli.Txn(ctx).If(f.holds()).Then(clientv3.OpPut(s.decisionsKey()+d.Group, string(data))).Commit()
	if err != nil {
		return fmt.Errorf("record decision for group %s: %w", d.Group, err)
	}
	return nil
}

// DeleteDecision removes a group's decision, while f holds.
func (s *Store) DeleteDecision(ctx context.Context, group string, f Fence) error {
	_, err := s.cli.Txn(ctx).If(f.holds()).Then(clientv3.OpDelete(s.decisionsKey() + group)).Commit()
	if err != nil {
		return fmt.Errorf("clear decision for group %s: %w", group, err)
	}
	return nil
}

// PutSync stores a synchronous resource's replication mode, only while the
// group's record is still the one at recordRevision (the epoch in r).
// It reports whether it was stored.
func (s *Store) PutSync(ctx context.Context, r status.SyncRecord, recordRevision int64) (bool, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(s.groupsKey()+r.Group), "=", recordRevision),
	).Then(clientv3.OpPut(s.syncKey()+r.Group+"/"+r.Resource, string(data))).Commit()
	if err != nil {
		return false, fmt.Errorf("record replication mode of %s/%s: %w", r.Group, r.Resource, err)
	}
	return resp.Succeeded, nil
}

// WatchMarks signals on the returned channel whenever a mark is stored or
// removed, so that the controller decides at once rather than at its next
// poll. The channel holds one pending signal at most; it is closed when ctx
// ends. Without a quorum nothing is signalled (the controller's poll goes
// on regardless).
func (s *Store) WatchMarks(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for ctx.Err() == nil {
			wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), s.lostKey(), clientv3.WithPrefix())
			for resp := range wch {
				if resp.Err() != nil || len(resp.Events) == 0 {
					continue
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
			// The watch ended (no leader, or ctx): start a new one shortly.
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return out
}
