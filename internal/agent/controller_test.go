package agent

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// A candidacy that fails ends at once, with its error, while the loop that
// runs alongside it is stopped: the session is then renewed. (It used to
// wait for that loop, which only the session's end stops: a failed
// candidacy kept its place as controller with nobody acting on it.)
func TestAlongsideEndsWithMain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		failed := errors.New("candidacy failed")
		sideStopped := false
		err := alongside(t.Context(), func(ctx context.Context) {
			<-ctx.Done()
			sideStopped = true
		}, func(context.Context) error { return failed })
		if !errors.Is(err, failed) || !sideStopped {
			t.Errorf("alongside returned %v, side stopped %v; want the main error and the side stopped", err, sideStopped)
		}
	})
}

// When the session ends, both end.
func TestAlongsideEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		go cancel()
		err := alongside(ctx, func(ctx context.Context) { <-ctx.Done() }, func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		})
		if err != nil {
			t.Errorf("alongside returned %v after its context ended, want nil", err)
		}
	})
}

// The incident of an automatic failover starts when the other locations
// first failed to hear the lost site, not when the run began, and it was
// declared lost at the last of their marks.
func TestIncident(t *testing.T) {
	at := func(s float64) time.Time { return time.Unix(1000, 0).Add(time.Duration(s * float64(time.Second))) }
	snap := status.Snapshot{
		Views: map[string]status.View{
			"antwerp":   {Site: "antwerp", Peers: map[string]status.PeerView{"brussels": {Reachable: false, Since: at(1.2)}, "frankfurt": {Reachable: true, Since: at(0)}}},
			"frankfurt": {Site: "frankfurt", Peers: map[string]status.PeerView{"brussels": {Reachable: false, Since: at(0.9)}}},
			// brussels' own lingering view says nothing of itself.
			"brussels": {Site: "brussels", Peers: map[string]status.PeerView{"antwerp": {Reachable: false, Since: at(0.1)}}},
		},
		Marks: map[string]map[string]status.Mark{"brussels": {
			"antwerp": {Site: "brussels", By: "antwerp", At: at(2.0)}, "frankfurt": {Site: "brussels", By: "frankfurt", At: at(2.3)},
		}},
	}
	got := incident(snap, "brussels")
	want := plan.Incident{Site: "brussels", LastHeard: at(0.9).UTC(), DeclaredLost: at(2.3).UTC()}
	if *got != want {
		t.Errorf("incident %+v, want %+v", *got, want)
	}
	if got := incident(status.Snapshot{}, "brussels"); !got.LastHeard.IsZero() || !got.DeclaredLost.IsZero() {
		t.Errorf("incident from nothing: %+v", *got)
	}
}
