package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
)

// The client's errors say, through errors.Is, whether the agents refused
// (and whether for busy or not found) or none answered.
func TestErrorKinds(t *testing.T) {
	answers := map[string]struct {
		code int
		body map[string]string
	}{
		"/v1/runs":            {http.StatusConflict, map[string]string{"error": "group webshop: a run is already in progress (run r9)", "code": CodeBusy}},
		"/v1/runs/nosuch":     {http.StatusNotFound, map[string]string{"error": "run nosuch: no such run"}},
		"/v1/runs/r1/verdict": {http.StatusForbidden, map[string]string{"error": "otto may not do this"}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answers[r.URL.Path]
		w.WriteHeader(a.code)
		json.NewEncoder(w).Encode(a.body)
	}))
	defer srv.Close()
	c, err := NewClient(&config.Topology{Sites: []config.Site{{Name: "brussels", Agent: config.Agent{Address: srv.Listener.Addr().String()}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	_, busy := c.StartRun(ctx, RunRequest{Group: "webshop", Action: plan.Switchover})
	_, notFound := c.Run(ctx, "nosuch")
	_, forbidden := c.Verdict(ctx, "r1", VerdictRequest{Approve: true})

	// An address where nothing listens: port 1 refuses at once.
	down, err := NewClient(&config.Topology{Sites: []config.Site{{Name: "antwerp", Agent: config.Agent{Address: "127.0.0.1:1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	_, unreachable := down.StartRun(ctx, RunRequest{Group: "webshop", Action: plan.Reprotect})
	_, noStatus := down.Status(ctx)

	tests := []struct {
		name                                    string
		err                                     error
		refused, busy, notFound, unreachableErr bool
	}{
		{"busy", busy, true, true, false, false},
		{"not found", notFound, true, false, true, false},
		{"forbidden", forbidden, true, false, false, false},
		{"unreachable run", unreachable, false, false, false, true},
		{"unreachable status", noStatus, false, false, false, true},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		for _, k := range []struct {
			target error
			want   bool
		}{{ErrRefused, tt.refused}, {ErrBusy, tt.busy}, {ErrNotFound, tt.notFound}, {ErrUnreachable, tt.unreachableErr}} {
			if got := errors.Is(tt.err, k.target); got != k.want {
				t.Errorf("%s (%v): errors.Is(%v) = %v, want %v", tt.name, tt.err, k.target, got, k.want)
			}
		}
	}
	if busy != nil && busy.Error() != "group webshop: a run is already in progress (run r9)" {
		t.Errorf("busy says %q, want the agent's message as it is", busy)
	}
}
