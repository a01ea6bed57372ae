package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/status"
)

// A resource's row speaks its class's terms: a database is a primary or a
// standby that streams, a traffic resource is active or parked and ready.
func TestResourceCells(t *testing.T) {
	tests := []struct {
		class                 string
		s                     status.ResourceSiteStatus
		role, timeline, ready string
	}{
		{"data", status.ResourceSiteStatus{Role: status.RolePrimary, Timeline: 3}, "primary", "3", "-"},
		{"data", status.ResourceSiteStatus{Role: status.RoleStandby, Timeline: 3, Streaming: true}, "standby", "3", "streaming"},
		{"data", status.ResourceSiteStatus{Role: status.RoleStandby, Timeline: 2}, "standby", "2", "NOT STREAMING"},
		{"data", status.ResourceSiteStatus{Role: status.RoleDown}, "down", "-", "-"},
		// A database without timelines (MariaDB).
		{"data", status.ResourceSiteStatus{Role: status.RolePrimary}, "primary", "-", "-"},
		{"traffic", status.ResourceSiteStatus{Role: status.RolePrimary, Streaming: true}, "active", "-", "-"},
		{"traffic", status.ResourceSiteStatus{Role: status.RoleStandby, Streaming: true}, "parked", "-", "ready"},
		{"traffic", status.ResourceSiteStatus{Role: status.RoleStandby}, "parked", "-", "NOT READY"},
		{"traffic", status.ResourceSiteStatus{Role: status.RoleUnknown}, "unknown", "-", "-"},
		{"service", status.ResourceSiteStatus{Role: status.RolePrimary, Up: true}, "running", "-", "-"},
		{"service", status.ResourceSiteStatus{Role: status.RoleDown, Up: true}, "UNHEALTHY", "-", "-"},
		{"service", status.ResourceSiteStatus{Role: status.RoleStandby, Up: true, Streaming: true}, "stopped", "-", "ready"},
		{"service", status.ResourceSiteStatus{Role: status.RoleUnknown}, "unknown", "-", "-"},
	}
	for _, tt := range tests {
		role, timeline, ready := resourceCells(tt.class, tt.s)
		if role != tt.role || timeline != tt.timeline || ready != tt.ready {
			t.Errorf("%s %+v: %q %q %q, want %q %q %q", tt.class, tt.s, role, timeline, ready, tt.role, tt.timeline, tt.ready)
		}
	}
}

func TestStateWords(t *testing.T) {
	tests := []struct {
		g    status.GroupStatus
		want string
	}{
		{status.GroupStatus{State: status.StateProtected}, "PROTECTED"},
		{status.GroupStatus{State: status.StateNeedsDecision}, "NEEDS DECISION"},
		{status.GroupStatus{State: status.StateSwitchingOver, Phase: &status.Phase{Run: "r1", Action: "switchover", From: "brussels", To: "antwerp"}}, "SWITCHING OVER to antwerp"},
		{status.GroupStatus{State: status.StateReprotecting, Phase: &status.Phase{Run: "r1", Action: "reprotect", From: "antwerp", To: "antwerp"}}, "REPROTECTING"},
		{status.GroupStatus{State: status.StateSplitBrain, Phase: &status.Phase{Run: "r1", Action: "switchover", To: "antwerp"}}, "SPLIT BRAIN"},
	}
	for _, tt := range tests {
		if got := stateWords(tt.g); got != tt.want {
			t.Errorf("%s %+v: %q, want %q", tt.g.State, tt.g.Phase, got, tt.want)
		}
	}
}

func TestCertCell(t *testing.T) {
	now := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	tests := []struct {
		notAfter time.Time
		want     string
	}{
		{time.Time{}, "-"},
		{now.Add(-time.Minute), "EXPIRED"},
		{now.Add(12*24*time.Hour + time.Hour), "12d LEFT"},
		{now.Add(400 * 24 * time.Hour), "400d"},
	}
	for _, tt := range tests {
		if got := certCell(tt.notAfter, now); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.notAfter, got, tt.want)
		}
	}
}

