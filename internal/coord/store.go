package coord

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/siteflip/siteflip/internal/status"
)

// ErrNotElected is returned when a campaign ended without leadership.
var ErrNotElected = errors.New("not elected")

// Store is siteflip's view of etcd: typed reads and writes under the
// installation's key prefix.
type Store struct {
	cli    *clientv3.Client
	prefix string
}

// Keys, under /siteflip/INSTALLATION/:
//
//	views/SITE                 View of one location, under that location's lease
//	groups/GROUP               Record of one group (active site, epoch)
//	controller/LEASE           candidates of the controller election; the oldest leads
//	running/GROUP              ID of the group's run in progress (one at a time)
//	runs/ID                    a run: its plan and the state of every step
//	lag/GROUP/RESOURCE/SITE    last known lag of a standby
//	lost/SITE/BY               location BY declared SITE lost (fencing.go)
//	decisions/GROUP            a group waiting for a person
//	sync/GROUP/RESOURCE        replication mode of a synchronous resource
//	drills/GROUP               the group's last drill and last successful drill (drills.go)
//	lastrun/GROUP              how the group's last run that ended (not a drill) ended
//	awaiting/GROUP             the approval the group's run waits for (approvals.go)
//	approvals/RUN/STEP         a person's verdict on an approval step (approvals.go)
//	paused/GROUP               a person's pause of the group's automatic actions (pause.go)
//	scheduled/GROUP            a switchover a person scheduled (scheduled.go)
func (s *Store) viewsKey() string      { return s.prefix + "views/" }
func (s *Store) groupsKey() string     { return s.prefix + "groups/" }
func (s *Store) controllerKey() string { return s.prefix + "controller/" }

func (s *Store) runningKey() string { return s.prefix + "running/" }

// drillingKey holds each group's drill in progress: a lock of its own, so
// that a drill never holds the lock a failover or switchover needs.
func (s *Store) drillingKey() string { return s.prefix + "drilling/" }
func (s *Store) runsKey() string     { return s.prefix + "runs/" }
func (s *Store) lagKey() string      { return s.prefix + "lag/" }
func (s *Store) lastRunKey() string  { return s.prefix + "lastrun/" }

func (s *Store) lostKey() string      { return s.prefix + "lost/" }
func (s *Store) decisionsKey() string { return s.prefix + "decisions/" }
func (s *Store) syncKey() string      { return s.prefix + "sync/" }

// electionPrefix is what concurrency.Election wants: it appends the "/".
func (s *Store) electionPrefix() string { return s.prefix + "controller" }

// Open connects to etcd. Endpoints should name the local member first: an
// agent talks to its own location's member.
func Open(endpoints []string, tlsConfig *tls.Config, installation string) (*Store, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  tlsConfig,
		DialTimeout:          2 * time.Second,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	return &Store{cli: cli, prefix: "/siteflip/" + installation + "/"}, nil
}

// Close closes the client.
func (s *Store) Close() error { return s.cli.Close() }

// Snapshot reads the views, the group records and the controller at one
// revision. It is a linearizable read: a member cut off from the quorum
// fails it rather than answering with stale data.
func (s *Store) Snapshot(ctx context.Context) (status.Snapshot, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.viewsKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.groupsKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.controllerKey(), clientv3.WithFirstCreate()...),
		clientv3.OpGet(s.lagKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.runningKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.lostKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.decisionsKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.syncKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.drillingKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.drillsKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.awaitingKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.lastRunKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.pausedKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.scheduledKey(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return status.Snapshot{}, fmt.Errorf("read control plane: %w", err)
	}
	snap := status.Snapshot{
		Revision: resp.Header.Revision,
		Views:    map[string]status.View{},
		Records:  map[string]status.Record{},
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var v status.View
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return snap, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		snap.Views[v.Site] = v
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var r status.Record
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return snap, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		r.Revision = kv.ModRevision
		snap.Records[r.Group] = r
	}
	snap.Lags = map[string]map[string]map[string]status.Lag{}
	for _, kv := range resp.Responses[3].GetResponseRange().Kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), s.lagKey()), "/")
		var l status.Lag
		if len(parts) != 3 || json.Unmarshal(kv.Value, &l) != nil {
			continue
		}
		g, r, site := parts[0], parts[1], parts[2]
		if snap.Lags[g] == nil {
			snap.Lags[g] = map[string]map[string]status.Lag{}
		}
		if snap.Lags[g][r] == nil {
			snap.Lags[g][r] = map[string]status.Lag{}
		}
		snap.Lags[g][r][site] = l
	}
	snap.Running = map[string]string{}
	for _, kv := range resp.Responses[4].GetResponseRange().Kvs {
		snap.Running[strings.TrimPrefix(string(kv.Key), s.runningKey())] = string(kv.Value)
	}
	snap.Drilling = map[string]string{}
	for _, kv := range resp.Responses[8].GetResponseRange().Kvs {
		snap.Drilling[strings.TrimPrefix(string(kv.Key), s.drillingKey())] = string(kv.Value)
	}
	if err := s.decodeFencing(&snap, resp.Responses[5], resp.Responses[6], resp.Responses[7]); err != nil {
		return snap, err
	}
	if err := s.decodeDrills(&snap, resp.Responses[9]); err != nil {
		return snap, err
	}
	if err := s.decodeAwaiting(&snap, resp.Responses[10]); err != nil {
		return snap, err
	}
	snap.LastRuns = map[string]status.LastRun{}
	for _, kv := range resp.Responses[11].GetResponseRange().Kvs {
		var lr status.LastRun
		if json.Unmarshal(kv.Value, &lr) != nil {
			continue // shown by no problem line; nothing decides on it
		}
		snap.LastRuns[strings.TrimPrefix(string(kv.Key), s.lastRunKey())] = lr
	}
	if err := s.decodePaused(&snap, resp.Responses[12]); err != nil {
		return snap, err
	}
	if err := s.decodeScheduled(&snap, resp.Responses[13]); err != nil {
		return snap, err
	}
	if kvs := resp.Responses[2].GetResponseRange().Kvs; len(kvs) > 0 {
		var c status.Controller
		if err := json.Unmarshal(kvs[0].Value, &c); err != nil {
			return snap, fmt.Errorf("decode %s: %w", kvs[0].Key, err)
		}
		c.Term = kvs[0].CreateRevision
		snap.Controller = &c
	}
	return snap, nil
}

