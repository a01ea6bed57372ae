// Package lab builds a complete siteflip installation on this one machine:
// two sites and a witness on their own loopback addresses, each a separate
// agent process with its own etcd member, mutual TLS from a throwaway CA, a
// PostgreSQL primary at brussels with a streaming standby at antwerp, and a
// demo writer that keeps inserting orders; with Options.Stack, a web stack
// in front of that database (stack.go); with Options.Sites 3, three sites
// and no witness, the third, liege, with a second standby. It can kill a
// whole location at once like a power cut, bring it back, and remove
// everything it made.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/driver/haproxy"
	"github.com/siteflip/siteflip/internal/driver/postgres"
	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/pki"
	"github.com/siteflip/siteflip/internal/status"
)

// DefaultDir is where the lab lives unless told otherwise. It is outside
// any home directory because the postgres OS user must reach its data.
const DefaultDir = "/tmp/siteflip-lab"

// Options configure lab commands.
type Options struct {
	Dir string
	// Exe is the siteflip binary the lab runs for agents and the writer.
	Exe string
	Out io.Writer
	// ReadyTimeout bounds how long Up waits for the lab to be healthy.
	ReadyTimeout time.Duration
	// AgentEnv is added to the agents' environment (test hooks such as
	// SITEFLIP_FAILPOINT); heal uses the same.
	AgentEnv []string
	// SiteEnv is added to one location's agent only (a clock offset).
	SiteEnv map[string][]string
	// Net, when set, is a network with one namespace per location
	// (NetNames): each location runs in its own, on its own address, and
	// the clients (the demo writer, the CLI) reach them from the root
	// namespace over the bridge. NetOwned makes down remove it.
	Net      *netns.Net
	NetOwned bool
	// Synchronous makes the demo database synchronous; FlapPeriod, when
	// set, replaces the group's flap_period (benchmarks fail over again
	// and again on purpose).
	Synchronous bool
	FlapPeriod  time.Duration
	// Policy replaces the group's policy (automatic by default).
	Policy string
	// DB says which databases the lab runs (DBPostgres, DBMariaDB, DBBoth):
	// the webshop group on PostgreSQL, the news group on MariaDB. Empty:
	// PostgreSQL alone. In the scale lab (Groups) it says what each of
	// its groups holds instead: nothing (DBNone, or empty) or a
	// PostgreSQL database (DBPostgres).
	DB string
	// Unpassable adds to webshop a check that can never pass (a TCP
	// connection to a port nobody listens on): tests of what a failing
	// check does.
	Unpassable bool
	// Stack runs webshop as a whole web stack (stack.go): a storage
	// script, an app service per site, HAProxy in front when it is
	// installed, and a web writer ordering through it. It needs the
	// webshop group (PostgreSQL).
	Stack bool
	// Approval (with Stack) makes every run of webshop wait for a
	// person's approval once the storage is read-write, before the app
	// starts.
	Approval bool
	// Groups makes the lab the scale lab: that many groups and no other,
	// all preferring brussels, each a name (svc-NNNN.scale.lab.) that
	// every agent answers, on its site's one DNS listener, with the
	// active site's address. With DB postgres each (pg-NNNN) also holds a
	// small PostgreSQL database of its own, a primary at brussels and a
	// standby at each other site, on port 15432+N of each site's address
	// (scaleDB), and the name (pg-NNNN.scale.lab.) depends on it.
	Groups int
	// ServeLease, when set, replaces the topology's serve_lease (and so
	// how soon a site that hears from no other fences itself, and how
	// soon the others may declare it lost): benchmarks weigh it against
	// the load of many databases on one machine.
	ServeLease time.Duration
	// Sites is the number of sites: 2 (or 0), brussels and antwerp with
	// the witness frankfurt; or 3, brussels, antwerp and liege without a
	// witness, webshop and news with a standby (a replica) at each of the
	// other two. Three sites run no web stack and no synchronous database.
	Sites int
}

// checkSites refuses a number of sites the lab does not have, and what a
// lab of three sites does not run.
func (o Options) checkSites() error {
	switch o.Sites {
	case 0, 2:
		return nil
	case 3:
	default:
		return fmt.Errorf("--sites %d: the lab has 2 sites (brussels, antwerp) or 3 (adding liege): use --sites 2 or --sites 3", o.Sites)
	}
	switch {
	case o.Stack:
		return fmt.Errorf("--sites 3 runs webshop without its web stack (its proxy takes 127.0.4.1, liege's address): add --stack=false, or run two sites for the stack")
	case o.Synchronous:
		return fmt.Errorf("--sites 3: a synchronous database confirms each commit at one standby, so it needs exactly two sites; run three sites asynchronous, or two sites synchronous")
	}
	return nil
}

// ErrRunning is returned by Up when a lab already runs in the directory.
var ErrRunning = errors.New("a lab is already running")

