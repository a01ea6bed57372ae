package safety

import (
	"cmp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// comparePositions compares plain numbers: the tests' positions.
func comparePositions(a, b string) (int, bool) {
	x, errA := strconv.Atoi(a)
	y, errB := strconv.Atoi(b)
	if errA != nil || errB != nil {
		return 0, false
	}
	return cmp.Compare(x, y), true
}

// threeSiteGroup has a data resource db (and, with two, logs) at
// brussels, antwerp and liege, in that order of preference.
func threeSiteGroup(resources ...string) *config.Group {
	g := &config.Group{Name: "webshop", PreferredSite: "brussels", Policy: config.PolicyAutomatic,
		Sites: []string{"brussels", "antwerp", "liege"}, MaxDataLoss: new(config.Duration(5 * time.Second))}
	for _, r := range resources {
		g.Resources = append(g.Resources, config.Resource{Name: r, Type: "postgres", Class: config.ClassData, Data: true, ComparePositions: comparePositions})
	}
	return g
}

// positions is, per resource, each standby's "timeline/position"
// ("" position: not reported).
func groupStatus(active string, positions map[string]map[string]string) status.GroupStatus {
	gs := status.GroupStatus{Name: "webshop", ActiveSite: active, Epoch: 4, State: status.StateUnreachable}
	for _, res := range []string{"db", "logs"} {
		byRes, ok := positions[res]
		if !ok {
			continue
		}
		rs := status.ResourceStatus{Name: res}
		for _, site := range []string{"brussels", "antwerp", "liege"} {
			ss := status.ResourceSiteStatus{Site: site, Up: site != active, Role: status.RoleStandby, Timeline: 4}
			if site == active {
				ss.Role = status.RoleUnknown
			}
			if p, ok := byRes[site]; ok {
				tl, pos, _ := strings.Cut(p, "/")
				ss.Timeline, _ = strconv.ParseInt(tl, 10, 64)
				ss.Position = pos
			}
			rs.Sites = append(rs.Sites, ss)
		}
		gs.Resources = append(gs.Resources, rs)
	}
	return gs
}

func TestMostAdvanced(t *testing.T) {
	tests := []struct {
		name      string
		resources []string
		positions map[string]map[string]string
		sites     []string
		want      string
		why       string
	}{
		{
			name: "the standby ahead wins over the preferred one", resources: []string{"db"},
			positions: map[string]map[string]string{"db": {"antwerp": "4/100", "liege": "4/250"}},
			sites:     []string{"antwerp", "liege"}, want: "liege",
			why: "liege: the most advanced standby; behind it: antwerp (db is behind liege) (db at antwerp 100, liege 250)",
		},
		{
			name: "equal positions: the group's order", resources: []string{"db"},
			positions: map[string]map[string]string{"db": {"antwerp": "4/250", "liege": "4/250"}},
			sites:     []string{"antwerp", "liege"}, want: "antwerp",
			why: "antwerp: the first of the group's sites that can take over; its standbys are as advanced as the others",
		},
		{
			name: "a site that cannot take over is not a candidate, however far it is", resources: []string{"db"},
			positions: map[string]map[string]string{"db": {"antwerp": "4/900", "liege": "4/250"}},
			sites:     []string{"liege"}, want: "liege",
		},
		{
			name: "an unknown position ranks nobody", resources: []string{"db"},
			positions: map[string]map[string]string{"db": {"liege": "4/250"}},
			sites:     []string{"antwerp", "liege"}, want: "antwerp",
		},
		{
			name: "positions on different timelines are not compared", resources: []string{"db"},
			positions: map[string]map[string]string{"db": {"antwerp": "4/100", "liege": "5/250"}},
			sites:     []string{"antwerp", "liege"}, want: "antwerp",
		},
		{
			name: "unparsable positions are not compared", resources: []string{"db"},
			positions: map[string]map[string]string{"db": {"antwerp": "4/x", "liege": "4/250"}},
			sites:     []string{"antwerp", "liege"}, want: "antwerp",
		},
		{
			name: "ahead on every resource", resources: []string{"db", "logs"},
			positions: map[string]map[string]string{"db": {"antwerp": "4/100", "liege": "4/250"}, "logs": {"antwerp": "4/7", "liege": "4/7"}},
			sites:     []string{"antwerp", "liege"}, want: "liege",
		},
		{
			name: "each ahead on a different resource: the group's order", resources: []string{"db", "logs"},
			positions: map[string]map[string]string{"db": {"antwerp": "4/100", "liege": "4/250"}, "logs": {"antwerp": "4/9", "liege": "4/7"}},
			sites:     []string{"antwerp", "liege"}, want: "antwerp",
			why: "antwerp: the first of the group's sites that can take over; no site is ahead on every resource",
		},
		{
			name: "no positions at all", resources: []string{"db"},
			positions: map[string]map[string]string{"db": {}},
			sites:     []string{"antwerp", "liege"}, want: "antwerp",
			why: "antwerp: the first of the group's sites that can take over (no standby positions to compare)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := threeSiteGroup(tt.resources...)
			got, why := MostAdvanced(g, groupStatus("brussels", tt.positions), tt.sites)
			if got != tt.want {
				t.Errorf("MostAdvanced = %s (%s), want %s", got, why, tt.want)
			}
			if !strings.HasPrefix(why, tt.why) {
				t.Errorf("why = %q, want it to begin %q", why, tt.why)
			}
		})
	}
}

