package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// Errors of run bookkeeping.
var (
	// ErrRunInProgress: the group already has a run in progress.
	ErrRunInProgress = errors.New("a run is already in progress")
	// ErrStale: the group changed since the plan was made.
	ErrStale = errors.New("the group changed since the plan was made")
	// ErrNoRun: no run with that ID.
	ErrNoRun = errors.New("no such run")
	// ErrDrillInProgress: the group already has a drill in progress.
	ErrDrillInProgress = errors.New("a drill is already in progress")
	// ErrDataLostKnown: the failover's data lost was filled in before, by
	// another run.
	ErrDataLostKnown = errors.New("what the failover lost is already known")
)

// lockKey is the key that holds the group's run in progress of run's
// kind: drills have their own.
func (s *Store) lockKey(run plan.Run) string {
	if run.Plan.Action == plan.Drill {
		return s.drillingKey() + run.Group
	}
	return s.runningKey() + run.Group
}

// Fence identifies the controller's term for fenced writes: the election
// key and the create revision it was elected with.
type Fence struct {
	Key  string
	Term int64
}

// Fence returns the session's fencing token; valid after Campaign.
func (se *Session) Fence() Fence { return Fence{Key: se.el.Key(), Term: se.el.Rev()} }

func (f Fence) holds() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Term)
}

// StartRun stores run as its group's run in progress. It fails with
// ErrRunInProgress when the group has one, and with ErrStale when the
// group's record is no longer the one (recordRevision) the plan was made
// from.
func (s *Store) StartRun(ctx context.Context, run plan.Run, recordRevision int64) error {
	return s.startRun(ctx, run, recordRevision)
}

func (s *Store) startRun(ctx context.Context, run plan.Run, recordRevision int64, extra ...clientv3.Cmp) error {
	data, err := json.Marshal(run)
	if err != nil {
		return err
	}
	lock := s.lockKey(run)
	cmps := append([]clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(lock), "=", 0),
		clientv3.Compare(clientv3.ModRevision(s.groupsKey()+run.Group), "=", recordRevision),
	}, extra...)
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(
		clientv3.OpPut(lock, run.ID),
		clientv3.OpPut(s.runsKey()+run.ID, string(data)),
	).Else(clientv3.OpGet(lock)).Commit()
	if err != nil {
		return fmt.Errorf("start run of group %s: %w", run.Group, err)
	}
	if resp.Succeeded {
		return nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if run.Plan.Action == plan.Drill {
			return fmt.Errorf("group %s: %w (drill %s); follow it with `siteflip run %s`", run.Group, ErrDrillInProgress, kvs[0].Value, kvs[0].Value)
		}
		return fmt.Errorf("group %s: %w (run %s); follow it with `siteflip run %s`", run.Group, ErrRunInProgress, kvs[0].Value, kvs[0].Value)
	}
	return fmt.Errorf("group %s: %w; look at `siteflip status` and ask again", run.Group, ErrStale)
}

