package status

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
)

// topology is brussels and antwerp (sites) and frankfurt (witness), with
// group webshop of one resource db at both sites.
func topology() *config.Topology {
	return &config.Topology{
		Name: "test",
		Sites: []config.Site{
			{Name: "brussels", Role: config.RoleSite},
			{Name: "antwerp", Role: config.RoleSite},
			{Name: "frankfurt", Role: config.RoleWitness},
		},
		Coordination: config.Coordination{ServeLease: new(config.Duration(time.Second))},
		Groups: []config.Group{{
			Name: "webshop", PreferredSite: "brussels", Policy: config.PolicyAutomatic,
			Sites:       []string{"brussels", "antwerp"},
			MaxDataLoss: new(config.Duration(5 * time.Second)),
			Resources:   []config.Resource{{Name: "db", Type: "postgres", Data: true}},
		}},
	}
}

// topologyOf is topology with n groups shaped as webshop, named
// webshop-0001 and on.
func topologyOf(n int) *config.Topology {
	t := topology()
	g := t.Groups[0]
	t.Groups = make([]config.Group, n)
	for i := range t.Groups {
		t.Groups[i] = g
		t.Groups[i].Name = fmt.Sprintf("webshop-%04d", i+1)
	}
	return t
}

// lagOf is the lag record of db at antwerp.
func lagOf(l Lag) map[string]map[string]map[string]Lag {
	return map[string]map[string]map[string]Lag{"webshop": {"db": {"antwerp": l}}}
}

// trusted is a lag record a failover in epoch 3 goes ahead with.
var trusted = lagOf(Lag{Seconds: 0.004, Bytes: 128, Epoch: 3, MeasuredAt: time.Unix(0, 0), SeenAt: time.Unix(0, 1e8), Streaming: true})

// sees builds a view in which site reaches the listed peers and not the
// other locations.
func sees(site string, reachable ...string) View {
	v := View{Site: site, Peers: map[string]PeerView{}}
	for _, p := range []string{"brussels", "antwerp", "frankfurt"} {
		if p == site {
			continue
		}
		ok := false
		for _, r := range reachable {
			ok = ok || r == p
		}
		v.Peers[p] = PeerView{Reachable: ok}
	}
	return v
}

func withDB(v View, rv ResourceView) View {
	rv.Group, rv.Resource, rv.Type = "webshop", "db", "postgres"
	v.Resources = map[string]ResourceView{"webshop/db": rv}
	return v
}

var (
	primary = ResourceView{Up: true, Role: RolePrimary, Timeline: 1,
		Standbys: []StandbyView{{Name: "antwerp", Site: "antwerp", State: "streaming", LagBytes: 128, LagSeconds: 0.004}}}
	standby    = ResourceView{Up: true, Role: RoleStandby, Timeline: 1, Streaming: true}
	notStream  = ResourceView{Up: true, Role: RoleStandby, Timeline: 1}
	dbDown     = ResourceView{Role: RoleDown, Error: "connection refused"}
	rec        = map[string]Record{"webshop": {Group: "webshop", ActiveSite: "brussels", Epoch: 3}}
	allHealthy = map[string]View{
		"brussels":  withDB(sees("brussels", "antwerp", "frankfurt"), primary),
		"antwerp":   withDB(sees("antwerp", "brussels", "frankfurt"), standby),
		"frankfurt": sees("frankfurt", "brussels", "antwerp"),
	}
)

func TestSiteVerdicts(t *testing.T) {
	tests := []struct {
		name  string
		views map[string]View
		up    map[string]bool
	}{
		{"all healthy", allHealthy, map[string]bool{"brussels": true, "antwerp": true, "frankfurt": true}},
		{"brussels lost, its view expired", map[string]View{
			"antwerp":   sees("antwerp", "frankfurt"),
			"frankfurt": sees("frankfurt", "antwerp"),
		}, map[string]bool{"brussels": false, "antwerp": true, "frankfurt": true}},
		{"brussels lost, its stale view still there", map[string]View{
			"brussels":  sees("brussels", "antwerp", "frankfurt"),
			"antwerp":   sees("antwerp", "frankfurt"),
			"frankfurt": sees("frankfurt", "antwerp"),
		}, map[string]bool{"brussels": false, "antwerp": true, "frankfurt": true}},
		{"brussels-antwerp link cut, witness sees both", map[string]View{
			"brussels":  sees("brussels", "frankfurt"),
			"antwerp":   sees("antwerp", "frankfurt"),
			"frankfurt": sees("frankfurt", "brussels", "antwerp"),
		}, map[string]bool{"brussels": true, "antwerp": true, "frankfurt": true}},
		{"only antwerp reports, sees nobody", map[string]View{
			"antwerp": sees("antwerp"),
		}, map[string]bool{"brussels": false, "antwerp": true, "frankfurt": false}},
		{"nobody reports", map[string]View{}, map[string]bool{"brussels": false, "antwerp": false, "frankfurt": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Assemble(topology(), Snapshot{Views: tt.views}, "antwerp", time.Unix(0, 0))
			got := map[string]bool{}
			for _, s := range st.Sites {
				got[s.Name] = s.Up
			}
			if diff := cmp.Diff(tt.up, got); diff != "" {
				t.Errorf("up (-want +got):\n%s", diff)
			}
		})
	}
}