// Up creates and starts a lab in o.Dir and waits until it is healthy: every
// location up, a controller, the groups adopted with their standbys
// streaming.
func Up(ctx context.Context, o Options) error {
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	withPG, withMaria, scalePG, err := o.dbs()
	if err != nil {
		return err
	}
	if err := o.checkSites(); err != nil {
		return err
	}
	st := &state{Dir: dir, CreatedAt: time.Now().UTC(), AgentEnv: o.AgentEnv, SiteEnv: o.SiteEnv, Sites: o.Sites}
	var dbs []pgDB // the lab's PostgreSQL databases
	if withPG {
		dbs = append(dbs, webshopDB)
	}
	if scalePG {
		st.PGGroups = o.Groups
		for i := 1; i <= o.Groups; i++ {
			dbs = append(dbs, scaleDB(i))
		}
	}
	if o.Net != nil {
		if st.Net, err = newNetState(o.Net, o.NetOwned, labLocations(o.Sites)); err != nil {
			return err
		}
	}
	var addrs []string
	if o.Net == nil {
		addrs = addresses(st.locs(), st.PGGroups) // fresh namespaces: nothing listens there yet
	}
	var proxyBin string
	if withPG && o.Net == nil {
		for _, l := range st.locs() {
			if l.postgres {
				addrs = append(addrs, l.addr(ldapPort))
			}
		}
	}
	if o.Stack {
		if !withPG {
			return fmt.Errorf("the web stack runs in front of webshop, on PostgreSQL: run the lab with --db postgres or both and without --groups, or without the stack (--stack=false)")
		}
		proxyBin, _ = haproxy.Binary() // none: a stack without a proxy
		st.Stack = newStackState(st.locs(), proxyBin != "")
		st.Stack.Approval = o.Approval
		addrs = append(addrs, st.Stack.addresses(o.Net == nil)...)
	}
	if err := preflight(dir, addrs); err != nil {
		return err
	}
	binDir := pgBinDir()
	if binDir == "" && len(dbs) > 0 {
		return fmt.Errorf("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: install them with `apt-get install postgresql-15` (`make lab` does this when run as root), or run the lab with --db mariadb")
	}
	if withMaria {
		if err := MariaDBAvailable(); err != nil {
			return fmt.Errorf("--db %s: %w", o.DB, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create lab directory: %w", err)
	}
	// The postgres OS user must traverse dir to reach its data directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if err := st.save(); err != nil {
		return fmt.Errorf("create lab directory: %w", err)
	}
	fail := func(err error) error {
		run := st.running()
		for _, l := range st.locs() {
			run = union(run, st.apps(l.name))
		}
		st.stop(run, 10*time.Second)
		st.Processes = nil
		_ = st.save()
		return fmt.Errorf("%w\nthe lab did not come up; its logs are in %s (agent.log, pg*/postgres.log per location); `siteflip lab down --dir %s` removes it", err, dir, dir)
	}
	fmt.Fprintf(o.Out, "creating the lab in %s\n", dir)
	if o.Net != nil {
		if err := st.makeBubbles(ctx, o.Net); err != nil {
			return fail(err)
		}
	}
	t, err := writeFiles(dir, binDir, st.locs(), groupOptions{synchronous: o.Synchronous, flapPeriod: o.FlapPeriod, policy: o.Policy, net: st.Net,
		postgres: withPG, mariadb: withMaria, unpassable: o.Unpassable, stack: st.Stack, exe: o.Exe, groups: o.Groups, scalePostgres: scalePG, serveLease: o.ServeLease})
	if err != nil {
		return fail(err)
	}
	// The service address must be on the sites before their databases
	// start listening on it.
	if err := st.startRouter(ctx); err != nil {
		return fail(err)
	}
	if len(dbs) > 0 {
		if err := startDatabases(ctx, st, t, o, dbs); err != nil {
			return fail(err)
		}
	}
	if withMaria {
		if err := startMariaDBs(ctx, st, t, o); err != nil {
			return fail(err)
		}
	}
	if st.Stack != nil {
		g, _ := t.Group(demoGroup)
		if err := st.startStack(ctx, o, g.PreferredSite, proxyBin); err != nil {
			return fail(err)
		}
	}
	for _, l := range st.locs() {
		if err := startAgent(st, o.Exe, l.name); err != nil {
			return fail(err)
		}
	}
	fmt.Fprintf(o.Out, "started agents of %s\n", strings.Join(t.SiteNames(), ", "))
	if withPG {
		if err := st.startLDAP(ctx, o.Exe, ldapSite); err != nil {
			return fail(err)
		}
		st.LDAP = []string{ldapSite}
		if err := st.save(); err != nil {
			return fail(err)
		}
		fmt.Fprintf(o.Out, "started the directory (ldap) that webshop requires, at %s only\n", ldapSite)
	}
	if withPG {
		if _, err := st.start("", "writer", exec.Command(o.Exe, "lab", "writer", "--dir", dir), filepath.Join(dir, "writer.log")); err != nil {
			return fail(err)
		}
		fmt.Fprintln(o.Out, "started the demo writer of webshop (log: writer.log)")
	}
	if withMaria {
		if _, err := st.start("", "writer", exec.Command(o.Exe, "lab", "writer", "--dir", dir, "--group", newsGroup), filepath.Join(dir, "news-writer.log")); err != nil {
			return fail(err)
		}
		fmt.Fprintln(o.Out, "started the demo writer of news (log: news-writer.log)")
	}
	if st.Stack != nil {
		urls := st.Stack.urls(st.locs())
		if _, err := st.start("", "web-writer", exec.Command(o.Exe, "lab", "writer", "--dir", dir, "--http", strings.Join(urls, ",")), filepath.Join(dir, "web-writer.log")); err != nil {
			return fail(err)
		}
		fmt.Fprintf(o.Out, "started the web writer of webshop, ordering at %s (log: web-writer.log)\n", strings.Join(urls, " or "))
	}
	timeout := o.ReadyTimeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	if err := waitHealthy(ctx, t, timeout, o.Out); err != nil {
		return fail(err)
	}
	printNext(o.Out, dir, o.Exe, st.locs(), withPG, withMaria, st.Stack, o.Groups, scalePG)
	return nil
}

// preflight refuses to start over a running lab, in a directory that is not
// a lab, or when one of addrs, addresses the lab needs, is taken.
func preflight(dir string, addrs []string) error {
	if st, err := loadState(dir); err == nil {
		if run := st.running(); len(run) > 0 {
			return fmt.Errorf("%w in %s: %s; see it with `siteflip --config %s status`, or stop it with `siteflip lab down --dir %s`",
				ErrRunning, dir, names(run), filepath.Join(dir, "siteflip.yaml"), dir)
		}
		return fmt.Errorf("%s holds a lab that is not running: `siteflip lab down --dir %s` removes it, then run up again", dir, dir)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not a lab directory: choose another --dir or remove it", dir)
	}
	var busy []string
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			busy = append(busy, fmt.Sprintf("  %s: %v", addr, unwrapOp(err)))
			continue
		}
		ln.Close()
	}
	if len(busy) > 0 {
		return fmt.Errorf("addresses the lab needs are taken:\n%s\nstop what listens there (`ss -ltnp` shows it) and try again", strings.Join(busy, "\n"))
	}
	return nil
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// pgBinDir is the newest installed PostgreSQL's bin directory, or "".
func pgBinDir() string {
	var s postgres.Settings
	s.SetDefaults("probe")
	return s.BinDir
}

