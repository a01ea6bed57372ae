package jsonview

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/geo"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/whatif"
)

var (
	t0      = time.Date(2026, 12, 5, 6, 0, 0, 0, time.FixedZone("CET", 3600))
	lagB    = int64(128)
	lagS    = 0.004
	ready   = true
	rto     = 2.5
	sampleS = status.Status{
		Installation: "lab", AnsweredBy: "antwerp", Time: t0, Revision: 42,
		Controller: "frankfurt", ControllerTerm: 7, ControllerSince: t0.Add(-time.Hour),
		Sites: []status.SiteStatus{{Name: "brussels", Role: "site", Up: true, Reporting: true, Version: "1.3.0", CertNotAfter: t0.Add(90 * 24 * time.Hour),
			SeenBy: []string{"antwerp"}, Sees: map[string]bool{"antwerp": true}}},
		Problems: []string{"p1; run: systemctl start siteflip"},
		Issues:   []status.Problem{{Kind: status.KindAgentDown, Site: "antwerp", Message: "p1", Command: "systemctl start siteflip"}},
		Groups: []status.GroupStatus{{
			Name: "webshop", PreferredSite: "brussels", ActiveSite: "brussels", Epoch: 3, State: status.StateSwitchingOver,
			Phase:  &status.Phase{Run: "r1", Action: "switchover", From: "brussels", To: "antwerp"},
			Policy: "automatic", MaxDataLoss: "5s", RTOTarget: "1m30s", Run: "r1",
			Problems: []string{"db at antwerp is a standby that is not streaming; run: siteflip reprotect webshop", "a line from elsewhere"},
			Issues: []status.Problem{{Kind: status.KindStandbyNotReady, Site: "antwerp", Resource: "db", Message: "db at antwerp is a standby that is not streaming",
				Command: "siteflip reprotect webshop", Detail: "raw"}},
			Decision: &status.Decision{Site: "brussels", Reason: "manual", Command: "siteflip failover webshop", Since: t0},
			Awaiting: &status.Awaiting{Run: "r1", Step: "approve", Since: t0, Until: t0.Add(time.Hour)},
			Drills: &status.DrillStatus{Every: "168h0m0s", MaxAge: "336h0m0s", Window: "Sat 02:00-05:00", Timezone: "Europe/Brussels",
				Last:        &status.DrillResult{Run: "d1", Site: "antwerp", Started: t0, Ended: t0.Add(4 * time.Second), Result: "succeeded", RTOSeconds: &rto},
				LastSuccess: t0, Next: t0.Add(168 * time.Hour)},
			Resources: []status.ResourceStatus{
				{Name: "db", Type: "postgres", Class: "data",
					Synchronous: &status.SyncRecord{Epoch: 3, State: status.SyncOn, Standby: "antwerp", Since: t0},
					Sites: []status.ResourceSiteStatus{
						{Site: "brussels", Observed: true, Up: true, Role: status.RolePrimary, Timeline: 2},
						{Site: "antwerp", Observed: true, Up: true, Role: status.RoleStandby, Timeline: 2, Streaming: true, LagBytes: &lagB, LagSeconds: &lagS,
							LastKnownLag:  &status.Lag{Seconds: 0.004, Bytes: 128, Epoch: 3, MeasuredAt: t0, SeenAt: t0, Streaming: true},
							FailoverReady: &ready, FailoverBound: "1.104s"},
					}},
				{Name: "www", Type: "dns", Class: "traffic", Sites: []status.ResourceSiteStatus{
					{Site: "brussels", Observed: true, Up: true, Role: status.RolePrimary, Streaming: true, Target: "www.example.com → 10.0.1.10"},
					{Site: "antwerp", Observed: true, Up: true, Role: status.RoleStandby, Streaming: true},
				}},
			},
			Dependencies: []status.DependencyStatus{
				{Name: "ldap", Type: "tcp", Site: "brussels", Target: "127.0.1.1:3389", Known: true, Reachable: true, CheckedAt: t0, Since: t0.Add(-time.Hour)},
				{Name: "ldap", Type: "tcp", Site: "antwerp", Target: "127.0.2.1:3389", Known: true, Error: "connection refused", CheckedAt: t0, Since: t0.Add(-time.Minute)},
			},
			Readiness: &status.Readiness{Verdict: status.AtRisk, Reasons: []status.ReadinessReason{
				{Kind: "dependency", Severity: status.AtRisk, Site: "antwerp", Message: "ldap (tcp 127.0.2.1:3389) is unreachable from antwerp",
					Fix: "start ldap where antwerp reaches it (tcp 127.0.2.1:3389), or open the way from antwerp to it"},
				{Kind: "geography", Severity: status.SeverityNote, Message: "brussels and antwerp are 40 km apart"},
			}},
		}},
	}
	sampleRun = plan.Run{ID: "r1", Group: "webshop", By: "alice", Role: "operator", State: plan.RunSucceeded,
		Request: plan.Request{Action: plan.Switchover, To: "antwerp", AcceptDataLoss: true, Keep: 90 * time.Second},
		Plan: plan.Plan{Group: "webshop", Action: plan.Switchover, From: "brussels", To: "antwerp", Epoch: 3,
			Steps:    []plan.Step{{ID: "fence:db@brussels", Kind: plan.Fence, Resource: "db", Site: "brussels", Timeout: 30 * time.Second, Retries: 2}},
			Rollback: []plan.Step{{ID: "unfence:db@brussels", Kind: plan.Unfence, Resource: "db", Site: "brussels", Timeout: 1500 * time.Millisecond}}},
		Started: t0, Ended: t0.Add(3 * time.Second), WritableAt: t0.Add(1640 * time.Millisecond),
		Steps:    []plan.StepState{{State: plan.StepDone, Attempts: 1, Started: t0, Ended: t0.Add(time.Second), Output: map[string]string{"lsn": "0/3000000"}}},
		Rollback: []plan.StepState{{State: plan.StepPending}},
		Incident: &plan.Incident{Site: "brussels", LastHeard: t0.Add(-time.Second)},
	}
	sampleWhatIf = whatif.Result{
		Event: whatif.Event{Destroyed: []string{"brussels"}, Cut: [][2]string{{"antwerp", "frankfurt"}}, Level: "major", Description: "floods",
			Area: &geo.Circle{Center: geo.Point{Lat: 50.85, Lon: 4.35}, Radius: 60000}},
		AnsweredBy: "antwerp", ReadAt: t0,
		ControlPlane: whatif.ControlPlane{Judged: true, Quorum: true, Voters: []string{"brussels", "antwerp", "frankfurt"},
			SurvivingVoters: []string{"antwerp", "frankfurt"}, Controller: []string{"antwerp"}, Message: "quorum kept"},
		Groups: []whatif.Group{
			{Name: "webshop", ActiveSite: "brussels", Outcome: whatif.AutomaticFailover, Survives: true, Automatic: true, To: "antwerp", Reason: "r",
				RTO:          whatif.RTO{Known: true, Expected: 2100 * time.Millisecond, Samples: 5, Basis: "median", Target: 30 * time.Second},
				Loss:         whatif.DataLoss{Known: true, Expected: 10 * time.Millisecond, BoundKnown: true, Bound: 560 * time.Millisecond, Basis: "lag", Within: true},
				Approvals:    []string{"change-board"},
				Dependencies: []whatif.Dependency{{Name: "ldap", Site: "antwerp", Why: "its host brussels is destroyed"}}},
			{Name: "erp", ActiveSite: "brussels", Outcome: whatif.Lost, Fix: "move a site further away", RTO: whatif.RTO{Target: time.Minute}},
		},
	}
	sampleAudit = []audit.Record{{At: t0, Site: "antwerp", Who: "alice", Role: "operator", Via: "token", From: "10.0.0.1:5555", Request: "POST /v1/runs",
		Action: "switchover webshop --to antwerp", Group: "webshop", Run: "r1", Result: "done", Code: 200}}
)

