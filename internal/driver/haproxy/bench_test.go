package haproxy

import (
	"context"
	"testing"
	"time"
)

// BenchmarkFlip moves a backend from one site's server to the other's and
// back, and sends one request on a kept-alive connection after each move;
// that request must reach the new site. It reports the time of each part
// per flip:
//
//   - make-first: Enable(new) then Disable(old), the backend never empty;
//   - break-first: Disable(old) then Enable(new), which leaves the backend
//     without a server in between;
//   - checked: make-first on servers with health checks every 200ms,
//     where Enable waits for HAProxy's next check to pass (on average half
//     the check interval; HAProxy already sends requests to the server).
func BenchmarkFlip(b *testing.B) {
	l := startLab(b)
	for _, bc := range []struct {
		name, backend, url string
		breakFirst         bool
	}{
		{"make-first", "webshop", l.front, false},
		{"break-first", "webshop", l.front, true},
		{"checked", "guarded", l.guarded, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			sites := [2]*Settings{l.settings("brussels"), l.settings("antwerp")}
			for _, s := range sites {
				s.Backend = bc.backend
			}
			ctx := context.Background()
			if _, err := Enable(ctx, sites[0]); err != nil {
				b.Fatal(err)
			}
			if _, err := Disable(ctx, sites[1]); err != nil {
				b.Fatal(err)
			}
			l.getFrom(l.client, bc.url) // open the kept-alive connection

			var enable, disable, request time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				from, to := sites[i%2], sites[(i+1)%2]
				t0 := time.Now()
				var t1, t2 time.Time
				if bc.breakFirst {
					if _, err := Disable(ctx, from); err != nil {
						b.Fatal(err)
					}
					t1 = time.Now()
					if _, err := Enable(ctx, to); err != nil {
						b.Fatal(err)
					}
					t2 = time.Now()
					disable, enable = disable+t1.Sub(t0), enable+t2.Sub(t1)
				} else {
					if _, err := Enable(ctx, to); err != nil {
						b.Fatal(err)
					}
					t1 = time.Now()
					if _, err := Disable(ctx, from); err != nil {
						b.Fatal(err)
					}
					t2 = time.Now()
					enable, disable = enable+t1.Sub(t0), disable+t2.Sub(t1)
				}
				if got := l.getFrom(l.client, bc.url); got != to.Server {
					b.Fatalf("flip %d: the next request was served by %s, want %s", i+1, got, to.Server)
				}
				request += time.Since(t2)
			}
			n := float64(b.N)
			b.ReportMetric(float64(enable.Microseconds())/n, "enable-µs/op")
			b.ReportMetric(float64(disable.Microseconds())/n, "disable-µs/op")
			b.ReportMetric(float64(request.Microseconds())/n, "request-µs/op")
		})
	}
}

// BenchmarkState measures one read of a server's state.
func BenchmarkState(b *testing.B) {
	l := startLab(b)
	s := l.settings("brussels")
	for b.Loop() {
		if _, err := State(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSaveState measures one dump of the server state into the state
// file, synced, renamed and read back.
func BenchmarkSaveState(b *testing.B) {
	l := startLab(b)
	s := l.settings("brussels")
	for b.Loop() {
		if _, err := SaveState(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReload measures a reload of HAProxy after SaveState: a new
// process with -sf, until it answers on the runtime API and the old process
// has exited, and then the first request, which must reach the site the
// saved state names.
func BenchmarkReload(b *testing.B) {
	l := startLab(b)
	ctx := context.Background()
	if _, err := Disable(ctx, l.settings("brussels")); err != nil {
		b.Fatal(err)
	}
	if _, err := Enable(ctx, l.settings("antwerp")); err != nil {
		b.Fatal(err)
	}
	if _, err := SaveState(ctx, l.settings("antwerp")); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		l.reload()
		if got := l.get(l.client); got != "antwerp" {
			b.Fatalf("after the reload the request was served by %s, want antwerp", got)
		}
	}
}
