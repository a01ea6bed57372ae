package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/resource"
)

var update = flag.Bool("update", false, "rewrite testdata/*.md from the reports")

// t0 is when every test run starts; not in UTC, so that the reports'
// conversion to UTC shows.
var t0 = time.Date(2026, 3, 14, 11, 0, 0, 0, time.FixedZone("CET", 3600))

// at is t0 plus seconds.
func at(secs float64) time.Time { return t0.Add(time.Duration(secs * float64(time.Second))) }

func dur(d time.Duration) *config.Duration { c := config.Duration(d); return &c }

// group is webshop with an RTO target and a max data loss.
func group(rto, maxLoss time.Duration) *config.Group {
	return &config.Group{Name: "webshop", PreferredSite: "brussels", Sites: []string{"brussels", "antwerp"},
		RTOTarget: dur(rto), MaxDataLoss: dur(maxLoss)}
}

// ran is one step of a hand-built run: its plan step and what became of it.
type ran struct {
	kind     plan.Kind
	resource string
	site     string
	state    string
	from, to float64 // seconds after t0; to < 0: not ended
	attempts int
	out      map[string]string
	err      string
}

// newRun builds a run of action from → to out of its steps and rollback.
func newRun(action plan.Action, from, to string, steps, rollback []ran) plan.Run {
	r := plan.Run{ID: "r-" + string(action), Group: "webshop", By: "alice", Role: "operator", State: plan.RunSucceeded,
		Started: t0, Plan: plan.Plan{Group: "webshop", Action: action, From: from, To: to, Epoch: 4}}
	add := func(rs []ran) ([]plan.Step, []plan.StepState) {
		var ps []plan.Step
		var ss []plan.StepState
		for _, s := range rs {
			id := string(s.kind) + "@" + s.site
			if s.resource != "" {
				id = string(s.kind) + ":" + s.resource + "@" + s.site
			}
			ps = append(ps, plan.Step{ID: id, Kind: s.kind, Resource: s.resource, Site: s.site})
			st := plan.StepState{State: s.state, Attempts: s.attempts, Output: s.out, Error: s.err}
			if s.state != plan.StepPending {
				st.Started = at(s.from)
				if s.to >= 0 {
					st.Ended = at(s.to)
				}
				if st.Attempts == 0 {
					st.Attempts = 1
				}
			}
			ss = append(ss, st)
		}
		return ps, ss
	}
	r.Plan.Steps, r.Steps = add(steps)
	r.Plan.Rollback, r.Rollback = add(rollback)
	return r
}

func switchover() plan.Run {
	r := newRun(plan.Switchover, "brussels", "antwerp", []ran{
		{plan.Fence, "db", "brussels", plan.StepDone, 0, 0.4, 0, nil, ""},
		{plan.CatchUp, "db", "antwerp", plan.StepDone, 0.4, 0.9, 0, map[string]string{"lsn": "0/3000148"}, ""},
		{kind: plan.Activate, site: "antwerp", state: plan.StepDone, from: 0.9, to: 1.0},
		{plan.Promote, "db", "antwerp", plan.StepDone, 1.0, 2.5, 0, nil, ""},
		{plan.Rejoin, "db", "brussels", plan.StepDone, 2.5, 6.0, 0, nil, ""},
		{plan.Check, "orders", "antwerp", plan.StepDone, 6.0, 6.25, 0, map[string]string{resource.OutputSeen: "42 orders"}, ""},
	}, []ran{
		{plan.Unfence, "db", "brussels", plan.StepPending, 0, 0, 0, nil, ""},
	})
	r.Reason, r.Ticket = "rack move", "CHG-1234"
	r.WritableAt, r.Ended, r.Verification = at(2.5), at(6.3), plan.Verified
	return r
}

// automatic is a failover the controller started 1.7 s after brussels was
// last heard from.
func automatic() plan.Run {
	r := newRun(plan.Failover, "brussels", "antwerp", []ran{
		{kind: plan.Activate, site: "antwerp", state: plan.StepDone, from: 0, to: 0.1},
		{plan.Promote, "db", "antwerp", plan.StepDone, 0.1, 1.2, 0, nil, ""},
		{plan.Check, "orders", "antwerp", plan.StepDone, 1.2, 1.5, 2, map[string]string{resource.OutputSeen: "42 orders"}, ""},
	}, nil)
	r.By, r.Role = "controller antwerp (automatic)", ""
	r.Incident = &plan.Incident{Site: "brussels", LastHeard: at(-1.7), DeclaredLost: at(-0.2)}
	r.WritableAt, r.Ended, r.Verification = at(1.2), at(1.5), plan.Verified
	return r
}

