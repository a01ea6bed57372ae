package coord

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/siteflip/siteflip/internal/pki"
	"github.com/siteflip/siteflip/internal/testbed"
)

func TestMain(m *testing.M) {
	// The cluster tests mostly wait (for elections, keepalives, members
	// stopping), and three of them run in parallel: do not hold them to
	// GOMAXPROCS at a time, unless -parallel says so.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit && runtime.GOMAXPROCS(0) < minParallel {
		flag.Set("test.parallel", strconv.Itoa(minParallel))
	}
	goleak.VerifyTestMain(settled{m})
}

// settled runs the tests, then gives the goroutines of the stopped etcd
// members time to end before goleak looks for leaks.
//
// A closed member can leave one HTTP connection of its peer server
// behind: net/http aborts the connection's pending read by setting a read
// deadline in the past, but etcd's timeoutConn moves the deadline forward
// again on every Read (by its read timeout, 5s for peer connections), so
// the read, and with it the connection's goroutines, end only then. The
// other end of the connection is an idle keep-alive connection of another
// member's peer transport, in this same process.
type settled struct{ m *testing.M }

func (s settled) Run() int {
	code := s.m.Run()
	if code != 0 {
		return code
	}
	start := time.Now()
	deadline := start.Add(settleTimeout)
	for goleak.Find() != nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if d := time.Since(start); d > 200*time.Millisecond && testing.Verbose() {
		fmt.Printf("goroutines settled after %v\n", d.Round(time.Millisecond))
	}
	return code
}

// Timings of the test clusters: short enough for a quick election, long
// enough that the race detector on a loaded machine does not cause spurious
// elections.
const (
	testTick     = 50 * time.Millisecond
	testElection = 500 * time.Millisecond
	// memberCloseTimeout bounds Member.Close in the cleanup. A Close that
	// gives up leaves etcd goroutines behind, which goleak then reports, so
	// it is far above what a Close takes (a leadership transfer, and up to
	// 6s for clients' open streams). Member.Close lowers it to 1s for a
	// member without a leader; the tests close their clients first.
	memberCloseTimeout = 15 * time.Second
	// readyTimeout bounds the wait for the cluster to elect a raft leader.
	readyTimeout = 20 * time.Second
	// settleTimeout bounds the wait for goroutines of closed members to
	// end after the last test (see settled).
	settleTimeout = 10 * time.Second
	// minParallel is the default -parallel of this package.
	minParallel = 6
)

// cluster is a real three-member etcd cluster run in-process, one member per
// location, all on 127.0.0.1.
type cluster struct {
	names      []string
	clientURLs []string
	members    []*Member
	// clientTLS[i] is the client configuration of location i (its own
	// certificate), and the last one an operator's, whose certificate the
	// members do not accept; nil for a plaintext cluster.
	clientTLS []*tls.Config

	mu     sync.Mutex
	closed []bool
}

// requireCluster skips tests that need a real cluster under -short.
func requireCluster(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: starts a real three-member embedded etcd cluster (several seconds); run without -short")
	}
}

