package plan

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
)

// threeSites is group() at brussels, antwerp and liege, active at active,
// every other site an up standby with a small lag in epoch 7.
func threeSites(active string, up map[string]bool) (*config.Group, Known) {
	g := group()
	g.Sites = []string{"brussels", "antwerp", "liege"}
	sites := func() []status.ResourceSiteStatus {
		var out []status.ResourceSiteStatus
		for _, s := range g.Sites {
			role := status.RoleStandby
			if s == active {
				role = status.RolePrimary
			}
			out = append(out, status.ResourceSiteStatus{Site: s, Up: true, Role: role})
		}
		return out
	}
	lag := status.Lag{Seconds: 0.1, Bytes: 512, Epoch: 7, MeasuredAt: time.Unix(100, 0), SeenAt: time.Unix(100, 0), Streaming: true}
	k := Known{
		Status: status.GroupStatus{Name: "webshop", ActiveSite: active, Epoch: 7, State: status.StateProtected,
			Resources: []status.ResourceStatus{{Name: "db", Sites: sites()}, {Name: "app", Sites: sites()}}},
		SiteUp:     up,
		LastLag:    map[string]map[string]status.Lag{"db": {"brussels": lag, "antwerp": lag, "liege": lag}},
		ServeLease: time.Second,
	}
	return g, k
}

func TestBuildThreeSites(t *testing.T) {
	allUp := map[string]bool{"brussels": true, "antwerp": true, "liege": true}
	brusselsLost := map[string]bool{"brussels": false, "antwerp": true, "liege": true}
	allButAntwerp := map[string]bool{"brussels": false, "antwerp": false, "liege": true}
	tests := []struct {
		name   string
		active string
		up     map[string]bool
		edit   func(*Known)
		req    Request
		steps  []string
		err    error
	}{
		{
			name: "failover: the third site follows the new primary once it is checked, best effort",
			up:   brusselsLost, req: Request{Action: Failover, To: "liege"},
			steps: []string{"activate@liege", "promote:db@liege", "promote:app@liege", "rejoin:db@antwerp?", "rejoin:app@antwerp?"},
		},
		{
			name: "failover: a third site that is down rejoins at the reprotect",
			up:   allButAntwerp, req: Request{Action: Failover, To: "liege"},
			steps: []string{"activate@liege", "promote:db@liege", "promote:app@liege"},
		},
		{
			name: "switchover: the old site rejoins as always, then the third follows",
			up:   allUp, req: Request{Action: Switchover, To: "antwerp"},
			steps: []string{
				"fence:app@brussels", "fence:db@brussels", "catch-up:db@antwerp", "activate@antwerp",
				"promote:db@antwerp", "promote:app@antwerp", "rejoin:db@brussels", "rejoin:app@brussels",
				"rejoin:db@liege?", "rejoin:app@liege?",
			},
		},
		{
			name: "reprotect: both other sites rejoin",
			up:   allUp, active: "liege", req: Request{Action: Reprotect},
			steps: []string{"rejoin:db@brussels", "rejoin:app@brussels", "rejoin:db@antwerp", "rejoin:app@antwerp"},
		},
		{
			// The synchronous standby is at antwerp: liege's lag still
			// decides what a failover there may lose.
			name: "a synchronous record vouches for its own standby's site only",
			up:   brusselsLost, req: Request{Action: Failover, To: "liege"},
			edit: func(k *Known) {
				k.InSync = map[string]string{"db": "antwerp"}
				l := k.LastLag["db"]["liege"]
				l.Seconds = 30
				k.LastLag["db"]["liege"] = l
			},
			err: ErrDataLoss,
		},
		{
			name: "the same synchronous record makes antwerp lossless",
			up:   brusselsLost, req: Request{Action: Failover, To: "antwerp"},
			edit: func(k *Known) {
				k.InSync = map[string]string{"db": "antwerp"}
				l := k.LastLag["db"]["antwerp"]
				l.Seconds = 30
				k.LastLag["db"]["antwerp"] = l
			},
			steps: []string{"activate@antwerp", "promote:db@antwerp", "promote:app@antwerp", "rejoin:db@liege?", "rejoin:app@liege?"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			active := tt.active
			if active == "" {
				active = "brussels"
			}
			g, k := threeSites(active, tt.up)
			if tt.edit != nil {
				tt.edit(&k)
			}
			p, err := Build(g, k, tt.req)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got error %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.steps, ids(p.Steps)); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			for _, s := range p.Steps {
				if s.BestEffort && s.Kind == Rejoin && s.Timeout != followTimeout {
					t.Errorf("%s: timeout %s, want %s", s.ID, s.Timeout, followTimeout)
				}
			}
		})
	}
}

// TestFollowWavesAreTheirOwn: with priorities, the third site's rejoins
// run side by side in waves numbered after every wave before them, so
// the engine never mistakes them for the steps just before.
func TestFollowWavesAreTheirOwn(t *testing.T) {
	g, k := threeSites("brussels", map[string]bool{"brussels": false, "antwerp": true, "liege": true})
	g.Resources = []config.Resource{
		{Name: "db", Type: "postgres", Class: config.ClassData, Data: true, Priority: 1},
		{Name: "files", Type: "script", Class: config.ClassScript, Priority: 1},
	}
	k.Status.Resources = append(k.Status.Resources, status.ResourceStatus{Name: "files", Sites: k.Status.Resources[0].Sites})
	p, err := Build(g, k, Request{Action: Failover, To: "liege"})
	if err != nil {
		t.Fatal(err)
	}
	waves := map[int][]string{}
	for _, s := range p.Steps {
		if s.Wave != 0 {
			waves[s.Wave] = append(waves[s.Wave], s.ID)
		}
	}
	want := map[int][]string{1: {"promote:db@liege", "promote:files@liege"}, 2: {"rejoin:db@antwerp", "rejoin:files@antwerp"}}
	if diff := cmp.Diff(want, waves); diff != "" {
		t.Errorf("waves (-want +got):\n%s", diff)
	}
}
