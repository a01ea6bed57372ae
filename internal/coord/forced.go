package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/storage/datadir"
	"go.etcd.io/etcd/server/v3/storage/wal"

	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// A forced location (docs/force.md) runs the control plane alone: a person
// declared the other locations lost after the quorum was lost, and its
// member was restarted as a new single-member cluster. Its record,
// forced/SITE, says who, when and why; while it exists the location serves
// without a serve lease.

func (s *Store) forcedKey() string { return s.prefix + "forced/" }

// Force is what a force stores in one transaction.
type Force struct {
	// Forced, when set, is the forced location's record.
	Forced *status.Forced
	// Marks declare the lost locations lost, on behalf of every location
	// other than each of them, so that failovers away from them proceed.
	Marks []status.Mark
	// Record and Run, when set, recover a group at the forced location:
	// Record (a new epoch) replaces the group's record, still at
	// RecordRevision, and Run becomes the group's run in progress.
	Record         *status.Record
	RecordRevision int64
	Run            *plan.Run
}

// PutForce stores f in one transaction, and removes the marks on the
// forced location: the locations that made them are declared lost. With a
// Run it fails with ErrRunInProgress when the group has a run, and with
// ErrStale when its record changed.
func (s *Store) PutForce(ctx context.Context, f Force) error {
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	put := func(key string, v any) error {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(key, string(data)))
		return nil
	}
	if f.Forced != nil {
		if err := put(s.forcedKey()+f.Forced.Site, f.Forced); err != nil {
			return err
		}
		ops = append(ops, clientv3.OpDelete(s.lostKey()+f.Forced.Site+"/", clientv3.WithPrefix()))
	}
	for _, m := range f.Marks {
		if err := put(s.markKey(m.Site, m.By), m); err != nil {
			return err
		}
	}
	lock := ""
	if f.Run != nil {
		if f.Record == nil || f.Record.Group != f.Run.Group {
			return fmt.Errorf("force: a run needs the record of its group %s", f.Run.Group)
		}
		lock = s.runningKey() + f.Run.Group
		cmps = append(cmps,
			clientv3.Compare(clientv3.CreateRevision(lock), "=", 0),
			clientv3.Compare(clientv3.ModRevision(s.groupsKey()+f.Run.Group), "=", f.RecordRevision))
		if err := put(s.groupsKey()+f.Record.Group, f.Record); err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(lock, f.Run.ID))
		if err := put(s.runsKey()+f.Run.ID, f.Run); err != nil {
			return err
		}
	}
	var els []clientv3.Op
	if lock != "" {
		els = append(els, clientv3.OpGet(lock))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(els...).Commit()
	if err != nil {
		return fmt.Errorf("record the force: %w", err)
	}
	if resp.Succeeded {
		return nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		return fmt.Errorf("group %s: %w (run %s); follow it with `siteflip run %s`", f.Run.Group, ErrRunInProgress, kvs[0].Value, kvs[0].Value)
	}
	return fmt.Errorf("group %s: %w; look at `siteflip status` and ask again", f.Run.Group, ErrStale)
}

