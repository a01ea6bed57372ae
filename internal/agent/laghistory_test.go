package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/status"
)

func TestLagRing(t *testing.T) {
	tests := []struct {
		size, adds int
		want       []int64 // the points' times, oldest first
	}{
		{size: 3, adds: 0, want: []int64{}},
		{size: 3, adds: 2, want: []int64{1, 2}},
		{size: 3, adds: 3, want: []int64{1, 2, 3}},
		{size: 3, adds: 4, want: []int64{2, 3, 4}},
		{size: 3, adds: 8, want: []int64{6, 7, 8}},
		{size: 1, adds: 5, want: []int64{5}},
		{size: lagPoints, adds: 1000, want: seq(1000-lagPoints+1, 1000)},
	}
	for _, tt := range tests {
		var r lagRing
		for i := 1; i <= tt.adds; i++ {
			r.add(lagPoint{at: int64(i)}, tt.size)
		}
		got := []int64{}
		for _, p := range r.ordered(0) {
			got = append(got, p.at)
		}
		if !cmp.Equal(got, tt.want) {
			t.Errorf("ring of %d after %d points: %v, want %v", tt.size, tt.adds, got, tt.want)
		}
		if want := int64(tt.adds); r.last() != want {
			t.Errorf("ring of %d after %d points: last %d", tt.size, tt.adds, r.last())
		}
		if cap(r.points) > max(tt.size, 8) {
			t.Errorf("ring of %d holds room for %d points", tt.size, cap(r.points))
		}
	}
}

func seq(from, to int) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, int64(i))
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// lagStatus is an installation with one adopted group (webshop, active at
// brussels) whose database streams to antwerp and whose standby at
// frankfurt is down, a traffic resource, and a group not yet adopted.
func lagStatus(at time.Time, lag float64) status.Status {
	return status.Status{Time: at, Groups: []status.GroupStatus{
		{Name: "webshop", ActiveSite: "brussels", Resources: []status.ResourceStatus{
			{Name: "db", Class: string(config.ClassData), Sites: []status.ResourceSiteStatus{
				{Site: "brussels", Role: status.RolePrimary, Up: true},
				{Site: "antwerp", Role: status.RoleStandby, Up: true, Streaming: true, LagSeconds: ptr(lag), LagBytes: ptr(int64(4096))},
				{Site: "frankfurt", Role: status.RoleDown, LagUnknown: "its agent does not report"},
			}},
			{Name: "vip", Class: string(config.ClassTraffic), Sites: []status.ResourceSiteStatus{
				{Site: "brussels", Role: status.RolePrimary},
				{Site: "antwerp", Role: status.RoleStandby, Streaming: true},
			}},
		}},
		{Name: "crm", Resources: []status.ResourceStatus{
			{Name: "db", Class: string(config.ClassData), Sites: []status.ResourceSiteStatus{
				{Site: "antwerp", Role: status.RoleStandby, LagSeconds: ptr(1.0)},
			}},
		}},
	}}
}