// splitLine is the problem of db claimed primary at both sites of
// webshop, adopted at brussels.
const splitLine = "db: 2 sites claim the primary role: [brussels antwerp]; clients may be writing at each: only brussels, the active site, keeps its writes; run: siteflip reprotect webshop"

func TestGroupStates(t *testing.T) {
	with := func(site string, rv ResourceView) map[string]View {
		out := map[string]View{}
		for k, v := range allHealthy {
			out[k] = v
		}
		out[site] = withDB(allHealthy[site], rv)
		return out
	}
	without := func(site string) map[string]View {
		out := map[string]View{}
		for k, v := range allHealthy {
			if k != site {
				out[k] = v
			}
		}
		return out
	}
	tests := []struct {
		name     string
		views    map[string]View
		records  map[string]Record
		state    string
		problems []string
	}{
		{"protected", allHealthy, rec, StateProtected, []string{}},
		{"not adopted yet", allHealthy, nil, StateInitializing, []string{"no controller has adopted the group yet; it will be adopted at brussels: every resource that holds data is primary at brussels"}},
		{"standby not streaming", with("antwerp", notStream), rec, StateUnprotected,
			[]string{"db at antwerp is a standby that is not streaming; run: siteflip reprotect webshop"}},
		{"standby down", with("antwerp", dbDown), rec, StateUnprotected,
			[]string{"db at antwerp is down: it is no standby of brussels; run: siteflip reprotect webshop"}},
		{"standby site not reporting", without("antwerp"), rec, StateUnprotected,
			[]string{"db at antwerp: state unknown, the site's agent is not reporting; run at antwerp: systemctl start siteflip"}},
		{"primary down", with("brussels", dbDown), rec, StateDown,
			[]string{"db at active site brussels is down: no database server runs there; start it, or fail the group over; run: siteflip failover webshop"}},
		{"active site not reporting", without("brussels"), rec, StateUnreachable,
			[]string{"db at active site brussels: state unknown, the site's agent is not reporting; if its clients still reach it, it may still accept writes"}},
		{"active site lost, its stale view still there", func() map[string]View {
			v := with("brussels", primary)
			v["antwerp"] = withDB(sees("antwerp", "frankfurt"), notStream)
			v["frankfurt"] = sees("frankfurt", "antwerp")
			return v
		}(), rec, StateUnreachable, []string{
			"db at active site brussels: state unknown, the site is unreachable; if its clients still reach it, it may still accept writes",
			"db at antwerp is a standby that is not streaming; run: siteflip reprotect webshop",
		}},
		{"active site cut off but still publishing: its claims count", func() map[string]View {
			v := with("brussels", primary)
			b := v["brussels"]
			b.PublishedAt = time.Unix(0, 0)
			v["brussels"] = b
			v["antwerp"] = withDB(sees("antwerp", "frankfurt"), primary)
			v["frankfurt"] = sees("frankfurt", "antwerp")
			return v
		}(), rec, StateSplitBrain, []string{splitLine}},
		{"two primaries before adoption", with("antwerp", primary), nil, StateSplitBrain, []string{
			"db: 2 sites claim the primary role: [brussels antwerp]",
			"no controller has adopted the group yet: its data is primary at 2 sites (brussels, antwerp), not one; make one site primary for all of its data, or check the controller's log",
		}},
		{"two primaries", with("antwerp", primary), rec, StateSplitBrain,
			[]string{splitLine}},
		{"primary only at the other site", func() map[string]View {
			v := with("antwerp", primary)
			v["brussels"] = withDB(allHealthy["brussels"], standby)
			return v
		}(), rec, StateDown, []string{
			"db at active site brussels is standby, not primary; the group's last run says why; run: siteflip runs webshop",
			"db at antwerp is primary but the group's active site is brussels; run: siteflip reprotect webshop",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Assemble(topology(), Snapshot{Views: tt.views, Records: tt.records, Lags: trusted}, "frankfurt", time.Unix(0, 0))
			g := st.Groups[0]
			if g.State != tt.state {
				t.Errorf("state: got %s, want %s", g.State, tt.state)
			}
			if diff := cmp.Diff(tt.problems, g.Problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLagComesFromThePrimary(t *testing.T) {
	st := Assemble(topology(), Snapshot{Views: allHealthy, Records: rec, Controller: &Controller{Site: "frankfurt", Term: 7}}, "brussels", time.Unix(0, 0))
	if st.Controller != "frankfurt" || st.ControllerTerm != 7 {
		t.Errorf("controller: %s term %d", st.Controller, st.ControllerTerm)
	}
	g := st.Groups[0]
	if g.ActiveSite != "brussels" || g.Epoch != 3 {
		t.Errorf("active %s epoch %d", g.ActiveSite, g.Epoch)
	}
	sites := g.Resources[0].Sites
	if sites[0].LagBytes != nil || sites[0].LagSeconds != nil {
		t.Errorf("the primary has no lag, got %v/%v", sites[0].LagBytes, sites[0].LagSeconds)
	}
	if sites[1].LagBytes == nil || *sites[1].LagBytes != 128 || *sites[1].LagSeconds != 0.004 {
		t.Errorf("standby lag: %+v", sites[1])
	}
	// With the primary's site gone, the standby's lag is unknown, not zero.
	views := map[string]View{"antwerp": allHealthy["antwerp"], "frankfurt": allHealthy["frankfurt"]}
	st = Assemble(topology(), Snapshot{Views: views, Records: rec}, "antwerp", time.Unix(0, 0))
	if s := st.Groups[0].Resources[0].Sites[1]; s.LagBytes != nil || s.LagSeconds != nil {
		t.Errorf("lag without a primary must be null, got %v/%v", s.LagBytes, s.LagSeconds)
	}
}

func TestLostSiteAndDecision(t *testing.T) {
	views := map[string]View{
		"antwerp":   withDB(sees("antwerp", "frankfurt"), standby),
		"frankfurt": sees("frankfurt", "antwerp"),
	}
	marks := map[string]map[string]Mark{"brussels": {
		"antwerp":   {Site: "brussels", By: "antwerp"},
		"frankfurt": {Site: "brussels", By: "frankfurt"},
	}}
	d := Decision{Group: "webshop", Site: "brussels", Reason: "group webshop: policy is manual", Command: "siteflip failover webshop --to antwerp"}
	tests := []struct {
		name   string
		snap   Snapshot
		lostBy []string
		lost   bool
		state  string
	}{
		{"marked by one only", Snapshot{Views: views, Records: rec, Marks: map[string]map[string]Mark{"brussels": {"antwerp": marks["brussels"]["antwerp"]}}},
			[]string{"antwerp"}, false, StateUnreachable},
		{"lost, failing over", Snapshot{Views: views, Records: rec, Marks: marks, Running: map[string]string{"webshop": "r1"}},
			[]string{"antwerp", "frankfurt"}, true, StateFailingOver},
		{"lost, waiting for a person", Snapshot{Views: views, Records: rec, Marks: marks, Decisions: map[string]Decision{"webshop": d}},
			[]string{"antwerp", "frankfurt"}, true, StateNeedsDecision},
		{"a decision about another active site is stale", Snapshot{Views: map[string]View{
			"antwerp":   withDB(sees("antwerp", "frankfurt"), ResourceView{Up: true, Role: RolePrimary, Timeline: 2}),
			"frankfurt": sees("frankfurt", "antwerp"),
		}, Records: map[string]Record{"webshop": {Group: "webshop", ActiveSite: "antwerp", Epoch: 4}},
			Marks: marks, Decisions: map[string]Decision{"webshop": d}}, []string{"antwerp", "frankfurt"}, true, StateUnprotected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Assemble(topology(), tt.snap, "antwerp", time.Unix(0, 0))
			b, _ := st.Site("brussels")
			if !cmp.Equal(b.LostBy, tt.lostBy) || b.Lost != tt.lost {
				t.Errorf("brussels lost_by %v lost %v, want %v %v", b.LostBy, b.Lost, tt.lostBy, tt.lost)
			}
			g := st.Groups[0]
			if g.State != tt.state {
				t.Errorf("state %s, want %s (problems %v)", g.State, tt.state, g.Problems)
			}
			if (g.Decision != nil) != (tt.state == StateNeedsDecision) {
				t.Errorf("decision %+v in state %s", g.Decision, g.State)
			}
		})
	}
}

// Protected means a failover would go ahead now: a standby that streams
// but whose lag record a failover would not trust leaves the group
// unprotected, and says why.
func TestProtectedMeansFailoverReady(t *testing.T) {
	stale := Lag{Seconds: 0.004, Epoch: 3, MeasuredAt: time.Unix(0, 0), SeenAt: time.Unix(600, 0), Streaming: true}
	tests := []struct {
		name    string
		lags    map[string]map[string]map[string]Lag
		sync    map[string]map[string]SyncRecord
		state   string
		problem string
	}{
		{"trusted lag", trusted, nil, StateProtected, ""},
		{"no lag recorded yet", nil, nil, StateUnprotected, "standby lag unknown: it was never measured"},
		{"lag of the previous epoch (just after a reprotect)", lagOf(Lag{Seconds: 0.004, Epoch: 2, Streaming: true}), nil, StateUnprotected,
			"standby lag unknown: it was last measured in epoch 2"},
		{"recorded as not streaming", lagOf(Lag{Epoch: 3}), nil, StateUnprotected, "not streaming from its primary when last seen"},
		{"stale: the primary went unobservable", lagOf(stale), nil, StateUnprotected, "measured 10m0s before its primary was last seen"},
		{"synchronous in this epoch: no lag needed", nil, map[string]map[string]SyncRecord{"webshop": {"db": {State: SyncOn, Epoch: 3}}}, StateProtected, ""},
		{"synchronous in an earlier epoch does not count", nil, map[string]map[string]SyncRecord{"webshop": {"db": {State: SyncOn, Epoch: 2}}}, StateUnprotected, "never measured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Assemble(topology(), Snapshot{Views: allHealthy, Records: rec, Lags: tt.lags, Sync: tt.sync}, "frankfurt", time.Unix(0, 0))
			g := st.Groups[0]
			if g.State != tt.state {
				t.Errorf("state %s, want %s (problems %v)", g.State, tt.state, g.Problems)
			}
			if tt.problem != "" && !strings.Contains(problemText(g), tt.problem) {
				t.Errorf("problems %q lack %q", g.Problems, tt.problem)
			}
			ready := g.Resources[0].Sites[1].FailoverReady
			if ready == nil || *ready != (tt.state == StateProtected) {
				t.Errorf("failover_ready of antwerp: %v", ready)
			}
		})
	}
}

// Whether a down site's lingering view is still being published is judged
// by the reader's own measure of its age, not by the publisher's clock.
func TestFreshnessIgnoresThePublishersClock(t *testing.T) {
	views := map[string]View{
		"brussels":  withDB(sees("brussels", "antwerp", "frankfurt"), primary),
		"antwerp":   withDB(sees("antwerp", "frankfurt"), standby),
		"frankfurt": sees("frankfurt", "antwerp"),
	}
	b := views["brussels"]
	b.PublishedAt = time.Unix(0, 0).Add(-time.Hour) // its clock is an hour behind
	views["brussels"] = b
	now := time.Unix(0, 0)
	for _, tt := range []struct {
		age   time.Duration
		state string
	}{
		{100 * time.Millisecond, StateProtected}, // still publishing: its claims count
		{10 * time.Second, StateUnreachable},     // no longer publishing
	} {
		snap := Snapshot{Views: views, Records: rec, Lags: trusted, ViewAges: map[string]time.Duration{"brussels": tt.age, "antwerp": 0, "frankfurt": 0}}
		if g := Assemble(topology(), snap, "antwerp", now).Groups[0]; g.State != tt.state {
			t.Errorf("view %s old: state %s, want %s (%v)", tt.age, g.State, tt.state, g.Problems)
		}
	}
}

// TestViewOfAnEarlierRun: after a power cut, a site's agent starts again
// and is reachable before it publishes; the view its previous run left
// (a primary) must not be shown as what the site has now.
func TestViewOfAnEarlierRun(t *testing.T) {
	before := time.Unix(100, 0).UTC()
	after := time.Unix(200, 0).UTC()
	now := time.Unix(210, 0)
	seenStarted := func(v View, site string, started time.Time) View {
		p := v.Peers[site]
		p.Started = started
		v.Peers[site] = p
		return v
	}
	for _, tt := range []struct {
		name       string
		seen       time.Time     // when antwerp's probes say brussels' agent started
		age        time.Duration // how long ago antwerp saw brussels' view change
		wantRole   string
		wantReason string
	}{
		{"same run, fresh", before, 100 * time.Millisecond, RolePrimary, ""},
		{"same run, between publications", before, 5 * time.Second, RolePrimary, ""},
		{"older peer without a start time", time.Time{}, 5 * time.Second, RolePrimary, ""},
		{"new run, not yet published", after, 5 * time.Second, RoleUnknown, "started again"},
		{"new run, its first view is fresh", after, 100 * time.Millisecond, RolePrimary, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := withDB(sees("brussels", "antwerp", "frankfurt"), primary)
			b.StartedAt = before
			if tt.name == "new run, its first view is fresh" {
				b.StartedAt = after
			}
			views := map[string]View{
				"brussels":  b,
				"antwerp":   seenStarted(withDB(sees("antwerp", "brussels", "frankfurt"), standby), "brussels", tt.seen),
				"frankfurt": seenStarted(sees("frankfurt", "brussels", "antwerp"), "brussels", tt.seen),
			}
			snap := Snapshot{Views: views, Records: rec, Lags: trusted, ViewAges: map[string]time.Duration{"brussels": tt.age, "antwerp": 0, "frankfurt": 0}}
			s := Assemble(topology(), snap, "antwerp", now).Groups[0].Resources[0].Sites[0]
			if s.Role != tt.wantRole || !strings.Contains(s.Error, tt.wantReason) {
				t.Errorf("brussels' db: role %s (%q), want %s (%q)", s.Role, s.Error, tt.wantRole, tt.wantReason)
			}
		})
	}
}

// TestLastWordOfALostSite: right after a fast failover, the old active
// site's last view (a primary) is still recent, but it was published
// before the others lost the site: it must not make a split brain. A site
// that the others cannot reach but that still publishes is believed.
func TestLastWordOfALostSite(t *testing.T) {
	now := time.Unix(1000, 0)
	lostSince := func(v View, d time.Duration) View {
		v.PublishedAt = now
		v.Peers["brussels"] = PeerView{Reachable: false, Since: now.Add(-d)}
		return v
	}
	for _, tt := range []struct {
		name     string
		lostFor  time.Duration // how long antwerp and frankfurt have not reached brussels
		viewAge  time.Duration // brussels' view, as the reader measures it
		wantRole string
		split    bool
	}{
		{"died 0.5 s ago, its last view 1.5 s old", 500 * time.Millisecond, 1500 * time.Millisecond, RoleUnknown, false},
		{"died 0.5 s ago, its last view 0.6 s old", 500 * time.Millisecond, 600 * time.Millisecond, RoleUnknown, false},
		{"unreachable for 5 s, still publishing", 5 * time.Second, 200 * time.Millisecond, RolePrimary, true},
		{"unreachable for 5 s, no longer publishing", 5 * time.Second, 3 * time.Second, RoleUnknown, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := withDB(sees("brussels"), primary)
			views := map[string]View{
				"brussels":  b,
				"antwerp":   lostSince(withDB(sees("antwerp", "frankfurt"), ResourceView{Up: true, Role: RolePrimary, Timeline: 2}), tt.lostFor),
				"frankfurt": lostSince(sees("frankfurt", "antwerp"), tt.lostFor),
			}
			snap := Snapshot{Views: views, Records: map[string]Record{"webshop": {Group: "webshop", ActiveSite: "antwerp", Epoch: 4}},
				ViewAges: map[string]time.Duration{"brussels": tt.viewAge, "antwerp": 0, "frankfurt": 0}}
			g := Assemble(topology(), snap, "antwerp", now).Groups[0]
			if r := g.Resources[0].Sites[0].Role; r != tt.wantRole {
				t.Errorf("brussels' db: %s, want %s", r, tt.wantRole)
			}
			if split := g.State == StateSplitBrain; split != tt.split {
				t.Errorf("state %s (%v), split brain want %v", g.State, g.Problems, tt.split)
			}
		})
	}
}

// The raft leader is the one the answering location's own view names.
func TestRaftLeaderAsAnswered(t *testing.T) {
	views := map[string]View{}
	for k, v := range allHealthy {
		views[k] = v
	}
	for site, leader := range map[string]string{"brussels": "frankfurt", "antwerp": "antwerp"} {
		v := views[site]
		v.RaftLeader = leader
		views[site] = v
	}
	for answeredBy, want := range map[string]string{"brussels": "frankfurt", "antwerp": "antwerp", "frankfurt": ""} {
		st := Assemble(topology(), Snapshot{Views: views, Records: rec}, answeredBy, time.Unix(100, 0))
		if st.RaftLeader != want {
			t.Errorf("answered by %s: raft leader %q, want %q", answeredBy, st.RaftLeader, want)
		}
		// Each location as its own view says.
		for site, leader := range map[string]string{"brussels": "frankfurt", "antwerp": "antwerp", "frankfurt": ""} {
			if s, _ := st.Site(site); s.RaftLeader != leader {
				t.Errorf("answered by %s: %s sees the raft leader at %q, want %q", answeredBy, site, s.RaftLeader, leader)
			}
		}
	}
}

// A traffic resource is spoken of in its own terms: it sends the clients
// to a site or is ready to, not a primary or a streaming standby.
func TestTrafficInItsOwnTerms(t *testing.T) {
	topo := topology()
	g := &topo.Groups[0]
	g.Resources[0].Class = config.ClassData
	g.Resources = append(g.Resources, config.Resource{Name: "vip", Type: "bgp", Class: config.ClassTraffic})
	withVIP := func(v View, rv ResourceView) View {
		rv.Group, rv.Resource, rv.Type = "webshop", "vip", "bgp"
		out := v
		out.Resources = map[string]ResourceView{}
		for k, r := range v.Resources {
			out.Resources[k] = r
		}
		out.Resources["webshop/vip"] = rv
		return out
	}
	active := ResourceView{Up: true, Role: RolePrimary, Streaming: true}
	ready := ResourceView{Up: true, Role: RoleStandby, Streaming: true}
	noSession := ResourceView{Up: false, Role: RoleStandby, Error: "no BGP session to a router is established"}
	tests := []struct {
		name              string
		brussels, antwerp ResourceView
		state             string
		problems          []string
	}{
		{"active and ready", active, ready, StateProtected, []string{}},
		{"parked site not ready", active, noSession, StateUnprotected,
			[]string{"vip at antwerp is not ready to take the clients"}},
		{"active site parked", ready, ready, StateDown,
			[]string{"vip at active site brussels does not send the clients there"}},
		{"clients sent to the other site", ready, active, StateDown, []string{
			"vip at active site brussels does not send the clients there",
			"vip at antwerp sends the clients there but the group's active site is brussels; run: siteflip reprotect webshop",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			views := map[string]View{
				"brussels":  withVIP(allHealthy["brussels"], tt.brussels),
				"antwerp":   withVIP(allHealthy["antwerp"], tt.antwerp),
				"frankfurt": allHealthy["frankfurt"],
			}
			st := Assemble(topo, Snapshot{Views: views, Records: rec, Lags: trusted}, "frankfurt", time.Unix(0, 0))
			gs := st.Groups[0]
			if gs.State != tt.state {
				t.Errorf("state: got %s, want %s", gs.State, tt.state)
			}
			if diff := cmp.Diff(tt.problems, gs.Problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if gs.Resources[1].Class != "traffic" || gs.Resources[0].Class != "data" {
				t.Errorf("classes %q, %q; want data, traffic", gs.Resources[0].Class, gs.Resources[1].Class)
			}
		})
	}
}

// AssembleGroup gives the sites and the one group as Assemble does.
func TestAssembleGroup(t *testing.T) {
	topo := topology()
	other := topo.Groups[0]
	other.Name = "crm"
	topo.Groups = append(topo.Groups, other)
	snap := Snapshot{Views: allHealthy, Records: rec, Controller: &Controller{Site: "frankfurt", Term: 7}}
	all := Assemble(topo, snap, "brussels", time.Unix(0, 0))
	for i := range topo.Groups {
		one := AssembleGroup(topo, &topo.Groups[i], snap, "brussels", time.Unix(0, 0))
		if len(one.Groups) != 1 || !cmp.Equal(one.Groups[0], all.Groups[i]) {
			t.Errorf("AssembleGroup(%s) groups %+v, want only %+v", topo.Groups[i].Name, one.Groups, all.Groups[i])
		}
		if !cmp.Equal(one.Sites, all.Sites) || one.Controller != all.Controller {
			t.Errorf("AssembleGroup(%s) sites %+v, want %+v", topo.Groups[i].Name, one.Sites, all.Sites)
		}
	}
}

// problemText is every problem of g as one text, each line with the raw
// error behind it.
func problemText(g GroupStatus) string {
	var b strings.Builder
	for _, l := range g.Problems {
		b.WriteString(l + "\n")
	}
	for _, p := range g.Issues {
		b.WriteString(p.Detail + "\n")
	}
	return b.String()
}

// A paused group says so, who paused it, when and why, with the command
// that ends the pause; its state is still its replication's (the pause
// takes nothing down); the JSON keys are snake_case.
func TestPausedGroup(t *testing.T) {
	at := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	snap := Snapshot{Views: allHealthy, Records: rec, Lags: trusted,
		Paused: map[string]Pause{"webshop": {Group: "webshop", By: "alice", Role: "operator", At: at, Reason: "kernel upgrade"}}}
	g := Assemble(topology(), snap, "brussels", at.Add(2*time.Hour)).Groups[0]
	if !g.Paused || g.PausedBy != "alice" || !g.PausedAt.Equal(at) || g.PauseReason != "kernel upgrade" {
		t.Errorf("paused %v by %q at %s for %q", g.Paused, g.PausedBy, g.PausedAt, g.PauseReason)
	}
	if g.State != StateProtected {
		t.Errorf("state %s, want %s: a pause changes no replication (problems %v)", g.State, StateProtected, g.Problems)
	}
	want := "paused by alice at 2026-12-05T04:00:00Z (kernel upgrade): no automatic failover and no scheduled drill until it is resumed; run: siteflip resume webshop"
	if !slices.Contains(g.Problems, want) {
		t.Errorf("problems %q, want %q among them", g.Problems, want)
	}
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"paused":true`, `"paused_by":"alice"`, `"paused_at":"2026-12-05T04:00:00Z"`, `"pause_reason":"kernel upgrade"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON lacks %s: %s", k, b)
		}
	}

	// Not paused: paused is false, the others absent.
	snap.Paused = nil
	g = Assemble(topology(), snap, "brussels", at).Groups[0]
	b, _ = json.Marshal(g)
	if g.Paused || !strings.Contains(string(b), `"paused":false`) || strings.Contains(string(b), "paused_by") || strings.Contains(string(b), "paused_at") {
		t.Errorf("a group not paused: %s", b)
	}
}