func drill() plan.Run {
	r := newRun(plan.Drill, "brussels", "antwerp", []ran{
		{plan.Clone, "db", "antwerp", plan.StepDone, 0, 12, 0, map[string]string{resource.OutputDataAge: "0.8"}, ""},
		{plan.Clone, "ledger", "antwerp", plan.StepDone, 12, 20, 0, map[string]string{resource.OutputDataAge: "2.25"}, ""},
		{plan.Start, "db", "antwerp", plan.StepDone, 20, 21.5, 0, map[string]string{resource.OutputAddress: "10.99.0.2:5432"}, ""},
		{plan.Start, "ledger", "antwerp", plan.StepDone, 21.5, 22, 0, map[string]string{resource.OutputAddress: "10.99.0.2:5433"}, ""},
		{plan.Check, "orders", "antwerp", plan.StepDone, 22, 24.125, 3, map[string]string{resource.OutputSeen: "42 orders"}, ""},
		{plan.Teardown, "ledger", "antwerp", plan.StepDone, 24.125, 25, 0, nil, ""},
		{plan.Teardown, "db", "antwerp", plan.StepDone, 25, 26, 0, nil, ""},
	}, []ran{
		{plan.Teardown, "ledger", "antwerp", plan.StepPending, 0, 0, 0, nil, ""},
		{plan.Teardown, "db", "antwerp", plan.StepPending, 0, 0, 0, nil, ""},
	})
	r.Ended, r.Verification = at(26), plan.Verified
	return r
}

// failedDrill's check never passed; its rollback tore the copy down.
func failedDrill() plan.Run {
	r := newRun(plan.Drill, "brussels", "antwerp", []ran{
		{plan.Clone, "db", "antwerp", plan.StepDone, 0, 9, 0, map[string]string{resource.OutputDataAge: "7.5"}, ""},
		{plan.Start, "db", "antwerp", plan.StepDone, 9, 10, 0, nil, ""},
		{plan.Check, "orders", "antwerp", plan.StepFailed, 10, 16, 6, map[string]string{resource.OutputSeen: "0 orders"}, "want at least 1 order"},
		{plan.Teardown, "db", "antwerp", plan.StepPending, 0, 0, 0, nil, ""},
	}, []ran{
		{plan.Teardown, "db", "antwerp", plan.StepDone, 16, 17.5, 0, nil, ""},
	})
	r.State, r.Ended = plan.RunFailed, at(17.5)
	r.Error = "check:orders@antwerp: want at least 1 order"
	return r
}

