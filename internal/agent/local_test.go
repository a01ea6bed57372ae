package agent

import (
	"testing"

	"github.com/siteflip/siteflip/internal/resource"
)

func TestLocalAction(t *testing.T) {
	const (
		prod     = resource.StateInProduction
		shut     = resource.StateShutDown
		shutRec  = resource.StateShutDownRecovery
		archive  = resource.StateArchiveRecovery
		crashRec = resource.StateCrashRecovery
	)
	active := func(f localFacts) localFacts { f.Adopted, f.ActiveHere = true, true; return f }
	standbySite := func(f localFacts) localFacts { f.Adopted = true; return f }
	tests := []struct {
		name string
		f    localFacts
		want localDo
	}{
		{"group not adopted", localFacts{Running: true, Primary: true}, leaveAlone},
		// The serve lease ran out while the agent started on a busy
		// machine, before the group's first record: left stopped, the
		// group would never be adopted (a lab that never came up).
		{"group not adopted, its primary fenced", localFacts{State: prod}, startPrimary},
		{"group not adopted, its standby fenced", localFacts{State: archive, Guard: true}, startStandby},
		{"group not adopted, shut down cleanly", localFacts{State: shut}, leaveAlone},
		{"group not adopted, an old standby without its guard", localFacts{State: archive}, leaveAlone},

		// At the active site.
		{"primary serves with its guard", active(localFacts{Running: true, Primary: true, State: prod, Guard: true}), leaveAlone},
		{"primary serves without its guard", active(localFacts{Running: true, Primary: true, State: prod}), writeGuard},
		{"came up read-only behind its guard (booted without the agent)", active(localFacts{Running: true, State: archive, Guard: true}), startPrimary},
		{"killed by its own fence (lease lost), lease back", active(localFacts{State: prod, Guard: true}), startPrimary},
		{"crashed during crash recovery", active(localFacts{State: crashRec, Guard: true}), startPrimary},
		{"killed while it was up read-only behind its guard", active(localFacts{State: archive, Guard: true}), startPrimary},
		{"shut down cleanly by a person", active(localFacts{State: shut, Guard: true}), leaveAlone},
		{"shut down cleanly in recovery", active(localFacts{State: shutRec, Guard: true}), leaveAlone},

		// At a site that is not active.
		{"a primary serving where the group is not active", standbySite(localFacts{Running: true, Primary: true, State: prod}), fenceIt},
		{"a primary that does not answer, by its control file", standbySite(localFacts{Running: true, Primary: true, State: prod, Guard: true}), fenceIt},
		{"a standby streams", standbySite(localFacts{Running: true, State: archive, Guard: true}), leaveAlone},
		{"a standby killed by its own fence, lease back", standbySite(localFacts{State: archive, Guard: true}), startStandby},
		{"the old primary after a failover, killed", standbySite(localFacts{State: prod, Guard: true}), leaveAlone},
		{"a standby shut down cleanly", standbySite(localFacts{State: shutRec, Guard: true}), leaveAlone},
		{"a stopped data dir in archive recovery without standby.signal", standbySite(localFacts{State: archive}), leaveAlone},
		// A MariaDB replica restarted (its site's power came back) stays
		// read-only and does not replicate, by its guard: the group that
		// did not move stayed unprotected until a reprotect.
		{"a replica restarted behind its guard does not replicate", standbySite(localFacts{Running: true, State: archive, Guard: true, Stalled: true, Resumable: true}), resumeReplication},
		{"a standby that does not stream and streams again by itself", standbySite(localFacts{Running: true, State: archive, Guard: true, Stalled: true}), leaveAlone},
		{"an old primary restarted read-only is not made to replicate", standbySite(localFacts{Running: true, State: prod, Guard: true, Stalled: true, Resumable: true}), leaveAlone},
		{"a stalled replica without its guard", standbySite(localFacts{Running: true, State: archive, Stalled: true, Resumable: true}), leaveAlone},
		{"a stalled replica of a group without a record", localFacts{Running: true, State: archive, Guard: true, Stalled: true, Resumable: true}, leaveAlone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := localAction(tt.f)
			if got != tt.want {
				t.Errorf("localAction(%+v) = %s (%s), want %s", tt.f, got, why, tt.want)
			}
			if why == "" {
				t.Error("no reason given")
			}
		})
	}
}

