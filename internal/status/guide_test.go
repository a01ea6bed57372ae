package status

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSiteProblems(t *testing.T) {
	now := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	site := func(name, version string, notAfter time.Time) SiteStatus {
		return SiteStatus{Name: name, Up: true, Reporting: true, Version: version, CertNotAfter: notAfter}
	}
	later := now.Add(365 * 24 * time.Hour)
	tests := []struct {
		name  string
		sites []SiteStatus
		want  []Problem
	}{
		{"all well", []SiteStatus{site("brussels", "1.3.0", later), site("antwerp", "1.3.0", later), site("frankfurt", "1.3.0", time.Time{})}, nil},
		{"certificate expiring in 12 days", []SiteStatus{site("brussels", "1.3.0", now.Add(12*24*time.Hour+time.Hour)), site("antwerp", "1.3.0", later)}, []Problem{{
			Kind: KindCertExpiring, Site: "brussels", Message: "brussels's certificate expires in 12 days (2026-12-17)", Command: "siteflip cert renew brussels",
		}}},
		{"certificate 31 days left is no problem", []SiteStatus{site("brussels", "1.3.0", now.Add(31*24*time.Hour))}, nil},
		{"certificate expired", []SiteStatus{site("antwerp", "1.3.0", now.Add(-time.Hour))}, []Problem{{
			Kind: KindCertExpiring, Site: "antwerp", Message: "antwerp's certificate expired on 2026-12-05: the others refuse its agent", Command: "siteflip cert renew antwerp",
		}}},
		{"an upgrade half done", []SiteStatus{site("brussels", "1.3.0", later), site("antwerp", "1.2.0", later), site("frankfurt", "1.3.0", later)}, []Problem{{
			Kind:    KindVersionMismatch,
			Message: "the agents run different versions (1.2.0 at antwerp; 1.3.0 at brussels, frankfurt): finish the upgrade, one location at a time (docs/deploy.md)",
		}}},
		{"an old agent that does not say its version is no mismatch", []SiteStatus{site("brussels", "1.3.0", later), site("antwerp", "", time.Time{})}, nil},
		{"agent not reporting", []SiteStatus{{Name: "antwerp", Version: "1.2.0"}, site("brussels", "1.3.0", later)}, []Problem{{
			Kind: KindAgentDown, Site: "antwerp", Message: "antwerp's agent is not reporting: start it there, or bring the machine back",
			Command: "systemctl start siteflip", On: "antwerp",
		}}},
		{"reporting but not reached", []SiteStatus{{Name: "antwerp", Up: true, Reporting: true, UnseenBy: []string{"brussels"}}}, []Problem{{
			Kind: KindSiteUnseen, Site: "antwerp", Message: "antwerp's agent reports, but brussels cannot reach it: check the network and firewall between them (its agent and lease ports)",
		}}},
		{"lost", []SiteStatus{{Name: "brussels", Lost: true, LostBy: []string{"antwerp", "frankfurt"}}}, []Problem{{
			Kind: KindSiteLost, Site: "brussels", Message: "brussels is lost: every other location declared it lost (antwerp, frankfurt), and its primaries fenced themselves",
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, siteProblems(tt.sites, now)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProblemLine(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Message: "m"}, "m"},
		{Problem{Message: "m", Command: "siteflip reprotect webshop"}, "m; run: siteflip reprotect webshop"},
		{Problem{Message: "m", Command: "systemctl start siteflip", On: "antwerp"}, "m; run at antwerp: systemctl start siteflip"},
	}
	for _, tt := range tests {
		if got := tt.p.Line(); got != tt.want {
			t.Errorf("%+v: line %q, want %q", tt.p, got, tt.want)
		}
	}
}

// TestVersionsAndCertificatesInStatus: each location's own view gives its
// version and certificate expiry, and a mismatch is an installation
// problem, not a group's.
func TestVersionsAndCertificatesInStatus(t *testing.T) {
	now := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	views := map[string]View{}
	for site, v := range allHealthy {
		v.Version = "1.3.0"
		v.CertNotAfter = now.Add(400 * 24 * time.Hour)
		views[site] = v
	}
	b := views["brussels"]
	b.Version, b.CertNotAfter = "1.2.0", now.Add(3*24*time.Hour)
	views["brussels"] = b
	st := Assemble(topology(), Snapshot{Views: views, Records: rec, Lags: trusted}, "frankfurt", now)
	s, _ := st.Site("brussels")
	if s.Version != "1.2.0" || !s.CertNotAfter.Equal(now.Add(3*24*time.Hour)) {
		t.Errorf("brussels: version %q, certificate until %s", s.Version, s.CertNotAfter)
	}
	var kinds []string
	for _, p := range st.Issues {
		kinds = append(kinds, p.Kind)
	}
	if want := []string{KindCertExpiring, KindVersionMismatch}; !cmp.Equal(kinds, want) || len(st.Problems) != 2 {
		t.Errorf("installation problems %q (kinds %v), want kinds %v", st.Problems, kinds, want)
	}
	if g := st.Groups[0]; g.State != StateProtected || len(g.Problems) != 0 {
		t.Errorf("group %s with problems %q: site problems belong to the installation", g.State, g.Problems)
	}
}

// TestOldViewDecodes: a view published by an agent built before versions
// and certificate expiry were published still decodes, with both unknown.
func TestOldViewDecodes(t *testing.T) {
	old := `{"site":"antwerp","role":"site","version":"","started_at":"2026-12-01T00:00:00Z","published_at":"2026-12-01T00:00:01Z","peers":{}}`
	var v View
	if err := json.Unmarshal([]byte(old), &v); err != nil {
		t.Fatalf("decode an old view: %v", err)
	}
	if v.Site != "antwerp" || !v.CertNotAfter.IsZero() {
		t.Errorf("old view decoded as %+v", v)
	}
	b, err := json.Marshal(View{Site: "antwerp"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["cert_not_after"]; ok {
		t.Errorf("a view without TLS writes cert_not_after: %s", b)
	}
}

// TestStateFollowsTheRun: while a run holds the group, its state is the
// run's phase, not what the steps pass through (a switchover's old
// primary fenced before the new one is promoted is not a group down).
func TestStateFollowsTheRun(t *testing.T) {
	fenced := map[string]View{
		"brussels":  withDB(sees("brussels", "antwerp", "frankfurt"), notStream),
		"antwerp":   withDB(sees("antwerp", "brussels", "frankfurt"), standby),
		"frankfurt": sees("frankfurt", "brussels", "antwerp"),
	}
	const id = "20261205T060000-webshop-switchover-1a2b"
	tests := []struct {
		name  string
		snap  Snapshot
		state string
		phase *Phase
	}{
		{"no run: the group is down", Snapshot{Views: fenced, Records: rec}, StateDown, nil},
		{"switchover read from its record", Snapshot{Views: fenced, Records: rec, Running: map[string]string{"webshop": id},
			RunPlans: map[string]RunPlan{"webshop": {Action: "switchover", From: "brussels", To: "antwerp"}}},
			StateSwitchingOver, &Phase{Run: id, Action: "switchover", From: "brussels", To: "antwerp"}},
		{"switchover known only by its ID", Snapshot{Views: fenced, Records: rec, Running: map[string]string{"webshop": id}},
			StateSwitchingOver, &Phase{Run: id, Action: "switchover", From: "brussels", To: "antwerp"}},
		{"failback", Snapshot{Views: allHealthy, Records: rec, Running: map[string]string{"webshop": "20261205T060000-webshop-failback-1a2b"}},
			StateFailingBack, &Phase{Run: "20261205T060000-webshop-failback-1a2b", Action: "failback", From: "brussels", To: "brussels"}},
		{"reprotect", Snapshot{Views: allHealthy, Records: rec, Running: map[string]string{"webshop": "20261205T060000-webshop-reprotect-1a2b"}},
			StateReprotecting, &Phase{Run: "20261205T060000-webshop-reprotect-1a2b", Action: "reprotect", From: "brussels", To: "brussels"}},
		{"split-brain shows through a run", Snapshot{Views: map[string]View{
			"brussels":  allHealthy["brussels"],
			"antwerp":   withDB(sees("antwerp", "brussels", "frankfurt"), primary),
			"frankfurt": allHealthy["frankfurt"],
		}, Records: rec, Running: map[string]string{"webshop": id}}, StateSplitBrain, &Phase{Run: id, Action: "switchover", From: "brussels", To: "antwerp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := Assemble(topology(), tt.snap, "frankfurt", time.Unix(0, 0)).Groups[0]
			if g.State != tt.state {
				t.Errorf("state %s, want %s (problems %q)", g.State, tt.state, g.Problems)
			}
			if diff := cmp.Diff(tt.phase, g.Phase); diff != "" {
				t.Errorf("phase (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDeadPrimaryLag: a standby's lag is shown only from a primary whose
// site still publishes; once the primary's view stops being republished
// the lag is unknown, and the last known one stays with its times.
func TestDeadPrimaryLag(t *testing.T) {
	views := map[string]View{}
	for k, v := range allHealthy {
		views[k] = v
	}
	tests := []struct {
		name    string
		age     time.Duration // of brussels's view
		lag     bool
		unknown string
	}{
		{"primary publishing", 0, true, ""},
		{"primary's view no longer republished", 10 * time.Second, false, "its primary at brussels is not observed serving now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := Snapshot{Views: views, Records: rec, Lags: trusted, ViewAges: map[string]time.Duration{"brussels": tt.age, "antwerp": 0, "frankfurt": 0}}
			s := Assemble(topology(), snap, "frankfurt", time.Unix(0, 0)).Groups[0].Resources[0].Sites[1]
			if got := s.LagSeconds != nil; got != tt.lag || s.LagUnknown != tt.unknown {
				t.Errorf("lag shown %v (unknown %q), want %v (%q)", got, s.LagUnknown, tt.lag, tt.unknown)
			}
			if s.LastKnownLag == nil {
				t.Errorf("the last known lag must stay: %+v", s)
			}
		})
	}
}

// TestRawErrorsKeptAsDetail: a driver's error is not the problem's words,
// but it is kept with it.
func TestRawErrorsKeptAsDetail(t *testing.T) {
	views := map[string]View{}
	for k, v := range allHealthy {
		views[k] = v
	}
	views["antwerp"] = withDB(allHealthy["antwerp"], ResourceView{Role: RoleDown, Error: `pq: could not connect to server: connection refused (/var/run/postgresql/.s.PGSQL.5432)`})
	g := Assemble(topology(), Snapshot{Views: views, Records: rec, Lags: trusted}, "frankfurt", time.Unix(0, 0)).Groups[0]
	want := []Problem{{Kind: KindStandbyNotReady, Site: "antwerp", Resource: "db",
		Message: "db at antwerp is down: it is no standby of brussels", Command: "siteflip reprotect webshop",
		Detail: `pq: could not connect to server: connection refused (/var/run/postgresql/.s.PGSQL.5432)`}}
	if diff := cmp.Diff(want, g.Issues); diff != "" {
		t.Errorf("issues (-want +got):\n%s", diff)
	}
	if len(g.Problems) != 1 || g.Problems[0] != want[0].Line() {
		t.Errorf("problems %q, want the issue's line", g.Problems)
	}
}

// A failed last run stays a problem, with the command that shows it,
// until another run ends; it does not change the group's state.
func TestLastRunFailed(t *testing.T) {
	ended := time.Date(2026, 12, 5, 6, 2, 0, 0, time.UTC)
	failed := LastRun{ID: "20261205T060000-webshop-reprotect-1a2b", Action: "reprotect", State: "failed", Ended: ended, Error: "rejoin:db@antwerp: pg_rewind: exit status 1"}
	tests := []struct {
		name    string
		last    map[string]LastRun
		running map[string]string
		want    []Problem
	}{
		{"none on record", nil, nil, nil},
		{"succeeded", map[string]LastRun{"webshop": {ID: "r0", Action: "switchover", State: "succeeded", Ended: ended}}, nil, nil},
		{"failed", map[string]LastRun{"webshop": failed}, nil, []Problem{{Kind: KindLastRunFailed,
			Message: "the last reprotect, run 20261205T060000-webshop-reprotect-1a2b, failed at 2026-12-05T06:02:00Z: rejoin:db@antwerp: pg_rewind: exit status 1; " +
				"its steps say what was left done and what not (`siteflip report 20261205T060000-webshop-reprotect-1a2b` for the whole story)",
			Command: "siteflip run 20261205T060000-webshop-reprotect-1a2b"}}},
		{"failed, another run in progress", map[string]LastRun{"webshop": failed}, map[string]string{"webshop": "20261205T061000-webshop-reprotect-3c4d"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := Assemble(topology(), Snapshot{Views: allHealthy, Records: rec, Lags: trusted, LastRuns: tt.last, Running: tt.running}, "frankfurt", time.Unix(0, 0)).Groups[0]
			var got []Problem
			for _, p := range g.Issues {
				if p.Kind == KindLastRunFailed {
					got = append(got, p)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if tt.running == nil && g.State != StateProtected {
				t.Errorf("state %s: a failed last run does not change it", g.State)
			}
		})
	}
}
