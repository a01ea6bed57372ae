package whatif

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/geo"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

// lab is the lab's topology: sites brussels and antwerp (41 km apart),
// witness frankfurt; group webshop (postgres data db, traffic www,
// max_data_loss 5s) at both sites, needing ldap hosted at brussels and dns
// with an address per site; and the three levels of the lab.
func lab() *config.Topology {
	return &config.Topology{
		Name: "lab",
		Sites: []config.Site{
			{Name: "brussels", Role: config.RoleSite, Location: config.Location{Latitude: 50.85, Longitude: 4.35}},
			{Name: "antwerp", Role: config.RoleSite, Location: config.Location{Latitude: 51.22, Longitude: 4.40}},
			{Name: "frankfurt", Role: config.RoleWitness, Location: config.Location{Latitude: 50.11, Longitude: 8.68}},
		},
		Coordination: config.Coordination{ServeLease: new(config.Duration(400 * time.Millisecond)), LeaseTTL: new(config.Duration(3 * time.Second))},
		Groups: []config.Group{{
			Name: "webshop", PreferredSite: "brussels", Policy: config.PolicyAutomatic,
			Sites:       []string{"brussels", "antwerp"},
			MaxDataLoss: new(config.Duration(5 * time.Second)),
			RTOTarget:   new(config.Duration(30 * time.Second)),
			FlapPeriod:  new(config.Duration(10 * time.Minute)),
			FlapConfirm: new(config.Duration(10 * time.Second)),
			Resources: []config.Resource{
				{Name: "db", Type: "postgres", Data: true, Class: config.ClassData},
				{Name: "www", Type: "bgp", Class: config.ClassTraffic, DependsOn: []string{"db"}},
			},
			Requires: []config.Dependency{
				{Name: "ldap", Type: config.DependencyTCP, Sites: map[string]config.DependencySite{
					"brussels": {Address: "10.1.0.5:389", At: "brussels"}, "antwerp": {Address: "10.1.0.5:389", At: "brussels"}}},
				{Name: "dns", Type: config.DependencyDNS, Sites: map[string]config.DependencySite{
					"brussels": {Address: "10.1.0.53:53"}, "antwerp": {Address: "10.2.0.53:53"}}},
			},
		}},
		Levels: []config.Level{
			{Name: "minor", Description: "the fibre between the data centres is cut", LoseLinks: []string{"brussels-antwerp"},
				Links: [][2]string{{"brussels", "antwerp"}}},
			{Name: "medium", Description: "a fire at the Brussels data centre", Lose: []string{"brussels"}},
			{Name: "major", Description: "the 2021 floods, 60 km around Brussels", At: "50.85,4.35",
				Area: &geo.Circle{Center: geo.Point{Lat: 50.85, Lon: 4.35}, Radius: 60000}},
		},
	}
}

// labOf is lab with n groups shaped as webshop, named webshop-0001 and on.
func labOf(n int) *config.Topology {
	t := lab()
	g := t.Groups[0]
	t.Groups = make([]config.Group, n)
	for i := range t.Groups {
		t.Groups[i] = g
		t.Groups[i].Name = fmt.Sprintf("webshop-%04d", i+1)
		t.Groups[i].Resources = slices.Clone(g.Resources)
	}
	return t
}

// world is the live state the event is played against.
type world struct {
	active string
	// gone are locations lost before the event: no view, marked lost by
	// every other location.
	gone []string
	// cut are links already cut (both ends report the other unreachable).
	cut  [][2]string
	lag  *status.Lag // the standby's last lag (db), in epoch 3
	sync bool        // db recorded synchronous in epoch 3
	// dnsDown: antwerp's probe of dns fails.
	dnsDown bool
	running string
}

func healthy() world {
	return world{active: "brussels",
		lag: &status.Lag{Seconds: 0.01, Bytes: 256, Epoch: 3, MeasuredAt: t0.Add(-time.Second), SeenAt: t0.Add(-950 * time.Millisecond), Streaming: true}}
}

