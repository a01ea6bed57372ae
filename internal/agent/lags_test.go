package agent

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
)

func TestLagUpdates(t *testing.T) {
	topo := &config.Topology{Groups: []config.Group{{Name: "webshop", Sites: []string{"brussels", "antwerp"},
		Resources: []config.Resource{{Name: "db", Type: "postgres", Data: true}, {Name: "vip", Type: "bgp"}}}}}
	// brussels' clock: the controller's is never read.
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	rec := map[string]status.Record{"webshop": {Group: "webshop", ActiveSite: "brussels", Epoch: 4}}
	view := func(published time.Time, rv *status.ResourceView) map[string]status.View {
		v := status.View{Site: "brussels", PublishedAt: published, Resources: map[string]status.ResourceView{}}
		if rv != nil {
			v.Resources["webshop/db"] = *rv
		}
		return map[string]status.View{"brussels": v}
	}
	primary := func(observed time.Time, sb ...status.StandbyView) *status.ResourceView {
		return &status.ResourceView{Up: true, Role: status.RolePrimary, ObservedAt: observed, Standbys: sb}
	}
	streaming := status.StandbyView{Site: "antwerp", State: "streaming", LagBytes: 4096, LagSeconds: 0.02}
	prev := status.Lag{Seconds: 0.01, Bytes: 100, Epoch: 4, MeasuredAt: t0.Add(-time.Second), SeenAt: t0.Add(-time.Second), Streaming: true}
	lags := func(l status.Lag) map[string]map[string]map[string]status.Lag {
		return map[string]map[string]map[string]status.Lag{"webshop": {"db": {"antwerp": l}}}
	}
	tests := []struct {
		name string
		snap status.Snapshot
		want []status.Lag // for db at antwerp; nil: no update
	}{
		{"a fresh measurement", status.Snapshot{Records: rec, Views: view(t0.Add(10*time.Millisecond), primary(t0, streaming))},
			[]status.Lag{{Seconds: 0.02, Bytes: 4096, Epoch: 4, MeasuredAt: t0, SeenAt: t0.Add(10 * time.Millisecond), Streaming: true}}},
		{"the same publication again changes nothing", status.Snapshot{Records: rec, Lags: lags(status.Lag{Seconds: 0.02, Bytes: 4096, Epoch: 4, MeasuredAt: t0, SeenAt: t0.Add(10 * time.Millisecond), Streaming: true}),
			Views: view(t0.Add(10*time.Millisecond), primary(t0, streaming))}, nil},
		{"the primary serves, the standby is not streaming", status.Snapshot{Records: rec, Lags: lags(prev),
			Views: view(t0, primary(t0, status.StandbyView{Site: "antwerp", State: "catchup", LagBytes: -1, LagSeconds: -1}))},
			[]status.Lag{{Seconds: 0.01, Bytes: 100, Epoch: 4, MeasuredAt: t0, SeenAt: t0, Streaming: false}}},
		{"the primary serves, the standby is gone", status.Snapshot{Records: rec, Lags: lags(prev), Views: view(t0, primary(t0))},
			[]status.Lag{{Seconds: 0.01, Bytes: 100, Epoch: 4, MeasuredAt: t0, SeenAt: t0, Streaming: false}}},
		{"the primary does not answer (it may be writing): staleness grows", status.Snapshot{Records: rec, Lags: lags(prev),
			Views: view(t0.Add(5*time.Second), &status.ResourceView{Role: status.RoleUnknown, ObservedAt: t0.Add(5 * time.Second)})},
			[]status.Lag{{Seconds: 0.01, Bytes: 100, Epoch: 4, MeasuredAt: t0.Add(-time.Second), SeenAt: t0.Add(5 * time.Second), Streaming: true}}},
		{"no observation of the resource in the view: staleness grows", status.Snapshot{Records: rec, Lags: lags(prev), Views: view(t0.Add(5*time.Second), nil)},
			[]status.Lag{{Seconds: 0.01, Bytes: 100, Epoch: 4, MeasuredAt: t0.Add(-time.Second), SeenAt: t0.Add(5 * time.Second), Streaming: true}}},
		{"the primary is down: nothing is written, the record stands", status.Snapshot{Records: rec, Lags: lags(prev),
			Views: view(t0.Add(5*time.Second), &status.ResourceView{Role: status.RoleDown, ObservedAt: t0.Add(5 * time.Second)})}, nil},
		{"the active site publishes nothing", status.Snapshot{Records: rec, Lags: lags(prev), Views: map[string]status.View{}}, nil},
		{"a record of another epoch is not carried on", status.Snapshot{Records: rec, Lags: lags(status.Lag{Epoch: 3, Streaming: true}),
			Views: view(t0.Add(5*time.Second), &status.ResourceView{Role: status.RoleUnknown})}, nil},
		{"group not adopted", status.Snapshot{Views: view(t0, primary(t0, streaming))}, nil},
		{"a lag that moved by less than LagSlack is not written again", status.Snapshot{Records: rec, Lags: lags(prev),
			Views: view(t0.Add(10*time.Millisecond), primary(t0, streaming))}, nil},
		{"a lag that grew by more than LagSlack is", status.Snapshot{Records: rec, Lags: lags(prev),
			Views: view(t0.Add(10*time.Millisecond), primary(t0, status.StandbyView{Site: "antwerp", State: "streaming", LagBytes: 4096, LagSeconds: 0.2}))},
			[]status.Lag{{Seconds: 0.2, Bytes: 4096, Epoch: 4, MeasuredAt: t0, SeenAt: t0.Add(10 * time.Millisecond), Streaming: true}}},
		{"a measurement that went stale by more than LagSlack is", status.Snapshot{Records: rec, Lags: lags(prev),
			Views: view(t0.Add(300*time.Millisecond), primary(t0, status.StandbyView{Site: "antwerp", State: "streaming", LagBytes: 100, LagSeconds: 0.01}))},
			[]status.Lag{{Seconds: 0.01, Bytes: 100, Epoch: 4, MeasuredAt: t0, SeenAt: t0.Add(300 * time.Millisecond), Streaming: true}}},
		{"bytes that moved by more than 16 MiB are", status.Snapshot{Records: rec, Lags: lags(prev),
			Views: view(t0, primary(t0, status.StandbyView{Site: "antwerp", State: "streaming", LagBytes: 32 << 20, LagSeconds: 0.01}))},
			[]status.Lag{{Seconds: 0.01, Bytes: 32 << 20, Epoch: 4, MeasuredAt: t0, SeenAt: t0, Streaming: true}}},
		{"a record LagRefresh old is written again, though nothing moved", status.Snapshot{Records: rec, Lags: lags(prev),
			Views: view(t0.Add(status.LagRefresh), primary(t0.Add(status.LagRefresh), status.StandbyView{Site: "antwerp", State: "streaming", LagBytes: 100, LagSeconds: 0.01}))},
			[]status.Lag{{Seconds: 0.01, Bytes: 100, Epoch: 4, MeasuredAt: t0.Add(status.LagRefresh), SeenAt: t0.Add(status.LagRefresh), Streaming: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []status.Lag
			for _, u := range lagUpdates(topo, tt.snap) {
				if u.group != "webshop" || u.resource != "db" || u.site != "antwerp" {
					t.Errorf("update of %s/%s at %s: only db at antwerp holds data and is a standby", u.group, u.resource, u.site)
					continue
				}
				got = append(got, u.lag)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("updates (-want +got):\n%s", diff)
			}
		})
	}
}

// TestViewAges: a view already there when the agent first looks has no
// known age (it may be a dead agent's), so it is not fresh until it
// changes; a changed view is aged from when the change was seen.
func TestViewAges(t *testing.T) {
	var vc viewClock
	t0 := time.Now()
	v := map[string]status.View{"brussels": {Site: "brussels", PublishedAt: time.Unix(100, 0)}}
	if ages := vc.ages(v, t0); len(ages) != 0 {
		t.Errorf("first sight: ages %v, want none", ages)
	}
	if ages := vc.ages(v, t0.Add(time.Second)); len(ages) != 0 {
		t.Errorf("unchanged since the first sight: ages %v, want none", ages)
	}
	v["brussels"] = status.View{Site: "brussels", PublishedAt: time.Unix(101, 0)}
	if ages := vc.ages(v, t0.Add(2*time.Second)); ages["brussels"] != 0 {
		t.Errorf("just changed: ages %v, want 0", ages)
	}
	if ages := vc.ages(v, t0.Add(3*time.Second)); ages["brussels"] != time.Second {
		t.Errorf("a second after the change: ages %v, want 1s", ages)
	}
}
