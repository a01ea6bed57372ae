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

	"github.com/siteflip/siteflip/internal/api"
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

	lease       *leases
	leaseClient *http.Client    // asks the other locations for the lease
	guard       *watchdog.Guard // nil without a watchdog

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
// its lease so its view vanishes at once, and stops.
func Run(ctx context.Context, opts Options) error {
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
	// Listen first: a busy address is the most common mistake, and it
	// should fail before anything else starts.
	ln, err := net.Listen("tcp", site.Agent.Address)
	if err != nil {
		return fmt.Errorf("agent of %s: listen on %s (sites[].agent.address): %w", site.Name, site.Agent.Address, err)
	}
	if serverTLS != nil {
		ln = tls.NewListener(ln, serverTLS)
	}
	defer ln.Close()

	endpoints := opts.EtcdEndpoints
	if len(endpoints) == 0 && !t.Embedded() {
		endpoints = t.Coordination.EtcdEndpoints
	}
	var member *localMember
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
			mc.AllowedCNs, err = siteCNs(t)
			if err != nil {
				return err
			}
		}
		// A location declared lost by a force elsewhere rejoins as a new
		// member instead of starting from its old data (force.go).
		member, err = startLocalMember(ctx, t, site, mc, clientTLS, log)
		if err != nil {
			return err
		}
		defer member.close(10 * time.Second)
		// Only the local member: the client would otherwise balance
		// requests over every member, and a location cut off from the
		// quorum would keep its presence (and its lease) through a
		// member elsewhere, over the very link that is failing.
		endpoints = []string{site.Etcd.ClientURL}
	}
	store, err := coord.Open(endpoints, clientTLS, t.Name)
	if err != nil {
		return err
	}
	defer store.Close()

	a := &agent{
		opts: opts, topo: t, site: site, log: log, store: store,
		client: &http.Client{
			Timeout:   t.Coordination.ProbeTimeout.D(),
			Transport: &http.Transport{TLSClientConfig: clientTLS, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second},
		},
		peerAPI: api.NewClientTLS(t, clientTLS),
		lease:   newLeases(t.Sites, time.Now()),
		leaseClient: &http.Client{
			Transport: &http.Transport{TLSClientConfig: clientTLS, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second,
				DialContext: (&net.Dialer{Timeout: t.Coordination.ServeLease.D()}).DialContext},
		},
		member:    member,
		metrics:   newMetrics(),
		started:   time.Now().UTC(),
		peers:     map[string]status.PeerView{},
		resources: map[string]status.ResourceView{},
		changed:   make(chan struct{}, 1),
		observe:   make(chan struct{}, 1),
	}
	defer a.client.CloseIdleConnections()
	defer a.leaseClient.CloseIdleConnections()
	defer a.peerAPI.Close()
	if t.TLSEnabled() {
		if a.siteCNs, err = siteCNs(t); err != nil {
			return err
		}
		a.siteCN = map[string]string{}
		for i, s := range t.Sites {
			a.siteCN[s.Name] = a.siteCNs[i]
		}
	}
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

	g, gctx := errgroup.WithContext(ctx)
	srv := &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		// Requests in flight end with the agent, not after it.
		BaseContext: func(net.Listener) context.Context { return gctx },
		// Failed handshakes (a client without a certificate) are the
		// client's problem; keep them out of the agent's log.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("agent api on %s: %w", site.Agent.Address, err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close() // a client that does not let go is not a reason to hang
		}
		return nil
	})
	if member != nil {
		g.Go(func() error { return a.watchMember(gctx) })
		g.Go(func() error { return a.forcedLoop(gctx) })
	}
	g.Go(func() error { return a.probeLoop(gctx) })
	g.Go(func() error { return a.observeLoop(gctx, observers) })
	g.Go(func() error { return a.presenceLoop(gctx) })
	if err := a.startWatchdog(); err != nil {
		return err
	}
	// A clean stop releases the watchdog without fencing; a crash leaves
	// it to fence when the lease runs out.
	defer func() {
		if a.guard != nil {
			a.guard.Release()
		}
	}()
	g.Go(func() error { return a.renewLoop(gctx) })
	g.Go(func() error { return a.enforceLoop(gctx) })
	g.Go(func() error { return a.markLoop(gctx) })
	g.Go(func() error { return a.syncLoop(gctx) })
	g.Go(func() error { return a.convergeLoop(gctx) })
	log.Info("agent started", "api", site.Agent.Address, "tls", t.TLSEnabled(), "etcd", endpoints)
	err = g.Wait()
	log.Info("agent stopped")
	return err
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
		StartedAt: a.started, PublishedAt: time.Now().UTC(),
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
