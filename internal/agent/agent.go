// Package agent runs one location. Its components are built in one place
// (wire, below), each given only the store operations it needs:
//
//   - presence (presence.go): probes the other agents and publishes this
//     location's view under a control-plane session;
//   - dependencies (dependencies.go): probes the outside services this
//     site's groups require; the view carries the results;
//   - controller (controller.go): the candidacy for controller and the
//     controller's work: automatic failover (safety.Decide), runs, lags;
//   - serveLease (lease.go): asks the others for the right to serve,
//     grants it to them, fences when it runs out, marks lost sites;
//   - localResources (resources.go, local.go, network.go, sync.go): the
//     resources at this site: observed, kept in line, steps carried out;
//   - forcer (force.go, member.go): the embedded etcd member and forcing;
//   - apiServer (http.go, reads.go, runs.go, steps.go): the HTTP API, and
//     the dashboard's (dashboard.go, events.go, laghistory.go).
//
// They share only plane (plane.go), the read side of the control plane,
// and base, what none of them changes. The safety rules themselves are in
// internal/safety; the components feed them events and carry out what
// they return.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/access"
	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/pki"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
	"golang.org/x/sync/errgroup"
)

// Options configure an agent.
type Options struct {
	Topology *config.Topology
	Site     string
	// DataDir holds the embedded etcd member's data.
	DataDir string
	// EtcdEndpoints, when set, joins an existing etcd cluster instead of
	// embedding a member.
	EtcdEndpoints []string
	Logger        *slog.Logger
	Version       string
	// WatchdogExe, when set, is the siteflip binary to start as the
	// watchdog (`EXE watchdog`) that fences the local primaries when the
	// serve lease runs out and the agent cannot (docs/design/fencing.md).
	WatchdogExe string
	// WatchdogArgs follow `EXE watchdog`: the agent's --log-format and
	// --log-level, so that the watchdog's lines match the agent's.
	WatchdogArgs []string
}

// agent is one location's components, built once by wire; Run starts
// their loops and servers.
type agent struct {
	*base
	plane    *plane
	presence *presence
	deps     *dependencies
	ctl      *controller
	lease    *serveLease
	local    *localResources
	force    *forcer
	api      *apiServer
}

// parts are what the components are built from. A test leaves out what it
// does not use: with no store, whatever touches the control plane panics.
type parts struct {
	store     *coord.Store
	member    *localMember // nil with an existing etcd cluster
	net       *driver.Runtime
	clientTLS *tls.Config
	peerAPI   *api.Client
	resolver  *access.Resolver
	// caPool is the installation's CA, which login tokens are checked
	// against; nil without TLS.
	caPool *x509.CertPool
	audit  *audit.Writer
	// watchdogExe, watchdogArgs and dataDir: the watchdog to start, and
	// where its pid goes.
	watchdogExe, dataDir string
	watchdogArgs         []string
}

