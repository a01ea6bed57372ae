package mariadb

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/watchdog"
)

// Type is the mariadb resource type: a data resource (internal/resource).
type Type struct{}

var (
	_ resource.Observes     = Type{}
	_ resource.Steps        = Type{}
	_ resource.HardFence    = Type{}
	_ resource.Keeps        = Type{}
	_ resource.Checks       = Type{}
	_ resource.Synchronizes = Type{}
	_ resource.Clones       = Type{}
	_ resource.CopiesFrom   = (*actor)(nil)
)

func (Type) Name() string { return "mariadb" }

// Config decodes and checks a site's settings.
func (Type) Config() config.ResourceType {
	return config.ResourceType{
		Class:            config.ClassData,
		Synchronous:      true,
		ComparePositions: comparePositions,
		New:              func() any { return &Settings{} },
		Prepare: func(settings any, site, dir string) []config.FieldError {
			s := settings.(*Settings)
			s.SetDefaults(dir)
			var out []config.FieldError
			for _, fe := range s.Check() {
				out = append(out, config.FieldError{Field: fe.Field, Msg: fe.Msg})
			}
			return out
		},
		// GTIDs tell the servers apart by server_id: two sites with one
		// would make an errant transaction look like a shared one.
		Across: func(bySite map[string]any) map[string][]config.FieldError {
			sites := make([]string, 0, len(bySite))
			for site := range bySite {
				sites = append(sites, site)
			}
			sort.Strings(sites)
			first := map[int]string{}
			out := map[string][]config.FieldError{}
			for _, site := range sites {
				id := bySite[site].(*Settings).ServerID
				if other, dup := first[id]; dup {
					out[site] = append(out[site], config.FieldError{Field: "server_id",
						Msg: fmt.Sprintf("%d is also the server_id at %s: each site's server needs its own", id, other)})
					continue
				}
				first[id] = site
			}
			return out
		},
	}
}

// settingsAt returns the settings of r at site, passwords read.
func settingsAt(g *config.Group, r *config.Resource, site string) (Settings, error) {
	s, ok := r.Settings[site].(*Settings)
	if !ok {
		return Settings{}, fmt.Errorf("group %s, resource %s: no settings for site %s", g.Name, r.Name, site)
	}
	return s.Resolve()
}

// instanceOf is the server of s on this machine.
func instanceOf(s Settings) Instance { return Instance{Settings: s, Dir: s.StateDir} }

// Observer observes resource r of group g at site: the server there, and,
// when it is the primary, its standbys at the other sites.
func (Type) Observer(g *config.Group, r *config.Resource, site string) (resource.Observer, error) {
	s, err := settingsAt(g, r, site)
	if err != nil {
		return nil, err
	}
	o := newObserver(g.Name, r.Name, s)
	for _, other := range g.Sites {
		if other == site {
			continue
		}
		if _, ok := r.Settings[other]; !ok {
			continue
		}
		sb, err := settingsAt(g, r, other)
		if err != nil {
			o.Close()
			return nil, err
		}
		o.addStandby(other, sb)
	}
	return o, nil
}

// Actor carries out the steps of resource r of group g at site.
func (Type) Actor(g *config.Group, r *config.Resource, site string) (resource.Actor, error) {
	s, err := settingsAt(g, r, site)
	if err != nil {
		return nil, err
	}
	return &actor{g: g, r: r, site: site, s: s}, nil
}

type actor struct {
	g    *config.Group
	r    *config.Resource
	site string
	s    Settings
	// fetch gets a copy of another site's server through its agent, for
	// a reclone; nil: the copy is made here, from the primary's data
	// directory, which must then be on this machine.
	fetch resource.Fetch
}

// CopyWith takes how to fetch a copy of another site's server.
func (a *actor) CopyWith(f resource.Fetch) { a.fetch = f }

func (a *actor) Fence(ctx context.Context) (map[string]string, error) {
	res, err := Fence(ctx, a.s)
	if err != nil {
		return nil, err
	}
	return map[string]string{"end_gtid": res.EndGTID}, nil
}

func (a *actor) CatchUp(ctx context.Context, fenced map[string]string) error {
	end, ok := fenced["end_gtid"]
	if !ok {
		return fmt.Errorf("catch up %s at %s: the fence step reported no end GTID", a.r.Name, a.site)
	}
	return WaitCatchUp(ctx, a.s, end)
}

func (a *actor) Promote(ctx context.Context) (map[string]string, error) {
	res, err := Promote(ctx, a.s)
	if err != nil {
		return nil, err
	}
	return map[string]string{"switch_gtid": res.SwitchGTID}, nil
}

