package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/watchdog"
)

// Type is the postgres resource type: a data resource with every
// capability of its class (internal/resource).
type Type struct{}

var (
	_ resource.Observes     = Type{}
	_ resource.Steps        = Type{}
	_ resource.HardFence    = Type{}
	_ resource.Keeps        = Type{}
	_ resource.Synchronizes = Type{}
	_ resource.Drills       = Type{}
)

func (Type) Name() string { return "postgres" }

// Config decodes and checks a site's settings.
func (Type) Config() config.ResourceType {
	return config.ResourceType{
		Class:       config.ClassData,
		Synchronous: true,
		New:         func() any { return &Settings{} },
		Prepare: func(settings any, site, dir string) []config.FieldError {
			s := settings.(*Settings)
			s.SetDefaults(site)
			for _, p := range []*string{&s.PasswordFile, &s.ReplicationPasswordFile, &s.DrillDir} {
				if *p != "" && !filepath.IsAbs(*p) {
					*p = filepath.Join(dir, *p)
				}
			}
			var out []config.FieldError
			for _, fe := range s.Check() {
				out = append(out, config.FieldError{Field: fe.Field, Msg: fe.Msg})
			}
			return out
		},
		Lint: func(_ *config.Group, settings any) []config.FieldError {
			var out []config.FieldError
			for _, fe := range Lint(settings.(*Settings)) {
				out = append(out, config.FieldError{Field: fe.Field, Msg: fe.Msg})
			}
			return out
		},
		ComparePositions: comparePositions,
		// A primary tells its standbys apart by application_name: two
		// sites with one name would have their lag mixed up.
		Across: func(bySite map[string]any) map[string][]config.FieldError {
			sites := make([]string, 0, len(bySite))
			for site := range bySite {
				sites = append(sites, site)
			}
			sort.Strings(sites)
			first := map[string]string{}
			out := map[string][]config.FieldError{}
			for _, site := range sites {
				name := bySite[site].(*Settings).ApplicationName
				if other, dup := first[name]; dup {
					out[site] = append(out[site], config.FieldError{Field: "application_name",
						Msg: fmt.Sprintf("%q is also the application_name at %s: each site needs its own (default: the site name)", name, other)})
					continue
				}
				first[name] = site
			}
			return out
		},
	}
}

// settingsAt returns the settings of r at site.
func settingsAt(g *config.Group, r *config.Resource, site string) (*Settings, error) {
	s, ok := r.Settings[site].(*Settings)
	if !ok {
		return nil, fmt.Errorf("group %s, resource %s: no settings for site %s", g.Name, r.Name, site)
	}
	return s, nil
}

// instance is the managed instance behind settings; its server log goes
// next to the data directory.
func instance(s Settings, site string) Instance {
	return Instance{Settings: s, Site: site, LogFile: filepath.Join(filepath.Dir(s.DataDir), "postgres.log")}
}

// Observer observes resource r of group g at site.
func (Type) Observer(g *config.Group, r *config.Resource, site string) (resource.Observer, error) {
	s, err := settingsAt(g, r, site)
	if err != nil {
		return nil, err
	}
	siteOf := map[string]string{}
	for sn, o := range r.Settings {
		siteOf[o.(*Settings).ApplicationName] = sn
	}
	o := &observer{o: NewObserver(*s), siteOf: siteOf, group: g.Name, resource: r.Name}
	if local, _ := IsLocal(*s); local {
		o.dataDir = s.DataDir
	}
	return o, nil
}

// observer adapts Observer to the status model.
type observer struct {
	o *Observer
	// siteOf maps a standby's application_name to its site.
	siteOf          map[string]string
	group, resource string
	// dataDir is set for a database on this machine: a server that runs
	// there but does not answer is "unknown", not "down".
	dataDir string
}

func (p *observer) Observe(ctx context.Context) status.ResourceView {
	ob := p.o.Observe(ctx)
	v := status.ResourceView{
		Group: p.group, Resource: p.resource, Type: "postgres",
		Up: ob.Up, Role: string(ob.Role), Timeline: ob.Timeline, LSN: ob.LSN,
		Streaming: ob.Streaming, Upstream: ob.Upstream, LastReplay: ob.LastReplay,
		Error: ob.Error, ObservedAt: time.Now().UTC(),
	}
	if ob.Role == RoleStandby {
		v.Position = standbyPosition(ob.LSN, ob.ReceiveLSN)
	}
	if !ob.Up && p.dataDir != "" {
		if pid, running := Postmaster(p.dataDir); running {
			// Full connection slots, a hung server: it does not answer, but
			// it runs, and it may be accepting writes.
			v.Role = status.RoleUnknown
			v.Error = fmt.Sprintf("the server runs (pid %d) but does not answer: it may be accepting writes; %s", pid, ob.Error)
		}
	}
	for _, sb := range ob.Standbys {
		v.Standbys = append(v.Standbys, status.StandbyView{
			Name: sb.ApplicationName, Site: p.siteOf[sb.ApplicationName],
			State: sb.State, SyncState: sb.SyncState,
			LagBytes: sb.LagBytes, LagSeconds: sb.LagSeconds,
		})
	}
	return v
}