// read is the control plane as a location reads it, and its status. Every
// group of t is shaped as webshop: db and www at brussels and antwerp,
// ldap and dns required.
func (w world) read(t *config.Topology) (status.Snapshot, status.Status) {
	names := t.SiteNames()
	gone := map[string]bool{}
	for _, g := range w.gone {
		gone[g] = true
	}
	cut := map[[2]string]bool{}
	for _, l := range w.cut {
		cut[key(l)] = true
	}
	other := map[string]string{"brussels": "antwerp", "antwerp": "brussels"}
	snap := status.Snapshot{Revision: 100, Views: map[string]status.View{}, ViewAges: map[string]time.Duration{},
		Records: map[string]status.Record{}, Marks: map[string]map[string]status.Mark{}, Running: map[string]string{},
		Lags: map[string]map[string]map[string]status.Lag{}}
	for _, g := range t.Groups {
		snap.Records[g.Name] = status.Record{Group: g.Name, ActiveSite: w.active, Epoch: 3, Revision: 42}
	}
	for _, s := range names {
		if gone[s] {
			continue
		}
		v := status.View{Site: s, StartedAt: t0.Add(-time.Hour), PublishedAt: t0, Peers: map[string]status.PeerView{},
			Resources: map[string]status.ResourceView{}, Dependencies: map[string]status.DependencyView{}}
		for _, o := range names {
			if o != s {
				v.Peers[o] = status.PeerView{Reachable: !gone[o] && !cut[key([2]string{s, o})], Since: t0.Add(-time.Minute), Started: t0.Add(-time.Hour)}
			}
		}
		groups := t.Groups
		if s == "frankfurt" {
			groups = nil // the witness holds no resource
		}
		for _, g := range groups {
			db := status.ResourceView{Group: g.Name, Resource: "db", Type: "postgres", Up: true, Role: status.RoleStandby, Timeline: 3, Streaming: true, ObservedAt: t0}
			www := status.ResourceView{Group: g.Name, Resource: "www", Type: "bgp", Up: true, Role: status.RoleStandby, Streaming: true, ObservedAt: t0}
			if s == w.active {
				db.Role, db.Streaming = status.RolePrimary, false
				db.Standbys = []status.StandbyView{{Name: other[s], Site: other[s], State: "streaming", LagBytes: 256, LagSeconds: 0.01}}
				www.Role = status.RolePrimary
			}
			v.Resources[g.Name+"/db"], v.Resources[g.Name+"/www"] = db, www
			v.Dependencies[g.Name+"/ldap"] = status.DependencyView{Group: g.Name, Dependency: "ldap", Reachable: true}
			dns := status.DependencyView{Group: g.Name, Dependency: "dns", Reachable: true}
			if s == "antwerp" && w.dnsDown {
				dns.Reachable, dns.Error = false, "i/o timeout"
			}
			v.Dependencies[g.Name+"/dns"] = dns
		}
		snap.Views[s], snap.ViewAges[s] = v, 0
	}
	for _, g := range w.gone {
		snap.Marks[g] = map[string]status.Mark{}
		for _, o := range names {
			if o != g {
				snap.Marks[g][o] = status.Mark{Site: g, By: o, At: t0.Add(-time.Minute)}
			}
		}
	}
	for _, g := range t.Groups {
		if w.lag != nil {
			snap.Lags[g.Name] = map[string]map[string]status.Lag{"db": {other[w.active]: *w.lag}}
		}
		if w.sync {
			if snap.Sync == nil {
				snap.Sync = map[string]map[string]status.SyncRecord{}
			}
			snap.Sync[g.Name] = map[string]status.SyncRecord{"db": {Group: g.Name, Resource: "db", Epoch: 3, State: status.SyncOn, Standby: other[w.active]}}
		}
		if w.running != "" {
			snap.Running[g.Name] = w.running
		}
	}
	by := "frankfurt"
	if gone["frankfurt"] {
		by = "antwerp"
	}
	return snap, status.Assemble(t, snap, by, t0)
}

// history: three failovers and two drills of webshop, median 2.1 s.
var history = History{
	Failovers: map[string][]time.Duration{"webshop": {2 * time.Second, 2500 * time.Millisecond, 2100 * time.Millisecond}},
	Drills:    map[string][]time.Duration{"webshop": {1800 * time.Millisecond, 2200 * time.Millisecond}},
}