func TestBuild(t *testing.T) {
	unknown := Duration{}
	tests := []struct {
		name  string
		run   plan.Run
		group *config.Group
		// want
		rto        Duration
		rtoVerdict Verdict
		rpo        Duration
		rpoVerdict Verdict
		rpoNote    string
		steps      []string // IDs, in order
		checks     []string // results, in order
	}{{
		name: "switchover", run: switchover(), group: group(30*time.Second, 5*time.Second),
		rto: known(6250 * time.Millisecond), rtoVerdict: Pass,
		rpo: known(0), rpoVerdict: Pass, rpoNote: "none known",
		steps:  []string{"fence:db@brussels", "catch-up:db@antwerp", "activate@antwerp", "promote:db@antwerp", "rejoin:db@brussels", "check:orders@antwerp"},
		checks: []string{CheckPassed},
	}, {
		name: "automatic failover: the RTO starts when brussels was last heard", run: automatic(), group: group(30*time.Second, 5*time.Second),
		rto: known(3200 * time.Millisecond), rtoVerdict: Pass,
		rpo: unknown, rpoVerdict: Unknown, rpoNote: "known after reprotect",
		steps:  []string{"activate@antwerp", "promote:db@antwerp", "check:orders@antwerp"},
		checks: []string{CheckPassed},
	}, {
		name: "automatic failover over a tight target", run: automatic(), group: group(3*time.Second, 5*time.Second),
		rto: known(3200 * time.Millisecond), rtoVerdict: Fail,
		rpo: unknown, rpoVerdict: Unknown, rpoNote: "known after reprotect",
		steps:  []string{"activate@antwerp", "promote:db@antwerp", "check:orders@antwerp"},
		checks: []string{CheckPassed},
	}, {
		name: "failover whose rejoin found what was lost, nothing allowed", group: group(30*time.Second, 0),
		run: func() plan.Run {
			r := automatic()
			r.DataLost = "db at brussels: 8192 bytes of WAL existed only there"
			return r
		}(),
		rto: known(3200 * time.Millisecond), rtoVerdict: Pass,
		rpo: unknown, rpoVerdict: Fail, rpoNote: "db at brussels: 8192 bytes of WAL existed only there",
		steps:  []string{"activate@antwerp", "promote:db@antwerp", "check:orders@antwerp"},
		checks: []string{CheckPassed},
	}, {
		name: "failover told by the reprotect that rejoined its old site", group: group(30*time.Second, 5*time.Second),
		run: func() plan.Run {
			r := automatic()
			r.DataLost, r.DataLostBy = "db at brussels: 8192 bytes of WAL existed only there", "r-reprotect"
			return r
		}(),
		rto: known(3200 * time.Millisecond), rtoVerdict: Pass,
		rpo: unknown, rpoVerdict: Unknown, rpoNote: "db at brussels: 8192 bytes of WAL existed only there (found by run r-reprotect)",
		steps:  []string{"activate@antwerp", "promote:db@antwerp", "check:orders@antwerp"},
		checks: []string{CheckPassed},
	}, {
		name: "failover whose old site rejoined holding nothing of its own", group: group(30*time.Second, 0),
		run: func() plan.Run {
			r := automatic()
			r.DataLostBy = "r-reprotect"
			return r
		}(),
		rto: known(3200 * time.Millisecond), rtoVerdict: Pass,
		rpo: known(0), rpoVerdict: Pass, rpoNote: "none: nothing existed only at brussels (found by run r-reprotect)",
		steps:  []string{"activate@antwerp", "promote:db@antwerp", "check:orders@antwerp"},
		checks: []string{CheckPassed},
	}, {
		name: "failover rolled back before activation: nothing moved, nothing lost", group: group(30*time.Second, 5*time.Second),
		run: func() plan.Run {
			r := automatic()
			r.Steps[0].State, r.Steps[1].State, r.Steps[2].State = plan.StepFailed, plan.StepPending, plan.StepPending
			r.State, r.WritableAt, r.Verification = plan.RunRolledBack, time.Time{}, ""
			return r
		}(),
		rto: unknown, rtoVerdict: Fail,
		rpo: known(0), rpoVerdict: Pass, rpoNote: "none known",
		steps:  []string{"activate@antwerp", "promote:db@antwerp", "check:orders@antwerp"},
		checks: []string{CheckNotRun},
	}, {
		name: "drill: RTO until the copies are started and checked, RPO the oldest data", run: drill(), group: group(30*time.Second, 5*time.Second),
		rto: known(24125 * time.Millisecond), rtoVerdict: Pass,
		rpo: known(2250 * time.Millisecond), rpoVerdict: Pass, rpoNote: "data age of clone:ledger@antwerp",
		steps: []string{"clone:db@antwerp", "clone:ledger@antwerp", "start:db@antwerp", "start:ledger@antwerp",
			"check:orders@antwerp", "teardown:ledger@antwerp", "teardown:db@antwerp"},
		checks: []string{CheckPassed},
	}, {
		name: "failed drill: never recovered, too old, torn down by its rollback", run: failedDrill(), group: group(30*time.Second, 5*time.Second),
		rto: unknown, rtoVerdict: Fail,
		rpo: known(7500 * time.Millisecond), rpoVerdict: Fail, rpoNote: "data age of clone:db@antwerp",
		steps:  []string{"clone:db@antwerp", "start:db@antwerp", "check:orders@antwerp", "teardown:db@antwerp", "teardown:db@antwerp"},
		checks: []string{CheckFailed},
	}, {
		name: "drill whose clone gave no data age", group: group(30*time.Second, 5*time.Second),
		run: func() plan.Run {
			r := drill()
			r.Steps[1].Output = map[string]string{resource.OutputDataAge: "soon"}
			return r
		}(),
		rto: known(24125 * time.Millisecond), rtoVerdict: Pass,
		rpo: unknown, rpoVerdict: Unknown, rpoNote: "unknown: clone:ledger@antwerp gave no data_age",
		steps: []string{"clone:db@antwerp", "clone:ledger@antwerp", "start:db@antwerp", "start:ledger@antwerp",
			"check:orders@antwerp", "teardown:ledger@antwerp", "teardown:db@antwerp"},
		checks: []string{CheckPassed},
	}, {
		name: "a group no longer configured: measured, not judged", run: switchover(), group: nil,
		rto: known(6250 * time.Millisecond), rtoVerdict: Unknown,
		rpo: known(0), rpoVerdict: Unknown, rpoNote: "none known",
		steps:  []string{"fence:db@brussels", "catch-up:db@antwerp", "activate@antwerp", "promote:db@antwerp", "rejoin:db@brussels", "check:orders@antwerp"},
		checks: []string{CheckPassed},
	}, {
		name: "run still going", group: group(30*time.Second, 5*time.Second),
		run: func() plan.Run {
			r := automatic()
			r.State, r.Ended, r.Verification = plan.RunRunning, time.Time{}, ""
			// Its second attempt: the end is the first one's.
			r.Steps[2] = plan.StepState{State: plan.StepRunning, Attempts: 2, Started: at(1.4), Ended: at(1.3)}
			return r
		}(),
		rto: unknown, rtoVerdict: Unknown,
		rpo: unknown, rpoVerdict: Unknown, rpoNote: "known after reprotect",
		steps:  []string{"activate@antwerp", "promote:db@antwerp", "check:orders@antwerp"},
		checks: []string{CheckRunning},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Build(tt.run, tt.group)
			got := struct {
				RTO, RPO               Duration
				RTOVerdict, RPOVerdict Verdict
				RPONote                string
				Steps, Checks          []string
			}{r.RTO, r.RPO, r.RTOVerdict, r.RPOVerdict, r.RPONote, nil, nil}
			for _, s := range r.Steps {
				got.Steps = append(got.Steps, s.ID)
			}
			for _, c := range r.Checks {
				got.Checks = append(got.Checks, c.Result)
			}
			for _, s := range r.Steps {
				if !s.Ended.IsZero() && s.Ended.Before(s.Started.Time) || s.Took.D < 0 {
					t.Errorf("step %s ended %s before it started %s", s.ID, s.Ended, s.Started)
				}
			}
			want := got
			want.RTO, want.RPO, want.RTOVerdict, want.RPOVerdict, want.RPONote = tt.rto, tt.rpo, tt.rtoVerdict, tt.rpoVerdict, tt.rpoNote
			want.Steps, want.Checks = tt.steps, tt.checks
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Build (-want +got):\n%s", diff)
			}
		})
	}
}

