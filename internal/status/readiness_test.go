package status

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
)

// TestJudge plays every row of the readiness table (docs/design/risk.md)
// against a protected webshop at brussels with a standby at antwerp.
func TestJudge(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	ready, notReady := true, false
	protected := func() GroupStatus {
		return GroupStatus{Name: "webshop", ActiveSite: "brussels", Epoch: 3, State: StateProtected,
			Resources: []ResourceStatus{{Name: "db", Class: "data", Sites: []ResourceSiteStatus{
				{Site: "brussels", Role: RolePrimary, Up: true},
				{Site: "antwerp", Role: RoleStandby, Up: true, Streaming: true, FailoverReady: &ready, FailoverBound: "1.2s"},
			}}}}
	}
	offset := func(ms float64) *float64 { return &ms }
	schedule := &config.DrillSchedule{Every: new(config.Duration(7 * 24 * time.Hour))}
	geography := config.Problem{Kind: config.KindGeography, Msg: "brussels and antwerp are 40 km apart, closer than min_site_distance 100 km", Sites: []string{"brussels", "antwerp"}}
	for _, tc := range []struct {
		name    string
		gs      func(*GroupStatus)
		g       func(*config.Group)
		top     func(*config.Topology)
		snap    Snapshot
		sites   []SiteStatus
		verdict string
		reasons []ReadinessReason
	}{
		{name: "ready", verdict: Ready},
		{name: "unprotected", gs: func(gs *GroupStatus) {
			gs.State = StateUnprotected
			gs.Issues = []Problem{{Kind: KindStandbyNotReady, Site: "antwerp", Message: "db at antwerp is a standby that is not streaming", Command: "siteflip reprotect webshop"}}
		}, verdict: NotReady, reasons: []ReadinessReason{{Kind: "protection", Severity: NotReady, Site: "antwerp",
			Message: "webshop is unprotected: db at antwerp is a standby that is not streaming", Fix: "siteflip reprotect webshop"}}},
		{name: "unprotected and paused: the pause is not the fix", gs: func(gs *GroupStatus) {
			gs.State = StateUnprotected
			gs.Issues = []Problem{{Kind: KindPaused, Message: "paused by alice", Command: "siteflip resume webshop"},
				{Kind: KindStandbyNotReady, Site: "antwerp", Message: "www at antwerp is not ready to take the clients"}}
		}, verdict: NotReady, reasons: []ReadinessReason{{Kind: "protection", Severity: NotReady, Site: "antwerp",
			Message: "webshop is unprotected: www at antwerp is not ready to take the clients", Fix: "siteflip reprotect webshop"}}},
		{name: "needs decision", gs: func(gs *GroupStatus) {
			gs.State = StateNeedsDecision
			gs.Decision = &Decision{Site: "brussels", Reason: "policy manual", Command: "siteflip failover webshop --to antwerp"}
		}, verdict: NotReady, reasons: []ReadinessReason{{Kind: "protection", Severity: NotReady, Site: "brussels",
			Message: "webshop is waiting for a person's decision: brussels is lost and webshop does not fail over by itself: policy manual", Fix: "siteflip failover webshop --to antwerp"}}},
		{name: "initializing", gs: func(gs *GroupStatus) { gs.State, gs.ActiveSite = StateInitializing, "" },
			verdict: NotReady, reasons: []ReadinessReason{{Kind: "protection", Severity: NotReady,
				Message: "webshop is not adopted by a controller yet", Fix: "make one site primary for all of the group's data: the controller then adopts it"}}},
		{name: "run in progress", gs: func(gs *GroupStatus) { gs.State, gs.Run = StateSwitchingOver, "r1" },
			verdict: AtRisk, reasons: []ReadinessReason{{Kind: "protection", Severity: AtRisk,
				Message: "run r1 is in progress on webshop (switching over): another failover waits until it ends", Fix: "siteflip run r1"}}},
		{name: "lag unknown", gs: func(gs *GroupStatus) { gs.Resources[0].Sites[1].FailoverReady = &notReady },
			verdict: NotReady, reasons: []ReadinessReason{{Kind: "lag", Severity: NotReady, Site: "antwerp",
				Message: "a failover of db to antwerp would not go ahead now: standby lag unknown: it was never measured by its primary", Fix: "siteflip reprotect webshop"}}},
		{name: "lag over max", gs: func(gs *GroupStatus) {
			gs.Resources[0].Sites[1].FailoverReady = &notReady
			gs.Resources[0].Sites[1].LastKnownLag = &Lag{Seconds: 9, Epoch: 3, Streaming: true}
		}, verdict: NotReady, reasons: []ReadinessReason{{Kind: "lag", Severity: NotReady, Site: "antwerp",
			Message: "a failover of db to antwerp would not go ahead now: standby too far behind: a failover may lose up to 10.1s (lag 9s (0 bytes), measured 0s before its primary was last seen, 1s of serve lease and 100ms the record may lag), more than max_data_loss 5s",
			Fix:     "find why db at antwerp falls behind (write load, the link from brussels), or raise max_data_loss of webshop"}}},
		{name: "lag over half", gs: func(gs *GroupStatus) { gs.Resources[0].Sites[1].FailoverBound = "2.6s" },
			verdict: AtRisk, reasons: []ReadinessReason{{Kind: "lag", Severity: AtRisk, Site: "antwerp",
				Message: "a failover of db to antwerp may lose up to 2.6s, more than half of max_data_loss 5s",
				Fix:     "find why db at antwerp falls behind (write load, the link from brussels), or raise max_data_loss of webshop"}}},
		{name: "current lag over half", gs: func(gs *GroupStatus) { gs.Resources[0].Sites[1].LagSeconds = new(3.0) },
			verdict: AtRisk, reasons: []ReadinessReason{{Kind: "lag", Severity: AtRisk, Site: "antwerp",
				Message: "a failover of db to antwerp may lose up to 3s, more than half of max_data_loss 5s",
				Fix:     "find why db at antwerp falls behind (write load, the link from brussels), or raise max_data_loss of webshop"}}},
		{name: "synchronous degraded", gs: func(gs *GroupStatus) {
			gs.Resources[0].Synchronous = &SyncRecord{Epoch: 3, State: SyncDegraded, Standby: "antwerp", Since: now.Add(-time.Minute), Reason: "the standby stopped confirming"}
		}, verdict: AtRisk, reasons: []ReadinessReason{{Kind: "synchronous", Severity: AtRisk, Site: "antwerp",
			Message: "db is synchronous but degraded since 2026-12-05T11:59:00Z (the standby stopped confirming): commits do not wait for the standby at antwerp",
			Fix:     "bring the standby at antwerp back to streaming; siteflip makes it synchronous again by itself (siteflip reprotect webshop if it does not stream)"}}},
		{name: "synchronous degraded in an older epoch", gs: func(gs *GroupStatus) {
			gs.Resources[0].Synchronous = &SyncRecord{Epoch: 2, State: SyncDegraded, Standby: "antwerp"}
		}, verdict: Ready},
		{name: "dependency unreachable from the standby", gs: func(gs *GroupStatus) {
			gs.Dependencies = []DependencyStatus{
				{Name: "ldap", Type: "tcp", Site: "brussels", Target: "tcp 127.0.1.1:3389", Known: true, Reachable: true},
				{Name: "ldap", Type: "tcp", Site: "antwerp", Target: "tcp 127.0.2.1:3389", Known: true, Error: "connection refused"},
			}
		}, verdict: AtRisk, reasons: []ReadinessReason{{Kind: "dependency", Severity: AtRisk, Site: "antwerp",
			Message: "ldap (tcp 127.0.2.1:3389) is unreachable from antwerp: connection refused",
			Fix:     "start ldap where antwerp reaches it (tcp 127.0.2.1:3389), or open the way from antwerp to it"}}},
		{name: "critical dependency unreachable from the standby", gs: func(gs *GroupStatus) {
			gs.Dependencies = []DependencyStatus{{Name: "ldap", Type: "tcp", Site: "antwerp", Critical: true, Target: "tcp 127.0.2.1:3389", Known: true, Since: now.Add(-time.Minute)}}
		}, verdict: NotReady, reasons: []ReadinessReason{{Kind: "dependency", Severity: NotReady, Site: "antwerp",
			Message: "ldap (tcp 127.0.2.1:3389) is unreachable from antwerp (since 2026-12-05T11:59:00Z); it is critical: webshop cannot run there",
			Fix:     "start ldap where antwerp reaches it (tcp 127.0.2.1:3389), or open the way from antwerp to it"}}},
		{name: "critical dependency unreachable from the active site", gs: func(gs *GroupStatus) {
			gs.Dependencies = []DependencyStatus{{Name: "ldap", Type: "tcp", Site: "brussels", Critical: true, Target: "tcp 127.0.1.1:3389", Known: true}}
		}, verdict: AtRisk, reasons: []ReadinessReason{{Kind: "dependency", Severity: AtRisk, Site: "brussels",
			Message: "ldap (tcp 127.0.1.1:3389) is unreachable from brussels",
			Fix:     "start ldap where brussels reaches it (tcp 127.0.1.1:3389), or open the way from brussels to it"}}},
		{name: "dependency not probed", gs: func(gs *GroupStatus) {
			gs.Dependencies = []DependencyStatus{{Name: "ldap", Type: "tcp", Site: "antwerp", Critical: true, Target: "tcp 127.0.2.1:3389"}}
		}, verdict: AtRisk, reasons: []ReadinessReason{{Kind: "dependency", Severity: AtRisk, Site: "antwerp",
			Message: "ldap (tcp 127.0.2.1:3389) is not probed from antwerp: its agent publishes no result",
			Fix:     "check that siteflip's agent at antwerp runs and reports (siteflip status), at a version that probes dependencies"}}},
		{name: "no drill schedule, no record", verdict: Ready},
		{name: "schedule and no success yet", g: func(g *config.Group) { g.Drill = schedule },
			verdict: AtRisk, reasons: []ReadinessReason{{Kind: "drill", Severity: AtRisk,
				Message: "webshop has a drill schedule (every 7 days) and no successful drill on record", Fix: "siteflip drill webshop"}}},
		{name: "last success older than twice the schedule", g: func(g *config.Group) { g.Drill = schedule },
			snap: Snapshot{Drills: map[string]DrillRecord{"webshop": {
				Last:        &DrillResult{Run: "d1", Site: "antwerp", Result: "succeeded", Started: now.Add(-15 * 24 * time.Hour)},
				LastSuccess: &DrillResult{Run: "d1", Site: "antwerp", Result: "succeeded", Started: now.Add(-15 * 24 * time.Hour)}}}},
			verdict: AtRisk, reasons: []ReadinessReason{{Kind: "drill", Severity: AtRisk,
				Message: "the last successful drill of webshop started 15 days ago, more than the schedule's max_age 14 days", Fix: "siteflip drill webshop"}}},
		{name: "recent success within the schedule", g: func(g *config.Group) { g.Drill = schedule },
			snap: Snapshot{Drills: map[string]DrillRecord{"webshop": {
				LastSuccess: &DrillResult{Run: "d1", Result: "succeeded", Started: now.Add(-13 * 24 * time.Hour)}}}},
			verdict: Ready},
		{name: "no schedule, success older than 90 days",
			snap: Snapshot{Drills: map[string]DrillRecord{"webshop": {
				LastSuccess: &DrillResult{Run: "d1", Result: "succeeded", Started: now.Add(-91 * 24 * time.Hour)}}}},
			verdict: AtRisk, reasons: []ReadinessReason{{Kind: "drill", Severity: AtRisk,
				Message: "the last successful drill of webshop started 91 days ago, more than 90 days without a drill schedule", Fix: "siteflip drill webshop"}}},
		{name: "last drill failed",
			snap: Snapshot{Drills: map[string]DrillRecord{"webshop": {
				Last:        &DrillResult{Run: "d2", Site: "antwerp", Result: "failed", Error: "check shop failed", Started: now.Add(-time.Hour)},
				LastSuccess: &DrillResult{Run: "d1", Result: "succeeded", Started: now.Add(-24 * time.Hour)}}}},
			verdict: AtRisk, reasons: []ReadinessReason{{Kind: "drill", Severity: AtRisk, Site: "antwerp",
				Message: "the last drill of webshop, run d2 at antwerp, failed: check shop failed",
				Fix:     "see what failed (siteflip run d2), fix it, then siteflip drill webshop"}}},
		{name: "paused", gs: func(gs *GroupStatus) {
			gs.Paused, gs.PausedBy, gs.PausedAt, gs.PauseReason = true, "alice", now.Add(-time.Hour), "network works"
		}, verdict: AtRisk, reasons: []ReadinessReason{{Kind: "pause", Severity: AtRisk,
			Message: "webshop is paused by alice since 2026-12-05T11:00:00Z (network works): it does not fail over by itself", Fix: "siteflip resume webshop"}}},
		{name: "certificate expired", sites: []SiteStatus{{Name: "antwerp", CertNotAfter: now.Add(-time.Hour)}},
			verdict: NotReady, reasons: []ReadinessReason{{Kind: "certificate", Severity: NotReady, Site: "antwerp",
				Message: "antwerp's certificate expired on 2026-12-05: the other locations refuse its agent", Fix: "siteflip cert renew antwerp"}}},
		{name: "witness certificate expiring", sites: []SiteStatus{{Name: "frankfurt", CertNotAfter: now.Add(10*24*time.Hour + time.Hour)}},
			verdict: AtRisk, reasons: []ReadinessReason{{Kind: "certificate", Severity: AtRisk, Site: "frankfurt",
				Message: "frankfurt's certificate expires in 10 days (2026-12-15)", Fix: "siteflip cert renew frankfurt"}}},
		{name: "certificate of another group's site", sites: []SiteStatus{{Name: "paris", CertNotAfter: now.Add(-time.Hour)}},
			top: func(t *config.Topology) { t.Sites = append(t.Sites, config.Site{Name: "paris", Role: config.RoleSite}) }, verdict: Ready},
		{name: "certificate far from expiry", sites: []SiteStatus{{Name: "antwerp", CertNotAfter: now.Add(15 * 24 * time.Hour)}}, verdict: Ready},
		{name: "clocks apart", snap: Snapshot{Views: map[string]View{"brussels": {Peers: map[string]PeerView{"frankfurt": {ClockOffsetMs: offset(-1500)}}}}},
			verdict: AtRisk, reasons: []ReadinessReason{{Kind: "clock", Severity: AtRisk,
				Message: "the clocks of brussels and frankfurt differ by 1.5s (frankfurt is behind): leases and lag measurements are read on both",
				Fix:     "synchronise both clocks with NTP (timedatectl status, chronyc tracking at brussels and frankfurt)"}}},
		{name: "clocks apart, seen from the other side", snap: Snapshot{Views: map[string]View{"antwerp": {Peers: map[string]PeerView{"brussels": {ClockOffsetMs: offset(2000)}}}}},
			verdict: AtRisk, reasons: []ReadinessReason{{Kind: "clock", Severity: AtRisk,
				Message: "the clocks of brussels and antwerp differ by 2s (antwerp is behind): leases and lag measurements are read on both",
				Fix:     "synchronise both clocks with NTP (timedatectl status, chronyc tracking at brussels and antwerp)"}}},
		{name: "clocks close", snap: Snapshot{Views: map[string]View{"brussels": {Peers: map[string]PeerView{"antwerp": {ClockOffsetMs: offset(900)}}}}}, verdict: Ready},
		{name: "check warnings", top: func(t *config.Topology) {
			t.Warnings = []config.Problem{
				{Msg: "group webshop: no drill schedule", Field: "groups[0]", Group: "webshop"},
				{Msg: "group shop2: something", Group: "shop2"},
				{Msg: "tls is off"},
				{Msg: "paris has no coordinates", Sites: []string{"paris"}},
				{Msg: "frankfurt has no coordinates", Sites: []string{"frankfurt"}},
			}
		}, verdict: AtRisk, reasons: []ReadinessReason{
			{Kind: "check", Severity: AtRisk, Message: "group webshop: no drill schedule", Fix: "change groups[0] as `siteflip check` says"},
			{Kind: "check", Severity: AtRisk, Message: "tls is off", Fix: "change the topology as `siteflip check` says"},
			{Kind: "check", Severity: AtRisk, Site: "frankfurt", Message: "frankfurt has no coordinates", Fix: "change the topology as `siteflip check` says"},
		}},
		{name: "geography is a note", top: func(t *config.Topology) { t.Warnings = []config.Problem{geography} },
			verdict: Ready, reasons: []ReadinessReason{{Kind: "geography", Severity: SeverityNote, Message: geography.Msg,
				Fix: "place the sites further apart (siteflip check, siteflip whatif)"}}},
		{name: "worst first, notes last", top: func(t *config.Topology) { t.Warnings = []config.Problem{geography} },
			gs:      func(gs *GroupStatus) { gs.Paused, gs.PausedBy, gs.PausedAt = true, "alice", now },
			sites:   []SiteStatus{{Name: "antwerp", CertNotAfter: now.Add(-time.Hour)}},
			verdict: NotReady, reasons: []ReadinessReason{
				{Kind: "certificate", Severity: NotReady, Site: "antwerp", Message: "antwerp's certificate expired on 2026-12-05: the other locations refuse its agent", Fix: "siteflip cert renew antwerp"},
				{Kind: "pause", Severity: AtRisk, Message: "webshop is paused by alice since 2026-12-05T12:00:00Z: it does not fail over by itself", Fix: "siteflip resume webshop"},
				{Kind: "geography", Severity: SeverityNote, Message: geography.Msg, Fix: "place the sites further apart (siteflip check, siteflip whatif)"},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top := topology()
			if tc.top != nil {
				tc.top(top)
			}
			g := &top.Groups[0]
			if tc.g != nil {
				tc.g(g)
			}
			gs := protected()
			if tc.gs != nil {
				tc.gs(&gs)
			}
			got := Judge(gs, g, top, tc.snap, tc.sites, now)
			want := Readiness{Verdict: tc.verdict, Reasons: tc.reasons}
			if want.Reasons == nil {
				want.Reasons = []ReadinessReason{}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Judge (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAssembleDependencies: each dependency at each site of the group,
// known only from a believed view that has it, and the verdict they make.
func TestAssembleDependencies(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	top := topology()
	top.Groups[0].Requires = []config.Dependency{{Name: "ldap", Type: config.DependencyTCP, Sites: map[string]config.DependencySite{
		"brussels": {Address: "127.0.1.1:3389"}, "antwerp": {Address: "127.0.2.1:3389"}}}}
	probe := DependencyView{Group: "webshop", Dependency: "ldap", Type: "tcp", Target: "tcp 127.0.1.1:3389", Reachable: true, CheckedAt: now, Since: now.Add(-time.Hour)}
	withDep := func(v View, d DependencyView) View {
		v.PublishedAt = now
		v.Dependencies = map[string]DependencyView{"webshop/ldap": d}
		return v
	}
	brussels := DependencyStatus{Name: "ldap", Type: "tcp", Site: "brussels", Target: "tcp 127.0.1.1:3389", Known: true, Reachable: true, CheckedAt: now, Since: now.Add(-time.Hour)}
	unknownAntwerp := DependencyStatus{Name: "ldap", Type: "tcp", Site: "antwerp", Target: "tcp 127.0.2.1:3389"}
	for _, tc := range []struct {
		name  string
		views map[string]View
		want  []DependencyStatus
	}{
		{"both probed", map[string]View{
			"brussels": withDep(sees("brussels", "antwerp", "frankfurt"), probe),
			"antwerp":  withDep(sees("antwerp", "brussels", "frankfurt"), DependencyView{Target: "tcp 127.0.2.1:3389", Error: "connection refused", CheckedAt: now}),
		}, []DependencyStatus{brussels, {Name: "ldap", Type: "tcp", Site: "antwerp", Target: "tcp 127.0.2.1:3389", Known: true, Error: "connection refused", CheckedAt: now}}},
		{"no entry at antwerp", map[string]View{
			"brussels": withDep(sees("brussels", "antwerp", "frankfurt"), probe),
			"antwerp":  sees("antwerp", "brussels", "frankfurt"),
		}, []DependencyStatus{brussels, unknownAntwerp}},
		{"no view of antwerp", map[string]View{
			"brussels": withDep(sees("brussels", "frankfurt"), probe),
		}, []DependencyStatus{brussels, unknownAntwerp}},
		{"antwerp's old view, not believed", map[string]View{
			"brussels":  withDep(sees("brussels", "frankfurt"), probe),
			"frankfurt": sees("frankfurt", "brussels"),
			"antwerp": func() View {
				v := withDep(sees("antwerp", "brussels", "frankfurt"), probe)
				v.PublishedAt = now.Add(-time.Minute)
				return v
			}(),
		}, []DependencyStatus{brussels, unknownAntwerp}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Assemble(top, Snapshot{Views: tc.views}, "brussels", now)
			gs := st.Groups[0]
			if diff := cmp.Diff(tc.want, gs.Dependencies); diff != "" {
				t.Errorf("Dependencies (-want +got):\n%s", diff)
			}
			if gs.Readiness == nil {
				t.Fatal("no readiness")
			}
			var kinds []string
			for _, r := range gs.Readiness.Reasons {
				if r.Kind == "dependency" {
					kinds = append(kinds, r.Site)
				}
			}
			if diff := cmp.Diff([]string{"antwerp"}, kinds); diff != "" {
				t.Errorf("dependency reasons at (-want +got):\n%s\n%+v", diff, gs.Readiness.Reasons)
			}
		})
	}
}
