package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/status"
)

// Local databases between runs (docs/design/safety.md, "A database that
// starts without its agent comes up read-only"): while this site holds
// its serve lease, no run is in progress and no location marks it lost,
// the agent brings each database on its machine in line with the group's
// record. What to do is decided by localAction, a pure function.

// localFacts is what localAction decides from.
type localFacts struct {
	Adopted    bool // the group has a record
	ActiveHere bool // the record names this site
	Running    bool // a server runs on the data dir
	// Primary: the server accepts writes, by the last observation, or,
	// when it does not answer one, by its control file.
	Primary bool
	State   string // control file state
	Guard   bool   // the boot guard is in place
	// Stalled: the last observation saw it up as a standby that does not
	// replicate; Resumable: its type can start the replication of a
	// running replica again (resource.Resumer).
	Stalled, Resumable bool
}

// localDo is what to do to a local database.
type localDo int

const (
	leaveAlone localDo = iota
	writeGuard
	startPrimary
	startStandby
	fenceIt
	resumeReplication
)

func (d localDo) String() string {
	return [...]string{"leave it", "write the boot guard", "start it as the primary", "start it as a standby", "fence it", "resume its replication"}[d]
}

// crashed says whether a stopped database stopped without a shutdown: it
// crashed, lost its power, or was fenced. One shut down cleanly was
// stopped by a person, or by a fence step, and stays stopped.
func crashed(state string) bool {
	return state == resource.StateInProduction || state == resource.StateCrashRecovery || state == resource.StateArchiveRecovery
}

// localAction decides what to do to a local database, and why.
func localAction(f localFacts) (localDo, string) {
	switch {
	case !f.Adopted && !f.Running && f.State == resource.StateInProduction:
		// Fenced (or crashed) before its group was adopted: its serve
		// lease can run out while its agent starts on a busy machine. No
		// run moves a group without a record, so no other copy was made
		// primary; left stopped, the group would never be adopted.
		return startPrimary, "it stopped without a shutdown before its group was adopted: no run can have moved the group, so it serves again"
	case !f.Adopted && !f.Running && f.State == resource.StateArchiveRecovery && f.Guard:
		return startStandby, "a standby that stopped without a shutdown before its group was adopted"
	case !f.Adopted:
		return leaveAlone, "the group has no record yet"
	case f.ActiveHere && f.Running && f.Primary && !f.Guard:
		return writeGuard, "a primary without its boot guard would serve again by itself after a restart"
	case f.ActiveHere && f.Running && f.Primary:
		return leaveAlone, "the primary of the active site serves"
	case f.ActiveHere && f.Running:
		return startPrimary, "it came up read-only behind its boot guard (started without the agent?): the active site's primary serves again"
	case f.ActiveHere && crashed(f.State):
		return startPrimary, fmt.Sprintf("it stopped without a shutdown (%s) at the active site: the primary serves again", f.State)
	case f.ActiveHere:
		return leaveAlone, fmt.Sprintf("it was shut down cleanly (%s): start it, or run a switchover, when you decide", f.State)
	case f.Running && f.Primary:
		return fenceIt, "a primary at a site that is not the group's active site must not serve"
	case f.Running && f.Stalled && f.Resumable && f.State == resource.StateArchiveRecovery && f.Guard:
		// A replica, never promoted (no writable mark: not "in
		// production"), restarted behind its guard at a standby site of
		// the current record: what a standby that stopped without a
		// shutdown gets too. Without this, a group that did not move
		// would stay unprotected after its standby site's power cut.
		return resumeReplication, "a replica restarted behind its boot guard does not replicate: it follows the active site again"
	case f.Running:
		return leaveAlone, "a standby"
	case f.State == resource.StateArchiveRecovery && f.Guard:
		return startStandby, "a standby that stopped without a shutdown"
	case f.State == resource.StateInProduction || f.State == resource.StateCrashRecovery:
		return leaveAlone, "an old primary: `siteflip reprotect` rejoins it"
	}
	return leaveAlone, fmt.Sprintf("stopped (%s)", f.State)
}