// The report reads step outputs by the keys the resource model defines.
func TestOutputKeys(t *testing.T) {
	if outputSeen != resource.OutputSeen || outputDataAge != resource.OutputDataAge {
		t.Errorf("output keys %q, %q; the resource model says %q, %q", outputSeen, outputDataAge, resource.OutputSeen, resource.OutputDataAge)
	}
}

// The failed drill's report names the check that failed, what it saw, and
// the rollback's teardown after the forward steps.
func TestFailedDrill(t *testing.T) {
	r := Build(failedDrill(), group(30*time.Second, 5*time.Second))
	if got, want := r.Checks[0], (Check{ID: "check:orders@antwerp", Resource: "orders", Site: "antwerp", Result: CheckFailed,
		Attempts: 6, Seen: "0 orders", Error: "want at least 1 order"}); got != want {
		t.Errorf("check = %+v, want %+v", got, want)
	}
	last := r.Steps[len(r.Steps)-1]
	if !last.Rollback || last.State != plan.StepDone || last.Took != known(1500*time.Millisecond) {
		t.Errorf("last step = %+v, want the rollback's teardown, done in 1.5s", last)
	}
	if r.Steps[3].Rollback || r.Steps[3].State != plan.StepPending {
		t.Errorf("forward teardown = %+v, want pending", r.Steps[3])
	}
	if got := r.VerificationText(); got != "checks failed: orders" {
		t.Errorf("verification = %q", got)
	}
	if r.VerificationVerdict() != Fail {
		t.Errorf("verification verdict = %s, want fail", r.VerificationVerdict())
	}
}