// TestFailoverPlanTakesTheMostAdvanced: of two standbys that may both
// take over, the failover goes to the one ahead, says why, and has the
// other follow it.
func TestFailoverPlanTakesTheMostAdvanced(t *testing.T) {
	g := threeSiteGroup("db")
	lag := status.Lag{Seconds: 0.1, Bytes: 100, Epoch: 4, MeasuredAt: t0, SeenAt: t0, Streaming: true}
	k := plan.Known{
		Status:     groupStatus("brussels", map[string]map[string]string{"db": {"antwerp": "4/100", "liege": "4/250"}}),
		SiteUp:     map[string]bool{"brussels": false, "antwerp": true, "liege": true},
		LastLag:    map[string]map[string]status.Lag{"db": {"antwerp": lag, "liege": lag}},
		ServeLease: time.Second,
	}
	req, p, err := FailoverPlan(g, k)
	if err != nil {
		t.Fatal(err)
	}
	if req.To != "liege" || p.To != "liege" {
		t.Fatalf("failover to %s (plan %s), want liege", req.To, p.To)
	}
	if !strings.Contains(p.Why, "most advanced") {
		t.Errorf("plan.Why = %q", p.Why)
	}
	last := p.Steps[len(p.Steps)-1]
	if last.Kind != plan.Rejoin || last.Site != "antwerp" || !last.BestEffort {
		t.Errorf("last step %s, want antwerp's best-effort rejoin", last.ID)
	}

	// liege may not take over (its lag is unknown): antwerp, though behind.
	delete(k.LastLag["db"], "liege")
	req, p, err = FailoverPlan(g, k)
	if err != nil || req.To != "antwerp" {
		t.Fatalf("failover to %s (%v), want antwerp", req.To, err)
	}
	if want := "antwerp: the only site that can take over; refused: db at liege: standby lag unknown: it was never measured by its primary"; p.Why != want {
		t.Errorf("plan.Why = %q, want %q", p.Why, want)
	}
}