// A promotion cut short by the serve lease (30 promotions on two cores)
// left the server stopped, and every retry of the step failed on
// "connection refused": nothing started it while its run went on.
func TestPromoteStart(t *testing.T) {
	tests := []struct {
		name    string
		d       resource.DiskFacts
		start   bool
		refused bool
	}{
		{"a standby that runs", resource.DiskFacts{Running: true, State: resource.StateArchiveRecovery, Guard: true}, false, false},
		{"already promoted, runs", resource.DiskFacts{Running: true, State: resource.StateInProduction}, false, false},
		{"killed before the promotion", resource.DiskFacts{State: resource.StateArchiveRecovery, Guard: true}, true, false},
		{"killed during the promotion, guard removed", resource.DiskFacts{State: resource.StateArchiveRecovery}, true, false},
		{"killed after the promotion", resource.DiskFacts{State: resource.StateInProduction, Guard: true}, true, false},
		{"killed during crash recovery", resource.DiskFacts{State: resource.StateCrashRecovery}, true, false},
		{"shut down cleanly as a standby", resource.DiskFacts{State: resource.StateShutDownRecovery, Guard: true}, false, true},
		{"shut down cleanly as a primary", resource.DiskFacts{State: resource.StateShutDown}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, err := promoteStart(tt.d)
			if start != tt.start || (err != nil) != tt.refused {
				t.Errorf("promoteStart(%+v) = %v, %v; want start %v, refused %v", tt.d, start, err, tt.start, tt.refused)
			}
		})
	}
}

// The DNS server in every agent answered with the new site as soon as the
// record changed at activation, before the database there accepted
// writes: during a run only the promote step moves it.
func TestFollowRecord(t *testing.T) {
	tests := []struct {
		running, followed, want bool
	}{
		{running: false, followed: false, want: true},
		{running: false, followed: true, want: true},
		{running: true, followed: true, want: false},
		{running: true, followed: false, want: true}, // just started: the record is all it has
	}
	for _, tt := range tests {
		if got := followRecord(tt.running, tt.followed); got != tt.want {
			t.Errorf("followRecord(run in progress %v, followed before %v) = %v, want %v", tt.running, tt.followed, got, tt.want)
		}
	}
}

func TestServiceAction(t *testing.T) {
	active := func(f serviceFacts) serviceFacts { f.Adopted, f.ActiveHere = true, true; return f }
	standbySite := func(f serviceFacts) serviceFacts { f.Adopted = true; return f }
	tests := []struct {
		name string
		f    serviceFacts
		want serviceDo
	}{
		{"group not adopted, running", serviceFacts{Observed: true, Running: true}, leaveService},
		{"runs at the active site", active(serviceFacts{Observed: true, Running: true}), leaveService},
		// A person may stop it at the active site: only what the lease's
		// loss stopped is started again.
		{"stopped at the active site", active(serviceFacts{Observed: true}), leaveService},
		{"stopped by the lease's loss, lease back", active(serviceFacts{Yielded: true, Observed: true}), startService},
		{"stopped by the lease's loss, runs again", active(serviceFacts{Yielded: true, Observed: true, Running: true}), forgetYield},
		{"stopped by the lease's loss, the group moved", standbySite(serviceFacts{Yielded: true, Observed: true}), forgetYield},
		{"stopped by the lease's loss, a run moves the group", active(serviceFacts{Yielded: true, Moving: true}), leaveService},
		// A host that came back, or a service manager, started it where
		// the group is not active: it may write data that is not the
		// primary's, or answer clients for the wrong site.
		{"runs where its group is not active", standbySite(serviceFacts{Observed: true, Running: true}), stopService},
		{"runs where its group is not active, during a run", standbySite(serviceFacts{Observed: true, Running: true, Moving: true}), leaveService},
		{"not observed yet where its group is not active", standbySite(serviceFacts{}), leaveService},
		{"stopped where its group is not active", standbySite(serviceFacts{Observed: true}), leaveService},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := serviceAction(tt.f)
			if got != tt.want {
				t.Errorf("serviceAction(%+v) = %s (%s), want %s", tt.f, got, why, tt.want)
			}
			if why == "" {
				t.Error("no reason given")
			}
		})
	}
}
