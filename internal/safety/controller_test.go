package safety

import (
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
)

func TestControllerLost(t *testing.T) {
	topo := &config.Topology{Sites: []config.Site{{Name: "a"}, {Name: "b"}, {Name: "w"}}}
	// Each observer publishes on its own clock; they disagree by hours.
	clock := map[string]time.Time{"b": time.Unix(1000, 0), "w": time.Unix(1000, 0).Add(3 * time.Hour)}
	view := func(site string, peers map[string]time.Duration, reachable bool) status.View {
		v := status.View{Site: site, PublishedAt: clock[site], Peers: map[string]status.PeerView{}}
		for p, d := range peers {
			v.Peers[p] = status.PeerView{Reachable: reachable, Since: clock[site].Add(-d)}
		}
		return v
	}
	lost := func(site string, d time.Duration) status.View {
		return view(site, map[string]time.Duration{"a": d}, false)
	}
	ctrlA := &status.Controller{Site: "a", Term: 5}
	tests := []struct {
		name string
		snap status.Snapshot
		self string
		want bool
	}{
		{"both others lost it long enough", status.Snapshot{Controller: ctrlA, Views: map[string]status.View{
			"b": lost("b", 2*time.Second), "w": lost("w", 3*time.Second),
		}}, "b", true},
		{"the witness still reaches it (cut inter-site link)", status.Snapshot{Controller: ctrlA, Views: map[string]status.View{
			"b": lost("b", 10*time.Second), "w": view("w", map[string]time.Duration{"a": time.Hour}, true),
		}}, "b", false},
		{"lost too recently", status.Snapshot{Controller: ctrlA, Views: map[string]status.View{
			"b": lost("b", 2*time.Second), "w": lost("w", EvictAfter/2),
		}}, "b", false},
		{"lost recently when published, but the view is old enough since", status.Snapshot{Controller: ctrlA, Views: map[string]status.View{
			"b": lost("b", 2*time.Second), "w": lost("w", EvictAfter/2),
		}, ViewAges: map[string]time.Duration{"w": EvictAfter / 2}}, "b", true},
		{"one observer does not report", status.Snapshot{Controller: ctrlA, Views: map[string]status.View{
			"b": lost("b", 10*time.Second),
		}}, "b", false},
		{"observer never probed it", status.Snapshot{Controller: ctrlA, Views: map[string]status.View{
			"b": lost("b", 10*time.Second), "w": view("w", nil, false),
		}}, "b", false},
		{"self is the controller", status.Snapshot{Controller: ctrlA, Views: map[string]status.View{
			"b": lost("b", 10*time.Second), "w": lost("w", 10*time.Second),
		}}, "a", false},
		{"no controller", status.Snapshot{Views: map[string]status.View{}}, "b", false},
		{"its site marked lost by both others, before their probes say so long enough", status.Snapshot{Controller: ctrlA, Views: map[string]status.View{
			"b": lost("b", EvictAfter/2), "w": lost("w", EvictAfter/2),
		}, Marks: map[string]map[string]status.Mark{"a": {"b": {}, "w": {}}}}, "b", true},
		{"its site marked lost by one other only", status.Snapshot{Controller: ctrlA, Views: map[string]status.View{
			"b": lost("b", EvictAfter/2), "w": lost("w", EvictAfter/2),
		}, Marks: map[string]map[string]status.Mark{"a": {"b": {}}}}, "b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := ControllerLost(topo, tt.snap, tt.self); got != tt.want {
				t.Errorf("ControllerLost = %v, want %v", got, tt.want)
			}
		})
	}
}

// The raft leadership goes to a witness that has answered all along at
// once, to one that came back only after WitnessSteady.
func TestLeadFromWitness(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		w    WitnessTrack
		now  time.Time
		want bool
	}{
		{"not answering", WitnessTrack{Reachable: false, Since: t0}, t0.Add(time.Hour), false},
		{"answering since the agent started, at once", WitnessTrack{Reachable: true, Since: t0}, t0, true},
		{"back after a loss, just now", WitnessTrack{Reachable: true, Since: t0, EverLost: true}, t0, false},
		{"back after a loss, a nanosecond short", WitnessTrack{Reachable: true, Since: t0, EverLost: true}, t0.Add(WitnessSteady - 1), false},
		{"back after a loss, steady", WitnessTrack{Reachable: true, Since: t0, EverLost: true}, t0.Add(WitnessSteady), true},
		{"lost again", WitnessTrack{Reachable: false, Since: t0, EverLost: true}, t0.Add(time.Minute), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LeadFromWitness(tt.w, tt.now); got != tt.want {
				t.Errorf("LeadFromWitness(%+v, +%s) = %v, want %v", tt.w, tt.now.Sub(t0), got, tt.want)
			}
		})
	}
}
