package status

import (
	"fmt"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/testbed"
)

// healthyScale is a protected installation of n groups (topologyOf), each
// with db primary at brussels and streaming at antwerp and its lag
// trusted; with requires, each group also requires ldap, which both sites
// probe and reach.
func healthyScale(n int, requires bool, now time.Time) (*config.Topology, Snapshot) {
	t := topologyOf(n)
	snap := Snapshot{Views: map[string]View{}, ViewAges: map[string]time.Duration{}, Records: map[string]Record{},
		Lags: map[string]map[string]map[string]Lag{}}
	roles := map[string]ResourceView{"brussels": primary, "antwerp": standby}
	for _, site := range []string{"brussels", "antwerp", "frankfurt"} {
		v := sees(site, "brussels", "antwerp", "frankfurt")
		v.PublishedAt = now
		if _, ok := roles[site]; ok {
			v.Resources, v.Dependencies = map[string]ResourceView{}, map[string]DependencyView{}
		}
		snap.Views[site], snap.ViewAges[site] = v, 0
	}
	for i := range t.Groups {
		g := &t.Groups[i]
		snap.Records[g.Name] = Record{Group: g.Name, ActiveSite: "brussels", Epoch: 3}
		snap.Lags[g.Name] = trusted["webshop"]
		if requires {
			g.Requires = []config.Dependency{{Name: "ldap", Type: config.DependencyTCP, Sites: map[string]config.DependencySite{
				"brussels": {Address: "10.1.0.5:389"}, "antwerp": {Address: "10.2.0.5:389"}}}}
		}
		for site, rv := range roles {
			rv.Group, rv.Resource, rv.Type = g.Name, "db", "postgres"
			snap.Views[site].Resources[g.Name+"/db"] = rv
			if requires {
				snap.Views[site].Dependencies[g.Name+"/ldap"] = DependencyView{Group: g.Name, Dependency: "ldap", Type: "tcp",
					Target: dependencyTarget(config.DependencyTCP, g.Requires[0].Sites[site]), Reachable: true, CheckedAt: now, Since: now.Add(-time.Hour)}
			}
		}
	}
	return t, snap
}

// BenchmarkAssemble is one status of 1000 groups, with and without a
// dependency per group: what every GET /v1/status costs, and every read
// of the agent's shared state (metrics, the dashboard, what-if), which
// serves its readers for a second.
func BenchmarkAssemble(b *testing.B) {
	const n = 1000
	now := time.Unix(0, 0)
	for _, requires := range []bool{false, true} {
		b.Run(fmt.Sprintf("groups=%d/requires=%v", n, requires), func(b *testing.B) {
			t, snap := healthyScale(n, requires, now)
			st := Assemble(t, snap, "frankfurt", now)
			for _, g := range st.Groups {
				if g.State != StateProtected || g.Readiness == nil || g.Readiness.Verdict != Ready || requires != (len(g.Dependencies) == 2) {
					b.Fatalf("%s: %s, readiness %+v, dependencies %+v; want protected, ready", g.Name, g.State, g.Readiness, g.Dependencies)
				}
			}
			b.ReportAllocs()
			report := testbed.ReportCPU(b)
			for b.Loop() {
				Assemble(t, snap, "frankfurt", now)
			}
			report()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/group")
		})
	}
}

// BenchmarkJudge is the readiness of one group, its dependency probed
// from both sites, alone: Judge, which Assemble calls for every group.
func BenchmarkJudge(b *testing.B) {
	now := time.Unix(0, 0)
	t, snap := healthyScale(1000, true, now)
	st := Assemble(t, snap, "frankfurt", now)
	i := 0
	b.ReportAllocs()
	report := testbed.ReportCPU(b)
	for b.Loop() {
		if r := Judge(st.Groups[i], &t.Groups[i], t, snap, st.Sites, now); r.Verdict != Ready {
			b.Fatalf("%s: %+v, want ready", t.Groups[i].Name, r)
		}
		i = (i + 1) % len(t.Groups)
	}
	report()
}
