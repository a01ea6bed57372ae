package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/status"
)

// The lag history the dashboard charts, GET /v1/lag: every agent samples
// its standbys' lag every lagInterval, whether or not anybody looks, and
// keeps lagWindow of it in memory. Any agent holds the same picture, since
// all read the same control plane; an agent restarted starts a new one.

// Bounds of the history: 720 points per standby, 1024 standbys.
const (
	lagInterval  = 5 * time.Second
	lagWindow    = time.Hour
	lagPoints    = int(lagWindow / lagInterval)
	lagMaxSeries = 1024
)

// lagKey is one standby of one resource of one group.
type lagKey struct{ group, resource, site string }

// lagPoint is one sample, compact: an hour of a thousand standbys is
// held in memory.
type lagPoint struct {
	at    int64   // Unix milliseconds
	lag   float64 // seconds, when lagKnown
	bytes int64   // when bytesKnown
	flags uint8
}

// Flags of a lagPoint.
const (
	lagKnown uint8 = 1 << iota
	bytesKnown
	lagStreaming
)

// lagRing is one standby's samples, the oldest overwritten once full.
type lagRing struct {
	points []lagPoint
	next   int // where the next point goes, once full
}

// add appends p, overwriting the oldest point once the ring holds size.
func (r *lagRing) add(p lagPoint, size int) {
	if len(r.points) < size {
		if len(r.points) == cap(r.points) {
			// Grown by hand: append would leave room beyond size.
			grown := make([]lagPoint, len(r.points), min(max(2*len(r.points), 8), size))
			copy(grown, r.points)
			r.points = grown
		}
		r.points = append(r.points, p)
		return
	}
	r.points[r.next] = p
	r.next = (r.next + 1) % len(r.points)
}

// last is the newest point's time (Unix milliseconds), 0 when empty.
func (r *lagRing) last() int64 {
	if len(r.points) == 0 {
		return 0
	}
	return r.points[(r.next+len(r.points)-1)%len(r.points)].at
}

// ordered is the points, oldest first, from since (Unix milliseconds) on.
func (r *lagRing) ordered(since int64) []lagPoint {
	out := make([]lagPoint, 0, len(r.points))
	for i := range r.points {
		if p := r.points[(r.next+i)%len(r.points)]; p.at >= since {
			out = append(out, p)
		}
	}
	return out
}

// lagHistory is the sampled lag of every standby.
type lagHistory struct {
	// state is the installation as the agent's shared reader has it.
	state func() (status.Status, error)
	// size and maxSeries bound the history (lagPoints, lagMaxSeries).
	size, maxSeries int

	mu     sync.Mutex
	series map[lagKey]*lagRing
	// truncatedAt is when a series was last dropped for room: the
	// history is incomplete for a window after it.
	truncatedAt int64
}

func newLagHistory(state func() (status.Status, error)) *lagHistory {
	return &lagHistory{state: state, size: lagPoints, maxSeries: lagMaxSeries, series: map[lagKey]*lagRing{}}
}

// run samples every lagInterval until ctx ends. A read that fails leaves
// a gap: nothing is known then.
func (h *lagHistory) run(ctx context.Context) error {
	return every(ctx, lagInterval, func() {
		st, err := h.state()
		if err != nil {
			return
		}
		at := st.Time
		if at.IsZero() {
			at = time.Now()
		}
		h.sample(standbyLags(st), at)
	})
}

// standbySample is what one standby reported at one sample.
type standbySample struct {
	key   lagKey
	point lagPoint // without its time
}