func TestPlay(t *testing.T) {
	type want struct {
		outcome       Outcome
		to            string
		automatic     bool
		quorum        bool
		fenced        string // comma-separated
		command       string // the command, exactly ("" for none)
		reason        string // a part of the reason
		rto           string // expected RTO, "" when unknown
		loss          string // expected data loss, "" when unknown
		lossBasis     string // a part of the basis
		approvals     string
		dependencies  string // NAME@SITE: WHY; …
		controllerCan string
	}
	manual := func(t *config.Topology) { t.Groups[0].Policy = config.PolicyManual }
	approval := func(t *config.Topology) {
		t.Groups[0].Resources = append(t.Groups[0].Resources, config.Resource{Name: "change-board", Type: "approval", Class: config.ClassGate})
	}
	for _, tt := range []struct {
		name  string
		topo  func(*config.Topology)
		w     world
		lose  []string
		links [][2]string
		area  *geo.Circle
		level string
		want  want
	}{
		{name: "lose brussels: automatic failover to antwerp", w: healthy(), lose: []string{"brussels"},
			want: want{outcome: AutomaticFailover, to: "antwerp", automatic: true, quorum: true, reason: "brussels is destroyed",
				rto: "2.1s", loss: "10ms", lossBasis: "db at antwerp: last lag 0.01 s, at most 0.56 s",
				dependencies: "ldap@antwerp: its host brussels is destroyed", controllerCan: "antwerp,frankfurt"}},
		{name: "level medium is the same", w: healthy(), level: "medium",
			want: want{outcome: AutomaticFailover, to: "antwerp", automatic: true, quorum: true, reason: "brussels is destroyed",
				rto: "2.1s", loss: "10ms", lossBasis: "at most 0.56 s",
				dependencies: "ldap@antwerp: its host brussels is destroyed", controllerCan: "antwerp,frankfurt"}},
		{name: "lose frankfurt: unaffected", w: healthy(), lose: []string{"frankfurt"},
			want: want{outcome: Unaffected, to: "brussels", quorum: true, reason: "brussels keeps serving with every standby",
				rto: "0s", loss: "0s", lossBasis: "nothing moves", controllerCan: "brussels,antwerp"}},
		{name: "60 km around brussels: not survivable", w: healthy(), area: &geo.Circle{Center: geo.Point{Lat: 50.85, Lon: 4.35}, Radius: 60000},
			want: want{outcome: Lost, reason: "no site of the group survives: brussels destroyed, antwerp destroyed", lossBasis: "not survivable"}},
		{name: "level major: not survivable", w: healthy(), level: "major",
			want: want{outcome: Lost, reason: "brussels destroyed, antwerp destroyed", lossBasis: "not survivable"}},
		{name: "the link between the sites: degraded, nothing moves", w: healthy(), links: [][2]string{{"brussels", "antwerp"}},
			want: want{outcome: Degraded, to: "brussels", quorum: true, reason: "antwerp cut off: replication there is interrupted",
				command: "", rto: "0s", loss: "0s", lossBasis: "nothing moves", controllerCan: "brussels,antwerp,frankfurt"}},
		{name: "level minor is the same", w: healthy(), level: "minor",
			want: want{outcome: Degraded, to: "brussels", quorum: true, reason: "antwerp cut off: replication there is interrupted and the group is unprotected until it returns; replication resumes by itself when the way back is open",
				command: "", rto: "0s", loss: "0s", lossBasis: "nothing moves", controllerCan: "brussels,antwerp,frankfurt"}},
		{name: "the standby's site destroyed: degraded, reprotect once rebuilt", w: healthy(), lose: []string{"antwerp"},
			want: want{outcome: Degraded, to: "brussels", quorum: true, reason: "antwerp destroyed: replication there is interrupted",
				command: "siteflip reprotect webshop (once antwerp is rebuilt)", rto: "0s", loss: "0s", lossBasis: "nothing moves", controllerCan: "brussels,frankfurt"}},
		{name: "manual policy: a person decides", topo: manual, w: healthy(), lose: []string{"brussels"},
			want: want{outcome: NeedsDecision, to: "antwerp", quorum: true, reason: "policy is manual",
				command: "siteflip failover webshop --to antwerp", rto: "2.1s", loss: "10ms", lossBasis: "at most 0.56 s",
				dependencies: "ldap@antwerp: its host brussels is destroyed", controllerCan: "antwerp,frankfurt"}},
		{name: "lag beyond max_data_loss: a person accepts the loss", lose: []string{"brussels"},
			w: func() world { w := healthy(); w.lag.Seconds = 7; return w }(),
			want: want{outcome: NeedsDecision, to: "antwerp", quorum: true, reason: "standby too far behind",
				command: "siteflip failover webshop --to antwerp --accept-data-loss", rto: "2.1s", loss: "7s", lossBasis: "more than max_data_loss 5 s",
				dependencies: "ldap@antwerp: its host brussels is destroyed", controllerCan: "antwerp,frankfurt"}},
		{name: "lag never measured: unknown loss", lose: []string{"brussels"},
			w: func() world { w := healthy(); w.lag = nil; return w }(),
			want: want{outcome: NeedsDecision, to: "antwerp", quorum: true, reason: "standby lag unknown",
				command: "siteflip failover webshop --to antwerp --accept-data-loss", rto: "2.1s", lossBasis: "never measured",
				dependencies: "ldap@antwerp: its host brussels is destroyed", controllerCan: "antwerp,frankfurt"}},
		{name: "synchronous: nothing lost", lose: []string{"brussels"},
			w: func() world { w := healthy(); w.lag.Seconds = 7; w.sync = true; return w }(),
			want: want{outcome: AutomaticFailover, to: "antwerp", automatic: true, quorum: true, reason: "fails over to antwerp by itself",
				rto: "2.1s", loss: "0s", lossBasis: "synchronous",
				dependencies: "ldap@antwerp: its host brussels is destroyed", controllerCan: "antwerp,frankfurt"}},
		{name: "lose antwerp and frankfurt: brussels fences itself, force it", w: healthy(), lose: []string{"antwerp", "frankfurt"},
			want: want{outcome: NeedsForce, to: "brussels", fenced: "brussels", reason: "brussels survives but sees no other location",
				command: "siteflip failover webshop --force --to brussels", rto: "2.1s", loss: "0s", lossBasis: "keeps its own data"}},
		{name: "a dependency antwerp cannot reach", w: func() world { w := healthy(); w.dnsDown = true; return w }(), lose: []string{"brussels"},
			want: want{outcome: AutomaticFailover, to: "antwerp", automatic: true, quorum: true, reason: "brussels is destroyed",
				rto: "2.1s", loss: "10ms", lossBasis: "at most 0.56 s",
				dependencies: "ldap@antwerp: its host brussels is destroyed; dns@antwerp: its probe fails there now: i/o timeout", controllerCan: "antwerp,frankfurt"}},
		{name: "an approval step: the failover starts and waits for a person", topo: approval, w: healthy(), lose: []string{"brussels"},
			want: want{outcome: NeedsDecision, to: "antwerp", automatic: true, quorum: true, reason: "waits at approval step change-board",
				command: "siteflip approve RUN (the run's ID, which status shows)", rto: "2.1s", loss: "10ms", lossBasis: "at most 0.56 s", approvals: "change-board",
				dependencies: "ldap@antwerp: its host brussels is destroyed", controllerCan: "antwerp,frankfurt"}},
		{name: "brussels lost already, failed over to antwerp; lose frankfurt: force antwerp",
			w:    func() world { w := healthy(); w.active, w.gone, w.lag = "antwerp", []string{"brussels"}, nil; return w }(),
			lose: []string{"frankfurt"},
			want: want{outcome: NeedsForce, to: "antwerp", fenced: "antwerp", reason: "antwerp survives but sees no other location",
				command: "siteflip failover webshop --force --to antwerp", rto: "2.1s", loss: "0s", lossBasis: "keeps its own data",
				dependencies: "ldap@antwerp: its host brussels is down already"}},
		{name: "brussels lost already, waiting for a person; lose frankfurt: force antwerp", topo: manual,
			w: func() world { w := healthy(); w.gone = []string{"brussels"}; return w }(), lose: []string{"frankfurt"},
			want: want{outcome: NeedsForce, to: "antwerp", fenced: "antwerp", reason: "the active site brussels is down already, and the control plane loses its quorum",
				command: "siteflip failover webshop --force --to antwerp", rto: "2.1s", loss: "10ms", lossBasis: "at most 0.56 s",
				dependencies: "ldap@antwerp: its host brussels is down already"}},
		{name: "brussels lost already, waiting for a person; lose nothing that matters: still a decision", topo: manual,
			w: func() world { w := healthy(); w.gone = []string{"brussels"}; return w }(), links: [][2]string{{"brussels", "frankfurt"}},
			want: want{outcome: NeedsDecision, to: "antwerp", quorum: true, reason: "the active site brussels is down already, and the group does not fail over by itself",
				command: "siteflip failover webshop --to antwerp", rto: "2.1s", loss: "10ms", lossBasis: "at most 0.56 s",
				dependencies: "ldap@antwerp: its host brussels is down already", controllerCan: "antwerp,frankfurt"}},
		{name: "a run holds the group", w: func() world { w := healthy(); w.running = "r1"; return w }(), lose: []string{"brussels"},
			want: want{outcome: NeedsDecision, to: "antwerp", quorum: true, reason: "while run r1 holds the group",
				command: "siteflip run r1", rto: "2.1s", loss: "10ms", lossBasis: "at most 0.56 s",
				dependencies: "ldap@antwerp: its host brussels is destroyed", controllerCan: "antwerp,frankfurt"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			topo := lab()
			if tt.topo != nil {
				tt.topo(topo)
			}
			snap, st := tt.w.read(topo)
			ev, err := EventOf(topo, tt.lose, tt.links, tt.area, tt.level)
			if err != nil {
				t.Fatal(err)
			}
			res := Play(topo, snap, st, history, ev, t0)
			g := res.Groups[0]
			got := want{outcome: g.Outcome, to: g.To, automatic: g.Automatic, quorum: res.ControlPlane.Quorum,
				fenced: strings.Join(res.ControlPlane.Fenced, ","), command: g.Command, reason: tt.want.reason,
				lossBasis: tt.want.lossBasis, approvals: strings.Join(g.Approvals, ","),
				controllerCan: strings.Join(res.ControlPlane.Controller, ",")}
			if !strings.Contains(g.Reason, tt.want.reason) {
				got.reason = g.Reason
			}
			if !strings.Contains(g.Loss.Basis, tt.want.lossBasis) {
				got.lossBasis = g.Loss.Basis
			}
			if g.RTO.Known {
				got.rto = g.RTO.Expected.String()
			}
			if g.Loss.Known {
				got.loss = g.Loss.Expected.String()
			}
			var deps []string
			for _, d := range g.Dependencies {
				deps = append(deps, d.Name+"@"+d.Site+": "+d.Why)
			}
			got.dependencies = strings.Join(deps, "; ")
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("(-want +got):\n%s\nreason: %s\ncontrol plane: %s", diff, g.Reason, res.ControlPlane.Message)
			}
			if g.Survives != (g.Outcome != Lost) {
				t.Errorf("survives %v with outcome %s", g.Survives, g.Outcome)
			}
			if g.Outcome == Lost && !strings.HasPrefix(g.Fix, "move a site further away: no site of the group survives this event (") ||
				g.Outcome == Lost && !strings.HasSuffix(g.Fix, "; brussels and antwerp are 41 km apart (min_site_distance 100 km)") {
				t.Errorf("fix %q", g.Fix)
			}
			if g.RTO.Target != 30*time.Second {
				t.Errorf("rto target %s", g.RTO.Target)
			}
		})
	}
}