// wire builds every component of the agent, hands each the others it
// works with, and gives each only the store operations it needs (its own
// interface, met by the one store).
func wire(b *base, p parts) *agent {
	pl := &plane{base: b, store: p.store}
	a := &agent{base: b, plane: pl}
	a.local = &localResources{base: b, plane: pl, syncs: p.store, net: p.net,
		resources: map[string]status.ResourceView{}, observe: make(chan struct{}, 1), heavy: make(chan struct{}, stepSlots()), promotions: make(chan struct{}, stepSlots())}
	if p.peerAPI != nil {
		a.local.peers = p.peerAPI
	}
	a.presence = &presence{base: b, sessions: p.store,
		client: &http.Client{
			Timeout:   b.topo.Coordination.ProbeTimeout.D(),
			Transport: &http.Transport{TLSClientConfig: p.clientTLS, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second},
		},
		resources: a.local.views, leftovers: a.local.drillLeftovers, peers: map[string]status.PeerView{}, changed: make(chan struct{}, 1)}
	a.deps = &dependencies{base: b, notify: a.presence.notify, state: map[string]depState{}}
	a.presence.dependencies = a.deps.views
	a.force = &forcer{base: b, store: p.store, member: p.member, presence: a.presence, local: a.local}
	if p.member != nil {
		a.presence.raftLeader = a.force.raftLeader
	}
	a.lease = &serveLease{base: b, plane: pl, marks: p.store,
		client: &http.Client{
			Transport: &http.Transport{TLSClientConfig: p.clientTLS, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second,
				DialContext: (&net.Dialer{Timeout: b.topo.Coordination.ServeLease.D()}).DialContext},
		},
		local: a.local, forced: a.force.forced, watchdogExe: p.watchdogExe, watchdogArgs: p.watchdogArgs, dataDir: p.dataDir}
	a.lease.newLeaseState(time.Now())
	a.force.lease = a.lease
	a.local.leaseValid, a.local.notify = a.lease.valid, a.presence.notify
	a.ctl = &controller{base: b, plane: pl, store: p.store, agents: p.peerAPI}
	a.presence.onSession = a.ctl.serve
	a.api = &apiServer{base: b, plane: pl, store: p.store, resolver: p.resolver, caPool: p.caPool, audit: p.audit, heavy: make(semaphore, heavyAtOnce),
		presence: a.presence, lease: a.lease, local: a.local, force: a.force}
	a.api.states = newStateReader(a.api.readStatus)
	statusNow := func() (status.Status, error) {
		_, st, err := a.api.states.state()
		return st, err
	}
	a.api.events = newBroadcaster(feed{
		status:      statusNow,
		runs:        func(ctx context.Context) ([]plan.Run, error) { return a.api.store.RecentRuns(ctx, eventRunCount) },
		unavailable: func(err error) any { return a.api.unavailable(err) },
	}, b.log)
	a.api.lags = newLagHistory(statusNow)
	b.metrics.watch(newDRCollector(b, a.api.states, a.lease))
	return a
}

// siteLogger is the agent's logger: every line carries the agent's own
// location as site, once. A line about another location names it under
// another key: peer (another agent), lost_site, target_site, standby …
// (docs/logs.md).
func siteLogger(l *slog.Logger, site string) *slog.Logger { return l.With("site", site) }