// writeFiles writes the certificates, the secrets and the topology, and
// loads the topology back: the lab runs exactly what `siteflip check`
// accepts.
func writeFiles(dir, binDir string, locs []location, gopts groupOptions) (*config.Topology, error) {
	var ids []pki.Identity
	for _, l := range locs {
		// etcd checks that a peer's certificate names the address the peer
		// connects from, and on loopback every location connects from
		// 127.0.0.1 whatever address it listens on.
		ips := []net.IP{net.ParseIP(l.ip), net.IPv4(127, 0, 0, 1)}
		ids = append(ids, pki.Identity{Name: l.name, IPs: ips, DNS: []string{l.name}})
	}
	// The CLI's credential (an admin), and one of each other role for
	// trying the access table out: siteflip --cert pki/lab-viewer.crt …
	for _, id := range labIdentities {
		ids = append(ids, pki.Identity{Name: id.name})
	}
	if _, err := pki.GenerateLab(filepath.Join(dir, "pki"), "siteflip lab CA", ids); err != nil {
		return nil, err
	}
	secrets := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		return nil, err
	}
	for _, name := range append([]string{"postgres.password", "replication.password"}, mariadbSecrets...) {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(randomSecret()+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(dir, "siteflip.yaml")
	if err := os.WriteFile(path, []byte(topologyYAML(dir, binDir, locs, gopts)), 0o644); err != nil {
		return nil, err
	}
	t, err := config.Load(path, driver.Types())
	if err != nil {
		return nil, fmt.Errorf("the lab wrote a topology it cannot load: %w", err)
	}
	return t, nil
}

func randomSecret() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// instance returns the server of group's PostgreSQL database at site.
func (st *state) instance(t *config.Topology, group, site string) (postgres.Instance, bool) {
	g, ok := t.Group(group)
	if !ok {
		return postgres.Instance{}, false
	}
	for _, r := range g.Resources {
		if s, ok := r.Settings[site].(*postgres.Settings); ok && r.Name == demoResource {
			return postgres.Instance{Settings: *s, Site: site, LogFile: filepath.Join(filepath.Dir(s.DataDir), "postgres.log"), ClientNets: st.clientNets()}, true
		}
	}
	return postgres.Instance{}, false
}

// instances returns every PostgreSQL server of the lab at site by its
// group: webshop's, or the scale lab's groups'.
func (st *state) instances(t *config.Topology, site string) map[string]postgres.Instance {
	out := map[string]postgres.Instance{}
	for _, g := range t.Groups {
		if in, ok := st.instance(t, g.Name, site); ok {
			out[g.Name] = in
		}
	}
	return out
}

// dbStarts is how many databases lab up and heal start at once: the
// scale lab's dozens of servers come up in a fraction of the time one
// after the other takes, without an initdb per core starving the rest.
const dbStarts = 4

// startDatabases creates and starts the lab's PostgreSQL databases,
// dbStarts at a time, each as startDatabase does.
func startDatabases(ctx context.Context, st *state, t *config.Topology, o Options, dbs []pgDB) error {
	began := time.Now()
	var mu sync.Mutex // o.Out is shared
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(dbStarts)
	for _, d := range dbs {
		eg.Go(func() error {
			return startDatabase(ctx, st, t, d, o.Exe, func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				fmt.Fprintf(o.Out, format, args...)
			})
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	if len(dbs) > 1 {
		fmt.Fprintf(o.Out, "started %d PostgreSQL databases in %s\n", len(dbs), time.Since(began).Round(100*time.Millisecond))
	}
	return nil
}

// startDatabase makes the group's preferred site (brussels) the
// primary of its database d and the server at each of its other sites
// (antwerp; liege with three sites) a standby streaming from it.
func startDatabase(ctx context.Context, st *state, t *config.Topology, d pgDB, exe string, printf func(string, ...any)) error {
	g, ok := t.Group(d.group)
	if !ok {
		return fmt.Errorf("the lab topology has no group %s", d.group)
	}
	primary, _ := st.instance(t, d.group, g.PreferredSite)
	var standbys []postgres.Instance
	for _, site := range g.Sites {
		if in, ok := st.instance(t, d.group, site); ok && site != g.PreferredSite {
			standbys = append(standbys, in)
		}
	}
	superPW, err := primary.Settings.Password()
	if err != nil {
		return err
	}
	replPW, err := primary.Settings.ReplicationPassword()
	if err != nil {
		return err
	}
	for _, in := range append([]postgres.Instance{primary}, standbys...) {
		if err := os.MkdirAll(filepath.Dir(in.Settings.DataDir), 0o755); err != nil {
			return err
		}
	}
	ictx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := st.initDatabase(ictx, exe, d.group, primary, func() error { return primary.InitPrimary(ictx, superPW, replPW) }); err != nil {
		return err
	}
	if d.small {
		// Before the standbys are cloned, which copies the file.
		if err := appendConf(primary.Settings.DataDir, smallConf); err != nil {
			return err
		}
	}
	if err := startPostgres(ictx, st, primary); err != nil {
		return err
	}
	// From now on it comes up read-only if anything but its agent starts it.
	if err := postgres.EnsureBootGuard(primary.Settings.DataDir); err != nil {
		return err
	}
	servers := []string{fmt.Sprintf("primary at %s (%s:%d)", primary.Site, primary.Settings.Host, primary.Settings.Port)}
	for _, standby := range standbys {
		if err := st.initDatabase(ictx, exe, d.group, standby, func() error { return standby.CloneStandby(ictx, primary.Settings, replPW) }); err != nil {
			return err
		}
		if err := startPostgres(ictx, st, standby); err != nil {
			return err
		}
		servers = append(servers, fmt.Sprintf("standby at %s (%s:%d)", standby.Site, standby.Settings.Host, standby.Settings.Port))
	}
	printf("started PostgreSQL of %s: %s, streaming from %s\n", d.group, strings.Join(servers, ", "), primary.Site)
	return nil
}

// appendConf adds conf to the postgresql.conf of the cluster in dataDir.
func appendConf(dataDir, conf string) error {
	f, err := os.OpenFile(filepath.Join(dataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(conf)
	return errors.Join(err, f.Close())
}

func startPostgres(ctx context.Context, st *state, in postgres.Instance) error {
	// A killed postmaster that nobody reaped yet still holds the lock file.
	if err := in.PrepareStart(ctx); err != nil {
		return err
	}
	if _, err := st.start(in.Site, "postgres", st.wrap(in.Site, in.ServerCommand()), ""); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return postgres.WaitReady(wctx, in.Settings)
}

func startAgent(st *state, exe, site string) error {
	siteDir := filepath.Join(st.Dir, site)
	if err := os.MkdirAll(siteDir, 0o755); err != nil {
		return err
	}
	cmd := exec.Command(exe, "agent", "--config", filepath.Join(st.Dir, "siteflip.yaml"), "--site", site, "--data", siteDir)
	cmd.Env = append(append(os.Environ(), st.AgentEnv...), st.SiteEnv[site]...)
	_, err := st.start(site, "agent", st.wrap(site, cmd), filepath.Join(siteDir, "agent.log"))
	return err
}

// Open returns the topology of the lab in dir and a client of its agents,
// authenticated with the lab's operator certificate.
func Open(dir string) (*config.Topology, *api.Client, error) {
	t, err := config.Load(filepath.Join(dir, "siteflip.yaml"), driver.Types())
	if err != nil {
		return nil, nil, err
	}
	c, err := api.NewClient(t)
	if err != nil {
		return nil, nil, err
	}
	return t, c, nil
}

// waitHealthy polls the status until the lab is whole, printing progress.
func waitHealthy(ctx context.Context, t *config.Topology, timeout time.Duration, out io.Writer) error {
	c, err := api.NewClient(t)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "no location answers yet"
	fmt.Fprintf(out, "waiting: %s\n", last)
	st, err := c.Wait(ctx, 300*time.Millisecond, func(st status.Status) bool {
		if why := unhealthy(st); why != last {
			if why != "" {
				fmt.Fprintf(out, "waiting: %s\n", why)
			}
			last = why
		}
		return last == ""
	})
	if err != nil {
		return fmt.Errorf("the lab was not healthy after %s: %s (%v)", timeout, last, err)
	}
	var active []string
	if len(st.Groups) > 5 {
		at := map[string]int{}
		for _, g := range st.Groups {
			at[g.ActiveSite]++
		}
		for _, site := range slices.Sorted(maps.Keys(at)) {
			active = append(active, fmt.Sprintf("%d groups active at %s", at[site], site))
		}
	} else {
		for _, g := range st.Groups {
			active = append(active, fmt.Sprintf("%s active at %s, epoch %d", g.Name, g.ActiveSite, g.Epoch))
		}
	}
	fmt.Fprintf(out, "lab is healthy: controller %s, %s\n", st.Controller, strings.Join(active, "; "))
	return nil
}

// unhealthy says what keeps a lab status from being whole, or "".
func unhealthy(st status.Status) string {
	if st.Controller == "" {
		return "no controller elected"
	}
	for _, s := range st.Sites {
		if !s.Up || !s.Reporting {
			return s.Name + " is not up and reporting"
		}
	}
	for _, g := range st.Groups {
		if g.State != status.StateProtected {
			return fmt.Sprintf("group %s is %s %v", g.Name, g.State, g.Problems)
		}
		for _, r := range g.Resources {
			if r.Type != "postgres" && r.Type != "mariadb" {
				continue
			}
			for _, s := range r.Sites {
				switch {
				case s.Site == g.ActiveSite:
				case s.Role != status.RoleStandby || !s.Streaming:
					return fmt.Sprintf("%s of %s at %s is not a streaming standby yet (%s)", r.Name, g.Name, s.Site, s.Role)
				case s.LagSeconds == nil:
					return fmt.Sprintf("%s of %s at %s reports no lag yet", r.Name, g.Name, s.Site)
				}
			}
		}
	}
	return ""
}

func printNext(w io.Writer, dir, exe string, locs []location, withPG, withMaria bool, stack *stackState, groups int, scalePG bool) {
	cfg := filepath.Join(dir, "siteflip.yaml")
	fmt.Fprintf(w, "\nThe lab is up in %s:\n", dir)
	for _, l := range locs {
		db := ""
		if l.role == "site" {
			if withPG {
				db += ", PostgreSQL " + pick(l.name == "brussels", "primary", "standby") + " :5432"
			}
			if withMaria {
				db += ", MariaDB " + pick(l.name == newsSite(withPG), "primary", "replica") + " :3306"
			}
			if scalePG {
				db += fmt.Sprintf(", %d PostgreSQL %s :%d-%d", groups, pick(l.name == "brussels", "primaries", "standbys"), scaleDB(1).port, scaleDB(groups).port)
			}
		}
		if stack != nil && stack.Apps[l.name] != "" {
			db += fmt.Sprintf(", app :%d", appPort)
		}
		fmt.Fprintf(w, "  %-10s %-8s %-12s agent :7400, etcd :2379/:2380%s\n", l.name, l.role, l.ip, db)
	}
	if stack != nil && stack.Proxy != "" {
		fmt.Fprintf(w, "  %-10s %-8s %-12s HAProxy :%d, runtime API %s\n", "proxy", "", proxyIP, proxyPort, haproxySocket(dir))
	}
	fmt.Fprintln(w)
	var siteIPs, others []string
	for _, l := range locs {
		if l.role == "site" {
			siteIPs = append(siteIPs, l.ip)
		}
		if l.name != "brussels" {
			others = append(others, l.name)
		}
	}
	if withPG {
		fmt.Fprintf(w, `Group webshop (PostgreSQL): a demo writer inserts orders into webshop.orders through
"host=%[2]s target_session_attrs=read-write" (log: %[1]s/writer.log).
Logs: %[1]s/SITE/agent.log and %[1]s/SITE/pg/postgres.log.
`, dir, strings.Join(siteIPs, ","))
		if sites := siteNames(locs); len(sites) > 2 {
			fmt.Fprintf(w, `Webshop may run at %s, in that order of preference, with a standby streaming at
each site it is not active at. A power cut at its active site fails it over to the most advanced
standby, and the other standby follows the new primary.
`, orList(sites))
		}
	}
	if stack != nil {
		front := "the app of whichever site is healthy (no HAProxy here)"
		if stack.Proxy != "" {
			front = fmt.Sprintf("HAProxy http://%s", stack.Proxy)
		}
		fmt.Fprintf(w, `Webshop's web stack, moved as one by every run: the storage at each site (%[1]s/SITE/storage.mode,
read-write at the active site only; script resource storage), the app (http://SITE:%[2]d: /healthz,
POST /orders, /orders/recent; service resource app, log %[1]s/SITE/app.log) and %[3]s
(resource lb). A web writer orders through %[3]s (log: %[1]s/web-writer.log).
`, dir, appPort, front)
	}
	if withMaria {
		fmt.Fprintf(w, `Group news (MariaDB, GTID replication, preferred site %[2]s): a demo writer publishes articles
into news.articles at whichever server accepts writes (log: %[1]s/news-writer.log).
Logs: %[1]s/SITE/agent.log and %[1]s/SITE/mdb/run/mariadb.err.
`, dir, newsSite(withPG))
		if withPG {
			fmt.Fprintln(w, `Both sites carry production: webshop at brussels, news at antwerp. A power cut at either
site moves the group active there and leaves the other alone; `+"`siteflip failback GROUP`"+` takes
each back to its preferred site once the cut site is healed and reprotected.`)
		}
	}
	switch {
	case groups > 0 && scalePG:
		first, last := scaleDB(1), scaleDB(groups)
		fmt.Fprintf(w, `%d PostgreSQL groups, %s to %s: each a database of its own, a primary at brussels and a
standby streaming at %s, on port %d to %d of each site's address (data, socket and log:
%s/SITE/pg-NNNN), and a name that every agent answers with the active site's address on its
one DNS listener (dig @127.0.2.1 -p %d %s). They hold no data and no writer writes to them:
psql -h 127.0.1.1 -p %d -U siteflip %s (password: %s/secrets/postgres.password).
`, groups, first.group, last.group, strings.Join(slices.DeleteFunc(siteNames(locs), func(s string) bool { return s == "brussels" }), " and "),
			first.port, last.port, dir, dnsPort, scaleName(first.group), first.port, first.database, dir)
	case groups > 0:
		fmt.Fprintf(w, `%d data-less groups, %s to %s: each a name that every agent answers with the active
site's address on its one DNS listener (dig @127.0.2.1 -p %d %s).
`, groups, scaleGroup(1), scaleGroup(groups), dnsPort, scaleName(scaleGroup(1)))
	}
	if withPG {
		fmt.Fprintf(w, `Webshop requires a directory (ldap, tcp :%d), which the lab runs at brussels only: antwerp cannot
reach one, so webshop is "at risk" until `+"`siteflip lab ldap start antwerp --dir %s`"+`.
`, ldapPort, dir)
	}
	fmt.Fprintf(w, `
Try next:
  export SITEFLIP_CONFIG=%[2]s
  %[3]s status                     # --watch to follow it, -o json for scripts
  %[3]s readiness                  # is every group ready to fail over, and what fixes it
  %[3]s whatif --level major       # what a flood 60 km around Brussels would do (levels: minor, medium, major)
  %[3]s token --role operator      # a link to each location's dashboard; the browser trusts %[1]s/pki/ca.crt
  %[3]s lab disaster brussels --dir %[1]s   # power cut at brussels
  %[3]s status                     # answered by %[4]s
  %[3]s lab heal brussels --dir %[1]s
  %[3]s lab down --dir %[1]s       # stop everything and remove the lab
`, dir, cfg, exe, orList(others))
}

// orList joins names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// pick returns yes when c holds, else no.
func pick(c bool, yes, no string) string {
	if c {
		return yes
	}
	return no
}

// Disaster kills every process of site at once with SIGKILL, like a power
// cut: agent (and its etcd member), its watchdog, the database and the
// stack's app.
func Disaster(o Options, site string) error {
	st, err := loadState(o.Dir)
	if err != nil {
		return err
	}
	if err := st.knownLocation(site); err != nil {
		return err
	}
	ps := st.of(site)
	var run []proc
	for _, p := range ps {
		if p.alive() {
			run = append(run, p)
		}
	}
	run = union(run, st.postmasters(site))
	run = union(run, st.mariadbs(site))
	run = union(run, st.watchdogs(site))
	run = union(run, st.apps(site))
	if len(run) == 0 {
		return fmt.Errorf("nothing of %s is running: it is already down (`siteflip lab heal %s --dir %s` brings it back)", site, site, st.Dir)
	}
	st.cut(run)
	st.kill(run)
	st.forget(ps)
	if err := st.save(); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "power cut at %s: killed %s\n", site, names(run))
	return nil
}

// KillAgent kills only the agent of site (and its etcd member) with
// SIGKILL: its database and its watchdog keep running.
func KillAgent(o Options, site string) error {
	st, err := loadState(o.Dir)
	if err != nil {
		return err
	}
	if err := st.knownLocation(site); err != nil {
		return err
	}
	var run []proc
	for _, p := range st.of(site) {
		if p.Name == "agent" && p.alive() {
			run = append(run, p)
		}
	}
	if len(run) == 0 {
		return fmt.Errorf("the agent of %s is not running", site)
	}
	st.kill(run)
	st.forget(run)
	if err := st.save(); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "killed the agent of %s (%s)\n", site, names(run))
	return nil
}

// KillDatabase kills only the database servers of site with SIGKILL, as a
// crash would: its agent and watchdog keep running.
func KillDatabase(o Options, site string) error {
	st, err := loadState(o.Dir)
	if err != nil {
		return err
	}
	if err := st.knownLocation(site); err != nil {
		return err
	}
	run := union(st.postmasters(site), st.mariadbs(site))
	if len(run) == 0 {
		return fmt.Errorf("no database server of %s is running", site)
	}
	st.cut(run)
	st.kill(run)
	var mine []proc
	for _, p := range st.of(site) {
		if p.Name == "postgres" || p.Name == "mariadb" {
			mine = append(mine, p)
		}
	}
	st.forget(mine)
	if err := st.save(); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "killed the database servers of %s: %s\n", site, names(run))
	return nil
}

// Heal starts what Disaster killed at site: its database as its data
// directory left it, then its agent. It is safe at any time, a failover
// under way included: a primary's data directory holds its boot guard, so
// the database comes up read-only, and its agent decides from the group's
// record whether it serves as the primary again (docs/design/safety.md).
func Heal(ctx context.Context, o Options, site string) error {
	if err := StartDatabase(ctx, o, site); err != nil && !errors.Is(err, errUp) {
		return err
	}
	if err := StartAgent(o, site); err != nil && !errors.Is(err, errUp) {
		return err
	}
	st, err := loadState(o.Dir)
	if err != nil || !slices.Contains(st.LDAP, site) {
		return err
	}
	return st.startLDAP(ctx, o.Exe, site)
}

// errUp: what was to be started runs already.
var errUp = errors.New("already running")

// StartDatabase starts the database of site as its data directory left
// it, as a machine that boots would: a primary's comes up read-only behind
// its boot guard. A data directory without the guard that is no standby is
// not started: it would come up writable without its agent.
func StartDatabase(ctx context.Context, o Options, site string) error {
	st, t, err := healState(o, site)
	if err != nil {
		return err
	}
	pgStarted, up, err := startPostgresesAgain(ctx, st, t, site)
	if err != nil {
		return err
	}
	switch {
	case pgStarted == 1:
		fmt.Fprintf(o.Out, "started PostgreSQL at %s: read-only until its agent, from the group's record, makes it the primary again or leaves it a standby\n", site)
	case pgStarted > 1:
		fmt.Fprintf(o.Out, "started %d PostgreSQL servers at %s: read-only until its agent, from each group's record, makes them primaries again or leaves them standbys\n", pgStarted, site)
	}
	started := pgStarted
	in, ok, err := mariadbInstance(t, site)
	if err != nil {
		return err
	}
	if ok {
		if ps := st.mariadbs(site); len(ps) > 0 {
			up++
		} else {
			if err := st.startMariaDB(ctx, site, in); err != nil {
				return err
			}
			started++
			fmt.Fprintf(o.Out, "started MariaDB at %s: read-only and not replicating until its agent decides, from the group's record\n", site)
		}
	}
	if started == 0 && up > 0 {
		return fmt.Errorf("the databases of %s: %w", site, errUp)
	}
	return st.save()
}

// startPostgresesAgain starts the lab's PostgreSQL servers at site that
// do not run, dbStarts at a time, each as startPostgresAgain does, and
// says how many it started and how many ran already. It tries them all:
// the errors are those of the servers it could not start.
func startPostgresesAgain(ctx context.Context, st *state, t *config.Topology, site string) (started, up int, err error) {
	var mu sync.Mutex
	var errs []error
	var eg errgroup.Group
	eg.SetLimit(dbStarts)
	ins := st.instances(t, site)
	for _, group := range slices.Sorted(maps.Keys(ins)) {
		eg.Go(func() error {
			err := startPostgresAgain(ctx, st, group, ins[group])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, errUp):
				up++
			case err != nil:
				errs = append(errs, err)
			default:
				started++
			}
			return nil
		})
	}
	_ = eg.Wait()
	return started, up, errors.Join(errs...)
}

