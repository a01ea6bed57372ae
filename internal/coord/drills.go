package coord

import (
	"context"
	"encoding/json"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/siteflip/siteflip/internal/status"
)

// drillsKey holds, per group, what is kept of its drills
// (status.DrillRecord): the last one and the last success. It outlives
// the run history's pruning, and status reads it in every snapshot.
func (s *Store) drillsKey() string { return s.prefix + "drills/" }

// decodeDrills fills in the snapshot's drill records from the answer to a
// get of drillsKey.
func (s *Store) decodeDrills(snap *status.Snapshot, resp *etcdserverpb.ResponseOp) error {
	m, err := decodeByGroup[status.DrillRecord](resp, s.drillsKey(), nil)
	snap.Drills = m
	return err
}

// MergeDrills takes what rec knows of the group's drills into the group's
// drill record (status.DrillRecord.Merge: only what is later), while the
// controller's term f holds. It returns the record as stored.
func (s *Store) MergeDrills(ctx context.Context, group string, rec status.DrillRecord, f Fence) (status.DrillRecord, error) {
	key := s.drillsKey() + group
	for range 5 {
		get, err := s.cli.Get(ctx, key)
		if err != nil {
			return rec, fmt.Errorf("read the drills of %s: %w", group, err)
		}
		var old status.DrillRecord
		var rev int64
		if len(get.Kvs) > 0 {
			if err := json.Unmarshal(get.Kvs[0].Value, &old); err != nil {
				return rec, fmt.Errorf("decode %s: %w", key, err)
			}
			rev = get.Kvs[0].ModRevision
		}
		merged := old.Merge(rec)
		oldData, _ := json.Marshal(old)
		data, err := json.Marshal(merged)
		if err != nil {
			return rec, err
		}
		if rev != 0 && string(data) == string(oldData) {
			return merged, nil // nothing new
		}
		resp, err := s.cli.Txn(ctx).If(
			f.holds(),
			clientv3.Compare(clientv3.ModRevision(key), "=", rev),
		).Then(clientv3.OpPut(key, string(data))).Else(clientv3.OpGet(f.Key)).Commit()
		if err != nil {
			return rec, fmt.Errorf("record the drills of %s: %w", group, err)
		}
		if resp.Succeeded {
			return merged, nil
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 0 || kvs[0].CreateRevision != f.Term {
			return rec, fmt.Errorf("record the drills of %s: %w (term %d has ended)", group, ErrNotElected, f.Term)
		}
		// The record changed between the read and the write: again.
	}
	return rec, fmt.Errorf("record the drills of %s: it kept changing; the next controller's term records it from the run history", group)
}