// encode writes doc and reads it back as generic JSON.
func encode(t *testing.T, doc any) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, doc); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v:\n%s", err, buf.String())
	}
	return m
}

var snake = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// TestConventions: every document has its api_version and kind, every key
// is snake_case, every _seconds a number, every _at an RFC 3339 time in
// UTC, and no duration is written the Go way.
func TestConventions(t *testing.T) {
	docs := []struct {
		kind string
		doc  any
	}{
		{KindStatus, StatusOf(sampleS)},
		{KindRuns, RunsOf([]plan.Run{sampleRun})},
		{KindRun, RunOf(sampleRun)},
		{KindAudit, AuditOf(sampleAudit)},
		{KindReadiness, ReadinessReportOf(sampleS, []string{"webshop"})},
		{KindUIConfig, UIConfigOf("lab", "brussels", UIPrincipal{Name: "alice", Role: "operator", Via: "certificate"},
			[]UILocation{{Name: "brussels", Role: "site", URL: "https://127.0.1.1:7400"}})},
		{KindWhatIf, WhatIfOf(sampleWhatIf)},
		{KindLagHistory, LagHistoryOf("antwerp", 5*time.Second, time.Hour, false, []LagSeries{{Group: "webshop", Resource: "db", Site: "antwerp",
			MaxDataLossSeconds: ptr(5.0), Points: []LagPoint{{At: t0, LagSeconds: ptr(0.02), LagBytes: ptr(int64(0)), Streaming: true}, {At: t0.Add(5 * time.Second)}}}})},
	}
	// Keys of maps that hold names, not fields.
	free := map[string]bool{"sees": true, "output": true, "labels": true}
	for _, d := range docs {
		t.Run(d.kind, func(t *testing.T) {
			m := encode(t, d.doc)
			if m["api_version"] != APIVersion || m["kind"] != d.kind {
				t.Errorf("header %v/%v, want %s/%s", m["api_version"], m["kind"], APIVersion, d.kind)
			}
			var walk func(path string, v any)
			walk = func(path string, v any) {
				switch v := v.(type) {
				case map[string]any:
					for k, x := range v {
						p := path + "." + k
						if !snake.MatchString(k) {
							t.Errorf("%s: key not snake_case", p)
						}
						switch {
						case strings.HasSuffix(k, "_seconds"):
							if _, ok := x.(float64); !ok && x != nil {
								t.Errorf("%s = %#v: want a number", p, x)
							}
						case strings.HasSuffix(k, "_at") || k == "at":
							s, _ := x.(string)
							if tm, err := time.Parse(time.RFC3339Nano, s); err != nil || !strings.HasSuffix(s, "Z") || tm.IsZero() {
								t.Errorf("%s = %#v: want an RFC 3339 time in UTC", p, x)
							}
						}
						if free[k] {
							continue
						}
						walk(p, x)
					}
				case []any:
					for _, x := range v {
						walk(path+"[]", x)
					}
				case string:
					if _, err := time.ParseDuration(v); err == nil && regexp.MustCompile(`[0-9](ns|us|µs|ms|s|m|h)$`).MatchString(v) {
						t.Errorf("%s = %q: a duration written the Go way", path, v)
					}
				}
			}
			walk("", m)
		})
	}
}

