package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/access"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/plan"
)

// The page and its files: anyone may fetch them, and no other site may
// frame them; other paths are not the page's.
func TestPageRoutes(t *testing.T) {
	a, _ := guarded(t)
	mux, _, err := a.api.routes()
	if err != nil {
		t.Fatal(err)
	}
	for path, code := range map[string]int{
		"/":                   http.StatusOK,
		"/ui/app.js":          http.StatusOK,
		"/ui/":                http.StatusNotFound, // no listing
		"/ui/nothing-here.js": http.StatusNotFound,
		"/elsewhere":          http.StatusNotFound,
	} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, as("mallory", "GET", path, "")) // a certificate bound to no role
		if w.Code != code {
			t.Errorf("GET %s: %d, want %d", path, w.Code, code)
		}
		if code == http.StatusOK {
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") && !strings.HasPrefix(ct, "text/javascript") {
				t.Errorf("GET %s: Content-Type %q", path, ct)
			}
			if w.Header().Get("X-Frame-Options") != "DENY" || !strings.Contains(w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") {
				t.Errorf("GET %s may be framed: %v", path, w.Header())
			}
		}
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, as("mallory", "POST", "/", ""))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", w.Code)
	}
}

// GET /v1/ui/config: who calls, with which role, and every location's
// agent, by https with TLS and http without.
func TestUIConfig(t *testing.T) {
	a, _ := guarded(t)
	a.topo.Name = "lab"
	a.topo.Sites = []config.Site{
		{Name: "brussels", Role: config.RoleSite, Agent: config.Agent{Address: "127.0.1.1:7400"}},
		{Name: "frankfurt", Role: config.RoleWitness, Agent: config.Agent{Address: "witness.example:7400"}},
	}
	mux, _, err := a.api.routes()
	if err != nil {
		t.Fatal(err)
	}
	get := func(r *http.Request) jsonview.UIConfig {
		t.Helper()
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		var doc jsonview.UIConfig
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &doc) != nil {
			t.Fatalf("GET /v1/ui/config: %d %s", w.Code, w.Body)
		}
		return doc
	}
	want := jsonview.UIConfig{
		Header:       jsonview.Header{APIVersion: jsonview.APIVersion, Kind: jsonview.KindUIConfig},
		Installation: "lab", AnsweredBy: "brussels",
		Principal: jsonview.UIPrincipal{Name: "otto", Role: "operator", Via: "certificate"},
		Locations: []jsonview.UILocation{
			{Name: "brussels", Role: "site", URL: "http://127.0.1.1:7400"},
			{Name: "frankfurt", Role: "witness", URL: "http://witness.example:7400"},
		},
	}
	// The topology of this test has no CA: its agents speak http.
	if diff := cmp.Diff(want, get(as("otto", "GET", "/v1/ui/config", ""))); diff != "" {
		t.Errorf("operator (-want +got):\n%s", diff)
	}
	if got := get(as("antwerp", "GET", "/v1/ui/config", "")).Principal; got != (jsonview.UIPrincipal{Name: "antwerp", Role: "location", Via: "certificate"}) {
		t.Errorf("a location: %+v", got)
	}
	a.topo.TLS.CAFile = "ca.crt"
	if got := get(as("vera", "GET", "/v1/ui/config", "")); got.Principal.Role != "viewer" || got.Locations[0].URL != "https://127.0.1.1:7400" {
		t.Errorf("a viewer, with TLS: %+v", got)
	}
	// With TLS off, nobody is known.
	anon := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/v1/ui/config", nil)
	r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, &reqInfo{principal: access.Principal{Anonymous: true}}))
	a.api.handleUIConfig(anon, r)
	var doc jsonview.UIConfig
	if err := json.Unmarshal(anon.Body.Bytes(), &doc); err != nil || doc.Principal != (jsonview.UIPrincipal{Role: "anonymous", Via: "none"}) {
		t.Errorf("anonymous: %s", anon.Body)
	}
}

// reportFake holds one run; any other call panics.
type reportFake struct {
	apiStore
	run plan.Run
}

func (f *reportFake) Run(_ context.Context, id string) (plan.Run, error) {
	if id != f.run.ID {
		return plan.Run{}, fmt.Errorf("run %s: %w", id, coord.ErrNoRun)
	}
	return f.run, nil
}

// GET /v1/runs/{id}/report: the report as `siteflip report` writes it,
// in each format, as a file to save; an unknown format or run is said.
func TestReportEndpoint(t *testing.T) {
	a, _ := guarded(t)
	maxLoss, rto := config.Duration(5*time.Second), config.Duration(time.Minute)
	a.topo.Groups = []config.Group{{Name: "webshop", MaxDataLoss: &maxLoss, RTOTarget: &rto}}
	t0 := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	id := "20261205T090000-webshop-switchover-1a2b"
	run := plan.Run{ID: id, Group: "webshop", By: "otto", State: plan.RunSucceeded, Started: t0, Ended: t0.Add(7 * time.Second), WritableAt: t0.Add(3 * time.Second),
		Plan: plan.Plan{Group: "webshop", Action: plan.Switchover, From: "brussels", To: "antwerp", Epoch: 4,
			Steps: []plan.Step{{ID: "activate@antwerp", Kind: plan.Activate, Site: "antwerp"}}},
		Steps: []plan.StepState{{State: plan.StepDone, Attempts: 1, Started: t0, Ended: t0.Add(time.Second)}}}
	a.api.store = &reportFake{run: run}
	mux, _, err := a.api.routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		query, contentType, ext string
		body                    string // in the report
	}{
		{"", "text/html; charset=utf-8", "html", "<html"},
		{"?format=html", "text/html; charset=utf-8", "html", "<html"},
		{"?format=md", "text/markdown; charset=utf-8", "md", "# "},
		{"?format=json", "application/json", "json", `"run_id": "` + id + `"`},
	} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, as("vera", "GET", "/v1/runs/"+id+"/report"+tt.query, ""))
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != tt.contentType || !strings.Contains(w.Body.String(), tt.body) {
			t.Errorf("report%s: %d %s %.200q", tt.query, w.Code, w.Header().Get("Content-Type"), w.Body)
			continue
		}
		disp, params, err := mime.ParseMediaType(w.Header().Get("Content-Disposition"))
		if err != nil || disp != "attachment" || params["filename"] != "siteflip-"+id+"."+tt.ext {
			t.Errorf("report%s: Content-Disposition %q", tt.query, w.Header().Get("Content-Disposition"))
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("report%s: without nosniff", tt.query)
		}
	}
	for _, tt := range []struct {
		path string
		code int
		body string
	}{
		{"/v1/runs/" + id + "/report?format=pdf", http.StatusBadRequest, "use md, json or html"},
		{"/v1/runs/nope/report", http.StatusNotFound, "nope"},
	} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, as("vera", "GET", tt.path, ""))
		if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.body) {
			t.Errorf("GET %s: %d %s; want %d with %q", tt.path, w.Code, w.Body, tt.code, tt.body)
		}
	}
}
