package cli_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/plan"
)

// TestRuns runs `siteflip runs` and `siteflip run` against an agent that
// knows a failover of webshop and the reprotect that found what it lost.
func TestRuns(t *testing.T) {
	t0 := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Millisecond)
	failover := plan.Run{ID: "f1", Group: "webshop", By: "controller antwerp (automatic)", State: plan.RunSucceeded,
		Started: t0, Ended: t0.Add(2 * time.Second), WritableAt: t0.Add(time.Second),
		Incident:   &plan.Incident{Site: "brussels", LastHeard: t0.Add(-time.Second)},
		DataLost:   "db at brussels: 8192 bytes of WAL (0/3000000..0/3002000) existed only there",
		DataLostBy: "p1",
		Plan: plan.Plan{Group: "webshop", Action: plan.Failover, From: "brussels", To: "antwerp", Epoch: 4, Steps: []plan.Step{
			{ID: "activate@antwerp", Kind: plan.Activate, Site: "antwerp"},
		}},
		Steps: []plan.StepState{{State: plan.StepDone, Attempts: 1, Started: t0, Ended: t0.Add(time.Second), Output: map[string]string{"epoch": "5"}}},
	}
	reprotect := plan.Run{ID: "p1", Group: "webshop", By: "alice", Role: "operator", Reason: "brussels is back", Ticket: "OPS-7",
		State: plan.RunSucceeded, Started: t0.Add(24 * time.Hour), Ended: t0.Add(24*time.Hour + 3*time.Second),
		DataLost: failover.DataLost,
		Plan: plan.Plan{Group: "webshop", Action: plan.Reprotect, From: "antwerp", To: "antwerp", Epoch: 5, Steps: []plan.Step{
			{ID: "rejoin:db@brussels", Kind: plan.Rejoin, Resource: "db", Site: "brussels"},
		}},
		Steps: []plan.StepState{{State: plan.StepDone, Attempts: 1, Output: map[string]string{plan.OutputDataLost: "8192 bytes of WAL (0/3000000..0/3002000) existed only there"}}},
	}
	runs := []plan.Run{failover, reprotect}
	runCLI := againstAgent(t, reportTopology, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/runs":
			json.NewEncoder(w).Encode(runs)
		case "/v1/runs/f1":
			json.NewEncoder(w).Encode(failover)
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"error": "no such run"})
		}
	}))
	siteflip := func(t *testing.T, args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(args...)
		if code != 0 {
			t.Fatalf("siteflip %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	// decode reads the document back; what the stored runs convert to
	// is compared, round-tripped through JSON the same way (times lose
	// their monotonic reading).
	decode := func(t *testing.T, out string) jsonview.Runs {
		t.Helper()
		var got jsonview.Runs
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		return got
	}
	want := func(t *testing.T, runs []plan.Run) jsonview.Runs {
		t.Helper()
		var buf bytes.Buffer
		if err := jsonview.Write(&buf, jsonview.RunsOf(runs)); err != nil {
			t.Fatal(err)
		}
		return decode(t, buf.String())
	}

	t.Run("json exports every run with every field", func(t *testing.T) {
		got := decode(t, siteflip(t, "runs", "-o", "json"))
		if got.APIVersion != "siteflip.v1" || got.Kind != "runs" || len(got.Runs) != len(runs) {
			t.Errorf("document %s/%s with %d runs, want siteflip.v1/runs with %d", got.APIVersion, got.Kind, len(got.Runs), len(runs))
		}
		if diff := cmp.Diff(want(t, runs), got); diff != "" {
			t.Errorf("exported runs (-stored +exported):\n%s", diff)
		}
	})
	t.Run("since a duration", func(t *testing.T) {
		if diff := cmp.Diff(want(t, runs[1:]), decode(t, siteflip(t, "runs", "webshop", "--since", "36h", "-o", "json"))); diff != "" {
			t.Errorf("runs of the last 36h (-want +got):\n%s", diff)
		}
	})
	t.Run("since a time, none", func(t *testing.T) {
		out := siteflip(t, "runs", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "-o", "json")
		if got := decode(t, out); got.Runs == nil || len(got.Runs) != 0 || !strings.Contains(out, `"runs": []`) {
			t.Errorf("no run since: %q, want an empty list", out)
		}
	})
	t.Run("the failover's summary says what its reprotect found", func(t *testing.T) {
		out := siteflip(t, "run", "f1")
		want := "  data lost: db at brussels: 8192 bytes of WAL (0/3000000..0/3002000) existed only there (found by run p1)\n"
		if !strings.Contains(out, want) || strings.Contains(out, "known after") {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	})
}
