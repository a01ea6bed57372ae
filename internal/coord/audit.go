package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/siteflip/siteflip/internal/audit"
)

// The audit trail lives under audit/, one key per record, named so that
// keys sort by time: audit/20261203T101500.123456789Z-brussels-42. No API
// deletes a record; PruneAudit keeps the trail within its retention.
func (s *Store) auditKey() string { return s.prefix + "audit/" }

// auditStamp is the time part of a record's key.
const auditStamp = "20060102T150405.000000000Z"

var auditSeq atomic.Int64

var _ audit.Sink = (*Store)(nil)

// PutAudit stores records in one transaction.
func (s *Store) PutAudit(ctx context.Context, recs []audit.Record) error {
	ops := make([]clientv3.Op, 0, len(recs))
	for _, r := range recs {
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		key := s.auditKey() + r.At.UTC().Format(auditStamp) + "-" + r.Site + "-" + strconv.FormatInt(auditSeq.Add(1), 10)
		ops = append(ops, clientv3.OpPut(key, string(data)))
	}
	if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		return fmt.Errorf("store %d audit records: %w", len(recs), err)
	}
	return nil
}

// Audit returns the records since a time, oldest first, at most limit of
// them (the newest ones when there are more).
func (s *Store) Audit(ctx context.Context, since time.Time, limit int) ([]audit.Record, error) {
	from := s.auditKey() + since.UTC().Format(auditStamp)
	resp, err := s.cli.Get(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.auditKey())),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("read the audit trail: %w", err)
	}
	out := make([]audit.Record, 0, len(resp.Kvs))
	for i := len(resp.Kvs) - 1; i >= 0; i-- {
		var r audit.Record
		if err := json.Unmarshal(resp.Kvs[i].Value, &r); err != nil {
			return nil, fmt.Errorf("decode %s: %w", resp.Kvs[i].Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// PruneAudit deletes the records older than before, and the oldest ones
// beyond the newest keep. It returns how many it deleted.
func (s *Store) PruneAudit(ctx context.Context, keep int, before time.Time) (int64, error) {
	start := s.auditKey()
	end := clientv3.GetPrefixRangeEnd(start)
	resp, err := s.cli.Delete(ctx, start, clientv3.WithRange(start+before.UTC().Format(auditStamp)))
	if err != nil {
		return 0, fmt.Errorf("prune the audit trail: %w", err)
	}
	deleted := resp.Deleted
	count, err := s.cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithCountOnly())
	if err != nil {
		return deleted, fmt.Errorf("count the audit trail: %w", err)
	}
	over := count.Count - int64(keep)
	if over <= 0 {
		return deleted, nil
	}
	// The first key to keep is the one after the over oldest.
	oldest, err := s.cli.Get(ctx, start, clientv3.WithRange(end), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend), clientv3.WithLimit(over+1))
	if err != nil {
		return deleted, fmt.Errorf("prune the audit trail: %w", err)
	}
	if int64(len(oldest.Kvs)) <= over {
		return deleted, nil
	}
	del, err := s.cli.Delete(ctx, start, clientv3.WithRange(string(oldest.Kvs[over].Key)))
	if err != nil {
		return deleted, fmt.Errorf("prune the audit trail: %w", err)
	}
	return deleted + del.Deleted, nil
}