// Run runs the agent of opts.Site until ctx ends; then it resigns, revokes
// its lease so its view vanishes at once, and stops. A stop by ctx
// releases the watchdog the moment it begins; an agent that stops because
// a part failed leaves it armed, and it fences when the lease runs out.
func Run(ctx context.Context, opts Options) (err error) {
	t := opts.Topology
	site, ok := t.Site(opts.Site)
	if !ok {
		return fmt.Errorf("site %q is not in %s (sites: %s)", opts.Site, t.File, strings.Join(t.SiteNames(), ", "))
	}
	log := siteLogger(opts.Logger, site.Name)
	serverTLS, clientTLS, err := tlsConfigs(t, site)
	if err != nil {
		return err
	}
	b := &base{topo: t, site: site, log: log, metrics: newMetrics(), version: opts.Version}
	if t.TLSEnabled() {
		// tlsConfigs read the same file a moment ago: an error here is a
		// file changed since, and only the expiry shown is lost.
		if b.certNotAfter, err = pki.NotAfter(site.TLS.CertFile); err != nil {
			log.Warn("certificate expiry not known; status will not show it", "err", err)
		}
	}
	if b.clockOffset, err = clockOffset(); err != nil {
		return err
	}
	b.started = b.now().UTC()
	p := parts{clientTLS: clientTLS, peerAPI: api.NewClientTLS(t, clientTLS), watchdogExe: opts.WatchdogExe, watchdogArgs: opts.WatchdogArgs, dataDir: opts.DataDir}
	defer p.peerAPI.Close()
	var cnList []string
	cns := map[string]string{}
	if t.TLSEnabled() {
		if cnList, err = siteCNs(t); err != nil {
			return err
		}
		for i, s := range t.Sites {
			cns[s.Name] = cnList[i]
		}
	}
	if p.resolver, err = access.NewResolver(t.TLSEnabled(), cns, t.Access); err != nil {
		return fmt.Errorf("agent of %s: %s: %w", site.Name, t.File, err)
	}
	if serverTLS != nil {
		p.caPool = serverTLS.ClientCAs
	}
	// Listen first: a busy address is the most common mistake, and it
	// should fail before anything else starts.
	refused := func() { b.metrics.connsRefused.Inc() }
	ln, err := listen(site.Agent.Address, apiTLS(serverTLS), refused)
	if err != nil {
		return fmt.Errorf("agent of %s: listen on %s (sites[].agent.address): %w", site.Name, site.Agent.Address, err)
	}
	defer ln.Close()
	peerLn, err := listen(site.Agent.LeaseAddress, peerTLS(serverTLS, cnList), refused)
	if err != nil {
		return fmt.Errorf("agent of %s: listen on %s (sites[].agent.lease_address): %w", site.Name, site.Agent.LeaseAddress, err)
	}
	defer peerLn.Close()

	endpoints := opts.EtcdEndpoints
	if len(endpoints) == 0 && !t.Embedded() {
		endpoints = t.Coordination.EtcdEndpoints
	}
	if len(endpoints) == 0 {
		if opts.DataDir == "" {
			return fmt.Errorf("agent of %s: --data DIR is needed for the embedded etcd member", site.Name)
		}
		peers := map[string]string{}
		for _, s := range t.Sites {
			peers[s.Name] = s.Etcd.PeerURL
		}
		mc := coord.MemberConfig{
			Name: site.Name, Dir: filepath.Join(opts.DataDir, "etcd"),
			PeerURL: site.Etcd.PeerURL, ClientURL: site.Etcd.ClientURL,
			Peers: peers, Token: t.Name,
			Tick: t.Coordination.HeartbeatInterval.D(), Election: t.Coordination.ElectionTimeout.D(),
			Logger: log.With("component", "etcd"),
		}
		if t.TLSEnabled() {
			mc.TLS = &pki.Files{CA: t.TLS.CAFile, Cert: site.TLS.CertFile, Key: site.TLS.KeyFile}
			mc.AllowedCNs = cnList
		}
		// A location declared lost by a force elsewhere rejoins as a new
		// member instead of starting from its old data (member.go).
		if p.member, err = startLocalMember(ctx, t, site, mc, clientTLS, log); err != nil {
			return err
		}
		defer p.member.close(10 * time.Second)
		// Only the local member: the client would otherwise balance
		// requests over every member, and a location cut off from the
		// quorum would keep its presence (and its lease) through a
		// member elsewhere, over the very link that is failing.
		endpoints = []string{site.Etcd.ClientURL}
	}
	if p.store, err = coord.Open(endpoints, clientTLS, t.Name); err != nil {
		return err
	}
	defer p.store.Close()
	p.audit = audit.NewWriter(p.store, log.With("component", "audit"), b.now)
	if p.net, err = driver.NewRuntime(t, site.Name, log); err != nil {
		return err
	}
	defer p.net.Close()

	a := wire(b, p)
	defer a.presence.client.CloseIdleConnections()
	defer a.lease.client.CloseIdleConnections()
	if err := a.local.localDatabases(); err != nil {
		return err
	}
	a.local.localServices()
	apiMux, peerMux, err := a.api.routes()
	if err != nil {
		return err
	}
	observers, err := a.local.observers()
	if err != nil {
		return err
	}
	defer func() {
		for _, o := range observers {
			o.Close()
		}
	}()

	if err := a.lease.startWatchdog(); err != nil {
		return err
	}
	// A clean, deliberate stop releases the watchdog without fencing, the
	// moment it begins; an agent that fails leaves it armed, to fence when
	// the lease runs out.
	ended := make(chan struct{})
	defer close(ended)
	go func() {
		select {
		case <-ctx.Done():
			a.lease.releaseWatchdog()
		case <-ended:
		}
	}()
	defer func() {
		switch {
		case ctx.Err() != nil:
			a.lease.releaseWatchdog() // if the stop's own release has not yet
		case a.lease.guard() != nil:
			log.Warn("the agent stops with an error: its watchdog stays armed and fences the databases when the serve lease runs out", "error", err)
			a.lease.abandonWatchdog()
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		<-gctx.Done()
		if ctx.Err() == nil {
			// A part failed: the others take a while to stop, and clients
			// must not be sent here meanwhile. The watchdog fences the
			// databases when the lease runs out.
			p.net.WithdrawAll()
		}
		return nil
	})
	srv, peerSrv := newServer(cors(agentOrigins(t), apiMux), gctx, log), newServer(peerMux, gctx, log)
	for _, x := range []struct {
		srv  *http.Server
		ln   net.Listener
		addr string
	}{{srv, ln, site.Agent.Address}, {peerSrv, peerLn, site.Agent.LeaseAddress}} {
		g.Go(func() error {
			if err := x.srv.Serve(x.ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("agent api on %s: %w", x.addr, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, s := range []*http.Server{srv, peerSrv} {
			if err := s.Shutdown(sctx); err != nil {
				s.Close() // a client that does not let go is not a reason to hang
			}
		}
		return nil
	})
	loops := []func(context.Context) error{
		p.audit.Run,
		// presence: probes, and the session that carries the view and the
		// controller's candidacy (controller.serve)
		a.presence.probeLoop, a.presence.run,
		// the outside services this site's groups require
		a.deps.run,
		// the serve lease: asking, enforcing, marking
		a.lease.renewLoop, a.lease.enforceLoop, a.lease.markLoop,
		// the local resources
		func(ctx context.Context) error { return a.local.observeLoop(ctx, observers) },
		a.local.syncLoop, a.local.convergeLoop, a.local.convergeLocal, a.local.convergeServices, a.local.checkServers, a.local.sweepLoop,
		// the dashboard: its live feed (reading only while a page
		// listens) and the lag history
		a.api.events.run, a.api.lags.run,
	}
	if failpointSlowStop() {
		loops = append(loops, func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(time.Second)
			return nil
		})
	}
	if p.member != nil {
		// the embedded etcd member and forcing
		loops = append(loops, a.force.watchMember, a.force.forcedLoop, a.force.watchLeader)
	}
	for _, loop := range loops {
		g.Go(func() error { return loop(gctx) })
	}
	log.Info("agent started", "api", site.Agent.Address, "lease", site.Agent.LeaseAddress, "tls", t.TLSEnabled(), "etcd", endpoints)
	stopped := make(chan struct{})
	go func() {
		// Some calls into etcd ignore cancellation (the election library
		// resigns with the client's own context): without a quorum they
		// would hold the stop for ever. Closing the client ends them.
		<-gctx.Done()
		select {
		case <-stopped:
		case <-time.After(stopGrace):
			log.Warn("the agent's loops did not stop in time; closing its etcd client", "after", stopGrace)
			p.store.Close()
		}
	}()
	err = g.Wait()
	close(stopped)
	log.Info("agent stopped", "error", err)
	return err
}

// stopGrace is how long the agent's loops get to end once it stops.
const stopGrace = 5 * time.Second

// tlsConfigs returns the agent's server and client TLS configurations, or
// nils when the topology runs without TLS.
func tlsConfigs(t *config.Topology, s *config.Site) (server, client *tls.Config, err error) {
	if !t.TLSEnabled() {
		return nil, nil, nil
	}
	// This location's own files, in the topology's terms (FILE:LINE:COL),
	// before anything uses them; the other locations' are not needed here.
	if probs := t.CheckCredentials([]string{s.Name}, nil, ""); len(probs) > 0 {
		lines := make([]string, len(probs))
		for i, p := range probs {
			lines[i] = p.String()
		}
		return nil, nil, fmt.Errorf("agent of %s: %s", s.Name, strings.Join(lines, "\n"))
	}
	f := pki.Files{CA: t.TLS.CAFile, Cert: s.TLS.CertFile, Key: s.TLS.KeyFile}
	if server, err = pki.ServerConfig(f); err != nil {
		return nil, nil, fmt.Errorf("agent of %s: %w", s.Name, err)
	}
	if client, err = pki.ClientConfig(f, ""); err != nil {
		return nil, nil, fmt.Errorf("agent of %s: %w", s.Name, err)
	}
	return server, client, nil
}

// siteCNs returns the common names of the locations' certificates: the
// identities the etcd members accept. A location's certificate names the
// location (docs/certificates.md; the topology's validation checks each
// certificate that is present), so a machine that holds only its own
// location's files takes each other location's name as its common name.
func siteCNs(t *config.Topology) ([]string, error) {
	var cns []string
	for _, s := range t.Sites {
		pem, err := os.ReadFile(s.TLS.CertFile)
		if errors.Is(err, fs.ErrNotExist) {
			cns = append(cns, s.Name)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("certificate of %s: %w", s.Name, err)
		}
		cn, err := pki.CommonName(pem)
		if err != nil {
			return nil, fmt.Errorf("certificate of %s (%s): %w", s.Name, s.TLS.CertFile, err)
		}
		cns = append(cns, cn)
	}
	return cns, nil
}