// startCluster starts members "a", "b" and "c" on free loopback ports, with
// mutual TLS when secure, waits until all are ready and closes them when the
// test ends.
func startCluster(t *testing.T, secure bool) *cluster {
	t.Helper()
	requireCluster(t)
	names := []string{"a", "b", "c"}
	c := &cluster{names: names, closed: make([]bool, len(names))}
	var files []pki.Files
	if secure {
		// The locations' identities, and an operator's, from the same CA.
		ids := make([]pki.Identity, len(names), len(names)+1)
		for i, n := range names {
			ids[i] = pki.Identity{Name: n, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
		}
		ids = append(ids, pki.Identity{Name: "operator"})
		var err error
		files, err = pki.GenerateLab(t.TempDir(), "coord test CA", ids)
		if err != nil {
			t.Fatal(err)
		}
		c.clientTLS = make([]*tls.Config, len(files))
		for i := range files {
			if c.clientTLS[i], err = pki.ClientConfig(files[i], ""); err != nil {
				t.Fatal(err)
			}
		}
		files = files[:len(names)]
	}

	// Ports picked free may be taken by someone else before etcd binds
	// them: start again on other ports.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = c.start(t, files); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		t.Logf("attempt %d: %v; retrying on other ports", attempt+1, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.closeAll(t) })

	deadline := time.After(readyTimeout)
	start := time.Now()
	for i, m := range c.members {
		select {
		case <-m.Ready():
		case err := <-m.Err():
			t.Fatalf("member %s failed: %v", names[i], err)
		case <-deadline:
			t.Fatalf("member %s not ready after %v", names[i], readyTimeout)
		}
	}
	t.Logf("cluster (tls=%v) ready in %v", secure, time.Since(start).Round(time.Millisecond))
	return c
}

// start starts the three members; on failure it closes those it started.
func (c *cluster) start(t *testing.T, files []pki.Files) error {
	scheme := "http"
	if files != nil {
		scheme = "https"
	}
	ports := testbed.FreePorts(t, 2*len(c.names))
	peers := map[string]string{}
	c.clientURLs = make([]string, len(c.names))
	for i, n := range c.names {
		peers[n] = fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i])
		c.clientURLs[i] = fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i+1])
	}
	c.members = c.members[:0]
	for i, n := range c.names {
		mc := MemberConfig{
			Name: n, Dir: filepath.Join(t.TempDir(), "etcd"),
			PeerURL: peers[n], ClientURL: c.clientURLs[i],
			Peers: peers, Token: "coord-test",
			Tick: testTick, Election: testElection,
		}
		if files != nil {
			mc.TLS = &files[i]
			mc.AllowedCNs = c.names
		}
		m, err := StartMember(mc)
		if err != nil {
			for _, m := range c.members {
				closeMember(m, memberCloseTimeout)
			}
			c.members = c.members[:0]
			return err
		}
		c.members = append(c.members, m)
	}
	return nil
}

// close stops member i, once.
func (c *cluster) close(t *testing.T, i int) {
	t.Helper()
	c.mu.Lock()
	done := c.closed[i]
	c.closed[i] = true
	c.mu.Unlock()
	if done {
		return
	}
	start := time.Now()
	closeMember(c.members[i], memberCloseTimeout)
	d := time.Since(start)
	if d >= memberCloseTimeout {
		t.Errorf("member %s did not stop within %v", c.names[i], memberCloseTimeout)
	}
	t.Logf("member %s closed in %v", c.names[i], d.Round(time.Millisecond))
}

// closeAll stops the members still running: the followers together, then
// the raft leader, which then has nobody to hand leadership to and stops
// at once. (Each member waits up to a second for its peers' connections
// to close, so closing one after the other costs a second per member.)
func (c *cluster) closeAll(t *testing.T) {
	t.Helper()
	leader := -1
	var wg sync.WaitGroup
	for i := range c.members {
		c.mu.Lock()
		done := c.closed[i]
		c.mu.Unlock()
		if done {
			continue
		}
		if leader < 0 && c.isLeader(i) {
			leader = i
			continue
		}
		wg.Go(func() { c.close(t, i) })
	}
	wg.Wait()
	if leader >= 0 {
		c.close(t, leader)
	}
}

// closeMember closes m.
func closeMember(m *Member, timeout time.Duration) { m.Close(timeout) }

// isLeader says whether member i is the raft leader.
func (c *cluster) isLeader(i int) bool {
	s := c.members[i].etcd.Server
	return s.Leader() == s.MemberID()
}

// endpoints lists every client URL, location i's first, as an agent does.
func (c *cluster) endpoints(i int) []string {
	eps := []string{c.clientURLs[i]}
	for j, u := range c.clientURLs {
		if j != i {
			eps = append(eps, u)
		}
	}
	return eps
}

