// Package coord owns every conversation with etcd: the embedded member each
// location runs, the client, the keys siteflip stores (views, group records,
// the controller election) and the leases that make a dead location's views
// vanish. No other package imports etcd.
package coord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/datadir"
	"go.etcd.io/etcd/server/v3/storage/wal"

	"github.com/siteflip/siteflip/internal/pki"
)

// MemberConfig describes the embedded etcd member of one location.
type MemberConfig struct {
	Name      string
	Dir       string
	PeerURL   string
	ClientURL string
	// Peers maps every member's name (this one included) to its peer URL.
	Peers    map[string]string
	Token    string
	Tick     time.Duration
	Election time.Duration
	// TLS, when set, turns on mutual TLS for peer and client traffic.
	TLS *pki.Files
	// AllowedCNs, when set, are the only certificate common names the
	// member accepts from peers and clients: the locations' own, so that
	// an operator's certificate from the same CA cannot write to etcd.
	AllowedCNs []string
	Logger     *slog.Logger

	// ForceNewCluster restarts the member from the data in Dir as the only
	// member of its cluster, with all its keys: the way back when the
	// other locations are lost for good and the cluster can never have a
	// quorum again. etcd removes every other member from the membership
	// and keeps this member's ID and the cluster ID; Peers is not used.
	// Set it for one start only: the member afterwards starts as usual,
	// as a single-member cluster, and a later forced start would remove
	// the members added again meanwhile.
	//
	// The procedure: HasQuorum says no and the other locations are known
	// to be lost; Close the member and start it with ForceNewCluster; then
	// bring each lost location back as a new member (see Join). The
	// members removed must never start again from their data.
	ForceNewCluster bool
	// Join starts a new member added to a running cluster by
	// Store.AddMember: Peers is then the membership AddMember returned,
	// not the topology, and Dir must hold no member data; once the member
	// is ready, Store.PromoteMember makes it vote. A location whose
	// member was removed by a forced new cluster comes back so, with its
	// data directory emptied. With its old data it would start as the old
	// member: the survivor refuses it (HTTP 410 on the peer stream) and it
	// stops (Err reports ErrMemberStopped), but two such members that do
	// not reach the survivor form a quorum of the old cluster and serve
	// its old state.
	Join bool
}

// Errors of StartMember, Member.Err and Store.AddMember.
var (
	// ErrNoMemberData: a forced new cluster needs the member's data.
	ErrNoMemberData = errors.New("no etcd member data")
	// ErrMemberData: a joining member must start from nothing.
	ErrMemberData = errors.New("etcd member data present")
	// ErrMemberStopped: the member stopped by itself, as a member removed
	// from its cluster does when a peer tells it so.
	ErrMemberStopped = errors.New("etcd member stopped by itself")
	// ErrMemberExists: AddMember found a voting member with the peer URL.
	ErrMemberExists = errors.New("etcd member exists")
)

// Member is a running embedded etcd member.
type Member struct {
	etcd *embed.Etcd
	// quorumWait bounds HasQuorum.
	quorumWait time.Duration
	errc       chan error
	closing    chan struct{}
	closeOnce  sync.Once
}