// SaveRun writes the run's progress, only while the controller's term f
// holds. A finished run also releases the group's run lock.
func (s *Store) SaveRun(ctx context.Context, run plan.Run, f Fence) error {
	data, err := json.Marshal(run)
	if err != nil {
		return err
	}
	ops := []clientv3.Op{clientv3.OpPut(s.runsKey()+run.ID, string(data))}
	var cmps []clientv3.Cmp
	cmps = append(cmps, f.holds())
	if run.Done() {
		lock := s.lockKey(run)
		ops = append(ops, clientv3.OpDelete(lock))
		cmps = append(cmps, clientv3.Compare(clientv3.Value(lock), "=", run.ID))
		if run.Plan.Action != plan.Drill {
			last, err := json.Marshal(status.LastRun{ID: run.ID, Action: string(run.Plan.Action), State: run.State, Ended: run.Ended, Error: run.Error})
			if err != nil {
				return err
			}
			ops = append(ops, clientv3.OpPut(s.lastRunKey()+run.Group, string(last)))
		}
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("save run %s: %w", run.ID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("save run %s: %w (term %d has ended, or the run lock is not this run's)", run.ID, ErrNotElected, f.Term)
	}
	return nil
}

// Activate records `to` as the group's active site and increments its
// epoch from `epoch`, in one transaction with the run's progress, while
// the term holds. When the record already shows that activation (a resumed
// run), it succeeds without writing the record again. It returns the new
// epoch.
func (s *Store) Activate(ctx context.Context, run plan.Run, epoch int64, to string, f Fence) (int64, error) {
	key := s.groupsKey() + run.Group
	get, err := s.cli.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("activate %s at %s: %w", run.Group, to, err)
	}
	if len(get.Kvs) == 0 {
		return 0, fmt.Errorf("activate %s at %s: the group has no record", run.Group, to)
	}
	var rec status.Record
	if err := json.Unmarshal(get.Kvs[0].Value, &rec); err != nil {
		return 0, err
	}
	switch {
	case rec.Epoch == epoch+1 && rec.ActiveSite == to:
		return rec.Epoch, s.SaveRun(ctx, run, f) // done before; resumed
	case rec.Epoch != epoch:
		return 0, fmt.Errorf("activate %s at %s: %w (epoch %d, the run was planned at %d)", run.Group, to, ErrStale, rec.Epoch, epoch)
	}
	rec.ActiveSite, rec.Epoch, rec.UpdatedAt = to, epoch+1, time.Now().UTC()
	rec.Reason = fmt.Sprintf("%s run %s", run.Plan.Action, run.ID)
	recData, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	runData, err := json.Marshal(run)
	if err != nil {
		return 0, err
	}
	resp, err := s.cli.Txn(ctx).If(
		f.holds(),
		clientv3.Compare(clientv3.ModRevision(key), "=", get.Kvs[0].ModRevision),
	).Then(
		clientv3.OpPut(key, string(recData)),
		clientv3.OpPut(s.runsKey()+run.ID, string(runData)),
	).Commit()
	if err != nil {
		return 0, fmt.Errorf("activate %s at %s: %w", run.Group, to, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("activate %s at %s: %w (the term ended or the record changed)", run.Group, to, ErrNotElected)
	}
	return rec.Epoch, nil
}

// FillDataLost writes what a failover lost (text; "" for nothing), as the
// rejoin of its old site by run `by` found it, onto the failover's run,
// only while the controller's term f holds and the run is the one read.
// Filling it again with the same finding is a no-op; a failover whose
// verdict came from another run fails with ErrDataLostKnown.
func (s *Store) FillDataLost(ctx context.Context, group, failoverID, text, by string, f Fence) error {
	key := s.runsKey() + failoverID
	for range 3 {
		get, err := s.cli.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("read run %s: %w", failoverID, err)
		}
		if len(get.Kvs) == 0 {
			return fmt.Errorf("run %s: %w", failoverID, ErrNoRun)
		}
		var r plan.Run
		if err := json.Unmarshal(get.Kvs[0].Value, &r); err != nil {
			return fmt.Errorf("decode run %s: %w", failoverID, err)
		}
		switch {
		case r.Group != group || r.Plan.Action != plan.Failover || !r.Done():
			return fmt.Errorf("run %s is not a finished failover of group %s", failoverID, group)
		case r.DataLostBy == by && r.DataLost == text:
			return nil
		case r.DataLostBy != "":
			return fmt.Errorf("run %s: %w (found by run %s)", failoverID, ErrDataLostKnown, r.DataLostBy)
		}
		r.DataLost, r.DataLostBy = text, by
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		resp, err := s.cli.Txn(ctx).If(
			f.holds(),
			clientv3.Compare(clientv3.ModRevision(key), "=", get.Kvs[0].ModRevision),
		).Then(clientv3.OpPut(key, string(data))).Else(clientv3.OpGet(f.Key)).Commit()
		if err != nil {
			return fmt.Errorf("fill in what run %s lost: %w", failoverID, err)
		}
		if resp.Succeeded {
			return nil
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 0 || kvs[0].CreateRevision != f.Term {
			return fmt.Errorf("fill in what run %s lost: %w (term %d has ended)", failoverID, ErrNotElected, f.Term)
		}
		// The run changed meanwhile: read it again.
	}
	return fmt.Errorf("fill in what run %s lost: it keeps changing", failoverID)
}

// pruneBatch bounds the deletions of one transaction, well within etcd's
// default of 128 operations.
const pruneBatch = 100

// PruneRuns keeps the run history within its retention, while the
// controller's term f holds. Per group, the newest keepPerGroup runs stay;
// of the older ones, those that ended (or, never ended, started) before
// `before` are deleted, except a run in progress (named by the group's
// running/ or drilling/ key, or not finished) and the group's newest
// failover and newest drill. A run is deleted only as it was read (its
// ModRevision). It returns how many it deleted.
func (s *Store) PruneRuns(ctx context.Context, keepPerGroup int, before time.Time, f Fence) (int, error) {
	count, err := s.cli.Get(ctx, s.runsKey(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("prune runs: %w", err)
	}
	if count.Count <= int64(keepPerGroup) {
		return 0, nil // no group can be over its share: nothing to read
	}
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.runsKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.runningKey(), clientv3.WithPrefix()),
		clientv3.OpGet(s.drillingKey(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return 0, fmt.Errorf("prune runs: %w", err)
	}
	locked := map[string]bool{}
	for _, r := range resp.Responses[1:] {
		for _, kv := range r.GetResponseRange().Kvs {
			locked[string(kv.Value)] = true
		}
	}
	type stored struct {
		key string
		rev int64
		run plan.Run
	}
	groups := map[string][]stored{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var r plan.Run
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			continue // what cannot be read cannot be judged: it stays
		}
		groups[r.Group] = append(groups[r.Group], stored{string(kv.Key), kv.ModRevision, r})
	}
	var doomed []stored
	for _, runs := range groups {
		sort.SliceStable(runs, func(i, j int) bool { return runs[i].run.Started.After(runs[j].run.Started) })
		var failover, drill bool
		for i, st := range runs {
			r := st.run
			keep := i < keepPerGroup || !r.Done() || locked[strings.TrimPrefix(st.key, s.runsKey())] || locked[r.ID]
			switch {
			case r.Plan.Action == plan.Failover && !failover:
				failover, keep = true, true
			case r.Plan.Action == plan.Drill && !drill:
				drill, keep = true, true
			}
			end := r.Ended
			if end.IsZero() {
				end = r.Started
			}
			if !keep && end.Before(before) {
				doomed = append(doomed, st)
			}
		}
	}
	deleted := 0
	for batch := range slices.Chunk(doomed, pruneBatch) {
		cmps := []clientv3.Cmp{f.holds()}
		ops := make([]clientv3.Op, 0, len(batch))
		for _, st := range batch {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(st.key), "=", st.rev))
			ops = append(ops, clientv3.OpDelete(st.key))
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(f.Key)).Commit()
		if err != nil {
			return deleted, fmt.Errorf("prune runs: %w", err)
		}
		if resp.Succeeded {
			deleted += len(batch)
			continue
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 0 || kvs[0].CreateRevision != f.Term {
			return deleted, fmt.Errorf("prune runs: %w (term %d has ended)", ErrNotElected, f.Term)
		}
		// A run of the batch changed since it was read: the batch waits
		// for the next pruning.
	}
	return deleted, nil
}