// The quorum: lost with the area that takes both sites, said so; the
// voters and who survives; and the live state not touched.
func TestControlPlane(t *testing.T) {
	topo := lab()
	snap, st := healthy().read(topo)
	before := len(snap.Marks)
	ev, err := EventOf(topo, nil, nil, nil, "major")
	if err != nil {
		t.Fatal(err)
	}
	res := Play(topo, snap, st, History{}, ev, t0)
	cp := res.ControlPlane
	if !cp.Judged || cp.Quorum || strings.Join(cp.Voters, ",") != "brussels,antwerp,frankfurt" || strings.Join(cp.SurvivingVoters, ",") != "frankfurt" {
		t.Errorf("control plane %+v", cp)
	}
	if !strings.HasPrefix(cp.Message, "QUORUM LOST: 1 of 3 voters survive (frankfurt)") {
		t.Errorf("message %q", cp.Message)
	}
	if len(snap.Marks) != before || snap.Views["brussels"].Peers["antwerp"].Reachable != true {
		t.Errorf("the live snapshot was changed")
	}
	if ev.String() != "level major (the 2021 floods, 60 km around Brussels); everything within 60 km of 50.85,4.35; brussels and antwerp destroyed" {
		t.Errorf("event %q", ev.String())
	}

	topo.Coordination.EtcdEndpoints = []string{"https://etcd1:2379"}
	res = Play(topo, snap, st, History{}, ev, t0)
	if cp := res.ControlPlane; cp.Judged || !cp.Quorum || !strings.HasPrefix(cp.Message, "quorum not judged") {
		t.Errorf("existing etcd: %+v", cp)
	}
}

