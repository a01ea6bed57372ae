package bgp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// BenchmarkFRR measures, against FRR 8.4 in a namespace, how long a
// change made through the Speaker takes to reach the router's kernel
// routing table (what forwarding uses), from the API call:
//
//	announce        brussels announces, nothing before
//	flip-prepend    the other site drops its prepend, this one prepends
//	flip-withdraw   the other site announces, this one withdraws
//	kill            the active site's speaker is killed; the standby
//	                site's prepended path takes over
//
// Each reports ms/change (mean) and max-ms/change. Run it with
// go test -run '^$' -bench FRR ./internal/driver/bgp/ (as root).
func BenchmarkFRR(b *testing.B) {
	l := newLab(b, labOptions{})

	b.Run("announce", func(b *testing.B) {
		l.antwerp.withdraw(vip)
		var d []time.Duration
		for b.Loop() {
			l.brussels.withdraw(vip)
			l.waitFIB("withdrawn", netip.Addr{})
			t0 := time.Now()
			l.brussels.announce(0, vip)
			d = append(d, l.waitFIB("announced", l.brussels.addr).Sub(t0))
		}
		report(b, d)
	})

	flip := func(b *testing.B, byWithdraw bool) {
		l.brussels.announce(0, vip)
		l.antwerp.announce(3, vip)
		l.waitFIB("brussels active", l.brussels.addr)
		from, to := l.brussels, l.antwerp
		var d []time.Duration
		for b.Loop() {
			t0 := time.Now()
			to.announce(0, vip)
			if byWithdraw {
				from.withdraw(vip)
			} else {
				from.announce(3, vip)
			}
			d = append(d, l.waitFIB("flipped", to.addr).Sub(t0))
			if byWithdraw {
				from.announce(3, vip) // standing by again, outside the flip
			}
			from, to = to, from
		}
		report(b, d)
	}
	b.Run("flip-prepend", func(b *testing.B) { flip(b, false) })
	b.Run("flip-withdraw", func(b *testing.B) { flip(b, true) })

	b.Run("kill", func(b *testing.B) {
		l.antwerp.announce(3, vip)
		var d []time.Duration
		for b.Loop() {
			// A fresh speaker for brussels each time: the old one is dead.
			l.brussels.kill()
			l.brussels = startSite(b, l.net, "brussels")
			l.brussels.start(l.settings(l.brussels, labOptions{}))
			l.brussels.waitStatus("session up", func(st Status) bool { return st.Neighbors[0].Established() })
			l.brussels.announce(0, vip)
			l.waitFIB("brussels active", l.brussels.addr)
			t0 := time.Now()
			l.brussels.kill()
			d = append(d, l.waitFIB("antwerp took over", l.antwerp.addr).Sub(t0))
		}
		report(b, d)
	})
}

func report(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	b.ReportMetric(float64(sum.Microseconds())/float64(len(d))/1000, "ms/change")
	b.ReportMetric(float64(slices.Max(d).Microseconds())/1000, "max-ms/change")
}
