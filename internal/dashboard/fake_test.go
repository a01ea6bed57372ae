package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/plan"
)

// fakeAgent answers the endpoints the page reads (docs/design/dashboard.md)
// with documents made by the jsonview types, as one location's agent would.
type fakeAgent struct {
	site string
	srv  *httptest.Server

	mu        sync.Mutex
	status    jsonview.Status
	runs      jsonview.Runs
	locations []map[string]string
	streams   map[chan string]bool
	refuse    bool // /v1/events answers 503
	signedOut bool // every token is refused, as when it expired
	requests  []api.RunRequest
	paused    []string
	reports   []string // "ID FORMAT" of each report asked
}

// Tokens and the roles they give.
var tokens = map[string]string{"viewer-token": "viewer", "operator-token": "operator", "admin-token": "admin"}

func newFakeAgent(t *testing.T, site string) *fakeAgent {
	a := &fakeAgent{site: site, streams: map[chan string]bool{}}
	mux := http.NewServeMux()
	page := Handler()
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /ui/", page)
	mux.HandleFunc("GET /v1/ui/config", a.auth(a.config))
	mux.HandleFunc("GET /v1/events", a.auth(a.events))
	mux.HandleFunc("GET /v1/lag", a.auth(a.lag))
	mux.HandleFunc("POST /v1/runs", a.auth(a.startRun))
	mux.HandleFunc("POST /v1/groups/{group}/{op}", a.auth(a.pause))
	mux.HandleFunc("GET /v1/runs/{id}/report", a.auth(a.report))
	a.srv = httptest.NewUnstartedServer(a.cors(mux))
	a.srv.StartTLS()
	t.Cleanup(func() {
		a.endStreams()
		a.srv.CloseClientConnections()
		a.srv.Close()
	})
	return a
}

func (a *fakeAgent) url() string { return a.srv.URL }

// cors answers the other locations' pages, as the agents do.
func (a *fakeAgent) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && strings.HasPrefix(r.URL.Path, "/v1/") {
			a.mu.Lock()
			known := false
			for _, l := range a.locations {
				known = known || l["url"] == o
			}
			a.mu.Unlock()
			if known {
				w.Header().Set("Access-Control-Allow-Origin", o)
				w.Header().Set("Vary", "Origin")
				if r.Method == http.MethodOptions {
					w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
					w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
					w.WriteHeader(http.StatusNoContent)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

type principal struct{ name, role string }

func (a *fakeAgent) auth(next func(http.ResponseWriter, *http.Request, principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		role := tokens[tok]
		a.mu.Lock()
		if a.signedOut {
			role = ""
		}
		a.mu.Unlock()
		if !ok || role == "" {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "no client certificate and no valid token: make one with `siteflip token`"})
			return
		}
		next(w, r, principal{name: "lab-" + role, role: role})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *fakeAgent) config(w http.ResponseWriter, r *http.Request, p principal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"api_version": jsonview.APIVersion, "kind": "ui_config", "installation": "lab", "answered_by": a.site,
		"principal": map[string]string{"name": p.name, "role": p.role, "via": "token"},
		"locations": a.locations,
	})
}

func event(kind string, doc any) string {
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return "event: " + kind + "\ndata: " + string(b) + "\n\n"
}

func (a *fakeAgent) events(w http.ResponseWriter, r *http.Request, _ principal) {
	a.mu.Lock()
	if a.refuse {
		a.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": a.site + " cannot read the control plane"})
		return
	}
	ch := make(chan string, 16)
	a.streams[ch] = true
	first := event("status", a.status) + ": ping\n\n" + event("runs", a.runs)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	fl := w.(http.Flusher)
	fmt.Fprint(w, first)
	fl.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			fmt.Fprint(w, ev)
			fl.Flush()
		}
	}
}

// setStatus changes the status and sends it to every open stream.
func (a *fakeAgent) setStatus(f func(*jsonview.Status)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(&a.status)
	a.status.ReadAt = a.status.ReadAt.Add(5 * time.Second)
	for ch := range a.streams {
		ch <- event("status", a.status)
	}
}

// signOut refuses every token from now on and ends the open streams.
func (a *fakeAgent) signOut() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.signedOut = true
	for ch := range a.streams {
		close(ch)
		delete(a.streams, ch)
	}
}

// unavailable tells the open streams that this agent cannot read the
// control plane, and refuses new ones.
func (a *fakeAgent) unavailable() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refuse = true
	for ch := range a.streams {
		ch <- event("unavailable", map[string]string{"error": "no quorum where it stands", "site": a.site})
	}
}

// endStreams ends the open streams and refuses new ones: the agent is lost.
func (a *fakeAgent) endStreams() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refuse = true
	for ch := range a.streams {
		close(ch)
		delete(a.streams, ch)
	}
}

func (a *fakeAgent) lag(w http.ResponseWriter, r *http.Request, _ principal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	writeJSON(w, http.StatusOK, lagHistory(a.site, r.URL.Query().Get("group"), a.status.ReadAt))
}

func (a *fakeAgent) startRun(w http.ResponseWriter, r *http.Request, p principal) {
	var req api.RunRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "decode run request: " + err.Error()})
		return
	}
	a.mu.Lock()
	a.requests = append(a.requests, req)
	a.mu.Unlock()
	if p.role == "viewer" {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "viewers cannot start runs"})
		return
	}
	run := plan.NewRun("run-new", p.name, plan.Request{Action: req.Action, To: req.To, AcceptDataLoss: req.AcceptDataLoss},
		switchoverPlan(req.Group, "brussels", req.To), time.Now().UTC())
	run.Reason = req.Reason
	code := http.StatusCreated
	if req.DryRun {
		code = http.StatusOK
	}
	writeJSON(w, code, run)
}

func (a *fakeAgent) pause(w http.ResponseWriter, r *http.Request, _ principal) {
	a.mu.Lock()
	a.paused = append(a.paused, r.PathValue("op")+" "+r.PathValue("group"))
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, api.PauseResult{Group: r.PathValue("group"), Paused: r.PathValue("op") == "pause", Changed: true})
}

func (a *fakeAgent) report(w http.ResponseWriter, r *http.Request, _ principal) {
	a.mu.Lock()
	a.reports = append(a.reports, r.PathValue("id")+" "+r.URL.Query().Get("format"))
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/markdown")
	fmt.Fprintf(w, "# Run %s\n", r.PathValue("id"))
}

func (a *fakeAgent) asked() (reports, paused []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.reports), slices.Clone(a.paused)
}

func (a *fakeAgent) runRequests() []api.RunRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]api.RunRequest(nil), a.requests...)
}
