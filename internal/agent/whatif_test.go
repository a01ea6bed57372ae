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
	"time"

	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// historyFake is the run history; any other call panics (the embedded
// interface is nil).
type historyFake struct {
	apiStore
	runs []plan.Run
}

func (f historyFake) RecentRuns(context.Context, int) ([]plan.Run, error) { return f.runs, nil }

// noneForced is a control plane where no location was forced.
type noneForced struct{ forceStore }

func (noneForced) Forced(context.Context) ([]status.Forced, error) { return nil, nil }

// GET /v1/whatif plays the question against the control plane as this
// agent reads it, with the group's measured failovers: brussels lost,
// webshop fails over to antwerp by itself. A question that names nothing
// or what the topology does not know is 400 with what to write.
func TestWhatIfEndpoint(t *testing.T) {
	topo, snap := scheduleWorld(t)
	s, _ := topo.Site("antwerp")
	b := &base{topo: topo, site: s, log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics()}
	// The agent at antwerp believes its own view only from its current run.
	v := snap.Views["antwerp"]
	v.StartedAt = b.started
	snap.Views["antwerp"] = v
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	failover := plan.Run{ID: "f1", Group: "webshop", State: plan.RunSucceeded, Started: t0, Ended: t0.Add(5 * time.Second), WritableAt: t0.Add(2 * time.Second),
		Plan: plan.Plan{Group: "webshop", Action: plan.Failover, From: "brussels", To: "antwerp"}}
	srv := &apiServer{base: b, plane: &plane{base: b, store: snapFake{snap}}, store: historyFake{runs: []plan.Run{failover}},
		force: &forcer{base: b, store: noneForced{}}}
	srv.states = newStateReader(srv.readStatus)
	ask := func(query string) (int, string) {
		w := httptest.NewRecorder()
		srv.handleWhatIf(w, httptest.NewRequest(http.MethodGet, "/v1/whatif"+query, nil))
		return w.Code, w.Body.String()
	}

	code, body := ask("?lose=brussels")
	if code != http.StatusOK {
		t.Fatalf("lose brussels: %d %s", code, body)
	}
	var doc jsonview.WhatIf
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	g := doc.Groups[0]
	if doc.Kind != jsonview.KindWhatIf || doc.AnsweredBy != "antwerp" || !doc.ControlPlane.Quorum || strings.Join(doc.Event.Destroyed, ",") != "brussels" {
		t.Errorf("document %+v", doc)
	}
	if g.Outcome != "automatic_failover" || g.To != "antwerp" || g.ExpectedRTOSeconds == nil || *g.ExpectedRTOSeconds != 2 || g.RTOSamples != 1 {
		t.Errorf("webshop: %+v", g)
	}

	for query, want := range map[string]string{
		"":                               "what-if at antwerp: name what to lose",
		"?lose=paris":                    `unknown location "paris" (locations: brussels, antwerp, frankfurt)`,
		"?at=50.85,4.35":                 "--at needs --radius",
		"?level=major":                   `unknown level "major"`,
		"?lose_links=brussels-antwerp,x": `"x" is not a link between two locations`,
	} {
		code, body := ask(query)
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(body), &e); err != nil || code != http.StatusBadRequest || !strings.Contains(e.Error, want) {
			t.Errorf("%q: %d %s, want 400 with %q", query, code, body, want)
		}
	}
}