// threeSiteInput: webshop at brussels, antwerp and liege, brussels lost
// (marked by both others at t0) since lostFor; each standby's db was last
// observed at observed[site] with position pos[site].
func threeSiteInput(lostFor time.Duration, observed map[string]time.Time, pos map[string]string) Input {
	g := threeSiteGroup("db")
	t := &config.Topology{
		Name: "test",
		Sites: []config.Site{
			{Name: "brussels", Role: config.RoleSite}, {Name: "antwerp", Role: config.RoleSite}, {Name: "liege", Role: config.RoleSite},
		},
		Coordination: config.Coordination{ServeLease: new(config.Duration(time.Second)), LeaseTTL: new(config.Duration(3 * time.Second))},
		Groups:       []config.Group{*g},
	}
	now := t0.Add(lostFor)
	snap := status.Snapshot{Revision: 100, Views: map[string]status.View{}, Records: map[string]status.Record{},
		Running: map[string]string{}, Marks: map[string]map[string]status.Mark{"brussels": {}}, Decisions: map[string]status.Decision{},
		Lags: map[string]map[string]map[string]status.Lag{"webshop": {"db": {}}}}
	snap.Records["webshop"] = status.Record{Group: "webshop", ActiveSite: "brussels", Epoch: 4, Revision: 42}
	for _, s := range []string{"antwerp", "liege"} {
		v := status.View{Site: s, Role: config.RoleSite, PublishedAt: now, Peers: map[string]status.PeerView{}, Resources: map[string]status.ResourceView{}}
		for _, o := range []string{"brussels", "antwerp", "liege"} {
			if o != s {
				v.Peers[o] = status.PeerView{Reachable: o != "brussels", Since: t0.Add(-time.Second)}
			}
		}
		v.Resources["webshop/db"] = status.ResourceView{Group: "webshop", Resource: "db", Type: "postgres", Up: true, Role: status.RoleStandby,
			Timeline: 4, Position: pos[s], ObservedAt: observed[s]}
		snap.Views[s] = v
		snap.Marks["brussels"][s] = status.Mark{Site: "brussels", By: s, At: t0}
		snap.Lags["webshop"]["db"][s] = status.Lag{Seconds: 0.1, Bytes: 100, Epoch: 4, MeasuredAt: t0.Add(-2 * time.Second), SeenAt: t0.Add(-2 * time.Second), Streaming: true}
	}
	return Input{Now: now, Topology: t, Snapshot: snap, Status: status.Assemble(t, snap, "antwerp", now)}
}

// TestDecideWaitsForFinalPositions: with two standbys to choose from, the
// failover waits until each has been observed after it marked the lost
// site, at most PositionWait; a stale position would make it choose the
// standby that only looked ahead.
func TestDecideWaitsForFinalPositions(t *testing.T) {
	before, after := t0.Add(-300*time.Millisecond), t0.Add(100*time.Millisecond)
	tests := []struct {
		name     string
		lostFor  time.Duration
		observed map[string]time.Time
		pos      map[string]string
		want     string // "" no failover yet
	}{
		{"liege observed only before its mark: wait", 500 * time.Millisecond,
			map[string]time.Time{"antwerp": after, "liege": before}, map[string]string{"antwerp": "100", "liege": "90"}, ""},
		{"both observed since: the most advanced", 500 * time.Millisecond,
			map[string]time.Time{"antwerp": after, "liege": after}, map[string]string{"antwerp": "100", "liege": "250"}, "liege"},
		{"still not observed after PositionWait: choose with what is known", PositionWait,
			map[string]time.Time{"antwerp": after, "liege": before}, map[string]string{"antwerp": "100", "liege": "90"}, "antwerp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := threeSiteInput(tt.lostFor, tt.observed, tt.pos)
			m := NewMemory()
			m.Lost["webshop"] = Loss{Site: "brussels", Since: t0}
			m.Losses["brussels"] = []time.Time{t0}
			got := ""
			for _, a := range Decide(in, m) {
				if sf, ok := a.(StartFailover); ok {
					got = sf.Request.To
				}
			}
			if got != tt.want {
				t.Errorf("failover to %q, want %q; unsettled %v", got, tt.want, Unsettled(&in.Topology.Groups[0], in.Snapshot, in.Status, "brussels"))
			}
		})
	}
}

// TestUnsettled: only groups with a choice wait, and only for sites up.
func TestUnsettled(t *testing.T) {
	before := t0.Add(-time.Second)
	in := threeSiteInput(time.Second, map[string]time.Time{"antwerp": before, "liege": before}, nil)
	g := &in.Topology.Groups[0]
	if got := Unsettled(g, in.Snapshot, in.Status, "brussels"); len(got) != 2 {
		t.Errorf("Unsettled = %v, want antwerp and liege", got)
	}
	two := *g
	two.Sites = []string{"brussels", "antwerp"}
	if got := Unsettled(&two, in.Snapshot, in.Status, "brussels"); got != nil {
		t.Errorf("a group of two sites waits for %v", got)
	}
	for i := range in.Status.Sites {
		if in.Status.Sites[i].Name == "liege" {
			in.Status.Sites[i].Up = false
		}
	}
	if got := Unsettled(g, in.Snapshot, in.Status, "brussels"); len(got) != 1 || got[0] != "antwerp" {
		t.Errorf("Unsettled = %v, want antwerp alone (liege is down)", got)
	}
}
