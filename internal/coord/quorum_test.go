package coord

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/testbed"
)

// cutOffTimeout bounds the reads that must fail; a failure must come
// within it plus cutOffSlack.
const (
	cutOffTimeout = time.Second
	cutOffSlack   = 2 * time.Second
)

// Case 7: the two members left keep the control plane answering when one
// is lost, and a location cut off from the quorum gets errors, not stale
// data.
func TestQuorum(t *testing.T) {
	requireCluster(t)
	t.Parallel()
	c := startCluster(t, true)
	inst := installation(t)
	stores := c.stores(t, inst)
	only := make([]*Store, len(c.names))
	for i := range only {
		only[i] = c.storeOnly(t, i, inst)
	}

	// Lose the raft leader, the worst member to lose.
	lost := -1
	for i := range c.members {
		if c.isLeader(i) {
			lost = i
		}
	}
	if lost < 0 {
		t.Fatal("no member is the raft leader")
	}
	alive := []int{(lost + 1) % 3, (lost + 2) % 3}
	t.Logf("losing %s (raft leader), keeping %s and %s", c.names[lost], c.names[alive[0]], c.names[alive[1]])

	// A survivor publishes a view and is elected controller before the loss.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	se := newSession(t, stores[alive[0]], c.names[alive[0]], 5*time.Second)
	v := testView(c.names[alive[0]])
	if err := se.PublishView(ctx, v); err != nil {
		t.Fatal(err)
	}
	term, err := se.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec := testRecord("g", c.names[alive[0]])
	if ok, err := stores[alive[0]].AdoptGroup(ctx, rec, term); !ok || err != nil {
		t.Fatalf("AdoptGroup = %v, %v", ok, err)
	}
	want := status.Snapshot{
		Views:      map[string]status.View{v.Site: v},
		Records:    map[string]status.Record{"g": rec},
		Controller: &status.Controller{Site: v.Site, Term: term},
	}

	c.close(t, lost)

	t.Run("survivors answer", func(t *testing.T) {
		// Every location's store answers, the lost one's too: its other
		// endpoints take over.
		for i, s := range stores {
			snap := snapshot(t, s)
			if diff := cmp.Diff(want, snap, ignoreRevision, ignoreSince); diff != "" {
				t.Errorf("snapshot through the store of %s (-want +got):\n%s", c.names[i], diff)
			}
		}
		for _, i := range alive {
			if diff := cmp.Diff(want, snapshot(t, only[i]), ignoreRevision, ignoreSince); diff != "" {
				t.Errorf("snapshot through %s alone (-want +got):\n%s", c.names[i], diff)
			}
		}
		// Writes go through too.
		v.Version = "after the loss"
		if err := se.PublishView(ctx, v); err != nil {
			t.Fatal(err)
		}
		if got := snapshot(t, only[alive[1]]).Views[v.Site].Version; got != v.Version {
			t.Errorf("view version %q, want %q", got, v.Version)
		}
		if isClosed(se.Done()) {
			t.Error("the session ended with the loss of a member")
		}
	})

	t.Run("lost member does not answer", func(t *testing.T) {
		assertNoAnswer(t, only[lost])
	})

	// Lose a second member: the last one runs, holds the data, but has no
	// quorum. It must refuse, not serve what it has.
	//
	// The location of the session stops cleanly first: a member being
	// closed waits up to 6s for open client streams (the lease keepalive)
	// to end.
	if err := se.Close(); err != nil {
		t.Fatal(err)
	}
	stores[alive[0]].Close()
	c.close(t, alive[0])
	last := alive[1]
	t.Run("member without quorum refuses", func(t *testing.T) {
		// The member is up and has the data: a serializable (local) read
		// gets it.
		rctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		resp, err := only[last].cli.Get(rctx, only[last].groupsKey(), clientv3.WithPrefix(), clientv3.WithSerializable())
		if err != nil {
			t.Fatalf("serializable read from %s: %v", c.names[last], err)
		}
		if len(resp.Kvs) != 1 {
			t.Fatalf("serializable read from %s: %d records, want 1", c.names[last], len(resp.Kvs))
		}
		for name, s := range map[string]*Store{"alone": only[last], "with the others' endpoints": stores[last]} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				assertNoAnswer(t, s)
			})
		}
	})
}

// assertNoAnswer checks that Snapshot fails, and within the bound.
func assertNoAnswer(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cutOffTimeout)
	defer cancel()
	start := time.Now()
	snap, err := s.Snapshot(ctx)
	took := time.Since(start)
	if err == nil {
		t.Fatalf("Snapshot answered: %+v", snap)
	}
	if took > cutOffTimeout+cutOffSlack {
		t.Errorf("Snapshot failed after %v, want within %v", took, cutOffTimeout+cutOffSlack)
	}
	t.Logf("Snapshot failed after %v: %v", took.Round(time.Millisecond), err)
}

// StartMember reports bad configuration instead of starting.
func TestStartMemberErrors(t *testing.T) {
	ports := testbed.FreePorts(t, 2)
	good := func(dir string) MemberConfig {
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		return MemberConfig{
			Name: "a", Dir: dir, PeerURL: peer, ClientURL: "http://127.0.0.1:" + strconv.Itoa(ports[1]),
			Peers: map[string]string{"a": peer}, Token: "t", Tick: testTick, Election: testElection,
		}
	}
	tests := []struct {
		name    string
		edit    func(*MemberConfig)
		want    string
		wantErr error
	}{
		{name: "bad peer url", edit: func(c *MemberConfig) { c.PeerURL = "http://[::1" }, want: `etcd peer url "http://[::1"`},
		{name: "bad client url", edit: func(c *MemberConfig) { c.ClientURL = "http://[::1" }, want: `etcd client url "http://[::1"`},
		{name: "member missing from peers", edit: func(c *MemberConfig) { c.Peers = map[string]string{"b": c.PeerURL} }, want: "start etcd member a"},
		{name: "client port taken", edit: func(c *MemberConfig) {}, want: "start etcd member a", wantErr: syscall.EADDRINUSE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mc := good(filepath.Join(t.TempDir(), "etcd"))
			tt.edit(&mc)
			if tt.wantErr != nil {
				ln, err := net.Listen("tcp", strings.TrimPrefix(mc.ClientURL, "http://"))
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
			}
			m, err := StartMember(mc)
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
