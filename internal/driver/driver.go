// Package driver is the table of resource types: for each `type:` a topology
// may use, how its per-site settings are decoded and checked, and how an
// agent observes the resource at its own site. The table is explicit; adding
// a type means adding a row here.
package driver

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver/postgres"
	"github.com/siteflip/siteflip/internal/status"
)

// Observer watches one resource at one site.
type Observer interface {
	// Observe reports the resource's state; a failure is reported in the
	// returned view (Up false, Error set), never as a Go error.
	Observe(ctx context.Context) status.ResourceView
	Close()
}

type kind struct {
	config      config.ResourceType
	newObserver func(g *config.Group, r *config.Resource, site string) Observer
}

var kinds = map[string]kind{
	"postgres": {
		config: config.ResourceType{
			Data: true,
			New:  func() any { return &postgres.Settings{} },
			Prepare: func(settings any, site, dir string) []config.FieldError {
				s := settings.(*postgres.Settings)
				s.SetDefaults(site)
				for _, p := range []*string{&s.PasswordFile, &s.ReplicationPasswordFile} {
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
			// A primary tells its standbys apart by application_name: two
			// sites with one name would have their lag mixed up.
			Across: func(bySite map[string]any) map[string][]config.FieldError {
				first := map[string]string{}
				out := map[string][]config.FieldError{}
				for _, site := range sortedSites(bySite) {
					name := bySite[site].(*postgres.Settings).ApplicationName
					if other, dup := first[name]; dup {
						out[site] = append(out[site], config.FieldError{Field: "application_name",
							Msg: fmt.Sprintf("%q is also the application_name at %s: each site needs its own (default: the site name)", name, other)})
						continue
					}
					first[name] = site
				}
				return out
			},
		},
		newObserver: newPostgresObserver,
	},
}

func sortedSites(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Types returns the resource types, for config.Load.
func Types() map[string]config.ResourceType {
	out := make(map[string]config.ResourceType, len(kinds))
	for name, k := range kinds {
		out[name] = k.config
	}
	return out
}

// NewObserver returns the observer of resource r of group g at site;
// network resources are found in rt, which runs them.
func NewObserver(rt *Runtime, g *config.Group, r *config.Resource, site string) (Observer, error) {
	if IsNetwork(r.Type) {
		n, ok := rt.Get(g.Name + "/" + r.Name)
		if !ok {
			return nil, fmt.Errorf("group %s, resource %s: not running at %s", g.Name, r.Name, site)
		}
		return netObserver{n}, nil
	}
	k, ok := kinds[r.Type]
	if !ok {
		return nil, fmt.Errorf("group %s, resource %s: unknown type %q", g.Name, r.Name, r.Type)
	}
	if _, ok := r.Settings[site]; !ok {
		return nil, fmt.Errorf("group %s, resource %s: no settings for site %s", g.Name, r.Name, site)
	}
	return k.newObserver(g, r, site), nil
}

// pgObserver adapts the postgres driver's observation to the status model.
type pgObserver struct {
	o *postgres.Observer
	// siteOf maps a standby's application_name to its site.
	siteOf          map[string]string
	group, resource string
	// dataDir is set for a database on this machine: a server that runs
	// there but does not answer is "unknown", not "down".
	dataDir string
}

var _ Observer = (*pgObserver)(nil)

func newPostgresObserver(g *config.Group, r *config.Resource, site string) Observer {
	siteOf := map[string]string{}
	for sn, s := range r.Settings {
		siteOf[s.(*postgres.Settings).ApplicationName] = sn
	}
	s := *r.Settings[site].(*postgres.Settings)
	o := &pgObserver{o: postgres.NewObserver(s), siteOf: siteOf, group: g.Name, resource: r.Name}
	if local, _ := postgres.IsLocal(s); local {
		o.dataDir = s.DataDir
	}
	return o
}

func (p *pgObserver) Observe(ctx context.Context) status.ResourceView {
	ob := p.o.Observe(ctx)
	v := status.ResourceView{
		Group: p.group, Resource: p.resource, Type: "postgres",
		Up: ob.Up, Role: string(ob.Role), Timeline: ob.Timeline, LSN: ob.LSN,
		Streaming: ob.Streaming, Upstream: ob.Upstream, LastReplay: ob.LastReplay,
		Error: ob.Error, ObservedAt: time.Now().UTC(),
	}
	if !ob.Up && p.dataDir != "" {
		if pid, running := postgres.Postmaster(p.dataDir); running {
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

func (p *pgObserver) Close() { p.o.Close() }
