// Package agent runs one location: its embedded etcd member, its presence in
// the control plane (a view of itself and of the others, under a lease), its
// candidacy for controller, the observation of its own resources, and its
// HTTP API. Run wires these parts once and runs them until the context ends.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/siteflip/siteflip/internal/access"
	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/pki"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/watchdog"
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
}

// agent is the running state of one location.
type agent struct {
	opts    Options
	topo    *config.Topology
	site    *config.Site
	log     *slog.Logger
	store   *coord.Store
	client  *http.Client // probes other agents
	metrics *metrics
	started time.Time

	// peerAPI calls the other agents with this location's certificate
	// (the controller sends steps with it).
	peerAPI *api.Client
	// siteCNs are the certificate names of the locations; siteCN maps a
	// location to its name.
	siteCNs []string
	siteCN  map[string]string

	net *driver.Runtime // this site's network resources (BGP speakers, DNS servers)

	// resolver tells who calls; audit records what they asked; heavy
	// bounds the requests that read the whole control plane.
	resolver *access.Resolver
	audit    *audit.Writer
	heavy    semaphore

	// guards are the local databases to fence when the lease runs out;
	// locals those on this machine, kept in line with their records.
	guards map[string]watchdog.Target
	locals map[string]driver.Local

	lease       *leases
	leaseClient *http.Client    // asks the other locations for the lease
	watchdog    *watchdog.Guard // nil without a watchdog

	// clockOffset shifts the wall clock (a test hook, clock.go); views
	// measures how long ago each location's view last changed, on this
	// machine's monotonic clock.
	clockOffset time.Duration
	views       viewClock

	// member is the embedded etcd member, nil with an existing cluster;
	// force is whether this location runs the control plane alone by a
	// person's decision (force.go).
	member *localMember
	force  forceState

	mu        sync.Mutex
	locks     map[string]*sync.Mutex // one step at a time per resource
	peers     map[string]status.PeerView
	resources map[string]status.ResourceView
	changed   chan struct{} // a change worth publishing at once
	observe   chan struct{} // observe the resources now (a step changed them)
}

// Run runs the agent of opts.Site until ctx ends; then it resigns, revokes
// its lease so its view vanishes at once, and stops. Only a stop by ctx
// with no error releases the watchdog; after an error the watchdog stays
// armed and fences when the lease runs out.
func Run(ctx context.Context, opts Options) (err error) {
	t := opts.Topology
	site, ok := t.Site(opts.Site)
	if !ok {
		return fmt.Errorf("site %q is not in %s (sites: %s)", opts.Site, t.File, strings.Join(t.SiteNames(), ", "))
	}
	log := opts.Logger.With("site", site.Name)
	serverTLS, clientTLS, err := tlsConfigs(t, site)
	if err != nil {
		return err
	}
	a := &agent{
		opts: opts, topo: t, site: site, log: log,
		lease: newLeases(t, time.Now()),
		leaseClient: &http.Client{
			Transport: &http.Transport{TLSClientConfig: clientTLS, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second,
				DialContext: (&net.Dialer{Timeout: t.Coordination.ServeLease.D()}).DialContext},
		},
		client: &http.Client{
			Timeout:   t.Coordination.ProbeTimeout.D(),
			Transport: &http.Transport{TLSClientConfig: clientTLS, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second},
		},
		peerAPI:   api.NewClientTLS(t, clientTLS),
		metrics:   newMetrics(),
		heavy:     make(semaphore, heavyAtOnce),
		peers:     map[string]status.PeerView{},
		resources: map[string]status.ResourceView{},
		changed:   make(chan struct{}, 1),
		observe:   make(chan struct{}, 1),
	}
	defer a.client.CloseIdleConnections()
	defer a.leaseClient.CloseIdleConnections()
	defer a.peerAPI.Close()
	if a.clockOffset, err = clockOffset(); err != nil {
		return err
	}
	a.started = a.now().UTC()
	cns := map[string]string{}
	if t.TLSEnabled() {
		if a.siteCNs, err = siteCNs(t); err != nil {
			return err
		}
		a.siteCN = map[string]string{}
		for i, s := range t.Sites {
			a.siteCN[s.Name] = a.siteCNs[i]
			cns[s.Name] = a.siteCNs[i]
		}
	}
	if a.resolver, err = access.NewResolver(t.TLSEnabled(), cns, t.Access); err != nil {
		return fmt.Errorf("agent of %s: %s: %w", site.Name, t.File, err)
	}
	if err := a.localDatabases(); err != nil {
		return err
	}
	apiMux, peerMux, err := a.routes()
	if err != nil {
		return err
	}
	// Listen first: a busy address is the most common mistake, and it
	// should fail before anything else starts.
	refused := func() { a.metrics.connsRefused.Inc() }
	ln, err := listen(site.Agent.Address, serverTLS, refused)
	if err != nil {
		return fmt.Errorf("agent of %s: listen on %s (sites[].agent.address): %w", site.Name, site.Agent.Address, err)
	}
	defer ln.Close()
	peerLn, err := listen(site.Agent.LeaseAddress, peerTLS(serverTLS, a.siteCNs), refused)
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
			mc.AllowedCNs = a.siteCNs
		}
		// A location declared lost by a force elsewhere rejoins as a new
		// member instead of starting from its old data (force.go).
		if a.member, err = startLocalMember(ctx, t, site, mc, clientTLS, log); err != nil {
			return err
		}
		defer a.member.close(10 * time.Second)
		// Only the local member: the client would otherwise balance
		// requests over every member, and a location cut off from the
		// quorum would keep its presence (and its lease) through a
		// member elsewhere, over the very link that is failing.
		endpoints = []string{site.Etcd.ClientURL}
	}
	if a.store, err = coord.Open(endpoints, clientTLS, t.Name); err != nil {
		return err
	}
	defer a.store.Close()
	a.audit = audit.NewWriter(a.store, log.With("component", "audit"), a.now)

	if a.net, err = driver.NewRuntime(t, site.Name); err != nil {
		return err
	}
	defer a.net.Close()
	observers, err := a.observers()
	if err != nil {
		return err
	}
	defer func() {
		for _, o := range observers {
			o.Close()
		}
	}()

	if err := a.startWatchdog(); err != nil {
		return err
	}
	// A clean, deliberate stop releases the watchdog without fencing; an
	// agent that fails leaves it armed, to fence when the lease runs out.
	defer func() {
		switch {
		case a.watchdog == nil:
		case err == nil && ctx.Err() != nil:
			a.watchdog.Release()
		default:
			log.Warn("the agent stops with an error: its watchdog stays armed and fences the databases when the serve lease runs out", "error", err)
			a.watchdog.Abandon()
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		<-gctx.Done()
		if ctx.Err() == nil {
			// A part failed: the others take a while to stop, and clients
			// must not be sent here meanwhile. The watchdog fences the
			// databases when the lease runs out.
			a.net.WithdrawAll()
		}
		return nil
	})
	srv, peerSrv := newServer(apiMux, gctx, log), newServer(peerMux, gctx, log)
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
	if a.member != nil {
		g.Go(func() error { return a.watchMember(gctx) })
		g.Go(func() error { return a.forcedLoop(gctx) })
	}
	g.Go(func() error { return a.audit.Run(gctx) })
	g.Go(func() error { return a.probeLoop(gctx) })
	g.Go(func() error { return a.observeLoop(gctx, observers) })
	g.Go(func() error { return a.presenceLoop(gctx) })
	g.Go(func() error { return a.renewLoop(gctx) })
	g.Go(func() error { return a.enforceLoop(gctx) })
	g.Go(func() error { return a.markLoop(gctx) })
	g.Go(func() error { return a.leadFromWitness(gctx) })
	g.Go(func() error { return a.syncLoop(gctx) })
	g.Go(func() error { return a.convergeLoop(gctx) })
	g.Go(func() error { return a.convergeLocal(gctx) })
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
			a.store.Close()
		}
	}()
	err = g.Wait()
	close(stopped)
	log.Info("agent stopped", "error", err)
	return err
}

