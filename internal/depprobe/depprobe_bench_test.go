package depprobe

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/testbed"
)

// benchProbe runs one probe of dep at site per iteration; each must reach
// the service. What it measures is a probe's cost on the agent: the
// service on loopback answers at once. cpu-ns/op counts the service's side
// too: an upper bound of the agent's.
func benchProbe(b *testing.B, typ string, site config.DependencySite) {
	timeout := config.Duration(2 * time.Second)
	dep := config.Dependency{Name: "dep", Type: typ, Timeout: &timeout}
	b.ReportAllocs()
	report := testbed.ReportCPU(b)
	for b.Loop() {
		if r := Probe(b.Context(), dep, site); !r.Reachable {
			b.Fatalf("%s: %v", r.Target, r.Err)
		}
	}
	report()
}

// BenchmarkProbeTCP is one TCP probe: connect and close.
func BenchmarkProbeTCP(b *testing.B) {
	benchProbe(b, config.DependencyTCP, config.DependencySite{Address: acceptingAddr(b)})
}

// BenchmarkProbeHTTP is one HTTP probe: a new connection (probes keep
// none), GET, a small answer read.
func BenchmarkProbeHTTP(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	}))
	defer srv.Close()
	benchProbe(b, config.DependencyHTTP, config.DependencySite{URL: srv.URL + "/health"})
}
