package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// ErrScheduled: the group has a scheduled switchover already.
var ErrScheduled = errors.New("a switchover is already scheduled")

// scheduledKey holds, per group, the switchover a person scheduled
// (status.ScheduledSwitchover). No lease: it outlives every agent until
// it starts or is cancelled.
func (s *Store) scheduledKey() string { return s.prefix + "scheduled/" }

// decodeScheduled fills in the snapshot's scheduled switchovers.
func (s *Store) decodeScheduled(snap *status.Snapshot, resp *etcdserverpb.ResponseOp) error {
	m, err := decodeByGroup[status.ScheduledSwitchover](resp, s.scheduledKey(), func(sc *status.ScheduledSwitchover, rev int64) { sc.Revision = rev })
	snap.Scheduled = m
	return err
}

// Schedule stores sc as its group's scheduled switchover unless the group
// has one (ErrScheduled, with the one stored).
func (s *Store) Schedule(ctx context.Context, sc status.ScheduledSwitchover) (status.ScheduledSwitchover, error) {
	data, err := json.Marshal(sc)
	if err != nil {
		return sc, err
	}
	key := s.scheduledKey() + sc.Group
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return sc, fmt.Errorf("schedule the switchover of %s: %w", sc.Group, err)
	}
	if resp.Succeeded {
		sc.Revision = resp.Header.Revision
		return sc, nil
	}
	var cur status.ScheduledSwitchover
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		_ = json.Unmarshal(kvs[0].Value, &cur)
		cur.Revision = kvs[0].ModRevision
	}
	return cur, fmt.Errorf("group %s: %w (to %s at %s, by %s); cancel it first: siteflip switchover %s --cancel",
		sc.Group, ErrScheduled, cur.To, cur.At.UTC().Format("2006-01-02T15:04:05Z"), cur.By, sc.Group)
}

// CancelScheduled removes the group's scheduled switchover. It returns
// the one removed and whether there was one.
func (s *Store) CancelScheduled(ctx context.Context, group string) (status.ScheduledSwitchover, bool, error) {
	resp, err := s.cli.Delete(ctx, s.scheduledKey()+group, clientv3.WithPrevKV())
	if err != nil {
		return status.ScheduledSwitchover{}, false, fmt.Errorf("cancel the scheduled switchover of %s: %w", group, err)
	}
	if len(resp.PrevKvs) == 0 {
		return status.ScheduledSwitchover{}, false, nil
	}
	var sc status.ScheduledSwitchover
	_ = json.Unmarshal(resp.PrevKvs[0].Value, &sc)
	return sc, true, nil
}

// StartScheduled starts run, the scheduled switchover sc, as StartRun
// does, and removes sc in the same transaction: only while sc is still
// the one stored (not cancelled nor replaced since it was read), so that
// it starts once at most.
func (s *Store) StartScheduled(ctx context.Context, run plan.Run, recordRevision int64, sc status.ScheduledSwitchover) error {
	key := s.scheduledKey() + sc.Group
	data, err := json.Marshal(run)
	if err != nil {
		return err
	}
	lock := s.lockKey(run)
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(key), "=", sc.Revision),
		clientv3.Compare(clientv3.CreateRevision(lock), "=", 0),
		clientv3.Compare(clientv3.ModRevision(s.groupsKey()+run.Group), "=", recordRevision),
	).Then(
		clientv3.OpPut(lock, run.ID),
		clientv3.OpPut(s.runsKey()+run.ID, string(data)),
		clientv3.OpDelete(key),
	).Commit()
	if err != nil {
		return fmt.Errorf("start the scheduled switchover of %s: %w", sc.Group, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("start the scheduled switchover of %s: %w", sc.Group, ErrStale)
	}
	return nil
}

// RefuseScheduled records why the due switchover sc could not start,
// only while sc is still the one stored and the controller's term f
// holds.
func (s *Store) RefuseScheduled(ctx context.Context, sc status.ScheduledSwitchover, f Fence) error {
	key := s.scheduledKey() + sc.Group
	data, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	_, err = s.cli.Txn(ctx).If(f.holds(), clientv3.Compare(clientv3.ModRevision(key), "=", sc.Revision)).
		Then(clientv3.OpPut(key, string(data))).Commit()
	if err != nil {
		return fmt.Errorf("record why the scheduled switchover of %s does not start: %w", sc.Group, err)
	}
	return nil
}
