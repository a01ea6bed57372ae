//go:build chaos

package chaos

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// startDrill starts a drill of the group at antwerp, kept up for keep, and
// waits until its copy serves there.
func startDrill(t *testing.T, e *Env, keep time.Duration) plan.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	r, err := e.Client.StartRun(ctx, api.RunRequest{Group: e.Group, Action: plan.Drill, Keep: keep})
	cancel()
	if err != nil {
		t.Fatalf("start a drill: %v", err)
	}
	waitFor(t, 60*time.Second, "the drill's copy to serve at antwerp", func() bool {
		got, err := e.Client.Run(t.Context(), r.ID)
		return err == nil && got.OutputOf(plan.Start, "db") != nil
	})
	return r
}

// drillEnded waits for the drill run to end and returns it.
func drillEnded(t *testing.T, e *Env, id string, within time.Duration) plan.Run {
	t.Helper()
	var got plan.Run
	waitFor(t, within, "the drill to end", func() bool {
		var err error
		got, err = e.Client.Run(t.Context(), id)
		return err == nil && got.Done()
	})
	return got
}

// noDrillLeft checks that no drill copy runs or is stored at any site.
func noDrillLeft(t *testing.T, e *Env) {
	t.Helper()
	for _, site := range []string{"brussels", "antwerp"} {
		dir := filepath.Join(e.Lab.Dir, site, "pg", "data.drills")
		if out, _ := exec.Command("pgrep", "-f", "--", dir).Output(); len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("drill processes left at %s: %s", site, out)
		}
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, en := range entries {
			if en.IsDir() {
				t.Errorf("a drill's directory is left at %s: %s", site, en.Name())
			}
		}
	}
}

// TestActiveSiteKilledDuringDrill: a power cut at the active site while a
// drill runs at the standby site. The failover goes ahead as without a
// drill (the drill never holds the group's run lock), the drill is aborted
// and torn down after it, and nothing is left.
func TestActiveSiteKilledDuringDrill(t *testing.T) {
	e := start(t, Options{})
	d := startDrill(t, e, time.Minute)
	event := time.Now()
	if err := lab.Disaster(e.Lab, "brussels"); err != nil {
		t.Fatal(err)
	}
	waitFailover(t, e, "antwerp")
	first := writeAtAntwerp(t, e, event)
	t.Logf("RTO with a drill running: kill → first acknowledged write at antwerp %s", first.At.Sub(event).Round(time.Millisecond))
	got := drillEnded(t, e, d.ID, 3*time.Minute)
	if got.State != plan.RunFailed || !strings.Contains(got.Error, "drill aborted") {
		t.Errorf("drill %s: %s", got.State, got.Error)
	}
	t.Logf("drill: %s", got.Error)
	noDrillLeft(t, e)
	logSteps(t, e, event)
	check(t, e, event, 5*time.Second)
}

// TestControllerKilledDuringDrill: the controller (at the witness) dies
// right after the drill's copy started. A service manager starts its agent
// again; the next controller finishes the drill, and nothing is left;
// production never moved.
func TestControllerKilledDuringDrill(t *testing.T) {
	once := filepath.Join(t.TempDir(), "failpoint-fired")
	e := start(t, Options{SiteEnv: map[string][]string{"frankfurt": {"SITEFLIP_FAILPOINT=exit-after-step=start", "SITEFLIP_FAILPOINT_ONCE=" + once}}})
	// The controller must be the witness: an agent that dies at a site
	// lets its lease run out there.
	for range 4 {
		st, err := e.WaitStatus(t.Context(), 30*time.Second, func(st status.Status) bool {
			return st.Controller != "" && group(st).State == status.StateProtected
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.Controller == "frankfurt" {
			break
		}
		t.Logf("controller at %s: restarting its agent to move it", st.Controller)
		if err := lab.RestartAgent(e.Lab, st.Controller); err != nil {
			t.Fatal(err)
		}
	}
	event := time.Now()
	d := startDrill(t, e, 0)
	waitFor(t, 30*time.Second, "the controller to die after the copy started", func() bool {
		_, err := os.Stat(once)
		return err == nil && !agentRunning(e, "frankfurt")
	})
	if err := lab.StartAgent(e.Lab, "frankfurt"); err != nil {
		t.Fatal(err)
	}
	got := drillEnded(t, e, d.ID, 3*time.Minute)
	if got.State != plan.RunSucceeded {
		t.Errorf("drill %s: %s", got.State, got.Error)
	}
	noDrillLeft(t, e)
	noFailover(t, e)
	logSteps(t, e, event)
	check(t, e, event, 0)
}
