package coord

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/testbed"
)

// TestMemberCloseBeforeQuorum: a location that comes up alone waits for
// the others (StartMember does not wait for a quorum), but if it is stopped
// before they come, Member.Close never completes: embed.Etcd.Close first
// waits for its client servers to report, and they wait for the server to
// be ready or stopping, which it becomes only later in Close
// (etcd-io/etcd#9533), and a Close that gave up after its timeout would
// leave the whole member running: raft node, WAL, backend, peer listener.
// Member.Close stops the server first.
func TestMemberCloseBeforeQuorum(t *testing.T) {
	requireCluster(t)
	ports := testbed.FreePorts(t, 4)
	peers := map[string]string{
		"a": fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		"b": fmt.Sprintf("http://127.0.0.1:%d", ports[1]), // never started
	}
	m, err := StartMember(MemberConfig{
		Name: "a", Dir: filepath.Join(t.TempDir(), "etcd"), PeerURL: peers["a"],
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2]),
		Peers:     peers, Token: "alone", Tick: testTick, Election: testElection,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Close(2 * time.Second)
	select {
	case <-m.etcd.Server.StopNotify():
	default:
		t.Error("the member still runs after Close")
		m.etcd.Server.Stop() // lets the Close still waiting finish
	}
}