func TestStatusOf(t *testing.T) {
	st := StatusOf(sampleS)
	g := st.Groups[0]
	f := func(v float64) *float64 { return &v }
	if diff := cmp.Diff(f(5), g.MaxDataLossSeconds); diff != "" {
		t.Errorf("max_data_loss_seconds (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(f(90), g.RTOTargetSeconds); diff != "" {
		t.Errorf("rto_target_seconds (-want +got):\n%s", diff)
	}
	if !st.ReadAt.Equal(t0) || st.ReadAt.Location() != time.UTC {
		t.Errorf("read_at %v, want %v in UTC", st.ReadAt, t0)
	}
	wantProblems := []Problem{
		{Kind: status.KindStandbyNotReady, Message: "db at antwerp is a standby that is not streaming", Command: "siteflip reprotect webshop", Site: "antwerp", Resource: "db", Detail: "raw"},
		{Kind: KindOther, Message: "a line from elsewhere"},
	}
	if diff := cmp.Diff(wantProblems, g.Problems); diff != "" {
		t.Errorf("group problems (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Problem{{Kind: status.KindAgentDown, Message: "p1", Command: "systemctl start siteflip", Site: "antwerp"}}, st.Problems); diff != "" {
		t.Errorf("installation problems (-want +got):\n%s", diff)
	}
	if g.Drills == nil || *g.Drills.EverySeconds != 168*3600 || *g.Drills.MaxAgeSeconds != 336*3600 || !g.Drills.Last.EndedAt.Equal(t0.Add(4*time.Second)) {
		t.Errorf("drills %+v", g.Drills)
	}
	db, dns := g.Resources[0].Sites, g.Resources[1].Sites
	if s := db[1]; s.Streaming == nil || !*s.Streaming || *s.Timeline != 2 || *s.LagBytes != 128 || *s.FailoverBoundSeconds != 1.104 || s.LastKnownLag.LagBytes != 128 || s.Ready != nil {
		t.Errorf("standby of a database: %+v", s)
	}
	if s := db[0]; s.Streaming == nil || *s.Streaming || s.LagBytes != nil {
		t.Errorf("primary of a database: %+v", s)
	}
	// A name is shown in its own terms: no timeline, no streaming.
	if s := dns[1]; s.Streaming != nil || s.Timeline != nil || s.Ready == nil || !*s.Ready {
		t.Errorf("parked name: %+v", s)
	}
	if s := dns[0]; s.Streaming != nil || s.Ready != nil || s.Role != status.RolePrimary || s.Target != "www.example.com → 10.0.1.10" {
		t.Errorf("active name: %+v", s)
	}
	if g.Phase == nil || g.Phase.To != "antwerp" || g.State != status.StateSwitchingOver {
		t.Errorf("state %s phase %+v", g.State, g.Phase)
	}
	if st.Sites[0].Version != "1.3.0" || st.Sites[0].LostBy == nil || st.Sites[0].UnseenBy == nil {
		t.Errorf("site %+v: version, and lists never null", st.Sites[0])
	}
}

func TestRunOf(t *testing.T) {
	r := RunOf(sampleRun)
	f := func(v float64) *float64 { return &v }
	want := Run{
		ID: "r1", Group: "webshop", Action: "switchover", From: "brussels", To: "antwerp", Epoch: 3,
		Request: RunRequest{Action: "switchover", To: "antwerp", AcceptDataLoss: true, KeepSeconds: 90},
		By:      "alice", Role: "operator", State: plan.RunSucceeded,
		StartedAt: t0.UTC(), EndedAt: t0.Add(3 * time.Second).UTC(), WritableAt: t0.Add(1640 * time.Millisecond).UTC(),
		RTOSeconds: f(1.64), MeasuredRTOSeconds: f(2.64), Incident: &Incident{Site: "brussels", LastHeardAt: t0.Add(-time.Second).UTC()},
		Steps: []Step{{ID: "fence:db@brussels", Kind: "fence", Resource: "db", Site: "brussels", TimeoutSeconds: 30, Retries: 2,
			State: plan.StepDone, Attempts: 1, StartedAt: t0.UTC(), EndedAt: t0.Add(time.Second).UTC(), Output: map[string]string{"lsn": "0/3000000"}}},
		Rollback: []Step{{ID: "unfence:db@brussels", Kind: "unfence", Resource: "db", Site: "brussels", TimeoutSeconds: 1.5, State: plan.StepPending}},
	}
	if diff := cmp.Diff(want, r.Run); diff != "" {
		t.Errorf("run (-want +got):\n%s", diff)
	}
	if r.APIVersion != APIVersion || r.Kind != KindRun {
		t.Errorf("header %+v", r.Header)
	}
	if rs := RunsOf(nil); rs.Runs == nil {
		t.Error("no runs must be an empty list, not null")
	}
}

func TestAuditOf(t *testing.T) {
	a := AuditOf(sampleAudit)
	want := []AuditRecord{{At: t0.UTC(), Site: "antwerp", Who: "alice", Role: "operator", Via: "token", From: "10.0.0.1:5555", Request: "POST /v1/runs",
		Action: "switchover webshop --to antwerp", Group: "webshop", Run: "r1", Result: "done", Code: 200}}
	if diff := cmp.Diff(want, a.Records); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if AuditOf(nil).Records == nil {
		t.Error("no records must be an empty list, not null")
	}
}

// A paused group carries who paused it, when and why; one not paused
// says paused false and nothing else.
func TestStatusOfPaused(t *testing.T) {
	at := time.Date(2026, 12, 5, 4, 0, 0, 0, time.FixedZone("CET", 3600))
	g := groupOf(status.GroupStatus{Name: "webshop", Paused: true, PausedBy: "alice", PausedAt: at, PauseReason: "kernel upgrade",
		ScheduledSwitchover: &status.ScheduledSwitchover{To: "antwerp", At: at, By: "bob", Since: at}})
	if !g.Paused || g.PausedBy != "alice" || g.PausedAt == nil || !g.PausedAt.Equal(at) || g.PausedAt.Location() != time.UTC || g.PauseReason != "kernel upgrade" {
		t.Errorf("paused group: %+v", g)
	}
	if sc := g.ScheduledSwitchover; sc == nil || sc.To != "antwerp" || sc.By != "bob" || sc.RefusedAt != nil {
		t.Errorf("scheduled switchover: %+v", sc)
	}
	b, err := json.Marshal(groupOf(status.GroupStatus{Name: "crm"}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"paused":false`) || strings.Contains(string(b), "paused_at") || strings.Contains(string(b), "scheduled_switchover") {
		t.Errorf("a group not paused: %s", b)
	}
}

func ptr[T any](v T) *T { return &v }

// The dashboard's documents: lists are [] when empty, never null.
func TestDashboardDocumentsEmpty(t *testing.T) {
	for kind, doc := range map[string]any{
		KindUIConfig:   UIConfigOf("lab", "brussels", UIPrincipal{Role: "anonymous", Via: "none"}, nil),
		KindLagHistory: LagHistoryOf("antwerp", 5*time.Second, time.Hour, true, nil),
	} {
		var buf bytes.Buffer
		if err := WriteLine(&buf, doc); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), "null") {
			t.Errorf("%s: %s", kind, buf.String())
		}
	}
}

// TestReadinessReport: the groups asked for, in that order, counted by
// verdict; a group without a verdict (an agent of an earlier version) is
// not ready, saying why.
func TestReadinessReport(t *testing.T) {
	st := status.Status{AnsweredBy: "antwerp", Time: t0, Groups: []status.GroupStatus{
		{Name: "webshop", Readiness: &status.Readiness{Verdict: status.AtRisk, Reasons: []status.ReadinessReason{{Kind: "pause", Severity: status.AtRisk, Message: "paused", Fix: "siteflip resume webshop"}}}},
		{Name: "billing", Readiness: &status.Readiness{Verdict: status.Ready, Reasons: []status.ReadinessReason{}}},
		{Name: "intranet"},
	}}
	got := ReadinessReportOf(st, []string{"intranet", "webshop", "billing"})
	want := ReadinessReport{Header: header(KindReadiness), AnsweredBy: "antwerp", ReadAt: t0, Ready: 1, AtRisk: 1, NotReady: 1, Groups: []GroupReadiness{
		{Name: "intranet", Verdict: status.NotReady, Reasons: []Reason{{Kind: "protection", Severity: status.NotReady,
			Message: "the answering agent, antwerp, does not judge readiness (an earlier version)", Fix: "upgrade the agents (docs/deploy.md)"}}},
		{Name: "webshop", Verdict: status.AtRisk, Reasons: []Reason{{Kind: "pause", Severity: status.AtRisk, Message: "paused", Fix: "siteflip resume webshop"}}},
		{Name: "billing", Verdict: status.Ready, Reasons: []Reason{}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadinessReportOf (-want +got):\n%s", diff)
	}
}

// A what-if's numbers are seconds, unknown ones null; lists are never
// null; the summary counts the groups.
func TestWhatIfOf(t *testing.T) {
	w := WhatIfOf(sampleWhatIf)
	g := w.Groups[0]
	if *g.ExpectedRTOSeconds != 2.1 || g.RTOSamples != 5 || g.RTOTargetSeconds != 30 || *g.ExpectedDataLossSeconds != 0.01 || *g.DataLossBoundSeconds != 0.56 {
		t.Errorf("numbers: %+v", g)
	}
	if diff := cmp.Diff(WhatIfEvent{Text: "level major (floods); everything within 60 km of 50.85,4.35; brussels destroyed; link antwerp-frankfurt cut",
		Level: "major", Description: "floods", Destroyed: []string{"brussels"}, LinksCut: []string{"antwerp-frankfurt"},
		Area: &WhatIfArea{Center: "50.85,4.35", RadiusKm: 60}}, w.Event); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(WhatIfSummary{Survive: 1, Lost: 1, Automatic: 1}, w.Summary); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	b, err := json.Marshal(w.Groups[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"expected_rto_seconds":null`, `"expected_data_loss_seconds":null`, `"data_loss_bound_seconds":null`,
		`"approvals":[]`, `"dependencies_unreachable":[]`, `"fix":"move a site further away"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("lost group lacks %s: %s", want, b)
		}
	}
	b, _ = json.Marshal(WhatIfOf(whatif.Result{ReadAt: t0}))
	if strings.Contains(string(b), "null") {
		t.Errorf("an empty what-if holds null lists: %s", b)
	}
}