// AdoptGroup stores rec as the group's first record unless one exists, and
// only while the caller is still the controller elected at term: a deposed
// controller's write must not land. It reports whether rec was stored.
func (s *Store) AdoptGroup(ctx context.Context, rec status.Record, term int64) (bool, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	key := s.groupsKey() + rec.Group
	leader, err := s.controllerHolder(ctx)
	if err != nil {
		return false, err
	}
	if leader == nil || leader.CreateRevision != term {
		return false, fmt.Errorf("adopt group %s: %w (term %d has ended)", rec.Group, ErrNotElected, term)
	}
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(string(leader.Key)), "=", term),
	).Then(clientv3.OpPut(key, string(data))).Else(clientv3.OpGet(string(leader.Key))).Commit()
	if err != nil {
		return false, fmt.Errorf("adopt group %s: %w", rec.Group, err)
	}
	if resp.Succeeded {
		return true, nil
	}
	// Either the record exists, or the term ended between the read above
	// and the transaction: tell them apart.
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 0 || kvs[0].CreateRevision != term {
		return false, fmt.Errorf("adopt group %s: %w (term %d has ended)", rec.Group, ErrNotElected, term)
	}
	return false, nil
}

// controllerHolder returns the key of the elected controller, or nil.
func (s *Store) controllerHolder(ctx context.Context) (*controllerKV, error) {
	resp, err := s.cli.Get(ctx, s.controllerKey(), clientv3.WithFirstCreate()...)
	if err != nil {
		return nil, fmt.Errorf("read controller: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	kv := resp.Kvs[0]
	var c status.Controller
	_ = json.Unmarshal(kv.Value, &c)
	return &controllerKV{Key: kv.Key, CreateRevision: kv.CreateRevision, Lease: clientv3.LeaseID(kv.Lease), Site: c.Site}, nil
}

type controllerKV struct {
	Key            []byte
	CreateRevision int64
	Lease          clientv3.LeaseID
	Site           string
}

// EvictController revokes the lease of the controller elected at term, if
// it still holds office. The caller decides that its location is lost (the
// other locations all fail to reach it); waiting for the lease to expire
// instead costs a full TTL, and after a raft leader change etcd grants every
// lease a fresh TTL, so the wait would be longest exactly when the
// controller's location died with the raft leader.
func (s *Store) EvictController(ctx context.Context, site string, term int64) (bool, error) {
	h, err := s.controllerHolder(ctx)
	if err != nil || h == nil || h.Site != site || h.CreateRevision != term {
		return false, err
	}
	if _, err := s.cli.Revoke(ctx, h.Lease); errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return false, nil // another location evicted it first
	} else if err != nil {
		return false, fmt.Errorf("evict controller %s (term %d): %w", site, term, err)
	}
	return true, nil
}

// decodeByGroup decodes the answer to a get of a prefix whose keys end in
// a group's name, each holding one JSON record; seen, when not nil, is
// told each record's etcd revision. A record that does not decode is an
// error: the snapshot would otherwise miss a pause or a drill record.
func decodeByGroup[T any](resp *etcdserverpb.ResponseOp, prefix string, seen func(*T, int64)) (map[string]T, error) {
	out := map[string]T{}
	for _, kv := range resp.GetResponseRange().Kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		if seen != nil {
			seen(&v, kv.ModRevision)
		}
		out[strings.TrimPrefix(string(kv.Key), prefix)] = v
	}
	return out, nil
}