// standbyLags are the lags of the standbys in st: every site but the
// active one of each resource that holds data, in adopted groups, as the
// replication metrics count them. A standby whose lag is not known
// (down, its primary gone) is a point without lag.
func standbyLags(st status.Status) []standbySample {
	var out []standbySample
	for _, g := range st.Groups {
		if g.ActiveSite == "" {
			continue
		}
		for _, r := range g.Resources {
			if r.Class != string(config.ClassData) {
				continue
			}
			for _, s := range r.Sites {
				if s.Site == g.ActiveSite {
					continue
				}
				var p lagPoint
				if s.LagSeconds != nil {
					p.lag, p.flags = *s.LagSeconds, p.flags|lagKnown
				}
				if s.LagBytes != nil {
					p.bytes, p.flags = *s.LagBytes, p.flags|bytesKnown
				}
				if s.Role == status.RoleStandby && s.Streaming {
					p.flags |= lagStreaming
				}
				out = append(out, standbySample{key: lagKey{g.Name, r.Name, s.Site}, point: p})
			}
		}
	}
	return out
}

// sample records the standbys' lag at at, and forgets the standbys not
// sampled within the window (a resource or site since removed).
func (h *lagHistory) sample(samples []standbySample, at time.Time) {
	ms := at.UnixMilli()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range samples {
		r, ok := h.series[s.key]
		if !ok {
			if len(h.series) >= h.maxSeries {
				h.dropOldest()
				h.truncatedAt = ms
			}
			r = &lagRing{}
			h.series[s.key] = r
		}
		if ms <= r.last() {
			continue // the same reading again
		}
		p := s.point
		p.at = ms
		r.add(p, h.size)
	}
	cut := ms - h.window().Milliseconds()
	for k, r := range h.series {
		if r.last() < cut {
			delete(h.series, k)
		}
	}
}

// window is how long the history reaches back.
func (h *lagHistory) window() time.Duration { return time.Duration(h.size) * lagInterval }

// dropOldest drops the least recently sampled series (of those sampled
// alike, the first by name, so that the choice does not depend on the
// map's order).
func (h *lagHistory) dropOldest() {
	var oldest lagKey
	var at int64
	first := true
	for k, r := range h.series {
		l := r.last()
		if first || l < at || (l == at && compareLagKeys(k, oldest) < 0) {
			oldest, at, first = k, l, false
		}
	}
	delete(h.series, oldest)
}

func compareLagKeys(a, b lagKey) int {
	return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.resource, b.resource), cmp.Compare(a.site, b.site))
}

// view is the document of group's standbys at now, their points within
// the window, oldest first; truncated says series were dropped for room
// within it.
func (h *lagHistory) view(answeredBy string, g *config.Group, now time.Time) jsonview.LagHistory {
	cut := now.Add(-h.window()).UnixMilli()
	var maxLoss *float64
	if g.MaxDataLoss != nil {
		s := g.MaxDataLoss.D().Seconds()
		maxLoss = &s
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var keys []lagKey
	for k := range h.series {
		if k.group == g.Name {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compareLagKeys)
	series := []jsonview.LagSeries{}
	for _, k := range keys {
		s := jsonview.LagSeries{Group: k.group, Resource: k.resource, Site: k.site, MaxDataLossSeconds: maxLoss, Points: []jsonview.LagPoint{}}
		for _, p := range h.series[k].ordered(cut) {
			jp := jsonview.LagPoint{At: time.UnixMilli(p.at).UTC(), Streaming: p.flags&lagStreaming != 0}
			if p.flags&lagKnown != 0 {
				lag := p.lag
				jp.LagSeconds = &lag
			}
			if p.flags&bytesKnown != 0 {
				b := p.bytes
				jp.LagBytes = &b
			}
			s.Points = append(s.Points, jp)
		}
		series = append(series, s)
	}
	truncated := h.truncatedAt != 0 && h.truncatedAt >= cut
	return jsonview.LagHistoryOf(answeredBy, lagInterval, h.window(), truncated, series)
}

// handleLag answers with one group's lag history: GET /v1/lag?group=G.
func (srv *apiServer) handleLag(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("group")
	if name == "" {
		writeError(w, http.StatusBadRequest, errors.New("name the group: /v1/lag?group=GROUP"))
		return
	}
	g, ok := srv.topo.Group(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("unknown group %q (groups: %s)", name, groupNames(srv.topo.Groups)))
		return
	}
	writeJSON(w, http.StatusOK, srv.lags.view(srv.site.Name, g, srv.now()))
}