func (p *observer) Close() { p.o.Close() }

// Actor carries out the steps of resource r of group g at site.
func (Type) Actor(g *config.Group, r *config.Resource, site string) (resource.Actor, error) {
	s, err := settingsAt(g, r, site)
	if err != nil {
		return nil, err
	}
	return &actor{r: r, site: site, inst: instance(*s, site)}, nil
}

type actor struct {
	r    *config.Resource
	site string
	inst Instance
}

func (a *actor) Fence(ctx context.Context) (map[string]string, error) {
	res, err := a.inst.Fence(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]string{
		"end_lsn":  res.EndLSN,
		"timeline": strconv.FormatInt(res.Timeline, 10),
		"clean":    strconv.FormatBool(res.Clean),
	}, nil
}

func (a *actor) CatchUp(ctx context.Context, fenced map[string]string) error {
	lsn := fenced["end_lsn"]
	if lsn == "" {
		return fmt.Errorf("catch up %s at %s: the fence step reported no end LSN", a.r.Name, a.site)
	}
	return WaitCatchUp(ctx, a.inst.Settings, lsn)
}

func (a *actor) Promote(ctx context.Context) (map[string]string, error) {
	res, err := Promote(ctx, a.inst.Settings)
	if err != nil {
		return nil, err
	}
	if a.r.Synchronous {
		// The configuration came from the old primary and may name this
		// server as its synchronous standby: commits would wait forever.
		// The new epoch starts asynchronous; the agent makes it synchronous
		// again once a standby streams.
		if err := DisableSync(ctx, a.inst.Settings); err != nil {
			return nil, err
		}
	}
	return map[string]string{
		"timeline":       strconv.FormatInt(res.Timeline, 10),
		"switch_lsn":     res.SwitchLSN,
		"writable_after": res.WritableAfter.String(),
	}, nil
}

func (a *actor) Rejoin(ctx context.Context, primarySite string) (map[string]string, error) {
	p, ok := a.r.Settings[primarySite].(*Settings)
	if !ok {
		return nil, fmt.Errorf("rejoin %s at %s: no settings for the primary's site %s", a.r.Name, a.site, primarySite)
	}
	pw, err := a.inst.Settings.ReplicationPassword()
	if err != nil {
		return nil, err
	}
	res, err := a.inst.Rejoin(ctx, *p, pw)
	if err != nil {
		return nil, err
	}
	out := map[string]string{
		"rewound":  strconv.FormatBool(res.Rewound),
		"recloned": strconv.FormatBool(res.Recloned),
	}
	if res.LostBytes > 0 {
		out["lost_from"], out["lost_to"] = res.LostFrom, res.LostTo
		out["lost_bytes"] = strconv.FormatInt(res.LostBytes, 10)
		out[plan.OutputDataLost] = fmt.Sprintf("%d bytes of WAL (%s..%s) existed only there; kept aside in its data directory's .lost copy",
			res.LostBytes, res.LostFrom, res.LostTo)
	}
	return out, nil
}

// Unfence starts the fenced primary again as the primary: its boot guard
// would otherwise bring it up read-only.
func (a *actor) Unfence(ctx context.Context) error { return a.inst.StartPrimary(ctx) }

// GuardTarget: a database on this machine is killed; one elsewhere needs
// a fence command, and without one the agent does not start.
func (Type) GuardTarget(g *config.Group, r *config.Resource, site string) (t watchdog.Target, ok bool, err error) {
	s, found := r.Settings[site].(*Settings)
	if !found {
		return t, false, nil
	}
	t = watchdog.Target{Name: g.Name + "/" + r.Name, Kind: r.Type}
	local, why := IsLocal(*s)
	switch {
	case local:
		t.DataDir = s.DataDir
	case len(s.FenceCommand) > 0:
		if t.Settings, err = json.Marshal(s); err != nil {
			return t, false, err
		}
	default:
		return t, false, fmt.Errorf("group %s, resource %s at %s: the agent cannot stop this database when the serve lease runs out (%s): "+
			"run the agent on the database's machine (with its data directory, cloned first if this site's copy was lost), "+
			"or set fence_command (an argument list that stops it or makes it read-only; its effect is verified)",
			g.Name, r.Name, site, why)
	}
	return t, true, nil
}

// fenceCommandTimeout bounds a fence command.
const fenceCommandTimeout = 10 * time.Second