// startPostgresAgain starts group's PostgreSQL server in, if it has its
// boot guard.
func startPostgresAgain(ctx context.Context, st *state, group string, in postgres.Instance) error {
	if pid, ok := postgres.Postmaster(in.Settings.DataDir); ok {
		return fmt.Errorf("PostgreSQL of %s at %s: %w (pid %d)", group, in.Site, errUp, pid)
	}
	if _, err := os.Stat(filepath.Join(in.Settings.DataDir, "standby.signal")); err != nil {
		return fmt.Errorf("PostgreSQL of %s at %s stays stopped: its data directory %s has no boot guard (standby.signal), so it would come up as a writable primary without its agent; "+
			"start its agent alone (it starts the database when the group's record says so), or `siteflip reprotect %s` rejoins it", group, in.Site, in.Settings.DataDir, group)
	}
	return startPostgres(ctx, st, in)
}

// StartAgent starts the agent of site.
func StartAgent(o Options, site string) error {
	st, _, err := healState(o, site)
	if err != nil {
		return err
	}
	for _, p := range st.of(site) {
		if p.Name == "agent" && p.alive() {
			return fmt.Errorf("the agent of %s: %w", site, errUp)
		}
	}
	if err := startAgent(st, o.Exe, site); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "started the agent of %s\n", site)
	return st.save()
}