// StartMember starts the member and returns without waiting for the
// cluster to have a quorum: a location that comes up alone must still serve
// its agent's API and say that it waits for the others.
//
// With ForceNewCluster or Join it first checks that Dir holds member data,
// or none, as each needs.
func StartMember(c MemberConfig) (*Member, error) {
	hasData := wal.Exist(datadir.ToWALDir(c.Dir))
	switch {
	case c.ForceNewCluster && c.Join:
		return nil, fmt.Errorf("start etcd member %s: a forced new cluster cannot join another", c.Name)
	case c.ForceNewCluster && !hasData:
		// etcd would bootstrap an empty cluster instead.
		return nil, fmt.Errorf("force new etcd cluster from member %s: %w in %s; run it where the surviving member's data is", c.Name, ErrNoMemberData, c.Dir)
	case c.Join && hasData:
		// etcd would restart the old member and ignore the join.
		return nil, fmt.Errorf("join etcd cluster as %s: %w in %s; a member rejoins from nothing: remove the directory first", c.Name, ErrMemberData, c.Dir)
	}
	cfg := embed.NewConfig()
	cfg.Name = c.Name
	cfg.Dir = c.Dir
	peer, err := url.Parse(c.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("etcd peer url %q: %w", c.PeerURL, err)
	}
	client, err := url.Parse(c.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("etcd client url %q: %w", c.ClientURL, err)
	}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	if u, ok := httpSocketURL(c.Dir, client.Scheme == "https"); ok {
		// Without a listener of their own, etcd's HTTP endpoints share
		// the client port with gRPC through a connection multiplexer (and,
		// with TLS, gRPC is served through net/http's HTTP/2 bridge), which
		// etcd warns at every start is not for production. siteflip and
		// etcdctl speak gRPC only, so /health, /metrics, /version and the
		// JSON gateway go to a unix socket in the member's directory
		// (curl --unix-socket DIR/http.sock http://x/health) and the client
		// URL serves gRPC alone. The directory must exist for the listener.
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("start etcd member %s: create data dir: %w", c.Name, err)
		}
		cfg.ListenClientHttpUrls = []url.URL{u}
	}
	names := make([]string, 0, len(c.Peers))
	for n := range c.Peers {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + c.Peers[n]
	}
	cfg.InitialCluster = strings.Join(parts, ",")
	cfg.InitialClusterToken = c.Token
	// Both are ignored once the data dir holds a member.
	cfg.ClusterState = embed.ClusterStateFlagNew
	switch {
	case c.ForceNewCluster:
		cfg.ForceNewCluster = true
		// The membership comes from the data; say the same here.
		cfg.InitialCluster = c.Name + "=" + c.PeerURL
	case c.Join:
		// etcd asks the peers for the membership and checks that Peers
		// lists exactly its members' peer URLs.
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	// siteflip authenticates members and clients by mutual TLS and never
	// enables etcd's own user authentication, so no auth tokens are
	// issued: without a token provider etcd no longer warns at every start
	// that "simple token is not cryptographically signed".
	cfg.AuthToken = ""
	cfg.TickMs = uint(c.Tick.Milliseconds())
	cfg.ElectionMs = uint(c.Election.Milliseconds())
	// A cut-off member that comes back must not force a new election.
	cfg.PreVote = true
	// Views are rewritten often; keep the history short.
	cfg.AutoCompactionMode = "revision"
	cfg.AutoCompactionRetention = "1000"
	if c.TLS != nil {
		info := transport.TLSInfo{
			CertFile: c.TLS.Cert, KeyFile: c.TLS.Key, TrustedCAFile: c.TLS.CA,
			ClientCertAuth: true,
			AllowedCNs:     c.AllowedCNs,
		}
		cfg.PeerTLSInfo = info
		cfg.ClientTLSInfo = info
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(etcdLogger(c.Logger))
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd member %s (data %s, peer %s, client %s): %w", c.Name, c.Dir, c.PeerURL, c.ClientURL, err)
	}
	m := &Member{
		etcd:       e,
		quorumWait: 2 * c.Election,
		errc:       make(chan error, 1),
		closing:    make(chan struct{}),
	}
	if m.quorumWait <= 0 {
		m.quorumWait = 2 * time.Second // etcd's default election timeout, twice
	}
	go m.watch()
	return m, nil
}

// httpSocket is the unix socket, in the member's directory, that serves
// etcd's HTTP endpoints.
const httpSocket = "http.sock"

// maxUnixPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes with the NUL).
const maxUnixPath = 107

// httpSocketURL returns the URL of the member's HTTP socket in dir, and
// false when its path is too long for a unix socket (the endpoints then
// stay on the client port).
func httpSocketURL(dir string, secure bool) (url.URL, bool) {
	abs, err := filepath.Abs(filepath.Join(dir, httpSocket))
	if err != nil || len(abs) > maxUnixPath {
		return url.URL{}, false
	}
	scheme := "unix"
	if secure {
		scheme = "unixs"
	}
	return url.URL{Scheme: scheme, Path: abs}, true
}

