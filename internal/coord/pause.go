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

// ErrPaused: the group is paused, and the write was one of its automatic
// actions.
var ErrPaused = errors.New("the group is paused")

// pausedKey holds, per group, a person's pause of its automatic actions
// (status.Pause). It is not under any lease: a pause outlasts every
// agent and controller until a person resumes the group.
func (s *Store) pausedKey() string { return s.prefix + "paused/" }

// decodePaused fills in the snapshot's pauses from the answer to a get of
// pausedKey.
func (s *Store) decodePaused(snap *status.Snapshot, resp *etcdserverpb.ResponseOp) error {
	m, err := decodeByGroup[status.Pause](resp, s.pausedKey(), nil)
	snap.Paused = m
	return err
}

// Pause stores p as its group's pause unless the group is paused already.
// It returns the pause in force and whether it was stored now: pausing a
// paused group keeps the first pause (who, when, why) and is not an error.
func (s *Store) Pause(ctx context.Context, p status.Pause) (status.Pause, bool, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return p, false, err
	}
	key := s.pausedKey() + p.Group
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
	).Then(clientv3.OpPut(key, string(data))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return p, false, fmt.Errorf("pause group %s: %w", p.Group, err)
	}
	if resp.Succeeded {
		return p, true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return p, false, fmt.Errorf("pause group %s: its pause vanished while it was read; ask again", p.Group)
	}
	var cur status.Pause
	if err := json.Unmarshal(kvs[0].Value, &cur); err != nil {
		return p, false, fmt.Errorf("decode %s: %w", key, err)
	}
	return cur, false, nil
}

// Resume lifts the group's pause. It returns the pause it lifted and
// whether there was one: resuming a group that is not paused is not an
// error.
func (s *Store) Resume(ctx context.Context, group string) (status.Pause, bool, error) {
	resp, err := s.cli.Delete(ctx, s.pausedKey()+group, clientv3.WithPrevKV())
	if err != nil {
		return status.Pause{}, false, fmt.Errorf("resume group %s: %w", group, err)
	}
	if len(resp.PrevKvs) == 0 {
		return status.Pause{}, false, nil
	}
	var p status.Pause
	if err := json.Unmarshal(resp.PrevKvs[0].Value, &p); err != nil {
		return status.Pause{}, true, nil // lifted all the same; who paused it is unknown
	}
	return p, true, nil
}

// unpaused is the comparison an automatic run is stored under: the group
// has no pause, so that a pause taken after the controller's snapshot
// still stops the run.
func (s *Store) unpaused(group string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(s.pausedKey()+group), "=", 0)
}

// whyNotStarted tells an automatic run refused because its group was
// paused (ErrPaused) from the other refusals of startRun, which it
// returns as they are.
func (s *Store) whyNotStarted(ctx context.Context, group string, err error) error {
	if !errors.Is(err, ErrStale) {
		return err
	}
	resp, gerr := s.cli.Get(ctx, s.pausedKey()+group, clientv3.WithCountOnly())
	if gerr != nil || resp.Count == 0 {
		return err
	}
	return fmt.Errorf("group %s: %w; `siteflip resume %s` lets it run", group, ErrPaused, group)
}
