package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/testbed"
)

// noQuorumWrite bounds a write that must fail for want of a quorum.
const noQuorumWrite = 500 * time.Millisecond

// locations is a three-member cluster whose members a test stops and starts
// again from their data directories, as a disaster and its repair do.
type locations struct {
	t       *testing.T
	cfgs    []MemberConfig // as first started
	logs    []*logLines
	mu      sync.Mutex
	members []*Member // nil while stopped
}

// startLocations starts members "a", "b" and "c" on free loopback ports
// and waits until all are ready; the members still running stop when the
// test ends.
func startLocations(t *testing.T) *locations {
	t.Helper()
	requireCluster(t)
	names := []string{"a", "b", "c"}
	l := &locations{t: t, members: make([]*Member, len(names))}
	t.Cleanup(l.stopAll)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = l.startAll(names); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		t.Logf("attempt %d: %v; retrying on other ports", attempt+1, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for i := range names {
		l.ready(t, i)
	}
	return l
}

func (l *locations) startAll(names []string) error {
	ports := testbed.FreePorts(l.t, 2*len(names))
	peers := map[string]string{}
	for i, n := range names {
		peers[n] = fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])
	}
	l.cfgs, l.logs = nil, nil
	for i, n := range names {
		logs := &logLines{}
		l.logs = append(l.logs, logs)
		l.cfgs = append(l.cfgs, MemberConfig{
			Name: n, Dir: filepath.Join(l.t.TempDir(), "etcd"),
			PeerURL: peers[n], ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			Peers: peers, Token: "coord-force-test",
			Tick: testTick, Election: testElection,
			Logger: slog.New(slog.NewTextHandler(logs, nil)),
		})
	}
	for i := range names {
		if _, err := l.start(i, nil); err != nil {
			l.stopAll()
			return err
		}
	}
	return nil
}

// start starts location i's member from its configuration, changed by
// edit, without waiting for it to be ready.
func (l *locations) start(i int, edit func(*MemberConfig)) (*Member, error) {
	c := l.cfgs[i]
	if edit != nil {
		edit(&c)
	}
	m, err := StartMember(c)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.members[i] = m
	l.mu.Unlock()
	return m, nil
}

// mustStart is start, failing the test on error.
func (l *locations) mustStart(t *testing.T, i int, edit func(*MemberConfig)) *Member {
	t.Helper()
	m, err := l.start(i, edit)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ready waits until location i's member is ready, and says how long that
// took.
func (l *locations) ready(t *testing.T, i int) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-l.member(i).Ready():
	case err := <-l.member(i).Err():
		t.Fatalf("member %s failed: %v", l.cfgs[i].Name, err)
	case <-time.After(readyTimeout):
		t.Fatalf("member %s not ready after %v", l.cfgs[i].Name, readyTimeout)
	}
	return time.Since(start)
}

func (l *locations) member(i int) *Member {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.members[i]
}

// stop stops location i's member if it runs.
func (l *locations) stop(i int) {
	l.mu.Lock()
	m := l.members[i]
	l.members[i] = nil
	l.mu.Unlock()
	if m == nil {
		return
	}
	start := time.Now()
	closeMember(m, memberCloseTimeout)
	d := time.Since(start)
	if d >= memberCloseTimeout {
		l.t.Errorf("member %s did not stop within %v", l.cfgs[i].Name, memberCloseTimeout)
	}
	l.t.Logf("member %s stopped in %v", l.cfgs[i].Name, d.Round(time.Millisecond))
}

// stopAll stops the members still running.
func (l *locations) stopAll() { l.stopSome(0, 1, 2) }