// watch reports the first error of the member's servers, or that the
// member stopped other than by Close: etcd reports that only as the error
// of a client server that stopped with it ("server is stopping"), and a
// member removed from its cluster stops so.
func (m *Member) watch() {
	var err error
	select {
	case e, ok := <-m.etcd.Err():
		if !ok {
			return
		}
		err = e
	case <-m.etcd.Server.StoppingNotify():
	}
	select {
	case <-m.closing:
		return
	default:
	}
	select {
	case <-m.etcd.Server.StoppingNotify():
		err = fmt.Errorf("%w (member %s): a member removed from its cluster stops so, and then its data directory must be emptied and the location added again; see etcd's lines in the log", ErrMemberStopped, m.etcd.Server.MemberID())
	default:
	}
	m.errc <- err
}

// Ready is closed once the member has joined a cluster with a quorum.
func (m *Member) Ready() <-chan struct{} { return m.etcd.Server.ReadyNotify() }

// Err reports a fatal error of the member, ErrMemberStopped if it stopped
// by itself.
func (m *Member) Err() <-chan error { return m.errc }

// HasQuorum reports whether the member's cluster has a quorum now: a
// linearizable read through the member succeeds. A member without a quorum
// still holds its data and answers serializable reads; this is what tells
// the two apart. It waits up to ctx's deadline, and at most two election
// timeouts: a cluster with a quorum answers within a heartbeat.
func (m *Member) HasQuorum(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, m.quorumWait)
	defer cancel()
	return m.etcd.Server.LinearizableReadNotify(ctx) == nil
}

