package cli_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/status"
)

const readinessTopology = reportTopology + `    labels: {tier: gold}
  - name: billing
    preferred_site: antwerp
    resources:
      - name: db
        type: postgres
        sites:
          brussels: {host: 127.0.0.1, port: 15435, data_dir: /srv/pg/brussels2}
          antwerp: {host: 127.0.0.1, port: 15436, data_dir: /srv/pg/antwerp2}
`

// TestReadiness runs `siteflip readiness` against an agent whose status
// judges webshop and billing: each verdict with its reasons and fixes, the
// count of each, and exit 0 only when every group asked about is ready.
func TestReadiness(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	ready := &status.Readiness{Verdict: status.Ready, Reasons: []status.ReadinessReason{
		{Kind: "geography", Severity: status.SeverityNote, Message: "brussels and antwerp are 40 km apart"}}}
	atRisk := &status.Readiness{Verdict: status.AtRisk, Reasons: []status.ReadinessReason{
		{Kind: "dependency", Severity: status.AtRisk, Site: "antwerp", Message: "ldap (tcp 127.0.2.1:3389) is unreachable from antwerp: connection refused",
			Fix: "start ldap where antwerp reaches it (tcp 127.0.2.1:3389), or open the way from antwerp to it"}}}
	statusOf := func(webshop, billing *status.Readiness) *status.Status {
		return &status.Status{Installation: "shop", AnsweredBy: "brussels", Time: t0, Groups: []status.GroupStatus{
			{Name: "webshop", State: status.StateProtected, Readiness: webshop},
			{Name: "billing", State: status.StateProtected, Readiness: billing},
		}}
	}
	var current atomic.Pointer[status.Status]
	runCLI := againstAgent(t, readinessTopology, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/v1/status" {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"error": "not here"})
			return
		}
		json.NewEncoder(w).Encode(current.Load())
	}))
	siteflip := func(args ...string) (int, string, string) { return runCLI(append([]string{"readiness"}, args...)...) }

	t.Run("every group ready", func(t *testing.T) {
		current.Store(statusOf(ready, ready))
		code, out, errOut := siteflip()
		want := `webshop: READY
  note (geography): brussels and antwerp are 40 km apart
billing: READY
  note (geography): brussels and antwerp are 40 km apart

2 groups: 2 ready, 0 at risk, 0 not ready (answered by brussels)
`
		if code != 0 || out != want || errOut != "" {
			t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, want)
		}
	})
	t.Run("one at risk", func(t *testing.T) {
		current.Store(statusOf(atRisk, ready))
		code, out, errOut := siteflip("--all")
		want := `webshop: AT RISK
  at risk (dependency): ldap (tcp 127.0.2.1:3389) is unreachable from antwerp: connection refused
    fix: start ldap where antwerp reaches it (tcp 127.0.2.1:3389), or open the way from antwerp to it
billing: READY
  note (geography): brussels and antwerp are 40 km apart

2 groups: 1 ready, 1 at risk, 0 not ready (answered by brussels)
`
		if code != 1 || out != want || errOut != "" {
			t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, want)
		}
	})
	t.Run("the groups named", func(t *testing.T) {
		current.Store(statusOf(atRisk, ready))
		code, out, _ := siteflip("billing")
		if code != 0 || !strings.HasPrefix(out, "billing: READY\n") || !strings.HasSuffix(out, "1 group: 1 ready, 0 at risk, 0 not ready (answered by brussels)\n") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
	t.Run("json, by label", func(t *testing.T) {
		current.Store(statusOf(atRisk, ready))
		code, out, _ := siteflip("--label", "tier=gold", "-o", "json")
		var doc jsonview.ReadinessReport
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		want := jsonview.ReadinessReport{Header: jsonview.Header{APIVersion: jsonview.APIVersion, Kind: jsonview.KindReadiness},
			Installation: "shop", AnsweredBy: "brussels", ReadAt: t0, AtRisk: 1,
			Groups: []jsonview.GroupReadiness{{Name: "webshop", Verdict: status.AtRisk, Reasons: jsonview.ReadinessOf(atRisk).Reasons}}}
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if diff := cmp.Diff(want, doc); diff != "" {
			t.Errorf("document (-want +got):\n%s", diff)
		}
	})
	t.Run("an agent of an earlier version", func(t *testing.T) {
		current.Store(statusOf(nil, ready))
		code, out, _ := siteflip("webshop")
		if code != 1 || !strings.Contains(out, "webshop: NOT READY\n  not ready (protection): the answering agent, brussels, does not judge readiness") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"an unknown group", []string{"shop"}, 3, `unknown group "shop"`},
		{"a group and a selection", []string{"webshop", "--all"}, 2, "name groups or select them, not both"},
		{"a label that matches nothing", []string{"--label", "tier=silver"}, 3, "no group matches --label tier=silver"},
		{"a bad output", []string{"-o", "yaml"}, 2, "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := siteflip(tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) {
				t.Errorf("exit %d, want %d; stderr %q, want %q in it", code, tc.code, errOut, tc.msg)
			}
		})
	}
}
