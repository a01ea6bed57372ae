package whatif

import (
	"fmt"
	"testing"

	"github.com/siteflip/siteflip/internal/testbed"
)

// BenchmarkPlay is one what-if against a healthy installation of n groups
// (a database and a route each, at brussels and antwerp, a witness at
// frankfurt): the loss of the active site, where every group fails over,
// and the level that takes both sites, where every group is lost.
func BenchmarkPlay(b *testing.B) {
	for _, q := range []struct {
		name string
		q    Question
		want Outcome
	}{
		{"lose=brussels", Question{Lose: []string{"brussels"}}, AutomaticFailover},
		{"level=major", Question{Level: "major"}, Lost},
	} {
		for _, n := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/groups=%d", q.name, n), func(b *testing.B) {
				topo := labOf(n)
				snap, st := healthy().read(topo)
				ev, err := q.q.Event(topo)
				if err != nil {
					b.Fatal(err)
				}
				res := Play(topo, snap, st, history, ev, t0)
				if len(res.Groups) != n {
					b.Fatalf("%d groups in the answer, want %d", len(res.Groups), n)
				}
				for _, g := range res.Groups {
					if g.Outcome != q.want {
						b.Fatalf("%s: %s (%s), want %s", g.Name, g.Outcome, g.Reason, q.want)
					}
				}
				b.ReportAllocs()
				report := testbed.ReportCPU(b)
				for b.Loop() {
					Play(topo, snap, st, history, ev, t0)
				}
				report()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/group")
			})
		}
	}
}