// RestartAgent stops the agent of site as an operator would (SIGTERM: it
// resigns as controller and releases its watchdog without fencing, and
// the database keeps serving) and starts it again.
func RestartAgent(o Options, site string) error {
	st, err := loadState(o.Dir)
	if err != nil {
		return err
	}
	if err := st.knownLocation(site); err != nil {
		return err
	}
	var run []proc
	for _, p := range st.of(site) {
		if p.Name == "agent" && p.alive() {
			run = append(run, p)
		}
	}
	if len(run) == 0 {
		return fmt.Errorf("the agent of %s is not running", site)
	}
	st.stop(run, 10*time.Second)
	st.forget(run)
	if err := st.save(); err != nil {
		return err
	}
	return StartAgent(o, site)
}

// healState loads the lab's state, forgetting the processes of site that
// died, and its topology.
func healState(o Options, site string) (*state, *config.Topology, error) {
	st, err := loadState(o.Dir)
	if err != nil {
		return nil, nil, err
	}
	if err := st.knownLocation(site); err != nil {
		return nil, nil, err
	}
	var dead []proc
	for _, p := range st.of(site) {
		if !p.alive() {
			dead = append(dead, p)
		}
	}
	st.forget(dead)
	t, err := config.Load(filepath.Join(st.Dir, "siteflip.yaml"), driver.Types())
	if err != nil {
		return nil, nil, err
	}
	return st, t, nil
}