func (a *actor) Rejoin(ctx context.Context, primarySite string) (map[string]string, error) {
	p, err := settingsAt(a.g, a.r, primarySite)
	if err != nil {
		return nil, err
	}
	if !localState(a.s.StateDir) {
		return nil, fmt.Errorf("rejoin %s at %s: %s holds no option file on this machine: the agent rejoins only a server it runs (run the agent on the database's machine)",
			a.r.Name, a.site, a.s.StateDir)
	}
	var src Source
	if a.fetch != nil {
		src = func(ctx context.Context) (io.ReadCloser, error) { return a.fetch(ctx, primarySite) }
	}
	res, err := RejoinFrom(ctx, instanceOf(a.s), p, src)
	if err != nil {
		return nil, err
	}
	out := map[string]string{"recloned": fmt.Sprint(res.Recloned)}
	if res.Errant != "" {
		out["lost_gtids"] = res.Errant
		out["lost_transactions"] = fmt.Sprint(res.ErrantCount)
		out["lost_saved_to"] = res.SavedTo
		out[plan.OutputDataLost] = fmt.Sprintf("%d transaction(s) (%s) existed only there; saved to %s (LOST-TRANSACTIONS.txt says how to read them); recloned from %s",
			res.ErrantCount, res.Errant, res.SavedTo, primarySite)
	}
	if res.Divergence != "" {
		out["divergence"] = res.Divergence
		if res.Errant == "" {
			out[plan.OutputDataLost] = fmt.Sprintf("its history diverged from the primary's where the GTIDs cannot tell (%s): what only it held is unknown; recloned from %s, its old data directory kept beside the new",
				res.Divergence, primarySite)
		}
	}
	return out, nil
}

// Unfence makes the fenced primary writable again (rollback).
func (a *actor) Unfence(ctx context.Context) error {
	_, err := Promote(ctx, a.s)
	return err
}

// GuardTarget: a server siteflip runs on this machine is killed when its
// site's serve lease runs out; one elsewhere cannot be, and the agent
// does not start.
func (Type) GuardTarget(g *config.Group, r *config.Resource, site string) (t watchdog.Target, ok bool, err error) {
	s, found := r.Settings[site].(*Settings)
	if !found {
		return t, false, nil
	}
	if !localState(s.StateDir) {
		return t, false, fmt.Errorf("group %s, resource %s at %s: the agent cannot stop this database when the serve lease runs out: "+
			"%s holds no option file here; run the agent on the database's machine, with the server started from %s",
			g.Name, r.Name, site, s.StateDir, filepath.Join(s.StateDir, "mariadb.cnf"))
	}
	return watchdog.Target{Name: g.Name + "/" + r.Name, Kind: r.Type, DataDir: s.StateDir}, true, nil
}

// FenceNow kills the server at once, unless it has not been writable since
// it booted (no writable mark): a standby is spared, as its relay log
// would be purged at its next start.
func (Type) FenceNow(t watchdog.Target) (killed bool, err error) {
	if !hasMark(t.DataDir) {
		return false, nil
	}
	killed, err = killServer(t.DataDir)
	if err != nil {
		return killed, fmt.Errorf("%s: %w", t.Name, err)
	}
	return killed, nil
}

// Endpoint is the server's TCP address.
func (Type) Endpoint(r *config.Resource, site string) (string, bool) {
	s, ok := r.Settings[site].(*Settings)
	if !ok || s.Host == "" {
		return "", false
	}
	return s.Addr(), true
}

// Local is the server at site when siteflip runs it on this machine.
func (Type) Local(g *config.Group, r *config.Resource, site string) (resource.Local, bool) {
	s, ok := r.Settings[site].(*Settings)
	if !ok || !localState(s.StateDir) {
		return nil, false
	}
	rs, err := s.Resolve()
	if err != nil {
		return nil, false
	}
	return &localDB{inst: instanceOf(rs)}, true
}

// localDB is a server on this machine.
type localDB struct {
	inst Instance
}

// Disk reads what the machine says of the server: whether it runs, and
// how it left its data, from its pid file (left behind by a server that
// did not shut down), its writable mark and its replica configuration
// (master.info, removed when it was promoted).
func (l *localDB) Disk(context.Context) (resource.DiskFacts, error) {
	dir := l.inst.Dir
	_, running := serverPID(dir)
	_, err := os.Stat(l.inst.PIDFile())
	unclean := err == nil && !running
	replica := l.replica()
	f := resource.DiskFacts{Running: running, Guard: l.guarded()}
	switch {
	case hasMark(dir) && (running || unclean):
		f.State = resource.StateInProduction
	case hasMark(dir):
		f.State = resource.StateShutDown
	case replica && (running || unclean):
		f.State = resource.StateArchiveRecovery
	case replica:
		f.State = resource.StateShutDownRecovery
	case unclean:
		f.State = resource.StateCrashRecovery
	default:
		f.State = resource.StateShutDown
	}
	return f, nil
}

// replica says whether replication is configured: master.info, which a
// promotion removes, is there and not empty.
func (l *localDB) replica() bool {
	b, err := os.ReadFile(filepath.Join(l.inst.Settings.DataDir, "master.info"))
	return err == nil && len(strings.TrimSpace(string(b))) > 0
}

