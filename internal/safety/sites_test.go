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
	if p.Why != "" {
		t.Errorf("one candidate, yet plan.Why = %q", p.Why)
	}
}