// knownLocation refuses a site that is not one of the lab's locations.
func (st *state) knownLocation(site string) error {
	var all []string
	for _, l := range st.locs() {
		if l.name == site {
			return nil
		}
		all = append(all, l.name)
	}
	return fmt.Errorf("%q is not a lab location (locations: %s)", site, strings.Join(all, ", "))
}

// Down stops every process the lab started and removes its directory.
func Down(o Options) error {
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	st, err := loadState(dir)
	if err != nil {
		return err
	}
	// The writers first, then the agents, then the stack's apps and
	// HAProxy, then the databases (those the lab started and those the
	// agents restarted).
	all := st.Processes
	for _, l := range st.locs() {
		all = union(all, st.postmasters(l.name))
		all = union(all, st.mariadbs(l.name))
		all = union(all, st.watchdogs(l.name))
	}
	order := map[string]int{"writer": 0, "web-writer": 0, "agent": 1, "watchdog": 1, "app": 2, "haproxy": 2, "postgres": 3, "mariadb": 3}
	for rank := 0; rank < 4; rank++ {
		if rank == order["app"] {
			// The agents start and stop the apps: those running once
			// the agents stopped.
			for _, l := range st.locs() {
				all = union(all, st.apps(l.name))
			}
		}
		var ps []proc
		for _, p := range all {
			if order[p.Name] == rank {
				ps = append(ps, p)
			}
		}
		st.stop(ps, 15*time.Second)
	}
	st.Processes = all
	if left := st.running(); len(left) > 0 {
		return fmt.Errorf("could not stop %s; nothing was removed", names(left))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	var busy []string
	if st.Net == nil {
		addrs := addresses(st.locs(), st.PGGroups)
		if st.Stack != nil {
			addrs = append(addrs, st.Stack.addresses(true)...)
		}
		for _, addr := range addrs {
			if ln, err := net.Listen("tcp", addr); err != nil {
				busy = append(busy, addr)
			} else {
				ln.Close()
			}
		}
	} else {
		os.RemoveAll(st.router().StateDir())
	}
	if err := st.removeBubbles(); err != nil {
		return err
	}
	if st.Net != nil && st.Net.Owned {
		if err := netns.Sweep(st.Net.Prefix); err != nil {
			return fmt.Errorf("remove the lab's network %s: %w", st.Net.Prefix, err)
		}
	}
	fmt.Fprintf(o.Out, "the lab in %s is stopped and removed\n", dir)
	if len(busy) > 0 {
		fmt.Fprintf(o.Out, "note: %s still in use, by processes the lab did not start\n", strings.Join(busy, ", "))
	}
	return nil
}
