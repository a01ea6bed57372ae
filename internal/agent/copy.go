package agent

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/status"
)

// copyTrailer is the HTTP trailer by which a copy says it came whole:
// "complete", or why it did not. A stream cut short has none.
const copyTrailer = "Siteflip-Copy"

// maxCopy bounds how long one copy may stream.
const maxCopy = 6 * time.Hour

// handleCopy streams a copy of a resource's server at this site to the
// agent of another site of its group, for that site's rejoin: a reclone
// across machines. Only another site of the group may ask, and only while
// the server here is the group's primary, as this agent observes it.
func (srv *apiServer) handleCopy(w http.ResponseWriter, r *http.Request) {
	info := requestInfo(r)
	gname, rname := r.PathValue("group"), r.PathValue("resource")
	info.note.Action, info.note.Group = fmt.Sprintf("copy of %s at %s", rname, srv.site.Name), gname
	g, ok := srv.topo.Group(gname)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("%s: unknown group %q in %s", srv.site.Name, gname, srv.topo.File))
		return
	}
	res, ok := findResource(g, rname)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("%s: group %s has no resource %q in %s", srv.site.Name, gname, rname, srv.topo.File))
		return
	}
	if p := info.principal; !p.Anonymous && (p.Site == srv.site.Name || !slices.Contains(g.Sites, p.Site)) {
		writeError(w, http.StatusForbidden, fmt.Errorf("%s: only another site of group %s may copy its %s (asked by %q)", srv.site.Name, gname, rname, p.Name))
		return
	}
	if v, ok := srv.local.view(gname + "/" + rname); !ok || !v.Up || v.Role != status.RolePrimary {
		writeError(w, http.StatusConflict, fmt.Errorf("%s: %s of group %s is not the primary here (as last observed): a rejoin copies the primary", srv.site.Name, rname, gname))
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(maxCopy))
	w.Header().Set("Trailer", copyTrailer)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	start := time.Now()
	err := driver.Copy(r.Context(), g, res, srv.site.Name, w)
	srv.log.Info("copy sent", "resource", gname+"/"+rname, "to", info.principal.Name, "took", time.Since(start).Round(time.Millisecond), "error", err)
	if err != nil {
		info.note.Failed = true
		w.Header().Set(copyTrailer, "failed: "+err.Error())
		return
	}
	w.Header().Set(copyTrailer, "complete")
}