// FenceNow kills a database on this machine as a power cut would, unless
// its control file says it runs as a standby, which accepts no writes; one
// elsewhere is fenced by its fence command, verified.
func (Type) FenceNow(t watchdog.Target) (killed bool, err error) {
	if t.DataDir != "" {
		killed, err := FenceDataDir(t.DataDir)
		if err != nil {
			return killed, fmt.Errorf("%s: %w", t.Name, err)
		}
		return killed, nil
	}
	var s Settings
	if err := json.Unmarshal(t.Settings, &s); err != nil {
		return false, fmt.Errorf("%s: decode its settings: %w", t.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), fenceCommandTimeout)
	defer cancel()
	if err := RunFenceCommand(ctx, s); err != nil {
		return false, fmt.Errorf("%s: %w", t.Name, err)
	}
	return false, nil
}

// Endpoint is the server's TCP address (none for a Unix socket).
func (Type) Endpoint(r *config.Resource, site string) (string, bool) {
	s, ok := r.Settings[site].(*Settings)
	if !ok || s.Host == "" || s.Host[0] == '/' {
		return "", false
	}
	return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), true
}

// Local is the database at site when it lives on this machine.
func (Type) Local(g *config.Group, r *config.Resource, site string) (resource.Local, bool) {
	s, ok := r.Settings[site].(*Settings)
	if !ok {
		return nil, false
	}
	if local, _ := IsLocal(*s); !local {
		return nil, false
	}
	return localDB{instance(*s, site)}, true
}

// localDB is a database on this machine.
type localDB struct{ inst Instance }

func (p localDB) Disk(context.Context) (resource.DiskFacts, error) {
	dir := p.inst.Settings.DataDir
	_, running := Postmaster(dir)
	d, err := ClusterState(dir)
	if err != nil {
		return resource.DiskFacts{Running: running}, err
	}
	return resource.DiskFacts{Running: running, State: d.State, Guard: d.StandbySignal}, nil
}

func (p localDB) StartPrimary(ctx context.Context) error { return p.inst.StartPrimary(ctx) }
func (p localDB) StartStandby(ctx context.Context) error { return p.inst.Start(ctx) }
func (p localDB) Kill() error                            { return KillDataDir(p.inst.Settings.DataDir) }
func (p localDB) EnsureGuard() error                     { return EnsureBootGuard(p.inst.Settings.DataDir) }

// Sync is synchronous replication from the primary at site to the standby
// at the group's other site.
func (Type) Sync(g *config.Group, r *config.Resource, site string) (resource.Synchronous, error) {
	s, err := settingsAt(g, r, site)
	if err != nil {
		return nil, err
	}
	for _, other := range g.Sites {
		if other == site {
			continue
		}
		o, err := settingsAt(g, r, other)
		if err != nil {
			return nil, err
		}
		return syncControl{s: *s, standby: o.ApplicationName}, nil
	}
	return nil, fmt.Errorf("group %s, resource %s: no other site to be synchronous with", g.Name, r.Name)
}

// syncControl drives synchronous_standby_names towards one standby.
type syncControl struct {
	s       Settings
	standby string // its application_name
}

func (c syncControl) Read(ctx context.Context) (resource.SyncState, error) {
	st, err := ReadSync(ctx, c.s)
	if err != nil {
		return resource.SyncState{}, err
	}
	out := resource.SyncState{Enabled: st.Enabled(), Requires: st.Requires(c.standby), Confirms: st.IsSync(c.standby),
		Blocking: st.Blocking(), LongestWait: st.LongestWait, Weakened: st.Weakened}
	for _, sb := range st.Standbys {
		out.Streaming = out.Streaming || (sb.ApplicationName == c.standby && sb.State == "streaming")
	}
	return out, nil
}

func (c syncControl) Require(ctx context.Context) error { return EnableSync(ctx, c.s, c.standby) }
func (c syncControl) Release(ctx context.Context) error { return DisableSync(ctx, c.s) }
func (c syncControl) SyncedSince(ctx context.Context, since string) (bool, string, error) {
	return SyncedSince(ctx, c.s, c.standby, since)
}

// standbyPosition is how far a standby's WAL goes: the later of what it
// replayed and what it received (a promotion replays what was received;
// after a restart the receiver starts again at a segment's beginning, so
// received may be behind replayed). "" when neither parses.
func standbyPosition(replayed, received string) string {
	r, errR := parseLSN(replayed)
	c, errC := parseLSN(received)
	switch {
	case errR != nil && errC != nil:
		return ""
	case errC != nil || (errR == nil && r >= c):
		return formatLSN(r)
	default:
		return formatLSN(c)
	}
}

// comparePositions compares two WAL positions ("16/B374D848").
func comparePositions(a, b string) (int, bool) {
	x, errA := parseLSN(a)
	y, errB := parseLSN(b)
	if errA != nil || errB != nil {
		return 0, false
	}
	return cmp.Compare(x, y), true
}