// Close stops the member. etcd first tries to hand raft leadership to
// another member, which waits for an election timeout or more when the
// others are stopping too; past timeout Close gives up waiting, which is as
// safe as a crash (the WAL is synced at every commit).
func (m *Member) Close(timeout time.Duration) {
	m.closeOnce.Do(func() { close(m.closing) })
	// Without a leader there is nobody to hand leadership to, and etcd's
	// stop waits for raft progress that cannot come: do not wait long. But
	// etcd's Close itself waits up to a second for peer connections, and
	// a Close that gives up just before would leave the member finishing
	// in the background while the agent restarts it (ForceNewCluster).
	if m.etcd.Server.Leader() == 0 {
		timeout = min(timeout, 2*time.Second)
	}
	// A member that never reached a quorum never finishes etcd's Close:
	// its client servers wait for the server to be ready or stopping
	// (etcd-io/etcd#9533). Stopping the server first releases them.
	select {
	case <-m.etcd.Server.ReadyNotify():
	default:
		m.etcd.Server.Stop()
	}
	done := make(chan struct{})
	go func() {
		m.etcd.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// AddMember adds the member of a location to the cluster, as a learner: a
// member that votes only once it has caught up, so that the cluster keeps
// its quorum while the new member is not yet running (with one survivor
// and a new voting member, the survivor alone would have none). It returns
// the membership to start the new member with (MemberConfig.Peers, with
// Join); PromoteMember then makes it a voting member. It is the way back
// for a location removed by a forced new cluster, with its data directory
// emptied. It may be called again for the same peer URL while the member
// is a learner: it is not added twice. etcd allows one learner at a time.
//
// The store must reach a member of the cluster with a quorum.
func (s *Store) AddMember(ctx context.Context, name, peerURL string) (map[string]string, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		list, err := s.cli.MemberList(ctx)
		if err != nil {
			return nil, fmt.Errorf("add etcd member %s (%s): list members: %w", name, peerURL, err)
		}
		if m := memberByPeerURL(list.Members, peerURL); m != nil && m.IsLearner {
			return initialPeers(list.Members, name, peerURL), nil
		} else if m != nil {
			// A voting member started empty under an ID that voted
			// before would break raft's promises.
			return nil, fmt.Errorf("add etcd member %s (%s): %w: %s votes already; if it is lost, remove it first", name, peerURL, ErrMemberExists, memberName(m))
		}
		resp, err := s.cli.MemberAddAsLearner(ctx, []string{peerURL})
		if err == nil {
			return initialPeers(resp.Members, name, peerURL), nil
		}
		// etcd adds a member only once the members have been connected
		// for a while (5s): right after the previous one joined, wait.
		if !errors.Is(err, rpctypes.ErrUnhealthy) {
			return nil, fmt.Errorf("add etcd member %s (%s): %w", name, peerURL, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("add etcd member %s (%s): %w: %w", name, peerURL, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// initialPeers turns the cluster's members, the one with peerURL named
// name, into MemberConfig.Peers.
func initialPeers(members []*etcdserverpb.Member, name, peerURL string) map[string]string {
	peers := map[string]string{}
	for _, m := range members {
		n := m.Name
		switch {
		case slices.Contains(m.PeerURLs, peerURL):
			n = name
		default:
			n = memberName(m)
		}
		for _, u := range m.PeerURLs {
			peers[n] = u
		}
	}
	return peers
}

// PromoteMember makes the learner with peerURL a voting member, waiting
// (up to ctx) until it has caught up with the leader, which etcd requires.
// A member that already votes is left as it is.
func (s *Store) PromoteMember(ctx context.Context, peerURL string) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		list, err := s.cli.MemberList(ctx)
		if err != nil {
			return fmt.Errorf("promote etcd member %s: list members: %w", peerURL, err)
		}
		m := memberByPeerURL(list.Members, peerURL)
		if m == nil {
			return fmt.Errorf("promote etcd member %s: no such member; add it first", peerURL)
		}
		if !m.IsLearner {
			return nil
		}
		_, err = s.cli.MemberPromote(ctx, m.ID)
		if err == nil {
			return nil
		}
		if !errors.Is(err, rpctypes.ErrMemberLearnerNotReady) {
			return fmt.Errorf("promote etcd member %s (%s): %w", memberName(m), peerURL, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote etcd member %s (%s): not caught up with the leader: %w", memberName(m), peerURL, ctx.Err())
		case <-tick.C:
		}
	}
}

func memberByPeerURL(members []*etcdserverpb.Member, peerURL string) *etcdserverpb.Member {
	for _, m := range members {
		if slices.Contains(m.PeerURLs, peerURL) {
			return m
		}
	}
	return nil
}

// memberName is the member's name, or its ID if it never started: etcd
// learns the name from the member itself, and matches the members of a
// joining member's Peers by peer URL only.
func memberName(m *etcdserverpb.Member) string {
	if m.Name != "" {
		return m.Name
	}
	return types.ID(m.ID).String()
}

// LeaderName is the name of the member this member knows as the raft
// leader, "" while it knows none.
func (m *Member) LeaderName() string {
	s := m.etcd.Server
	lead := s.Leader()
	if lead == 0 {
		return ""
	}
	for _, mem := range s.Cluster().Members() {
		if mem.ID == lead {
			return mem.Name
		}
	}
	return ""
}

// HandLeadershipTo moves the raft leadership from this member to the
// voting member called name, when this member leads. It says whether it
// moved it. A leader at a site that is then lost costs the others an
// election (about election_timeout) before any mark can be stored; a
// leader at the witness costs a site's loss nothing.
func (m *Member) HandLeadershipTo(ctx context.Context, name string) (bool, error) {
	s := m.etcd.Server
	self := s.MemberID()
	if s.Leader() != self {
		return false, nil
	}
	var target types.ID
	for _, mem := range s.Cluster().Members() {
		if mem.Name == name && !mem.IsLearner {
			target = mem.ID
		}
	}
	if target == 0 || target == self {
		return false, nil
	}
	if err := s.MoveLeader(ctx, uint64(self), uint64(target)); err != nil {
		return false, fmt.Errorf("hand the raft leadership to %s: %w", name, err)
	}
	return true, nil
}
