package agent

import (
	"bytes"
	"fmt"
	"mime"
	"net/http"

	"github.com/siteflip/siteflip/internal/access"
	"github.com/siteflip/siteflip/internal/dashboard"
	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/report"
)

// The dashboard's endpoints (docs/design/dashboard.md) but its events
// (events.go) and lag history (laghistory.go): the page itself, its
// settings, and the runs' reports.

// pageHandler serves the page and its files. They hold no data: anyone
// may fetch them, and the page then asks for a login. The page's own
// package sets their headers (its Content-Security-Policy forbids framing:
// the page has buttons that act).
func pageHandler() http.HandlerFunc { return dashboard.Handler().ServeHTTP }

// handleUIConfig answers who the caller is and where every location's
// agent is: the page offers only the actions the caller's role may take,
// and reads another location when this one is lost.
func (srv *apiServer) handleUIConfig(w http.ResponseWriter, r *http.Request) {
	p := requestInfo(r).principal
	var locs []jsonview.UILocation
	for _, s := range srv.topo.Sites {
		locs = append(locs, jsonview.UILocation{Name: s.Name, Role: s.Role, URL: srv.scheme() + "://" + s.Agent.Address})
	}
	who := jsonview.UIPrincipal{Name: p.Name, Role: p.RoleName(), Via: principalVia(p)}
	writeJSON(w, http.StatusOK, jsonview.UIConfigOf(srv.topo.Name, srv.site.Name, who, locs))
}

// principalVia says how the caller proved who it is.
func principalVia(p access.Principal) string {
	if p.Anonymous || p.Via == "" {
		return "none"
	}
	return p.Via
}

// handleReport answers with a run's report, as `siteflip report` writes
// it: GET /v1/runs/{id}/report?format=html|md|json (html by default), as
// a file to save.
func (srv *apiServer) handleReport(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("format")
	if name == "" {
		name = "html"
	}
	format, err := report.FormatOf(name)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("format=%s: %w", name, err))
		return
	}
	run, ok := srv.readRun(w, r)
	if !ok {
		return
	}
	// The targets are the group's as configured now; a group since
	// removed gets a report that measures without judging.
	g, _ := srv.topo.Group(run.Group)
	var buf bytes.Buffer
	if err := format.Write(&buf, report.Build(run, g)); err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("report of run %s: %w", run.ID, err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", format.ContentType)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": "siteflip-" + run.ID + "." + format.Ext}))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}