// stopGrace is how long the agent's loops get to end once it stops.
const stopGrace = 5 * time.Second

// localDatabases finds the databases this agent fences when its lease runs
// out, and those on its machine that it keeps in line with their records.
// A database it could not fence is an error: the agent does not start.
func (a *agent) localDatabases() error {
	a.guards, a.locals = map[string]watchdog.Target{}, map[string]driver.Local{}
	for i := range a.topo.Groups {
		g := &a.topo.Groups[i]
		for j := range g.Resources {
			r := &g.Resources[j]
			t, ok, err := driver.GuardTarget(g, r, a.site.Name)
			if err != nil {
				return fmt.Errorf("agent of %s: %w", a.site.Name, err)
			}
			if !ok {
				continue
			}
			a.guards[t.Name] = t
			if l, ok := driver.NewLocal(g, r, a.site.Name); ok {
				a.locals[t.Name] = l
			}
		}
	}
	return nil
}

// tlsConfigs returns the agent's server and client TLS configurations, or
// nils when the topology runs without TLS.
func tlsConfigs(t *config.Topology, s *config.Site) (server, client *tls.Config, err error) {
	if !t.TLSEnabled() {
		return nil, nil, nil
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

// observers returns an observer for every resource that lives at this site.
func (a *agent) observers() (map[string]driver.Observer, error) {
	out := map[string]driver.Observer{}
	for i := range a.topo.Groups {
		g := &a.topo.Groups[i]
		for j := range g.Resources {
			r := &g.Resources[j]
			if _, here := r.Settings[a.site.Name]; !here {
				continue
			}
			o, err := driver.NewObserver(a.net, g, r, a.site.Name)
			if err != nil {
				return nil, err
			}
			out[g.Name+"/"+r.Name] = o
		}
	}
	return out, nil
}

// notify asks the presence loop to publish the view now.
func (a *agent) notify() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// view returns the location's current view.
func (a *agent) view() status.View {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := status.View{
		Site: a.site.Name, Role: a.site.Role, Version: a.opts.Version,
		StartedAt: a.started, PublishedAt: a.now().UTC(),
		Peers:     make(map[string]status.PeerView, len(a.peers)),
		Resources: make(map[string]status.ResourceView, len(a.resources)),
	}
	for k, p := range a.peers {
		v.Peers[k] = p
	}
	for k, r := range a.resources {
		v.Resources[k] = r
	}
	return v
}

// siteCNs returns the common names of the locations' certificates: the
// identities the etcd members accept.
func siteCNs(t *config.Topology) ([]string, error) {
	var cns []string
	for _, s := range t.Sites {
		pem, err := os.ReadFile(s.TLS.CertFile)
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
