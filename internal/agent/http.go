package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/siteflip/siteflip/internal/status"
)

// routes is the agent's HTTP API. With TLS on, every route needs a client
// certificate from the installation's CA.
func (a *agent) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok %s\n", a.site.Name)
	})
	mux.HandleFunc("GET /v1/status", a.handleStatus)
	mux.HandleFunc("POST /v1/runs", a.handleStartRun)
	mux.HandleFunc("GET /v1/runs", a.handleRuns)
	mux.HandleFunc("GET /v1/runs/{id}", a.handleRun)
	mux.HandleFunc("POST /v1/steps", a.handleStep)
	mux.HandleFunc("POST /v1/lease", a.handleLease)
	a.forceRoutes(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{Registry: a.metrics.reg}))
	return mux
}

// handleStatus answers with the assembled status, or 503 when this
// location cannot read the control plane (no quorum): the client then asks
// another location.
func (a *agent) handleStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	snap, err := a.store.Snapshot(ctx)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]string{
			"error": fmt.Sprintf("%s cannot read the control plane (%v): its etcd member has no quorum or is unreachable; ask another location, and check this agent's log", a.site.Name, err),
			"site":  a.site.Name,
		})
		return
	}
	st := status.Assemble(a.topo, snap, a.site.Name, time.Now().UTC())
	a.noteForced(ctx, &st)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(st)
}
