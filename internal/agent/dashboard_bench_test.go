package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// benchStatus is an installation of n groups, each a database with a
// primary at brussels and a streaming standby at antwerp, and a name: the
// shape of the scale lab's PostgreSQL groups.
func benchStatus(n int, at time.Time) status.Status {
	st := status.Status{Installation: "bench", AnsweredBy: "antwerp", Time: at, Controller: "antwerp",
		Sites: []status.SiteStatus{{Name: "brussels", Up: true, Reporting: true}, {Name: "antwerp", Up: true, Reporting: true}, {Name: "frankfurt", Up: true, Reporting: true}}}
	for i := range n {
		lag, bytes := float64(i%7)/100, int64(i%5)*1024
		st.Groups = append(st.Groups, status.GroupStatus{
			Name: fmt.Sprintf("pg-%04d", i+1), PreferredSite: "brussels", ActiveSite: "brussels", Epoch: 1,
			State: status.StateProtected, Policy: "automatic", MaxDataLoss: "5s", RTOTarget: "30s", Problems: []string{},
			Resources: []status.ResourceStatus{
				{Name: "db", Type: "postgres", Class: "data", Sites: []status.ResourceSiteStatus{
					{Site: "brussels", Observed: true, Up: true, Role: status.RolePrimary, Timeline: 1},
					{Site: "antwerp", Observed: true, Up: true, Role: status.RoleStandby, Timeline: 1, Streaming: true, LagSeconds: &lag, LagBytes: &bytes, Position: "0/3045D90"},
				}},
				{Name: "name", Type: "dns", Class: "traffic", Sites: []status.ResourceSiteStatus{
					{Site: "brussels", Observed: true, Up: true, Role: status.RolePrimary, Target: "db.example. → 10.1.0.10"},
					{Site: "antwerp", Observed: true, Up: true, Role: status.RoleStandby, Streaming: true, Target: "db.example. → 10.1.0.10"},
				}},
			},
		})
	}
	return st
}

// BenchmarkEventsPoll is one read of the events' feed, sent to 100 open
// pages, when the status changed (a lag moved): what an agent spends each
// second while somebody watches. The status event's size is what each
// page receives then.
func BenchmarkEventsPoll(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("groups=%d", n), func(b *testing.B) {
			t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
			st := benchStatus(n, t0)
			tick := 0
			bc := newBroadcaster(feed{
				status: func() (status.Status, error) {
					tick++
					st.Time = t0.Add(time.Duration(tick) * time.Second)
					lag := float64(tick%10) / 100
					st.Groups[0].Resources[0].Sites[1].LagSeconds = &lag
					return st, nil
				},
				runs:        func(context.Context) ([]plan.Run, error) { return nil, nil },
				unavailable: func(err error) any { return map[string]string{"error": err.Error()} },
			}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			subs := make([]*subscriber, 100)
			for i := range subs {
				subs[i], _ = bc.subscribe()
			}
			var size int
			b.ReportAllocs()
			for b.Loop() {
				bc.poll(b.Context())
				for _, s := range subs {
					for len(s.events) > 0 {
						if ev := <-s.events; ev.name == eventStatus {
							size = len(ev.data)
						}
					}
				}
			}
			b.ReportMetric(float64(size), "status-bytes")
		})
	}
}

// BenchmarkLagSample is one sample of every standby's lag into the
// history.
func BenchmarkLagSample(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("standbys=%d", n), func(b *testing.B) {
			st := benchStatus(n, time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
			h := newLagHistory(nil)
			at := st.Time
			b.ReportAllocs()
			for b.Loop() {
				at = at.Add(lagInterval)
				h.sample(standbyLags(st), at)
			}
		})
	}
}