// promoteStart decides what the promote step does first to a database
// on this machine, as the machine describes it: one that stopped without
// a shutdown (its serve lease ran out while it was promoted, or it
// crashed) is started again behind its boot guard, to be promoted as a
// standby would be. The agent leaves databases alone while their group's
// run is in progress (convergeLocal), so nobody else would start it, and
// the step would fail on every retry. One shut down cleanly was stopped by
// a person, who says when it runs again.
func promoteStart(d resource.DiskFacts) (start bool, err error) {
	switch {
	case d.Running:
		return false, nil
	case crashed(d.State):
		return true, nil
	}
	return false, fmt.Errorf("it does not run and was shut down cleanly (%s): start it (it comes up read-only behind its boot guard), and the step promotes it at its next try", d.State)
}

// convergeLocal keeps the local databases in line with their groups'
// records.
func (lr *localResources) convergeLocal(ctx context.Context) error {
	if len(lr.locals) == 0 {
		return nil
	}
	told := map[string]string{}
	return lr.plane.withSnapshots(ctx, lr.topo.Coordination.ProbeInterval.D(), func(snap status.Snapshot) {
		if !lr.leaseValid() || len(snap.Marks[lr.site.Name]) > 0 {
			return
		}
		for key, l := range lr.locals {
			group, _, _ := strings.Cut(key, "/")
			rec, adopted := snap.Records[group]
			if snap.Running[group] != "" {
				continue // the run's steps move it
			}
			lock := lr.resourceLock(key)
			if !lock.TryLock() {
				continue // a step is at work on it
			}
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			disk, err := l.Disk(dctx)
			cancel()
			if err != nil {
				lock.Unlock()
				if told[key] != err.Error() {
					told[key] = err.Error()
					lr.log.Warn("cannot read the local database's state", "resource", key, "error", err)
				}
				continue
			}
			v, observed := lr.view(key)
			_, resumable := l.(resource.Resumer)
			f := localFacts{Adopted: adopted, ActiveHere: adopted && rec.ActiveSite == lr.site.Name,
				Running: disk.Running, State: disk.State, Guard: disk.Guard, Resumable: resumable}
			switch {
			case observed && v.Up:
				f.Primary = v.Role == status.RolePrimary
				f.Stalled = v.Role == status.RoleStandby && !v.Streaming
			default:
				// It does not answer: judge by its control file, and take
				// "in production" for a server that may be writing.
				f.Primary = disk.State == resource.StateInProduction
			}
			do, why := localAction(f)
			if do == leaveAlone {
				lock.Unlock()
				if told[key] != why && f.Adopted && !f.Running {
					lr.log.Info("local database left as it is", "resource", key, "why", why)
				}
				told[key] = why
				continue
			}
			// Another look at the record just before acting: the lease and
			// the record must still say the same.
			if !lr.leaseValid() {
				lock.Unlock()
				return
			}
			actx, cancel := context.WithTimeout(ctx, time.Minute)
			switch do {
			case writeGuard:
				err = l.EnsureGuard()
			case startPrimary:
				err = l.StartPrimary(actx)
			case startStandby:
				err = l.StartStandby(actx)
			case fenceIt:
				err = l.Kill()
				if err == nil {
					lr.metrics.selfFences.Inc()
				}
			case resumeReplication:
				var resumed bool
				if resumed, err = l.(resource.Resumer).ResumeReplication(actx); err == nil && !resumed {
					// Running, connecting, or stopped on an error a
					// person must read: nothing done, nothing to say.
					cancel()
					lock.Unlock()
					continue
				}
			}
			cancel()
			lock.Unlock()
			if err != nil {
				// Said once per error: a replica whose replication fails
				// again at once is tried each turn.
				if told[key] != err.Error() {
					lr.log.Error("cannot bring the local database in line with its group's record", "resource", key, "action", do.String(), "why", why, "error", err)
				}
				told[key] = err.Error()
				continue
			}
			if (do != writeGuard && do != resumeReplication) || told[key] != why {
				lr.log.Warn("local database brought in line with its group's record", "resource", key, "action", do.String(), "why", why, "active_site", rec.ActiveSite, "epoch", rec.Epoch)
			}
			told[key] = why
			lr.observeNow()
		}
	})
}