// With nothing measured, the RTO is unknown and the target said.
func TestRTOUnknown(t *testing.T) {
	topo := lab()
	snap, st := healthy().read(topo)
	ev, _ := EventOf(topo, []string{"brussels"}, nil, nil, "")
	g := Play(topo, snap, st, History{}, ev, t0).Groups[0]
	if g.RTO.Known || g.RTO.Samples != 0 || g.RTO.Basis != "unknown: no failover or drill of webshop measured yet; rto_target is 30 s" {
		t.Errorf("rto %+v", g.RTO)
	}
}

func TestEventOf(t *testing.T) {
	topo := lab()
	for _, tt := range []struct {
		name  string
		q     Question
		want  string // the event, or the error
		isErr bool
	}{
		{"lose two", Question{Lose: []string{"frankfurt", " brussels"}}, "brussels and frankfurt destroyed", false},
		{"a link", Question{LoseLinks: []string{"antwerp-frankfurt"}}, "link antwerp-frankfurt cut", false},
		{"a link twice", Question{LoseLinks: []string{"antwerp-frankfurt", "frankfurt-antwerp"}}, "link antwerp-frankfurt cut", false},
		{"an area", Question{At: "50.85,4.35", Radius: "10km"}, "everything within 10 km of 50.85,4.35; brussels destroyed", false},
		{"an empty area", Question{At: "0,0", Radius: "10km"}, "everything within 10 km of 0,0; no location destroyed", false},
		{"a level", Question{Level: "minor"}, "level minor (the fibre between the data centres is cut); link brussels-antwerp cut", false},
		{"nothing", Question{}, ErrNoEvent.Error(), true},
		{"unknown location", Question{Lose: []string{"paris"}}, `unknown location "paris" (locations: brussels, antwerp, frankfurt)`, true},
		{"unknown level", Question{Level: "apocalypse"}, `unknown level "apocalypse" (levels: minor, medium, major)`, true},
		{"bad link", Question{LoseLinks: []string{"brussels-paris"}}, `--lose-links: "brussels-paris" is not a link between two locations: write it LOCATION-LOCATION, like brussels-antwerp (locations: brussels, antwerp, frankfurt)`, true},
		{"a link to itself", Question{LoseLinks: []string{"brussels-brussels"}}, `--lose-links: "brussels-brussels" joins brussels to itself: a link is between two different locations`, true},
		{"at without radius", Question{At: "50.85,4.35"}, "--at needs --radius: how far around it everything is destroyed, like 60km", true},
		{"radius without at", Question{Radius: "60km"}, "--radius needs --at: the centre of the area, as LAT,LON", true},
		{"bad radius", Question{At: "50.85,4.35", Radius: "60"}, `--radius: "60" is not a distance: write it with its unit, like 100km, 500m or 30mi`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := tt.q.Event(topo)
			got := ev.String()
			if err != nil {
				got = err.Error()
			}
			if got != tt.want || (err != nil) != tt.isErr {
				t.Errorf("got %q (error %v), want %q", got, err, tt.want)
			}
		})
	}
	noLevels := lab()
	noLevels.Levels, noLevels.File = nil, "/etc/siteflip/siteflip.yaml"
	if _, err := (Question{Level: "major"}).Event(noLevels); err == nil || err.Error() != `unknown level "major": /etc/siteflip/siteflip.yaml defines no levels (add them under levels:, docs/whatif.md)` {
		t.Errorf("no levels: %v", err)
	}
}