// The JSON has the documented names, times in UTC with milliseconds,
// seconds with three decimals and null for what is not known.
func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := JSON(&buf, Build(automatic(), group(30*time.Second, 5*time.Second))); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		`"version": 1,`,
		`"run_id": "r-failover",`,
		`"started": "2026-03-14T10:00:00.000Z",`,
		`"incident_start": "2026-03-14T09:59:58.300Z",`,
		`"last_heard": "2026-03-14T09:59:58.300Z",`,
		`"rto_seconds": 3.200,`,
		`"rto_target_seconds": 30.000,`,
		`"rto_verdict": "pass",`,
		`"rpo_seconds": null,`,
		`"rpo": "known after reprotect",`,
		`"data_lost_by": "",`,
		`"duration_seconds": 1.100,`,
		`"seen": "42 orders",`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("JSON lacks %s:\n%s", want, out)
		}
	}
	// Every field documented in docs/report.md, and only those.
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	documented, err := os.ReadFile("../../docs/report.md")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range doc {
		if !strings.Contains(string(documented), "`"+k+"`") {
			t.Errorf("field %s is not in docs/report.md", k)
		}
		for _, sub := range []string{"steps", "checks", "incident"} {
			if k != sub {
				continue
			}
			objs, _ := v.([]any)
			if o, ok := v.(map[string]any); ok {
				objs = []any{o}
			}
			for _, o := range objs {
				for f := range o.(map[string]any) {
					if !strings.Contains(string(documented), "`"+sub+"[]."+f+"`") && !strings.Contains(string(documented), "`"+sub+"."+f+"`") {
						t.Errorf("field %s.%s is not in docs/report.md", sub, f)
					}
				}
			}
		}
	}
}

func TestMarkdown(t *testing.T) {
	for _, tt := range []struct {
		name string
		run  plan.Run
		want []string
	}{
		{"switchover", switchover(), []string{
			"# switchover of webshop from brussels to antwerp\n",
			"started 2026-03-14T10:00:00.000Z by alice (operator), because: rack move (ticket CHG-1234). State: **succeeded**",
			"| RTO | 6.25s (from the run's start to writable at antwerp and checked) | 30s | pass |",
			"| RPO | 0s (none known) | 5s | pass |",
			"| Verification | verified | all checks pass | pass |",
			"| `catch-up:db@antwerp` | catch-up | db | antwerp | done | 1 | 2026-03-14T10:00:00.400Z | 2026-03-14T10:00:00.900Z | 500ms | lsn=0/3000148 |",
			"| `check:orders@antwerp` | antwerp | passed | 1 | 42 orders |",
		}},
		{"automatic", automatic(), []string{
			"# automatic failover of webshop from brussels to antwerp\n",
			"Incident: brussels last heard from 2026-03-14T09:59:58.300Z, declared lost 2026-03-14T09:59:59.800Z.",
			"| RTO | 3.2s (from when brussels was last heard from to writable at antwerp and checked) | 30s | pass |",
			"| RPO | known after reprotect | 5s | unknown |",
		}},
		{"failed drill", failedDrill(), []string{
			"# drill of webshop at antwerp\n",
			"| RTO | not recovered: checks failed | 30s | **FAIL** |",
			"| RPO | 7.5s (data age of clone:db@antwerp) | 5s | **FAIL** |",
			"| Verification | checks failed: orders | all checks pass | **FAIL** |",
			"| **rollback** |",
			"| `check:orders@antwerp` | antwerp | failed | 6 | 0 orders: want at least 1 order |",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Markdown(&buf, Build(tt.run, group(30*time.Second, 5*time.Second))); err != nil {
				t.Fatal(err)
			}
			for _, want := range tt.want {
				if !strings.Contains(buf.String(), want) {
					t.Errorf("markdown lacks %q:\n%s", want, buf.String())
				}
			}
		})
	}
}

// A cell holds one line, and a pipe in an error does not split it.
func TestMarkdownCells(t *testing.T) {
	r := failedDrill()
	r.Steps[2].Error = "want | at least\n1 order"
	var buf bytes.Buffer
	if err := Markdown(&buf, Build(r, nil)); err != nil {
		t.Fatal(err)
	}
	if want := `0 orders: want \| at least 1 order |`; !strings.Contains(buf.String(), want) {
		t.Errorf("markdown lacks %q:\n%s", want, buf.String())
	}
}

// The drill's markdown, whole, as testdata/drill.md holds it (go test
// -update rewrites it).
func TestMarkdownGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := Markdown(&buf, Build(drill(), group(30*time.Second, 5*time.Second))); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "drill.md")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("markdown (-%s +got):\n%s", golden, diff)
	}
}