func (c *cluster) tlsOf(i int) *tls.Config {
	if c.clientTLS == nil {
		return nil
	}
	return c.clientTLS[i]
}

// store opens the Store of location i (its member first) for installation.
func (c *cluster) store(t *testing.T, i int, installation string) *Store {
	t.Helper()
	return openStore(t, c.endpoints(i), c.tlsOf(i), installation)
}

// storeOnly opens a Store of location i that knows no member but its own.
func (c *cluster) storeOnly(t *testing.T, i int, installation string) *Store {
	t.Helper()
	return openStore(t, c.clientURLs[i:i+1], c.tlsOf(i), installation)
}

// stores opens one Store per location.
func (c *cluster) stores(t *testing.T, installation string) []*Store {
	t.Helper()
	out := make([]*Store, len(c.names))
	for i := range out {
		out[i] = c.store(t, i, installation)
	}
	return out
}

func openStore(t *testing.T, endpoints []string, tlsConfig *tls.Config, installation string) *Store {
	t.Helper()
	s, err := Open(endpoints, tlsConfig, installation)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// installation names a test's own installation, so that tests sharing a
// cluster do not see each other's keys.
func installation(t *testing.T) string {
	return strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
}

// newSession opens a session closed when the test ends (a session whose
// lease is already gone fails to close; that is ignored). The session
// outlives t.Context(), which ends before the cleanups run.
func newSession(t *testing.T, s *Store, site string, ttl time.Duration) *Session {
	t.Helper()
	se, err := s.NewSession(t.Context(), site, ttl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { se.Close() })
	return se
}

type campaignResult struct {
	term int64
	err  error
}

// campaign runs se.Campaign in the background; the campaign ends with the
// test at the latest.
func campaign(t *testing.T, ctx context.Context, se *Session) <-chan campaignResult {
	t.Helper()
	ch, _ := campaignTracked(t, ctx, se)
	return ch
}

// campaignTracked is campaign, and also returns the ID of the goroutine
// that campaigns, for inStack.
func campaignTracked(t *testing.T, ctx context.Context, se *Session) (<-chan campaignResult, string) {
	t.Helper()
	ch := make(chan campaignResult, 1)
	done := make(chan struct{})
	id := make(chan string, 1)
	go func() {
		defer close(done)
		id <- goroutineID()
		term, err := se.Campaign(ctx)
		ch <- campaignResult{term, err}
	}()
	// t.Context() is cancelled before cleanups run: wait for the campaign
	// to notice, so no goroutine outlives the test.
	t.Cleanup(func() { <-done })
	return ch, <-id
}

// goroutineID returns the ID of the calling goroutine.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	// "goroutine 123 [running]:..."
	return strings.Fields(string(buf))[1]
}

// inStack reports whether the stack of goroutine id has a call of fn.
func inStack(id, fn string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.HasPrefix(g, "goroutine "+id+" ") {
			return strings.Contains(g, fn)
		}
	}
	return false
}

// elected waits for a background campaign to end in an election.
func elected(t *testing.T, who string, ch <-chan campaignResult, timeout time.Duration) int64 {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("campaign of %s: %v", who, r.err)
		}
		return r.term
	case <-time.After(timeout):
		t.Fatalf("%s not elected within %v", who, timeout)
	}
	return 0
}

// eventually polls cond until it holds, failing the test after timeout.
// cond gets a context bounded by the remaining time.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var lastErr error
	if !testbed.Poll(timeout, func() bool {
		ok, err := cond(ctx)
		if err != nil && ctx.Err() == nil {
			lastErr = err
		}
		return ok
	}) {
		t.Fatalf("%s: not within %v (last error: %v)", what, timeout, lastErr)
	}
}

// closedWithin reports whether ch is closed within timeout.
func closedWithin(ch <-chan struct{}, timeout time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(timeout):
		return false
	}
}

// isClosed reports whether ch is closed now.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
