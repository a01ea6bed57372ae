package agent

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
)

// countingObserver counts its observations; a hanging one waits for its
// context to end each time, as a health probe of a hung app would.
type countingObserver struct {
	n     atomic.Int64
	hangs bool
}

func (o *countingObserver) Observe(ctx context.Context) status.ResourceView {
	o.n.Add(1)
	if o.hangs {
		<-ctx.Done()
	}
	return status.ResourceView{Up: true, Role: status.RolePrimary}
}

func (o *countingObserver) Close() {}

// A service whose probe hangs for the whole probe timeout must not make
// the database's observation late: services are observed in loops of
// their own.
func TestSlowServiceDoesNotDelayTheDatabase(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		topo := &config.Topology{
			Coordination: config.Coordination{ProbeInterval: new(config.Duration(500 * time.Millisecond)), ProbeTimeout: new(config.Duration(2 * time.Second))},
			Groups: []config.Group{{Name: "webshop", Resources: []config.Resource{
				{Name: "db", Type: "postgres", Class: config.ClassData, Data: true},
				{Name: "app", Type: "service", Class: config.ClassService},
			}}},
		}
		lr := &localResources{base: &base{topo: topo, site: &config.Site{Name: "brussels"}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics()},
			resources: map[string]status.ResourceView{}, observe: make(chan struct{}, 1), notify: func() {}}
		db, app := &countingObserver{}, &countingObserver{hangs: true}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			lr.observeLoop(ctx, map[string]resource.Observer{"webshop/db": db, "webshop/app": app})
		}()
		// Fake time in the bubble: 20 probe intervals pass at once.
		<-time.After(10 * time.Second)
		cancel()
		<-done
		// Every 500 ms for 10 s: 21 looks; one after another with the
		// hanging probe, it would have been 5.
		if got := db.n.Load(); got < 20 {
			t.Errorf("the database was observed %d times in 10 s with a hanging service probe, want about 21", got)
		}
		if got := app.n.Load(); got < 4 || got > 6 {
			t.Errorf("the hanging service was observed %d times, want about 5 (2 s each)", got)
		}
	})
}