// guarded says the option file holds the boot guard.
func (l *localDB) guarded() bool {
	b, err := os.ReadFile(l.inst.OptionFile())
	return err == nil && string(b) == l.inst.options()
}

// StartPrimary starts the server, when it is not running, and makes it
// the primary, proven by a write.
func (l *localDB) StartPrimary(ctx context.Context) error {
	if _, running := serverPID(l.inst.Dir); !running {
		if _, err := l.inst.Start(ctx); err != nil {
			return err
		}
	}
	_, err := Promote(ctx, l.inst.Settings)
	return err
}

// StartStandby starts the server and its replication as configured. One
// promoted before it stopped has no replication configured (master.info
// is gone) and comes up read-only behind its guard, replicating nothing.
func (l *localDB) StartStandby(ctx context.Context) error {
	if _, running := serverPID(l.inst.Dir); !running {
		if _, err := l.inst.Start(ctx); err != nil {
			return err
		}
	}
	if !l.replica() {
		return nil
	}
	return admin(ctx, l.inst.Settings, func(c *sql.Conn) error {
		_, err := c.ExecContext(ctx, "START SLAVE")
		return err
	})
}

// ResumeReplication starts the replication of the running server as it
// is configured (START SLAVE) when both its threads are stopped without
// an error, as the boot guard's skip_slave_start leaves a restarted
// replica. A thread that connects or runs is left to do so; one stopped
// on an error keeps its error for a person to read (START SLAVE would
// clear it).
func (l *localDB) ResumeReplication(ctx context.Context) (bool, error) {
	started := false
	err := admin(ctx, l.inst.Settings, func(c *sql.Conn) error {
		rows, err := slaves(ctx, c)
		if err != nil || len(rows) == 0 {
			return err
		}
		r := rows[0]
		if r["Slave_IO_Running"] != "No" || r["Slave_SQL_Running"] != "No" ||
			cmp.Or(r["Last_IO_Errno"], "0") != "0" || cmp.Or(r["Last_SQL_Errno"], "0") != "0" {
			return nil
		}
		if _, err := c.ExecContext(ctx, "START SLAVE"); err != nil {
			return err
		}
		started = true
		return nil
	})
	return started, err
}

func (l *localDB) Kill() error {
	_, err := killServer(l.inst.Dir)
	return err
}

// EnsureGuard writes the option file, guard included, when it differs.
func (l *localDB) EnsureGuard() error {
	if l.guarded() {
		return nil
	}
	return os.WriteFile(l.inst.OptionFile(), []byte(l.inst.options()), 0o644)
}

// CheckServer checks the server at site in the role it has now: a
// primary, or a standby of the group's other site.
func (Type) CheckServer(ctx context.Context, g *config.Group, r *config.Resource, site string) ([]string, error) {
	s, err := settingsAt(g, r, site)
	if err != nil {
		return nil, err
	}
	ob, err := Observe(ctx, s)
	if err != nil {
		return nil, err
	}
	role, primary := RolePrimary, Settings{}
	if ob.Role != RolePrimary {
		role = RoleStandby
		for _, other := range g.Sites {
			if _, ok := r.Settings[other]; ok && other != site {
				if primary, err = settingsAt(g, r, other); err != nil {
					return nil, err
				}
			}
		}
	}
	problems, err := CheckServer(ctx, s, role, primary)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(problems))
	for _, p := range problems {
		out = append(out, fmt.Sprintf("mariadb at %s (%s): %s; fix: %s", p.Server, role, p.What, p.Fix))
	}
	return out, nil
}

// Sync is semi-synchronous replication from the primary at site to the
// server at the group's other site.
func (Type) Sync(g *config.Group, r *config.Resource, site string) (resource.Synchronous, error) {
	s, err := settingsAt(g, r, site)
	if err != nil {
		return nil, err
	}
	for _, other := range g.Sites {
		if _, ok := r.Settings[other]; !ok || other == site {
			continue
		}
		sb, err := settingsAt(g, r, other)
		if err != nil {
			return nil, err
		}
		return newSyncControl(s, sb), nil
	}
	return nil, fmt.Errorf("group %s, resource %s: no other site to be synchronous with", g.Name, r.Name)
}

// Copy writes a copy of the server at site, which runs on this machine,
// to w: an xbstream of mariadb-backup, made while it serves.
func (Type) Copy(ctx context.Context, g *config.Group, r *config.Resource, site string, w io.Writer) error {
	s, err := settingsAt(g, r, site)
	if err != nil {
		return err
	}
	if !localState(s.StateDir) {
		return fmt.Errorf("group %s, resource %s at %s: its server does not run on this machine (%s holds no option file)", g.Name, r.Name, site, s.StateDir)
	}
	return Copy(ctx, instanceOf(s), w)
}
