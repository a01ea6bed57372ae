package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/siteflip/siteflip/internal/status"
)

// Approvals (docs/design/stacks.md): a run that reaches an approval step
// stores what it waits for under awaiting/GROUP, while the controller's
// term holds, and polls approvals/RUN/STEP, which any location writes for
// the person who decided. The first verdict stands.
func (s *Store) awaitingKey() string  { return s.prefix + "awaiting/" }
func (s *Store) approvalsKey() string { return s.prefix + "approvals/" }

// ErrDecided: the approval step already has a verdict.
var ErrDecided = errors.New("already decided")

// decodeAwaiting fills in the snapshot's awaited approvals from the answer
// to a get of awaitingKey.
func (s *Store) decodeAwaiting(snap *status.Snapshot, resp *etcdserverpb.ResponseOp) error {
	m, err := decodeByGroup[status.Awaiting](resp, s.awaitingKey(), nil)
	snap.Awaiting = m
	return err
}

// PutAwaiting records what a run of a group waits for, while f holds. A
// wait already recorded for the same run and step is kept as it is (a
// resumed run goes on waiting from when it started) and returned.
func (s *Store) PutAwaiting(ctx context.Context, a status.Awaiting, f Fence) (status.Awaiting, error) {
	key := s.awaitingKey() + a.Group
	get, err := s.cli.Get(ctx, key)
	if err != nil {
		return a, fmt.Errorf("read what group %s waits for: %w", a.Group, err)
	}
	if len(get.Kvs) > 0 {
		var old status.Awaiting
		if json.Unmarshal(get.Kvs[0].Value, &old) == nil && old.Run == a.Run && old.Step == a.Step {
			return old, nil
		}
	}
	data, err := json.Marshal(a)
	if err != nil {
		return a, err
	}
	resp, err := s.cli.Txn(ctx).If(f.holds()).Then(clientv3.OpPut(key, string(data))).Commit()
	if err != nil {
		return a, fmt.Errorf("record that group %s waits for an approval: %w", a.Group, err)
	}
	if !resp.Succeeded {
		return a, fmt.Errorf("record that group %s waits for an approval: %w", a.Group, ErrNotElected)
	}
	return a, nil
}

// DeleteAwaiting removes what a group's run waited for, while f holds.
func (s *Store) DeleteAwaiting(ctx context.Context, group string, f Fence) error {
	_, err := s.cli.Txn(ctx).If(f.holds()).Then(clientv3.OpDelete(s.awaitingKey() + group)).Commit()
	if err != nil {
		return fmt.Errorf("clear what group %s waits for: %w", group, err)
	}
	return nil
}

// PutApproval stores a person's verdict on an approval step, unless one
// is stored already (ErrDecided, with the verdict that stands).
func (s *Store) PutApproval(ctx context.Context, a status.Approval) (status.Approval, error) {
	key := s.approvalsKey() + a.Run + "/" + a.Step
	data, err := json.Marshal(a)
	if err != nil {
		return a, err
	}
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return a, fmt.Errorf("store the verdict on step %s of run %s: %w", a.Step, a.Run, err)
	}
	if resp.Succeeded {
		return a, nil
	}
	var old status.Approval
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		_ = json.Unmarshal(kvs[0].Value, &old)
	}
	return old, ErrDecided
}

// Approval returns the verdict on step of run, if one was given.
func (s *Store) Approval(ctx context.Context, run, step string) (status.Approval, bool, error) {
	key := s.approvalsKey() + run + "/" + step
	get, err := s.cli.Get(ctx, key)
	if err != nil {
		return status.Approval{}, false, fmt.Errorf("read the verdict on step %s of run %s: %w", step, run, err)
	}
	if len(get.Kvs) == 0 {
		return status.Approval{}, false, nil
	}
	var a status.Approval
	if err := json.Unmarshal(get.Kvs[0].Value, &a); err != nil {
		return a, false, fmt.Errorf("decode %s: %w", key, err)
	}
	return a, true, nil
}
