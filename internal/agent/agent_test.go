package agent

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/pki"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/testbed"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// grpc and etcd keep a few process-wide goroutines after Close.
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/pkg/v3/schedule.(*fifo).run"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/soheilhy/cmux.(*muxListener).Accept"),
		// The embedded etcd members poll each other's /version over HTTP
		// and leave such connections (both ends) behind after Close. The
		// agent's own loops are still checked.
		goleak.IgnoreAnyFunction("github.com/soheilhy/cmux.(*MuxConn).Read"),
		goleak.IgnoreAnyFunction("net/http.(*connReader).abortPendingRead"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	)
}

// cluster writes a three-location topology with mutual TLS on 127.0.0.1
// and no groups, and returns it loaded. With external endpoints, the
// agents use that etcd cluster instead of embedding members.
func cluster(t *testing.T, external ...string) *config.Topology {
	t.Helper()
	return clusterIn(t, t.TempDir(), external...)
}

func clusterIn(t *testing.T, dir string, external ...string) *config.Topology {
	t.Helper()
	var ids []pki.Identity
	for _, n := range []string{"brussels", "antwerp", "frankfurt"} {
		ids = append(ids, pki.Identity{Name: n, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	}
	ids = append(ids, pki.Identity{Name: "operator"}, pki.Identity{Name: "viewer"}, pki.Identity{Name: "nobody"})
	if _, err := os.Stat(filepath.Join(dir, "pki", "ca.crt")); err != nil {
		if _, err := pki.GenerateLab(filepath.Join(dir, "pki"), "test CA", ids); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	b.WriteString("name: agenttest\ncoordination: {heartbeat_interval: 50ms, election_timeout: 500ms, lease_ttl: 2s, probe_interval: 200ms, probe_timeout: 500ms")
	if len(external) > 0 {
		fmt.Fprintf(&b, ", etcd_endpoints: [%s]", strings.Join(external, ", "))
	}
	b.WriteString("}\n")
	b.WriteString("tls: {ca_file: pki/ca.crt}\noperator: {cert_file: pki/operator.crt, key_file: pki/operator.key}\n")
	b.WriteString("access: [{identity: operator, role: admin}, {identity: viewer, role: viewer}]\nsites:\n")
	for _, n := range []string{"brussels", "antwerp", "frankfurt"} {
		role := "site"
		if n == "frankfurt" {
			role = "witness"
		}
		fmt.Fprintf(&b, "  - name: %s\n    role: %s\n    agent: {address: \"127.0.0.1:%d\", lease_address: \"127.0.0.1:%d\"}\n", n, role, testbed.FreePort(t), testbed.FreePort(t))
		if len(external) == 0 {
			fmt.Fprintf(&b, "    etcd: {peer_url: \"https://127.0.0.1:%d\", client_url: \"https://127.0.0.1:%d\"}\n", testbed.FreePort(t), testbed.FreePort(t))
		}
		fmt.Fprintf(&b, "    tls: {cert_file: pki/%s.crt, key_file: pki/%s.key}\n", n, n)
	}
	path := filepath.Join(dir, "siteflip.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := config.Load(path, driver.Types())
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// running is one agent started by a test.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, topo *config.Topology, site, dataDir string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	go func() {
		r.done <- Run(ctx, Options{Topology: topo, Site: site, DataDir: dataDir, Logger: log, Version: "test"})
	}()
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("agent stopped with error: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop within 20s of cancellation")
	}
}

// startAll starts an agent per location, with data under dataDir (none
// when dataDir is "": the agents use an existing etcd cluster).
func startAll(t *testing.T, topo *config.Topology, dataDir string) map[string]*running {
	t.Helper()
	agents := map[string]*running{}
	for _, s := range topo.SiteNames() {
		dir := ""
		if dataDir != "" {
			dir = filepath.Join(dataDir, s)
		}
		agents[s] = start(t, topo, s, dir)
	}
	return agents
}

func stopAll(t *testing.T, agents map[string]*running) {
	t.Helper()
	for _, a := range agents {
		a.stop(t)
	}
}

// client returns an operator client of the topology's agents, closed at
// the end of the test.
func client(t *testing.T, topo *config.Topology) *api.Client {
	t.Helper()
	c, err := api.NewClient(topo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitFor polls the status until cond holds, or fails after timeout with
// the last status it saw.
func waitFor(t *testing.T, c *api.Client, timeout time.Duration, what string, cond func(status.Status) bool) status.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	st, err := c.Wait(ctx, 100*time.Millisecond, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v; last status %+v", what, err, st)
	}
	return st
}

// allUp says every location is up and reporting, seen by all others, and
// a controller is elected.
func allUp(st status.Status) bool {
	for _, s := range st.Sites {
		if !s.Up || !s.Reporting || len(s.SeenBy) != len(st.Sites)-1 {
			return false
		}
	}
	return st.Controller != ""
}

// TestAgentsOverTLS runs three agents, each with its own embedded etcd
// member, over mutual TLS: a controller is elected; when the controller's
// agent stops, the other two see it gone and another takes over; when it
// comes back, all three are up again.
func TestAgentsOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three agents with embedded etcd members; skipped with -short")
	}
	topo := cluster(t)
	data := t.TempDir()
	agents := startAll(t, topo, data)
	defer stopAll(t, agents)
	c := client(t, topo)
	st := waitFor(t, c, 60*time.Second, "three locations up and a controller", allUp)
	first := st.Controller

	agents[first].stop(t)
	delete(agents, first)
	st = waitFor(t, c, 30*time.Second, "a new controller and "+first+" seen down by both others", func(st status.Status) bool {
		s, _ := st.Site(first)
		return st.Controller != "" && st.Controller != first && !s.Up && !s.Reporting && len(s.UnseenBy) == 2
	})
	if st.AnsweredBy == first {
		t.Errorf("status answered by the stopped location %s", first)
	}

	agents[first] = start(t, topo, first, filepath.Join(data, first))
	waitFor(t, c, 60*time.Second, first+" back up", allUp)

	// Metrics and health answer on the agent API, over mutual TLS only.
	s, _ := topo.Site(first)
	f := pki.Files{CA: topo.TLS.CAFile, Cert: topo.Operator.CertFile, Key: topo.Operator.KeyFile}
	body := get(t, f, "https://"+s.Agent.Address+"/metrics")
	for _, want := range []string{"siteflip_peer_reachable{peer=", "siteflip_controller "} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Every peer's clock offset is estimated from the probes; the agents
	// share this machine's clock, so it is within the probe's round trip.
	for _, peer := range topo.SiteNames() {
		if peer == first {
			continue
		}
		prefix := `siteflip_peer_clock_offset_seconds{peer="` + peer + `"} `
		i := strings.Index(body, prefix)
		if i < 0 {
			t.Errorf("/metrics lacks %s", prefix)
			continue
		}
		line, _, _ := strings.Cut(body[i+len(prefix):], "\n")
		if v, err := strconv.ParseFloat(line, 64); err != nil || math.Abs(v) > 0.5 {
			t.Errorf("clock offset of %s: %q (%v), want within half a second on one machine", peer, line, err)
		}
	}
	if body := get(t, f, "https://"+s.Agent.Address+"/healthz"); !strings.HasPrefix(body, "ok "+first) {
		t.Errorf("/healthz: %q", body)
	}
	// A client without a certificate completes the handshake (a browser
	// may show a login token instead) but reads nothing without a token.
	if body, err := httpGet(pki.Files{CA: topo.TLS.CAFile}, "https://"+s.Agent.Address+"/metrics"); err != nil || !strings.Contains(body, "siteflip token") {
		t.Errorf("/metrics without a certificate or token: %q, %v; want the 401 that says how to get a token", body, err)
	}

	// The operator's certificate comes from the same CA but must not open
	// the control plane itself: the members accept only the locations.
	opTLS, err := pki.ClientConfig(f, "")
	if err != nil {
		t.Fatal(err)
	}
	store, err := coord.Open([]string{s.Etcd.ClientURL}, opTLS, topo.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if _, err := store.Snapshot(ctx); err == nil {
		t.Error("etcd accepted the operator's certificate")
	}
}

// TestAgentsWithExistingEtcd: agents join an etcd cluster that runs apart
// from them (coordination.etcd_endpoints) instead of embedding members.
func TestAgentsWithExistingEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd cluster and three agents; skipped with -short")
	}
	dir := t.TempDir()
	// The certificates first: the etcd members use the sites' ones.
	clusterIn(t, dir)
	peers, clients := map[string]string{}, []string{}
	for _, n := range []string{"e1", "e2", "e3"} {
		peers[n] = fmt.Sprintf("https://127.0.0.1:%d", testbed.FreePort(t))
	}
	var members []*coord.Member
	for i, n := range []string{"e1", "e2", "e3"} {
		client := fmt.Sprintf("https://127.0.0.1:%d", testbed.FreePort(t))
		clients = append(clients, client)
		site := []string{"brussels", "antwerp", "frankfurt"}[i]
		m, err := coord.StartMember(coord.MemberConfig{
			Name: n, Dir: filepath.Join(dir, n), PeerURL: peers[n], ClientURL: client, Peers: peers,
			Token: "external", Tick: 50 * time.Millisecond, Election: 500 * time.Millisecond,
			TLS: &pki.Files{CA: filepath.Join(dir, "pki", "ca.crt"), Cert: filepath.Join(dir, "pki", site+".crt"), Key: filepath.Join(dir, "pki", site+".key")},
		})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	defer func() {
		for _, m := range members {
			m.Close(10 * time.Second)
		}
	}()
	topo := clusterIn(t, dir, clients...)
	if topo.Embedded() {
		t.Fatal("topology with etcd_endpoints claims embedded members")
	}
	agents := startAll(t, topo, "")
	defer stopAll(t, agents)
	c := client(t, topo)
	st := waitFor(t, c, 60*time.Second, "three locations up and a controller", allUp)
	if st.Installation != "agenttest" {
		t.Errorf("installation %q", st.Installation)
	}
}