// A scheduled switchover is shown; once refused, or missed, a problem
// line says why and how to cancel it.
func TestScheduledSwitchover(t *testing.T) {
	at := time.Date(2026, 12, 5, 7, 0, 0, 0, time.UTC)
	sc := ScheduledSwitchover{Group: "webshop", To: "antwerp", At: at, By: "alice"}
	for _, tt := range []struct {
		name    string
		now     time.Time
		refused string
		problem string
	}{
		{"ahead", at.Add(-time.Hour), "", ""},
		{"refused", at.Add(time.Minute), "run r1 is in progress on the group",
			"the switchover to antwerp scheduled for 2026-12-05T07:00:00Z cannot start yet: run r1 is in progress on the group; it is tried until 2026-12-05T07:05:00Z, or `siteflip switchover webshop --cancel`"},
		{"missed", at.Add(time.Hour), "run r1 is in progress on the group",
			"the switchover to antwerp scheduled for 2026-12-05T07:00:00Z did not start within 5m0s: run r1 is in progress on the group; `siteflip switchover webshop --cancel` removes it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := sc
			s.Refused = tt.refused
			snap := Snapshot{Views: allHealthy, Records: rec, Lags: trusted, Scheduled: map[string]ScheduledSwitchover{"webshop": s}}
			g := Assemble(topology(), snap, "brussels", tt.now).Groups[0]
			if g.ScheduledSwitchover == nil || g.ScheduledSwitchover.To != "antwerp" || !g.ScheduledSwitchover.At.Equal(at) {
				t.Fatalf("scheduled switchover %+v", g.ScheduledSwitchover)
			}
			if g.State != StateProtected {
				t.Errorf("state %s", g.State)
			}
			got := ""
			if len(g.Problems) > 0 {
				got = g.Problems[len(g.Problems)-1]
			}
			if got != tt.problem {
				t.Errorf("problem:\n got  %q\n want %q", got, tt.problem)
			}
		})
	}
}

