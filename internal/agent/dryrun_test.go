package agent

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/siteflip/siteflip/internal/access"
	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// snapFake is the control plane's snapshot, as the API reads it.
type snapFake struct{ snap status.Snapshot }

func (f snapFake) Snapshot(context.Context) (status.Snapshot, error) { return f.snap, nil }

// runsFake stores the runs the API starts; any other call panics (the
// embedded interface is nil).
type runsFake struct {
	apiStore
	started []plan.Run
}

func (f *runsFake) StartRun(_ context.Context, run plan.Run, _ int64) error {
	f.started = append(f.started, run)
	return nil
}

// startRun sends req to the run admission of an agent at brussels that
// sees snap, as operator otto, and returns the answer's code and body.
func startRun(t *testing.T, snap status.Snapshot, store *runsFake, req api.RunRequest) (int, string) {
	t.Helper()
	topo, _ := scheduleWorld(t)
	s, _ := topo.Site("brussels")
	b := &base{topo: topo, site: s, log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics()}
	srv := &apiServer{base: b, plane: &plane{base: b, store: snapFake{snap}}, store: store}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/v1/runs", strings.NewReader(string(body)))
	info := &reqInfo{principal: access.Principal{Name: "otto", Role: access.Operator}}
	r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
	w := httptest.NewRecorder()
	srv.handleStartRun(w, r)
	return w.Code, w.Body.String()
}

// A dry run goes through the run admission and answers with the plan a
// run would have, storing and starting nothing; the same request without
// DryRun starts that run. A group held by a run is refused as busy, with
// or without DryRun.
func TestDryRunAdmission(t *testing.T) {
	_, snap := scheduleWorld(t)
	req := api.RunRequest{Group: "webshop", Action: plan.Switchover, To: "antwerp", DryRun: true}

	store := &runsFake{}
	code, body := startRun(t, snap, store, req)
	if code != http.StatusOK {
		t.Fatalf("dry run: %d %s, want 200", code, body)
	}
	var run plan.Run
	if err := json.Unmarshal([]byte(body), &run); err != nil {
		t.Fatal(err)
	}
	if run.Plan.Action != plan.Switchover || run.Plan.From != "brussels" || run.Plan.To != "antwerp" || len(run.Plan.Steps) == 0 || run.By != "otto" {
		t.Errorf("dry run answered %+v", run)
	}
	if len(store.started) != 0 {
		t.Errorf("a dry run stored %d run(s)", len(store.started))
	}

	req.DryRun = false
	code, body = startRun(t, snap, store, req)
	if code != http.StatusCreated || len(store.started) != 1 {
		t.Fatalf("run: %d %s, %d stored; want 201, 1", code, body, len(store.started))
	}
	if got, want := len(store.started[0].Plan.Steps), len(run.Plan.Steps); got != want {
		t.Errorf("the run has %d steps, its dry run showed %d", got, want)
	}

	// Busy: refused with the code the client maps to api.ErrBusy.
	snap.Running = map[string]string{"webshop": "r1"}
	for _, dry := range []bool{true, false} {
		req.DryRun = dry
		code, body = startRun(t, snap, &runsFake{}, req)
		var e struct{ Error, Code string }
		_ = json.Unmarshal([]byte(body), &e)
		if code != http.StatusConflict || e.Code != api.CodeBusy || !strings.Contains(e.Error, "r1") {
			t.Errorf("busy, dry run %v: %d %s; want 409 with code busy", dry, code, body)
		}
	}

	// Refused by the planner: a switchover to where the group is.
	req.DryRun, req.To = true, "brussels"
	snap.Running = map[string]string{}
	if code, body = startRun(t, snap, &runsFake{}, req); code != http.StatusConflict || strings.Contains(body, `"code"`) {
		t.Errorf("switchover to the active site, dry run: %d %s; want 409 without a code", code, body)
	}
}
