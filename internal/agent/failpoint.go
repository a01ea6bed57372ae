package agent

import (
	"os"
	"strings"

	"github.com/siteflip/siteflip/internal/plan"
)

// failpointEnv names a test hook: "exit-after-step=KIND" makes the
// controller's agent exit at once, like a crash, right after it stored a
// step of that kind as done (for example catch-up, between the two halves
// of a switchover). The next controller must finish the run. With
// failpointOnceEnv naming a file, only the first agent to create that file
// fires: one crash per test, whoever is controller.
//
// "fence-before-promote" kills a local database as the promote step
// begins, as a serve lease that ran out during the promotion would (once
// per test with failpointOnceEnv).
//
// "error-on-lease-loss" makes the agent fail (return an error, as a
// broken component would) at the moment its serve lease runs out, before
// it fences anything itself: its watchdog must fence.
const (
	failpointEnv     = "SITEFLIP_FAILPOINT"
	failpointOnceEnv = "SITEFLIP_FAILPOINT_ONCE"
)

// failpointSlowStop says whether the agent takes a second longer to wind
// down once it is told to stop ("stop-slowly"), as a loaded machine or an
// etcd call that ignores cancellation makes it: longer than a lease.
func failpointSlowStop() bool {
	return os.Getenv(failpointEnv) == "stop-slowly"
}

// failpointKeepRaftLeader says whether the sites never hand the raft
// leadership to the witness ("keep-raft-leader"), as during the 3 s after
// the witness came back: the chaos suite loses a site that leads.
func failpointKeepRaftLeader() bool {
	return os.Getenv(failpointEnv) == "keep-raft-leader"
}

// failpointLeaseLost says whether the agent must fail now that its lease
// ran out.
func failpointLeaseLost() bool {
	return os.Getenv(failpointEnv) == "error-on-lease-loss"
}

// failpointFenceBeforePromote says whether to kill the database about to
// be promoted.
func failpointFenceBeforePromote() bool {
	return os.Getenv(failpointEnv) == "fence-before-promote" && firstTime()
}

// firstTime says whether this is the first firing of the failpoint in the
// test: always without failpointOnceEnv; otherwise only for the first
// agent to create the file it names.
func firstTime() bool {
	once := os.Getenv(failpointOnceEnv)
	if once == "" {
		return true
	}
	f, err := os.OpenFile(once, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return false // fired before
	}
	f.Close()
	return true
}

func (ctl *controller) failpoint() func(plan.Run, plan.Step) {
	kind, ok := strings.CutPrefix(os.Getenv(failpointEnv), "exit-after-step=")
	if !ok {
		return nil
	}
	return func(run plan.Run, s plan.Step) {
		if string(s.Kind) != kind || !firstTime() {
			return
		}
		ctl.log.Warn("failpoint: exiting after step", "run", run.ID, "step", s.ID)
		os.Exit(3)
	}
}