func TestHTML(t *testing.T) {
	runs := map[string]plan.Run{"switchover": switchover(), "automatic": automatic(), "drill": drill(), "failed drill": failedDrill()}
	for name, run := range runs {
		t.Run(name, func(t *testing.T) {
			r := Build(run, group(30*time.Second, 5*time.Second))
			var buf bytes.Buffer
			if err := HTML(&buf, r); err != nil {
				t.Fatal(err)
			}
			page := buf.String()
			wellFormed(t, page)
			for _, s := range r.Steps {
				if !strings.Contains(page, ">"+s.ID+"<") {
					t.Errorf("page lacks step %s", s.ID)
				}
			}
			if !strings.Contains(page, "<svg ") {
				t.Error("page lacks its SVG timeline")
			}
			// Self-contained: nothing fetched from anywhere.
			for _, bad := range []string{"<script", "<link", "src=", "href=", "@import", "url(", "http"} {
				if strings.Contains(page, bad) {
					t.Errorf("page contains %q", bad)
				}
			}
			bars := 0
			for _, s := range r.Steps {
				if !s.Started.IsZero() {
					bars++
				}
			}
			if got := strings.Count(page, "<rect "); got != bars {
				t.Errorf("%d bars, want %d (one per step that started)", got, bars)
			}
		})
	}
}

// What a run holds is text, never markup.
func TestHTMLEscapes(t *testing.T) {
	run := failedDrill()
	run.Reason = `<script>alert("x")</script>`
	run.Steps[2].Error = `<img onerror=alert(1)> & more`
	var buf bytes.Buffer
	if err := HTML(&buf, Build(run, nil)); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	wellFormed(t, page)
	for _, bad := range []string{"<script", "<img"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	if !strings.Contains(page, "&lt;img onerror=alert(1)&gt; &amp; more") {
		t.Error("page lacks the escaped error")
	}
}

// wellFormed fails unless every element of page is closed, in order (void
// elements aside), and it parses as HTML with one svg.
func wellFormed(t *testing.T, page string) {
	t.Helper()
	void := map[string]bool{"meta": true, "br": true, "hr": true, "img": true, "input": true, "link": true, "col": true, "wbr": true}
	var open []string
	z := html.NewTokenizer(strings.NewReader(page))
	for {
		switch z.Next() {
		case html.ErrorToken:
			if z.Err() != io.EOF {
				t.Fatalf("tokenize: %v", z.Err())
			}
			if len(open) > 0 {
				t.Errorf("not closed: %v", open)
			}
			doc, err := html.Parse(strings.NewReader(page))
			if err != nil {
				t.Fatal(err)
			}
			if n := count(doc, "svg"); n != 1 {
				t.Errorf("%d svg elements, want 1", n)
			}
			return
		case html.StartTagToken:
			if name := z.Token().Data; !void[name] {
				open = append(open, name)
			}
		case html.EndTagToken:
			name := z.Token().Data
			if len(open) == 0 || open[len(open)-1] != name {
				t.Fatalf("</%s> closes %v", name, open)
			}
			open = open[:len(open)-1]
		}
	}
}

func count(n *html.Node, tag string) int {
	c := 0
	if n.Type == html.ElementNode && n.Data == tag {
		c++
	}
	for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
		c += count(ch, tag)
	}
	return c
}

// Every format is found by its name and writes the report; an unknown
// name is refused with the list.
func TestFormats(t *testing.T) {
	r := Build(switchover(), group(30*time.Second, 5*time.Second))
	for _, name := range []string{"md", "json", "html"} {
		f, err := FormatOf(name)
		if err != nil {
			t.Fatalf("FormatOf(%q): %v", name, err)
		}
		var b strings.Builder
		if err := f.Write(&b, r); err != nil || !strings.Contains(b.String(), r.RunID) {
			t.Errorf("format %s: %v, %.80q", name, err, b.String())
		}
		if f.Ext != name || f.ContentType == "" {
			t.Errorf("format %s: extension %q, content type %q", name, f.Ext, f.ContentType)
		}
	}
	if _, err := FormatOf("pdf"); err == nil || !strings.Contains(err.Error(), "md, json or html") {
		t.Errorf("FormatOf(pdf) = %v", err)
	}
}