// TestTrafficMovingDuringARun: a switchover of webshop from brussels to
// antwerp has activated and promoted antwerp; brussels' own DNS server
// still answers the name with brussels' address until its agent follows
// the move (network.go, followRecord), so its view says primary for the
// name. That is the run moving the clients, not a split brain. A second
// primary of the data, a claim after the run ended, a claim the run does
// not explain, and a view no longer kept up to date are not excused.
func TestTrafficMovingDuringARun(t *testing.T) {
	topo := topology()
	g := &topo.Groups[0]
	g.Resources[0].Class = config.ClassData
	g.Resources = append(g.Resources, config.Resource{Name: "name", Type: "dns", Class: config.ClassTraffic})
	with := func(v View, db, name ResourceView) View {
		db.Group, db.Resource, db.Type = "webshop", "db", "postgres"
		name.Group, name.Resource, name.Type = "webshop", "name", "dns"
		v.Resources = map[string]ResourceView{"webshop/db": db, "webshop/name": name}
		return v
	}
	const run = "20261205T100000-webshop-switchover-1a2b"
	answers := ResourceView{Up: true, Role: RolePrimary, Streaming: true}
	ready := ResourceView{Up: true, Role: RoleStandby, Streaming: true}
	newPrimary := ResourceView{Up: true, Role: RolePrimary, Timeline: 2}
	rejoined := ResourceView{Up: true, Role: RoleStandby, Timeline: 2, Streaming: true}
	moved := map[string]Record{"webshop": {Group: "webshop", ActiveSite: "antwerp", Epoch: 4}}
	switchover := map[string]RunPlan{"webshop": {Action: "switchover", From: "brussels", To: "antwerp"}}
	inRun := map[string]string{"webshop": run}
	views := func(brussels View) map[string]View {
		return map[string]View{
			"brussels":  brussels,
			"antwerp":   with(sees("antwerp", "brussels", "frankfurt"), newPrimary, answers),
			"frankfurt": sees("frankfurt", "brussels", "antwerp"),
		}
	}
	movingLine := "name at brussels still sends the clients there while run " + run + " moves the group to antwerp: its agent follows antwerp at the run's rejoin step, or when the run ends"
	for _, tt := range []struct {
		name     string
		brussels View
		absent   bool // brussels publishes no view (its lease ran out)
		running  map[string]string
		plans    map[string]RunPlan
		ages     map[string]time.Duration
		state    string
		kinds    []string
		problem  string // one of the problems, when set
	}{
		{"fenced old primary, its name not yet moved", with(sees("brussels", "antwerp", "frankfurt"), dbDown, answers),
			false, inRun, switchover, nil, StateSwitchingOver, []string{KindStandbyNotReady, KindTrafficMoving}, movingLine},
		{"rejoined old primary, its name not yet moved", with(sees("brussels", "antwerp", "frankfurt"), rejoined, answers),
			false, inRun, switchover, nil, StateSwitchingOver, []string{KindTrafficMoving}, movingLine},
		{"the name moved", with(sees("brussels", "antwerp", "frankfurt"), rejoined, ready),
			false, inRun, switchover, nil, StateSwitchingOver, nil, ""},
		{"the data is primary at both during the run", with(sees("brussels", "antwerp", "frankfurt"), primary, answers),
			false, inRun, switchover, nil, StateSplitBrain, []string{KindSplitBrain, KindTrafficMoving}, ""},
		{"the name still at brussels after the run ended", with(sees("brussels", "antwerp", "frankfurt"), rejoined, answers),
			false, nil, nil, nil, StateSplitBrain, []string{KindSplitBrain}, ""},
		{"a run whose direction is not known", with(sees("brussels", "antwerp", "frankfurt"), rejoined, answers),
			false, inRun, nil, nil, StateSplitBrain, []string{KindSplitBrain}, ""},
		{"a run that does not come from brussels", with(sees("brussels", "antwerp", "frankfurt"), rejoined, answers),
			false, inRun, map[string]RunPlan{"webshop": {Action: "reprotect", From: "antwerp", To: "antwerp"}}, nil,
			StateSplitBrain, []string{KindSplitBrain}, ""},
		{"brussels cut off, its last view beyond the reporting bound", with(sees("brussels"), primary, answers),
			false, inRun, switchover, map[string]time.Duration{"brussels": 3 * time.Second, "antwerp": 0, "frankfurt": 0},
			StateSwitchingOver, []string{KindStandbyUnknown, KindStandbyUnknown}, "db at brussels: state unknown, the site is unreachable"},
		{"brussels no longer reporting", View{}, true, inRun, switchover, nil,
			StateSwitchingOver, []string{KindStandbyUnknown, KindStandbyUnknown}, "name at brussels: state unknown, the site's agent is not reporting; run at brussels: systemctl start siteflip"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vs := views(tt.brussels)
			if tt.absent {
				delete(vs, "brussels")
			}
			if tt.name == "brussels cut off, its last view beyond the reporting bound" {
				vs["antwerp"] = with(sees("antwerp", "frankfurt"), newPrimary, answers)
				vs["frankfurt"] = sees("frankfurt", "antwerp")
			}
			snap := Snapshot{Views: vs, Records: moved, Running: tt.running, RunPlans: tt.plans, ViewAges: tt.ages}
			gs := Assemble(topo, snap, "antwerp", time.Unix(0, 0)).Groups[0]
			if gs.State != tt.state {
				t.Errorf("state %s, want %s; problems %q", gs.State, tt.state, gs.Problems)
			}
			var kinds []string
			for _, p := range gs.Issues {
				if p.Kind != KindLagUnknown && p.Kind != KindAgentDown {
					kinds = append(kinds, p.Kind)
				}
			}
			if diff := cmp.Diff(tt.kinds, kinds); diff != "" {
				t.Errorf("problem kinds (-want +got):\n%s\nproblems %q", diff, gs.Problems)
			}
			if tt.problem != "" && !slices.Contains(gs.Problems, tt.problem) {
				t.Errorf("no problem %q among %q", tt.problem, gs.Problems)
			}
		})
	}
}