// A lag is shown as measured now, or as unknown with the last known one
// and its age once the primary is not observed: never a dead primary's
// last word as if it were current.
func TestLagCell(t *testing.T) {
	now := time.Date(2026, 12, 5, 6, 0, 30, 0, time.UTC)
	b, s := int64(128), 0.004
	last := &status.Lag{Seconds: 0.004, MeasuredAt: now.Add(-30 * time.Second)}
	tests := []struct {
		name string
		s    status.ResourceSiteStatus
		want string
	}{
		{"measured now", status.ResourceSiteStatus{Site: "antwerp", LagBytes: &b, LagSeconds: &s, LastKnownLag: last}, "128 B / 0.004 s"},
		{"primary dead", status.ResourceSiteStatus{Site: "antwerp", LagUnknown: "its primary at brussels is not observed serving now", LastKnownLag: last},
			"UNKNOWN (primary not observed); last known 0.004 s, measured 30s ago"},
		{"primary dead, never measured", status.ResourceSiteStatus{Site: "antwerp", LagUnknown: "x"}, "UNKNOWN (primary not observed)"},
		{"the active site", status.ResourceSiteStatus{Site: "brussels", LagUnknown: "x"}, "-"},
	}
	for _, tt := range tests {
		if got := lagCell(tt.s, "brussels", now); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// With -v, a problem shows the raw error behind it; without, its line only.
func TestPrintProblems(t *testing.T) {
	p := status.Problem{Kind: status.KindStandbyNotReady, Message: "db at antwerp is down", Command: "siteflip reprotect webshop", Detail: "pq: connection refused"}
	lines := []string{p.Line(), "a line from an older agent"}
	for _, verbose := range []bool{false, true} {
		var b strings.Builder
		printProblems(&b, "  ", lines, []status.Problem{p}, verbose)
		want := "  ! db at antwerp is down; run: siteflip reprotect webshop\n"
		if verbose {
			want += "      error: pq: connection refused\n"
		}
		want += "  ! a line from an older agent\n"
		if b.String() != want {
			t.Errorf("verbose %v:\n%s\nwant:\n%s", verbose, b.String(), want)
		}
	}
}

// A group's verdict on one line with its reasons and their fixes under
// it, the worst first, its notes only counted, and each dependency with what each site found.
func TestPrintReadiness(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    *status.Readiness
		want string
	}{
		{"from an earlier agent", nil, ""},
		{"ready", &status.Readiness{Verdict: status.Ready}, "  readiness: ready\n"},
		{"ready with a note", &status.Readiness{Verdict: status.Ready, Reasons: []status.ReadinessReason{
			{Kind: "geography", Severity: status.SeverityNote, Message: "brussels and antwerp are 40 km apart"}}},
			"  readiness: ready — 1 note (siteflip readiness lists the notes)\n"},
		{"not ready", &status.Readiness{Verdict: status.NotReady, Reasons: []status.ReadinessReason{
			{Kind: "certificate", Severity: status.NotReady, Site: "antwerp", Message: "antwerp's certificate expired on 2026-12-05", Fix: "siteflip cert renew antwerp"},
			{Kind: "pause", Severity: status.AtRisk, Message: "webshop is paused", Fix: "siteflip resume webshop"},
			{Kind: "dependency", Severity: status.AtRisk, Message: "ldap is unreachable from antwerp", Fix: "start ldap where antwerp reaches it"},
		}}, `  readiness: not ready — 1 reason, 2 at risk
    not ready: antwerp's certificate expired on 2026-12-05
      fix: siteflip cert renew antwerp
    at risk: webshop is paused
      fix: siteflip resume webshop
    at risk: ldap is unreachable from antwerp
      fix: start ldap where antwerp reaches it
`},
	} {
		var b strings.Builder
		printReadiness(&b, "  ", tt.r)
		if b.String() != tt.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tt.name, b.String(), tt.want)
		}
	}
	deps := []status.DependencyStatus{
		{Name: "ldap", Type: "tcp", Site: "brussels", Critical: true, Known: true, Reachable: true},
		{Name: "ldap", Type: "tcp", Site: "antwerp", Critical: true, Known: true, Error: "connection refused"},
		{Name: "dns", Type: "dns", Site: "brussels", Known: true, Reachable: true},
		{Name: "dns", Type: "dns", Site: "antwerp"},
	}
	got := strings.Join(dependencyLines(deps), "\n")
	want := "dependency ldap (tcp, critical): brussels reachable, antwerp UNREACHABLE (connection refused)\ndependency dns (dns): brussels reachable, antwerp NOT PROBED"
	if got != want {
		t.Errorf("dependencies:\n%s\nwant:\n%s", got, want)
	}
}
