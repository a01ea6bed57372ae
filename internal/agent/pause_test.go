package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
)

// pauseFake keeps pauses as the control plane does; any other call
// panics (the embedded interface is nil).
type pauseFake struct {
	apiStore
	mu     sync.Mutex
	paused map[string]status.Pause
}

func (f *pauseFake) Pause(_ context.Context, p status.Pause) (status.Pause, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cur, ok := f.paused[p.Group]; ok {
		return cur, false, nil
	}
	f.paused[p.Group] = p
	return p, true, nil
}

func (f *pauseFake) Resume(_ context.Context, group string) (status.Pause, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.paused[group]
	delete(f.paused, group)
	return p, ok, nil
}

// Pause and resume: operators and admins may, viewers may not; pausing
// twice keeps the first pause, resuming twice is no error; an unknown
// group or a reason on several lines is refused; each request is
// audited with who asked and why.
func TestPauseEndpoints(t *testing.T) {
	a, sink := guarded(t)
	a.topo.Groups = []config.Group{{Name: "webshop"}, {Name: "crm"}}
	store := &pauseFake{paused: map[string]status.Pause{}}
	a.api.store = store
	mux, _, err := a.api.routes()
	if err != nil {
		t.Fatal(err)
	}
	call := func(cn, path, body string) (int, api.PauseResult, string) {
		t.Helper()
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, as(cn, "POST", path, body))
		var res api.PauseResult
		if w.Code == http.StatusOK {
			if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
				t.Fatalf("%s: %v: %s", path, err, w.Body)
			}
			return w.Code, res, ""
		}
		var e struct{ Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v: %s", path, err, w.Body)
		}
		return w.Code, res, e.Error
	}
	steps := []struct {
		who, path, body string
		code            int
		paused, changed bool
		by              string // who the answer's pause names
		body2           string // in the error
	}{
		{"vera", "/v1/groups/webshop/pause", `{"reason":"look"}`, http.StatusForbidden, false, false, "", "needs the operator role"},
		{"otto", "/v1/groups/webshop/pause", `{"reason":"kernel upgrade","ticket":"CHG-7"}`, http.StatusOK, true, true, "otto", ""},
		{"ada", "/v1/groups/webshop/pause", `{"reason":"again"}`, http.StatusOK, true, false, "otto", ""},
		{"otto", "/v1/groups/nosuch/pause", `{}`, http.StatusNotFound, false, false, "", `unknown group "nosuch"`},
		{"otto", "/v1/groups/crm/pause", `{"reason":"two\nlines"}`, http.StatusBadRequest, false, false, "", "control character"},
		{"otto", "/v1/groups/crm/pause", `{"reason":"x","extra":1}`, http.StatusBadRequest, false, false, "", "unknown field"},
		{"vera", "/v1/groups/webshop/resume", `{}`, http.StatusForbidden, false, false, "", "needs the operator role"},
		{"ada", "/v1/groups/webshop/resume", `{"reason":"done"}`, http.StatusOK, false, true, "otto", ""},
		{"otto", "/v1/groups/webshop/resume", `{}`, http.StatusOK, false, false, "", ""},
	}
	for i, s := range steps {
		code, res, body := call(s.who, s.path, s.body)
		if code != s.code {
			t.Fatalf("step %d: %s %s: %d, want %d (%s)", i, s.who, s.path, code, s.code, body)
		}
		if s.body2 != "" && !strings.Contains(body, s.body2) {
			t.Errorf("step %d: %s %s: %s, want it to say %q", i, s.who, s.path, body, s.body2)
		}
		if code != http.StatusOK {
			continue
		}
		by := ""
		if res.Pause != nil {
			by = res.Pause.By
		}
		if res.Paused != s.paused || res.Changed != s.changed || by != s.by || res.Group != "webshop" {
			t.Errorf("step %d: %s %s: %+v, want paused %v changed %v by %q", i, s.who, s.path, res, s.paused, s.changed, s.by)
		}
		if i == 1 && (res.Pause.Role != "operator" || res.Pause.Reason != "kernel upgrade" || res.Pause.At.IsZero()) {
			t.Errorf("the pause stored: %+v", res.Pause)
		}
	}
	if len(store.paused) != 0 {
		t.Errorf("pauses left: %v", store.paused)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	a.api.audit.Run(ctx) // stores what is queued, then returns
	if len(sink.recs) != len(steps) {
		t.Fatalf("%d audit records for %d requests", len(sink.recs), len(steps))
	}
	for i, r := range sink.recs {
		want := audit.Done
		if steps[i].code >= 400 {
			want = audit.Refused
		}
		if r.Who != steps[i].who || r.Result != want || r.Code != steps[i].code {
			t.Errorf("audit record %d: %+v, want %s %s with %d", i, r, steps[i].who, want, steps[i].code)
		}
	}
	if r := sink.recs[1]; r.Action != "pause webshop" || r.Group != "webshop" || r.Reason != "kernel upgrade" || r.Ticket != "CHG-7" || r.Role != "operator" {
		t.Errorf("audit record of the pause: %+v", r)
	}
	if r := sink.recs[7]; r.Action != "resume webshop" || r.Reason != "done" || r.Role != "admin" {
		t.Errorf("audit record of the resume: %+v", r)
	}
}