// stopSome stops the members of the locations given, the followers
// together, then the raft leader: a leader stopped first would try to hand
// its leadership to a member that is stopping too, and wait (see
// cluster.closeAll).
func (l *locations) stopSome(locs ...int) {
	leader := -1
	var wg sync.WaitGroup
	for _, i := range locs {
		m := l.member(i)
		if m == nil {
			continue
		}
		if s := m.etcd.Server; leader < 0 && s.Leader() == s.MemberID() {
			leader = i
			continue
		}
		wg.Go(func() { l.stop(i) })
	}
	wg.Wait()
	if leader < 0 {
		return
	}
	// A leader left alone would try to hand its leadership to a member
	// just stopped, which its transport may still count as connected,
	// and wait for the transfer (6s). Without a quorum it steps down
	// after an election timeout.
	alone := true
	for i := range l.members {
		alone = alone && (i == leader || l.member(i) == nil)
	}
	if s := l.member(leader).etcd.Server; alone && len(s.Cluster().Members()) > 1 {
		deadline := time.Now().Add(4 * testElection)
		for s.Leader() == s.MemberID() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	l.stop(leader)
}

// store opens a Store that talks to location i's member only, closed when
// t ends.
func (l *locations) store(t *testing.T, i int) *Store {
	t.Helper()
	return openStore(t, []string{l.cfgs[i].ClientURL}, nil, installation(l.t))
}

// memberNames lists the cluster's members as s sees them, "name" or
// "name (learner)".
func memberNames(t *testing.T, s *Store) []string {
	t.Helper()
	resp, err := s.cli.MemberList(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range resp.Members {
		n := m.Name
		if m.IsLearner {
			n += " (learner)"
		}
		names = append(names, n)
	}
	return names
}

// putRecord writes a group's record as the controller does.
func putRecord(ctx context.Context, s *Store, rec status.Record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = s.cli.Put(ctx, s.groupsKey()+rec.Group, string(data))
	return err
}

// wantRecord checks, with a linearizable read through s, the record of
// group "g".
func wantRecord(t *testing.T, s *Store, who string, want status.Record) {
	t.Helper()
	got, ok, err := s.Record(ctxTimeout(t, 5*time.Second), "g")
	if err != nil {
		t.Fatalf("read through %s: %v", who, err)
	}
	if !ok {
		t.Fatalf("read through %s: no record", who)
	}
	if diff := cmp.Diff(want, got, ignoreRevision); diff != "" {
		t.Errorf("record read through %s (-want +got):\n%s", who, diff)
	}
}

// logLines collects a member's etcd log lines.
type logLines struct{ testbed.Buffer }

// matching returns the lines that contain one of subs.
func (l *logLines) matching(subs ...string) []string {
	var out []string
	for line := range strings.Lines(l.String()) {
		for _, s := range subs {
			if strings.Contains(line, s) {
				out = append(out, strings.TrimSpace(line))
				break
			}
		}
	}
	return out
}

// The way back when only one location survives: the survivor's member,
// without a quorum, restarts as a new single-member cluster with its data;
// a location that comes back with its old data is refused and stops; the
// lost locations come back as new members with emptied data directories.
func TestForceNewCluster(t *testing.T) {
	t.Parallel()
	l := startLocations(t)
	const a, b, c = 0, 1, 2
	sa := l.store(t, a)
	before := testRecord("g", "a")
	if err := putRecord(ctxTimeout(t, 5*time.Second), sa, before); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !l.member(a).HasQuorum(t.Context()) {
		t.Fatal("HasQuorum = false with the three members running")
	}
	t.Logf("HasQuorum with three members: true in %v", time.Since(start).Round(time.Microsecond))
	id := l.member(a).etcd.Server.MemberID()

	// b and c are lost for good.
	l.stopSome(b, c)

	t.Run("survivor has no quorum", func(t *testing.T) {
		start := time.Now()
		if l.member(a).HasQuorum(t.Context()) {
			t.Fatal("HasQuorum = true with two members of three stopped")
		}
		t.Logf("HasQuorum: false after %v", time.Since(start).Round(time.Millisecond))
		ctx, cancel := context.WithTimeout(t.Context(), noQuorumWrite)
		defer cancel()
		start = time.Now()
		err := putRecord(ctx, sa, testRecord("g", "b"))
		took := time.Since(start)
		if err == nil {
			t.Fatal("a write succeeded without a quorum")
		}
		if took > noQuorumWrite+cutOffSlack {
			t.Errorf("the write failed after %v, want within %v", took, noQuorumWrite+cutOffSlack)
		}
		t.Logf("write failed after %v: %v", took.Round(time.Millisecond), err)
	})

	sa.Close()
	l.stop(a)
	start = time.Now()
	l.mustStart(t, a, func(c *MemberConfig) { c.ForceNewCluster = true })
	t.Logf("forced new cluster: started in %v, ready in %v", time.Since(start).Round(time.Millisecond), l.ready(t, a).Round(time.Millisecond))
	sa = l.store(t, a)
	t.Run("forced new cluster serves the data", func(t *testing.T) {
		if got := l.member(a).etcd.Server.MemberID(); got != id {
			t.Errorf("member ID %v, want %v as before", got, id)
		}
		if diff := cmp.Diff([]string{"a"}, memberNames(t, sa)); diff != "" {
			t.Errorf("members (-want +got):\n%s", diff)
		}
		wantRecord(t, sa, "a", before)
		if !l.member(a).HasQuorum(t.Context()) {
			t.Error("HasQuorum = false")
		}
		after := testRecord("g", "a")
		after.Reason = "written after the forced new cluster"
		if err := putRecord(ctxTimeout(t, 5*time.Second), sa, after); err != nil {
			t.Fatal(err)
		}
		wantRecord(t, sa, "a", after)
		before = after
	})
	if t.Failed() {
		return
	}

	// The flag is for one start: afterwards the member starts as usual,
	// with the topology's three locations as its peers, and stays alone.
	sa.Close()
	l.stop(a)
	start = time.Now()
	l.mustStart(t, a, nil)
	t.Logf("plain restart after the forced one: ready in %v", (time.Since(start) + l.ready(t, a)).Round(time.Millisecond))
	sa = l.store(t, a)
	t.Run("plain restart afterwards", func(t *testing.T) {
		if diff := cmp.Diff([]string{"a"}, memberNames(t, sa)); diff != "" {
			t.Errorf("members (-want +got):\n%s", diff)
		}
		wantRecord(t, sa, "a", before)
	})

	t.Run("member with stale data is refused", func(t *testing.T) {
		// c comes back with its data: etcd restarts it as the old member,
		// whose peers include a. a answers its connections with 410 Gone
		// (the member was removed) and c stops itself.
		start := time.Now()
		m := l.mustStart(t, c, nil)
		select {
		case err := <-m.Err():
			if !errors.Is(err, ErrMemberStopped) {
				t.Errorf("Err reported %v, want %v", err, ErrMemberStopped)
			}
			t.Logf("stale member stopped itself after %v: %v", time.Since(start).Round(time.Millisecond), err)
		case <-time.After(5 * time.Second):
			t.Fatal("the stale member still runs after 5s")
		}
		if isClosed(m.Ready()) {
			t.Error("the stale member became ready")
		}
		if m.HasQuorum(t.Context()) {
			t.Error("the stale member's HasQuorum = true")
		}
		l.stop(c)
		for _, line := range l.logs[c].matching("removed") {
			t.Logf("c logged: %s", line)
		}
		for _, line := range l.logs[a].matching("removed") {
			t.Logf("a logged: %s", line)
		}
		if diff := cmp.Diff([]string{"a"}, memberNames(t, sa)); diff != "" {
			t.Errorf("members (-want +got):\n%s", diff)
		}
		wantRecord(t, sa, "a", before)
	})

	// b comes back as a new member. (c could follow the same way, but
	// etcd adds a member only once the members have been connected for
	// 5s, and AddMember would wait that long.)
	t.Run("member comes back", func(t *testing.T) {
		start := time.Now()
		peers, err := sa.AddMember(ctxTimeout(t, 5*time.Second), "b", l.cfgs[b].PeerURL)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"a": l.cfgs[a].PeerURL, "b": l.cfgs[b].PeerURL}
		if diff := cmp.Diff(want, peers); diff != "" {
			t.Errorf("AddMember: peers (-want +got):\n%s", diff)
		}
		// Again, as a person repeating the command would.
		if again, err := sa.AddMember(ctxTimeout(t, 5*time.Second), "b", l.cfgs[b].PeerURL); err != nil {
			t.Fatalf("AddMember again: %v", err)
		} else if diff := cmp.Diff(want, again); diff != "" {
			t.Errorf("AddMember again: peers (-want +got):\n%s", diff)
		}
		// A learner does not count for the quorum.
		if !l.member(a).HasQuorum(t.Context()) {
			t.Error("HasQuorum = false after adding b as a learner")
		}
		join := func(c *MemberConfig) { c.Peers = peers; c.Join = true }
		if _, err := l.start(b, join); !errors.Is(err, ErrMemberData) {
			t.Fatalf("joining over the old data: %v, want %v", err, ErrMemberData)
		}
		if err := os.RemoveAll(l.cfgs[b].Dir); err != nil {
			t.Fatal(err)
		}
		l.mustStart(t, b, join)
		l.ready(t, b)
		if diff := cmp.Diff([]string{"a", "b (learner)"}, memberNames(t, sa), cmpSorted); diff != "" {
			t.Errorf("members before the promotion (-want +got):\n%s", diff)
		}
		if err := sa.PromoteMember(ctxTimeout(t, 5*time.Second), l.cfgs[b].PeerURL); err != nil {
			t.Fatal(err)
		}
		t.Logf("b back in %v", time.Since(start).Round(time.Millisecond))
		// Now that it votes, adding it again is a mistake.
		if _, err := sa.AddMember(ctxTimeout(t, 5*time.Second), "b", l.cfgs[b].PeerURL); !errors.Is(err, ErrMemberExists) {
			t.Errorf("AddMember of a voting member: %v, want %v", err, ErrMemberExists)
		}
		if diff := cmp.Diff([]string{"a", "b"}, memberNames(t, sa), cmpSorted); diff != "" {
			t.Errorf("members (-want +got):\n%s", diff)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("both serve the data", func(t *testing.T) {
		sb := l.store(t, b)
		wantRecord(t, sb, "b", before)
		after := testRecord("g", "b")
		after.Reason = "written through the member that came back"
		if err := putRecord(ctxTimeout(t, 5*time.Second), sb, after); err != nil {
			t.Fatal(err)
		}
		wantRecord(t, sa, "a", after)
		for _, i := range []int{a, b} {
			if !l.member(i).HasQuorum(t.Context()) {
				t.Errorf("HasQuorum of %s = false", l.cfgs[i].Name)
			}
		}
	})
}

var cmpSorted = cmpopts.SortSlices(func(x, y string) bool { return x < y })

// What etcd does with the members removed by a forced new cluster when they
// start again from their old data: refused while they reach the survivor,
// and, when they do not, a quorum of the old cluster serving the old state.
// This is why a lost location comes back only as a new member (Join) with
// its data directory emptied.
func TestStaleMembers(t *testing.T) {
	t.Parallel()
	l := startLocations(t)
	const a, b, c = 0, 1, 2
	old := testRecord("g", "a")
	sa := l.store(t, a)
	if err := putRecord(ctxTimeout(t, 5*time.Second), sa, old); err != nil {
		t.Fatal(err)
	}
	l.stopSome(b, c)
	sa.Close()
	l.stop(a)
	l.mustStart(t, a, func(c *MemberConfig) { c.ForceNewCluster = true })
	l.ready(t, a)
	sa = l.store(t, a)
	current := testRecord("g", "a")
	current.Reason = "written after the forced new cluster"
	if err := putRecord(ctxTimeout(t, 5*time.Second), sa, current); err != nil {
		t.Fatal(err)
	}

	t.Run("survivor reachable", func(t *testing.T) {
		// Both come back at once, and could form a quorum of the old
		// cluster between them: a's refusal stops them first.
		start := time.Now()
		ms := []*Member{l.mustStart(t, b, nil), l.mustStart(t, c, nil)}
		for i, m := range ms {
			select {
			case err := <-m.Err():
				if !errors.Is(err, ErrMemberStopped) {
					t.Errorf("member %d: Err reported %v, want %v", i+1, err, ErrMemberStopped)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("member %d still runs after 5s", i+1)
			}
			if isClosed(m.Ready()) {
				t.Errorf("member %d became ready", i+1)
			}
		}
		t.Logf("both stopped themselves within %v", time.Since(start).Round(time.Millisecond))
		l.stopSome(b, c)
		if diff := cmp.Diff([]string{"a"}, memberNames(t, sa)); diff != "" {
			t.Errorf("members (-want +got):\n%s", diff)
		}
		wantRecord(t, sa, "a", current)
	})

	t.Run("survivor gone", func(t *testing.T) {
		sa.Close()
		l.stop(a)
		start := time.Now()
		l.mustStart(t, b, nil)
		l.mustStart(t, c, nil)
		l.ready(t, b)
		l.ready(t, c)
		t.Logf("the old cluster had a quorum again after %v", time.Since(start).Round(time.Millisecond))
		if !l.member(b).HasQuorum(t.Context()) {
			t.Error("HasQuorum = false")
		}
		// The write made after the forced new cluster is not there.
		wantRecord(t, l.store(t, b), "b", old)
	})
}

// A forced new cluster needs the member's data, a joining member must have
// none, and a member does not do both: StartMember checks before etcd,
// which would otherwise bootstrap an empty cluster, or restart the old
// member and ignore the join.
func TestStartMemberForceJoinErrors(t *testing.T) {
	ports := testbed.FreePorts(t, 2)
	withData := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "etcd")
		wals := filepath.Join(dir, "member", "wal")
		if err := os.MkdirAll(wals, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(wals, "0000000000000000-0000000000000000.wal"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	empty := func(t *testing.T) string { return filepath.Join(t.TempDir(), "etcd") }
	tests := []struct {
		name    string
		dir     func(*testing.T) string
		force   bool
		join    bool
		want    string
		wantErr error
	}{
		{name: "force without data", dir: empty, force: true, want: "force new etcd cluster from member a", wantErr: ErrNoMemberData},
		{name: "join over data", dir: withData, join: true, want: "join etcd cluster as a", wantErr: ErrMemberData},
		{name: "force and join", dir: withData, force: true, join: true, want: "cannot join"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
			m, err := StartMember(MemberConfig{
				Name: "a", Dir: tt.dir(t), PeerURL: peer, ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
				Peers: map[string]string{"a": peer}, Token: "t", Tick: testTick, Election: testElection,
				ForceNewCluster: tt.force, Join: tt.join,
			})
			if err == nil {
				m.Close(memberCloseTimeout)
				t.Fatal("StartMember succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %v", err, tt.wantErr)
			}
		})
	}
}
