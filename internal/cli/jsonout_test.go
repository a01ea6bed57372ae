package cli_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// TestJSONDocuments runs status, run and audit with -o json against an
// agent that answers in its own JSON, and reads back the siteflip.v1
// documents: the agent's Go-cased and Go-duration fields never reach a
// script.
func TestJSONDocuments(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	st := status.Status{Installation: "shop", AnsweredBy: "brussels", Time: t0, Revision: 9,
		Sites: []status.SiteStatus{{Name: "brussels", Role: "site", Up: true, Reporting: true, Version: "1.3.0", CertNotAfter: t0.Add(10 * 24 * time.Hour)}},
		Groups: []status.GroupStatus{{Name: "webshop", PreferredSite: "brussels", ActiveSite: "antwerp", Epoch: 5, State: status.StateUnprotected,
			Policy: "automatic", MaxDataLoss: "5s", RTOTarget: "2s",
			Problems: []string{"db at brussels is down: it is no standby of antwerp; run: siteflip reprotect webshop"},
			Issues: []status.Problem{{Kind: status.KindStandbyNotReady, Site: "brussels", Resource: "db", Message: "db at brussels is down: it is no standby of antwerp",
				Command: "siteflip reprotect webshop", Detail: "pq: connection refused"}},
		}},
	}
	run := plan.Run{ID: "s1", Group: "webshop", By: "alice", State: plan.RunSucceeded, Started: t0, Ended: t0.Add(3 * time.Second), WritableAt: t0.Add(1640 * time.Millisecond),
		Request: plan.Request{Action: plan.Switchover, To: "antwerp"},
		Plan: plan.Plan{Group: "webshop", Action: plan.Switchover, From: "brussels", To: "antwerp", Steps: []plan.Step{
			{ID: "fence:db@brussels", Kind: plan.Fence, Resource: "db", Site: "brussels", Timeout: 30 * time.Second},
		}},
		Steps: []plan.StepState{{State: plan.StepDone, Attempts: 1, Started: t0, Ended: t0.Add(time.Second)}},
	}
	recs := []audit.Record{{At: t0, Site: "brussels", Who: "alice", Role: "operator", Request: "POST /v1/runs", Action: "switchover webshop --to antwerp", Result: audit.Done, Code: 200}}
	runCLI := againstAgent(t, reportTopology, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/status":
			json.NewEncoder(w).Encode(st)
		case "/v1/runs/s1":
			json.NewEncoder(w).Encode(run)
		case "/v1/audit":
			json.NewEncoder(w).Encode(recs)
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"error": "not here"})
		}
	}))
	siteflip := func(t *testing.T, doc any, args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(args...)
		if code != 0 {
			t.Fatalf("siteflip %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		if err := json.Unmarshal([]byte(out), doc); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		return out
	}

	t.Run("status", func(t *testing.T) {
		var doc jsonview.Status
		out := siteflip(t, &doc, "status", "-o", "json")
		g := doc.Groups[0]
		if doc.APIVersion != jsonview.APIVersion || doc.Kind != jsonview.KindStatus || !doc.ReadAt.Equal(t0) {
			t.Errorf("header %+v, read_at %s", doc.Header, doc.ReadAt)
		}
		if g.MaxDataLossSeconds == nil || *g.MaxDataLossSeconds != 5 || g.RTOTargetSeconds == nil || *g.RTOTargetSeconds != 2 {
			t.Errorf("durations: %v %v", g.MaxDataLossSeconds, g.RTOTargetSeconds)
		}
		if len(g.Problems) != 1 || g.Problems[0].Command != "siteflip reprotect webshop" || g.Problems[0].Detail != "pq: connection refused" {
			t.Errorf("problems %+v", g.Problems)
		}
		if !doc.Sites[0].CertExpiresAt.Equal(t0.Add(10*24*time.Hour)) || doc.Sites[0].Version != "1.3.0" {
			t.Errorf("site %+v", doc.Sites[0])
		}
		if strings.Contains(out, `"max_data_loss"`) || strings.Contains(out, `"5s"`) {
			t.Errorf("a duration the Go way:\n%s", out)
		}
	})
	t.Run("run", func(t *testing.T) {
		var doc jsonview.RunDoc
		out := siteflip(t, &doc, "run", "s1", "-o", "json")
		if doc.Kind != jsonview.KindRun || doc.ID != "s1" || doc.RTOSeconds == nil || *doc.RTOSeconds != 1.64 || doc.Steps[0].TimeoutSeconds != 30 {
			t.Errorf("run %+v", doc)
		}
		if strings.Contains(out, "AcceptDataLoss") || strings.Contains(out, "30000000000") {
			t.Errorf("the stored run's JSON leaked:\n%s", out)
		}
	})
	t.Run("audit", func(t *testing.T) {
		var doc jsonview.Audit
		siteflip(t, &doc, "audit", "-o", "json")
		if doc.Kind != jsonview.KindAudit || len(doc.Records) != 1 || doc.Records[0].Who != "alice" || !doc.Records[0].At.Equal(t0) {
			t.Errorf("audit %+v", doc)
		}
	})
}