// Forced returns the forced locations' records (linearizable read).
func (s *Store) Forced(ctx context.Context) ([]status.Forced, error) {
	resp, err := s.cli.Get(ctx, s.forcedKey(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read forced locations: %w", err)
	}
	var out []status.Forced
	for _, kv := range resp.Kvs {
		var f status.Forced
		if err := json.Unmarshal(kv.Value, &f); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// ForcedAt returns the record of site if it is forced (linearizable read).
func (s *Store) ForcedAt(ctx context.Context, site string) (status.Forced, bool, error) {
	resp, err := s.cli.Get(ctx, s.forcedKey()+site)
	if err != nil {
		return status.Forced{}, false, fmt.Errorf("read whether %s is forced: %w", site, err)
	}
	if len(resp.Kvs) == 0 {
		return status.Forced{}, false, nil
	}
	var f status.Forced
	if err := json.Unmarshal(resp.Kvs[0].Value, &f); err != nil {
		return f, false, fmt.Errorf("decode %s: %w", resp.Kvs[0].Key, err)
	}
	return f, true, nil
}

// DeleteForced ends the forced state of site.
func (s *Store) DeleteForced(ctx context.Context, site string) error {
	if _, err := s.cli.Delete(ctx, s.forcedKey()+site); err != nil {
		return fmt.Errorf("end the forced state of %s: %w", site, err)
	}
	return nil
}

// LocalGroup reads, from the local member only (a serializable read, which
// needs no quorum), what a failover of group is planned from: its record,
// the revision of the local data, its run in progress, the last known lags
// of its standbys and its synchronous replication records. Without a quorum
// the data may be behind the cluster's; it is what this location knew last.
type LocalGroup struct {
	Record   status.Record
	Adopted  bool
	Revision int64
	Running  string
	Lags     map[string]map[string]status.Lag
	Sync     map[string]status.SyncRecord
}

// ReadLocalGroup returns the LocalGroup of group.
func (s *Store) ReadLocalGroup(ctx context.Context, group string) (LocalGroup, error) {
	ser := clientv3.WithSerializable()
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.groupsKey()+group, ser),
		clientv3.OpGet(s.runningKey()+group, ser),
		clientv3.OpGet(s.lagKey()+group+"/", ser, clientv3.WithPrefix()),
		clientv3.OpGet(s.syncKey()+group+"/", ser, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return LocalGroup{}, fmt.Errorf("read group %s from the local etcd member: %w", group, err)
	}
	lg := LocalGroup{Revision: resp.Header.Revision, Lags: map[string]map[string]status.Lag{}, Sync: map[string]status.SyncRecord{}}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if err := json.Unmarshal(kvs[0].Value, &lg.Record); err != nil {
			return lg, fmt.Errorf("decode %s: %w", kvs[0].Key, err)
		}
		lg.Record.Revision, lg.Adopted = kvs[0].ModRevision, true
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		lg.Running = string(kvs[0].Value)
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), s.lagKey()+group+"/"), "/")
		var l status.Lag
		if len(parts) != 2 || json.Unmarshal(kv.Value, &l) != nil {
			continue
		}
		if lg.Lags[parts[0]] == nil {
			lg.Lags[parts[0]] = map[string]status.Lag{}
		}
		lg.Lags[parts[0]][parts[1]] = l
	}
	for _, kv := range resp.Responses[3].GetResponseRange().Kvs {
		var r status.SyncRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return lg, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		lg.Sync[r.Resource] = r
	}
	return lg, nil
}

// ForgetSessions revokes the leases of the views and controller
// candidacies last written at or before revision upTo: the sessions of
// locations declared lost, and this location's own from before its member
// was forced, which would otherwise linger for a lease TTL (etcd grants
// every lease a fresh TTL when a new leader takes office) and keep the
// dead controller in office. It returns how many leases it revoked.
func (s *Store) ForgetSessions(ctx context.Context, upTo int64) (int, error) {
	// Not keys only: etcd leaves the lease out of such answers.
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.viewsKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.controllerKey(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return 0, fmt.Errorf("list the sessions to forget: %w", err)
	}
	var leases []clientv3.LeaseID
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			if id := clientv3.LeaseID(kv.Lease); id != clientv3.NoLease && kv.ModRevision <= upTo && !slices.Contains(leases, id) {
				leases = append(leases, id)
			}
		}
	}
	n := 0
	for _, id := range leases {
		if _, err := s.cli.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return n, fmt.Errorf("revoke lease %x: %w", int64(id), err)
		}
		n++
	}
	return n, nil
}

// MemberInfo is one member of the etcd cluster.
type MemberInfo struct {
	Name     string   `json:"name"`
	PeerURLs []string `json:"peer_urls"`
	Learner  bool     `json:"learner,omitempty"`
}

// Members lists the cluster's members (linearizable), and returns the
// cluster's ID: two clusters that answer with different IDs are two control
// planes.
func (s *Store) Members(ctx context.Context) ([]MemberInfo, uint64, error) {
	resp, err := s.cli.MemberList(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list etcd members: %w", err)
	}
	out := make([]MemberInfo, 0, len(resp.Members))
	for _, m := range resp.Members {
		out = append(out, MemberInfo{Name: memberName(m), PeerURLs: m.PeerURLs, Learner: m.IsLearner})
	}
	return out, resp.Header.ClusterId, nil
}

// HasMemberData says whether dir holds an etcd member's data.
func HasMemberData(dir string) bool { return wal.Exist(datadir.ToWALDir(dir)) }

// CloseToRestart stops the member so that it can start again in the same
// process (a forced new cluster), and waits up to timeout until its ports
// and data are free. Close gives up waiting sooner when there is no
// leader, which is right when the process exits, not before a new start
// on the same ports. The server is stopped first: requests that wait for a
// quorum then fail at once, instead of each holding etcd's shutdown for
// its request timeout.
func (m *Member) CloseToRestart(timeout time.Duration) error {
	m.closeOnce.Do(func() { close(m.closing) })
	m.etcd.Server.Stop()
	done := make(chan struct{})
	go func() {
		m.etcd.Close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("etcd member %s still stopping after %s", m.etcd.Server.MemberID(), timeout)
	}
}