// The standbys sampled: every site but the active one of a resource that
// holds data, in adopted groups; the lag when it is known.
func TestStandbyLags(t *testing.T) {
	got := standbyLags(lagStatus(time.Unix(0, 0), 0.02))
	want := []standbySample{
		{key: lagKey{"webshop", "db", "antwerp"}, point: lagPoint{lag: 0.02, bytes: 4096, flags: lagKnown | bytesKnown | lagStreaming}},
		{key: lagKey{"webshop", "db", "frankfurt"}, point: lagPoint{}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(standbySample{}, lagKey{}, lagPoint{})); diff != "" {
		t.Errorf("standbyLags (-want +got):\n%s", diff)
	}
}

// A sample of more standbys than there are series drops the least
// recently sampled and says the history is truncated, for a window; a
// standby not sampled for a window is forgotten; the same reading twice
// is one point.
func TestLagHistoryBounds(t *testing.T) {
	h := newLagHistory(nil)
	h.size, h.maxSeries = 3, 2 // a window of 15 s
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	sample := func(s int, sites ...string) {
		var ss []standbySample
		for _, site := range sites {
			ss = append(ss, standbySample{key: lagKey{"g", "db", site}, point: lagPoint{lag: float64(s), flags: lagKnown}})
		}
		h.sample(ss, at(s))
	}
	g := &config.Group{Name: "g"}
	type row struct {
		site string
		lags []float64
	}
	check := func(what string, now int, truncated bool, want ...row) {
		t.Helper()
		doc := h.view("brussels", g, at(now))
		var got []row
		for _, s := range doc.Series {
			r := row{site: s.Site}
			for _, p := range s.Points {
				r.lags = append(r.lags, *p.LagSeconds)
			}
			got = append(got, r)
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(row{})); diff != "" || doc.Truncated != truncated {
			t.Errorf("%s: truncated %v (want %v), series (-want +got):\n%s", what, doc.Truncated, truncated, diff)
		}
	}
	sample(0, "a", "b")
	sample(5, "a", "b")
	sample(5, "a", "b") // the same reading again
	check("two standbys", 5, false, row{"a", []float64{0, 5}}, row{"b", []float64{0, 5}})
	sample(10, "a", "c")
	check("a third standby", 10, true, row{"a", []float64{0, 5, 10}}, row{"c", []float64{10}})
	sample(15, "a", "c")
	sample(20, "a", "c")
	check("the ring full", 20, true, row{"a", []float64{10, 15, 20}}, row{"c", []float64{10, 15, 20}})
	sample(30, "a")
	check("a window after the drop", 30, false, row{"a", []float64{15, 20, 30}}, row{"c", []float64{15, 20}})
	sample(40, "a")
	check("c no longer sampled", 40, false, row{"a", []float64{30, 40}})
	if len(h.series) != 1 {
		t.Errorf("%d series held, want 1", len(h.series))
	}
	if doc := h.view("brussels", &config.Group{Name: "other"}, at(40)); len(doc.Series) != 0 {
		t.Errorf("another group's history: %+v", doc.Series)
	}
}

// The sampler reads every lagInterval and keeps an hour: 720 points per
// standby, oldest first; a read that fails is a gap.
func TestLagHistorySampler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		reads, fail := 0, false
		h := newLagHistory(func() (status.Status, error) {
			mu.Lock()
			defer mu.Unlock()
			reads++
			if fail {
				return status.Status{}, errors.New("no quorum")
			}
			return lagStatus(time.Now(), float64(reads)), nil
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- h.run(ctx) }()
		time.Sleep(2*time.Hour + time.Millisecond)
		mu.Lock()
		fail = true
		mu.Unlock()
		time.Sleep(time.Minute)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		maxLoss := config.Duration(5 * time.Second)
		doc := h.view("antwerp", &config.Group{Name: "webshop", MaxDataLoss: &maxLoss}, time.Now())
		if doc.Kind != jsonview.KindLagHistory || doc.IntervalSeconds != 5 || doc.WindowSeconds != 3600 || doc.AnsweredBy != "antwerp" || doc.Truncated {
			t.Errorf("document: %+v", doc.Header)
		}
		if len(doc.Series) != 2 {
			t.Fatalf("%d series, want antwerp's and frankfurt's", len(doc.Series))
		}
		s := doc.Series[0]
		if s.Site != "antwerp" || s.Resource != "db" || s.MaxDataLossSeconds == nil || *s.MaxDataLossSeconds != 5 {
			t.Errorf("series %s/%s at %s, max loss %v", s.Group, s.Resource, s.Site, s.MaxDataLossSeconds)
		}
		// The last minute failed: 708 points of the hour, 5 s apart, the
		// newest from before the failure.
		if len(s.Points) != lagPoints-12 {
			t.Fatalf("%d points, want %d", len(s.Points), lagPoints-12)
		}
		for i, p := range s.Points {
			if i > 0 && p.At.Sub(s.Points[i-1].At) != lagInterval {
				t.Fatalf("points %d and %d are %v apart", i-1, i, p.At.Sub(s.Points[i-1].At))
			}
			if p.LagSeconds == nil || p.LagBytes == nil || !p.Streaming {
				t.Fatalf("point %d: %+v", i, p)
			}
		}
		if last := *s.Points[len(s.Points)-1].LagSeconds; last != 1440 {
			t.Errorf("the newest point's lag is %v, want that of the 1440th read", last)
		}
		if p := doc.Series[1].Points[0]; p.LagSeconds != nil || p.Streaming {
			t.Errorf("a standby that is down: %+v, want a point without lag", p)
		}
	})
}

// GET /v1/lag: one group's history; the group is required and known.
func TestLagEndpoint(t *testing.T) {
	a, _ := guarded(t)
	maxLoss := config.Duration(5 * time.Second)
	a.topo.Groups = []config.Group{{Name: "webshop", MaxDataLoss: &maxLoss}, {Name: "crm"}}
	t0 := a.now().Add(-time.Minute)
	a.api.lags.sample(standbyLags(lagStatus(t0, 0.25)), t0)
	mux, _, err := a.api.routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		query string
		code  int
		body  string
	}{
		{"?group=webshop", http.StatusOK, `"lag_seconds":0.25`},
		{"?group=crm", http.StatusOK, `"series":[]`},
		{"", http.StatusBadRequest, "name the group"},
		{"?group=nope", http.StatusNotFound, `unknown group \"nope\"`},
	} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, as("vera", "GET", "/v1/lag"+tt.query, ""))
		compact := strings.Join(strings.Fields(w.Body.String()), "")
		if w.Code != tt.code || !strings.Contains(compact, strings.ReplaceAll(tt.body, " ", "")) {
			t.Errorf("GET /v1/lag%s: %d %s; want %d with %s", tt.query, w.Code, w.Body, tt.code, tt.body)
		}
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, as("vera", "GET", "/v1/lag?group=webshop", ""))
	var doc jsonview.LagHistory
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Series) != 2 || doc.Series[0].Site != "antwerp" || *doc.Series[0].MaxDataLossSeconds != 5 ||
		!doc.Series[0].Points[0].At.Equal(t0.Truncate(time.Millisecond)) || *doc.Series[0].Points[0].LagBytes != 4096 {
		t.Errorf("GET /v1/lag?group=webshop: %s", w.Body)
	}
}