// Run returns the run with the given ID.
func (s *Store) Run(ctx context.Context, id string) (plan.Run, error) {
	resp, err := s.cli.Get(ctx, s.runsKey()+id)
	if err != nil {
		return plan.Run{}, fmt.Errorf("read run %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return plan.Run{}, fmt.Errorf("run %s: %w; `siteflip runs` lists them", id, ErrNoRun)
	}
	var r plan.Run
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return plan.Run{}, fmt.Errorf("decode run %s: %w", id, err)
	}
	return r, nil
}

// Runs lists the runs of a group ("" for all), oldest first.
func (s *Store) Runs(ctx context.Context, group string) ([]plan.Run, error) {
	var kvs []*mvccpb.KeyValue
	if group == "" {
		resp, err := s.cli.Get(ctx, s.runsKey(), clientv3.WithPrefix())
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		kvs = resp.Kvs
	} else {
		// One group's runs among thousands: the keys first, then only the
		// runs whose ID names the group (or does not say), a batch per
		// transaction. Every reprotect reads its group's runs; reading and
		// decoding them all made reprotecting many groups quadratic.
		resp, err := s.cli.Get(ctx, s.runsKey(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		var ops []clientv3.Op
		for _, kv := range resp.Kvs {
			if g, ok := runIDGroup(strings.TrimPrefix(string(kv.Key), s.runsKey())); !ok || g == group {
				ops = append(ops, clientv3.OpGet(string(kv.Key)))
			}
		}
		for batch := range slices.Chunk(ops, 100) {
			tr, err := s.cli.Txn(ctx).Then(batch...).Commit()
			if err != nil {
				return nil, fmt.Errorf("read the runs of %s: %w", group, err)
			}
			for _, r := range tr.Responses {
				kvs = append(kvs, r.GetResponseRange().Kvs...)
			}
		}
	}
	var out []plan.Run
	for _, kv := range kvs {
		var r plan.Run
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		if group == "" || r.Group == group {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

// RecentRuns returns the newest n runs of every group, newest first: one
// read of n keys, whatever the number of runs stored, for the readers
// that follow the runs every second (the dashboard's events). Runs are
// told apart by their IDs, which begin with their start; an ID of another
// form (none that agents give) sorts by its name.
func (s *Store) RecentRuns(ctx context.Context, n int) ([]plan.Run, error) {
	resp, err := s.cli.Get(ctx, s.runsKey(), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(n)))
	if err != nil {
		return nil, fmt.Errorf("list the recent runs: %w", err)
	}
	out := make([]plan.Run, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r plan.Run
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Started.After(out[j].Started) })
	return out, nil
}

// runID is the form of the IDs the agents give runs: when, group, action
// and four hex digits.
var runID = regexp.MustCompile(`^\d{8}T\d{6}-(.+)-(failover|switchover|reprotect|failback|drill)-[0-9a-f]{4}$`)

// runIDGroup returns the group an ID of that form names; ok is false for
// an ID of another form, whose run must be read to tell.
func runIDGroup(id string) (group string, ok bool) {
	m := runID.FindStringSubmatch(id)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// PutLag records a standby's last known lag.
func (s *Store) PutLag(ctx context.Context, group, resource, site string, l status.Lag) error {
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, s.lagKey()+group+"/"+resource+"/"+site, string(data)); err != nil {
		return fmt.Errorf("record lag of %s/%s at %s: %w", group, resource, site, err)
	}
	return nil
}

// Record returns the group's current record (linearizable read).
func (s *Store) Record(ctx context.Context, group string) (status.Record, bool, error) {
	resp, err := s.cli.Get(ctx, s.groupsKey()+group)
	if err != nil {
		return status.Record{}, false, fmt.Errorf("read group %s: %w", group, err)
	}
	if len(resp.Kvs) == 0 {
		return status.Record{}, false, nil
	}
	var r status.Record
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return status.Record{}, false, err
	}
	r.Revision = resp.Kvs[0].ModRevision
	return r, true, nil
}

// StepContext is what an agent reads, in one linearizable transaction,
// before it carries out a step: the group's record, its run in progress,
// the run the step names, and the elected controller.
type StepContext struct {
	Record     status.Record
	Adopted    bool
	Running    string             // the group's run in progress, "" when none
	Drilling   string             // the group's drill in progress, "" when none
	Run        *plan.Run          // the run the step names; nil when there is none
	Controller *status.Controller // nil while none is elected
}

// StepContext reads the context of a step of run runID on group.
func (s *Store) StepContext(ctx context.Context, group, runID string) (StepContext, error) {
	ops := []clientv3.Op{
		clientv3.OpGet(s.groupsKey() + group),
		clientv3.OpGet(s.runningKey() + group),
		clientv3.OpGet(s.controllerKey(), clientv3.WithFirstCreate()...),
		clientv3.OpGet(s.drillingKey() + group),
	}
	if runID != "" {
		ops = append(ops, clientv3.OpGet(s.runsKey()+runID))
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return StepContext{}, fmt.Errorf("read group %s: %w", group, err)
	}
	var sc StepContext
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if err := json.Unmarshal(kvs[0].Value, &sc.Record); err != nil {
			return sc, fmt.Errorf("decode group %s: %w", group, err)
		}
		sc.Record.Revision, sc.Adopted = kvs[0].ModRevision, true
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		sc.Running = string(kvs[0].Value)
	}
	if kvs := resp.Responses[2].GetResponseRange().Kvs; len(kvs) > 0 {
		var c status.Controller
		if err := json.Unmarshal(kvs[0].Value, &c); err != nil {
			return sc, fmt.Errorf("decode %s: %w", kvs[0].Key, err)
		}
		c.Term = kvs[0].CreateRevision
		sc.Controller = &c
	}
	if kvs := resp.Responses[3].GetResponseRange().Kvs; len(kvs) > 0 {
		sc.Drilling = string(kvs[0].Value)
	}
	if runID != "" {
		if kvs := resp.Responses[4].GetResponseRange().Kvs; len(kvs) > 0 {
			var r plan.Run
			if err := json.Unmarshal(kvs[0].Value, &r); err != nil {
				return sc, fmt.Errorf("decode run %s: %w", runID, err)
			}
			sc.Run = &r
		}
	}
	return sc, nil
}