// A question goes through the query of GET /v1/whatif unchanged.
func TestQuestionQuery(t *testing.T) {
	q := Question{Lose: []string{"brussels", "frankfurt"}, LoseLinks: []string{"brussels-antwerp"}, At: "50.85,4.35", Radius: "60km", Level: "major"}
	v, err := url.ParseQuery(q.Query().Encode())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(q, QuestionOf(v)); diff != "" {
		t.Errorf("(-sent +read):\n%s", diff)
	}
}

func TestHistoryOf(t *testing.T) {
	rto := 1.5
	ended := func(id string, action plan.Action, started time.Time, writable time.Duration) plan.Run {
		return plan.Run{ID: id, Group: "webshop", State: plan.RunSucceeded, Started: started, Ended: started.Add(10 * time.Second),
			WritableAt: started.Add(writable), Plan: plan.Plan{Action: action}}
	}
	drill := ended("d1", plan.Drill, t0, 0)
	drill.Plan.Steps = []plan.Step{{Kind: plan.Start, Resource: "db"}}
	drill.Steps = []plan.StepState{{State: plan.StepDone, Ended: t0.Add(3 * time.Second)}}
	running := ended("f3", plan.Failover, t0, 0)
	running.State = plan.RunRunning
	runs := []plan.Run{ended("f1", plan.Failover, t0, 2*time.Second), ended("s1", plan.Switchover, t0, time.Second), running, drill,
		{ID: "f2", Group: "shop", State: plan.RunFailed, Plan: plan.Plan{Action: plan.Failover}}}
	drills := map[string]status.DrillRecord{"webshop": {
		Last:        &status.DrillResult{Run: "d1", Result: "succeeded", RTOSeconds: &rto}, // the same drill as in the runs
		LastSuccess: &status.DrillResult{Run: "d0", Result: "succeeded", RTOSeconds: &rto},
	}}
	h := HistoryOf(runs, drills)
	want := History{
		Failovers: map[string][]time.Duration{"webshop": {2 * time.Second}},
		Drills:    map[string][]time.Duration{"webshop": {3 * time.Second, 1500 * time.Millisecond}},
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// A group of three sites: the failover goes to the most advanced standby,
// as the controller chooses it, not held back waiting for positions.
func TestPlayChoosesTheMostAdvanced(t *testing.T) {
	topo := lab()
	topo.Sites = append(topo.Sites, config.Site{Name: "ghent", Role: config.RoleSite, Location: config.Location{Latitude: 51.05, Longitude: 3.72}})
	g := &topo.Groups[0]
	g.Sites = append(g.Sites, "ghent")
	g.Resources[0].ComparePositions = func(a, b string) (int, bool) { return strings.Compare(a, b), true }
	snap, _ := healthy().read(topo)
	for site, v := range snap.Views {
		v.Peers["ghent"] = status.PeerView{Reachable: true, Since: t0.Add(-time.Minute), Started: t0.Add(-time.Hour)}
		if db, ok := v.Resources["webshop/db"]; ok && site == "antwerp" {
			db.Position = "0/3"
			v.Resources["webshop/db"] = db
		}
	}
	ghent := snap.Views["antwerp"]
	ghent.Site, ghent.Peers = "ghent", map[string]status.PeerView{}
	for _, o := range []string{"brussels", "antwerp", "frankfurt"} {
		ghent.Peers[o] = status.PeerView{Reachable: true, Since: t0.Add(-time.Minute), Started: t0.Add(-time.Hour)}
	}
	ghent.Resources = map[string]status.ResourceView{"webshop/db": {Group: "webshop", Resource: "db", Type: "postgres", Up: true, Role: status.RoleStandby,
		Timeline: 3, Streaming: true, Position: "0/5", ObservedAt: t0}, "webshop/www": snap.Views["antwerp"].Resources["webshop/www"]}
	snap.Views["ghent"], snap.ViewAges["ghent"] = ghent, 0
	snap.Lags["webshop"]["db"]["ghent"] = snap.Lags["webshop"]["db"]["antwerp"]
	st := status.Assemble(topo, snap, "frankfurt", t0)
	ev, _ := EventOf(topo, []string{"brussels"}, nil, nil, "")
	res := Play(topo, snap, st, history, ev, t0)
	if g := res.Groups[0]; g.Outcome != AutomaticFailover || g.To != "ghent" {
		t.Errorf("%s to %s: %s; want an automatic failover to ghent", g.Outcome, g.To, g.Reason)
	}
	if cp := res.ControlPlane; !cp.Quorum || strings.Join(cp.SurvivingVoters, ",") != "antwerp,frankfurt,ghent" {
		t.Errorf("control plane %+v", cp)
	}
}
