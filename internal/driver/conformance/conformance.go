// Package conformance owns the cases every data resource type must pass,
// on real servers, through resource.Actor alone: the promises a plan
// builds on. A fence is verified, not requested; a catch-up waits for the
// fenced end, or fails in time and changes nothing; a promotion is proven
// by a write; a rejoin follows the new primary and reports exactly what
// only the old one had; an unfence rolls a fence back. A driver's test
// supplies a Fixture (two servers and the few database operations the
// cases need) and calls Run.
package conformance

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/testbed"
)

// Sites of the pair every fixture provides.
const (
	SiteA = "a" // the primary when Run starts
	SiteB = "b" // its standby, streaming from it
)

// Fixture is a pair of real servers of one type and what the cases need
// to know of its databases. Every database operation works as the
// application would: an account without administrative rights, over the
// network, one transaction per call.
type Fixture struct {
	// Type is the resource type under test; it must implement
	// resource.Steps.
	Type resource.Type
	// Settings holds the type's settings of sites "a" and "b", as its
	// Config().New returns them, every path absolute. Run prepares and
	// checks them with the type's Config, as config.Load does, so the
	// pair is a valid topology. When Run starts, the server of a runs
	// as the primary and that of b as a standby streaming from it.
	Settings map[string]any
	// End is the key of the Fence output that says where the fenced
	// primary's writes end (a WAL position, a GTID).
	End string

	// Write commits row id at site, or returns the error with which the
	// server refused it (stopped, read-only, in recovery). It gives up
	// when ctx ends.
	Write func(ctx context.Context, site string, id int) error
	// Rows returns the ids of the rows at site, in ascending order. It
	// must work on a standby.
	Rows func(ctx context.Context, site string) ([]int, error)
	// Diverge cuts b off from a: from its return on, what a commits b
	// never receives, and b stays a standby that can be promoted (stop
	// its replication, say). The caller commits the divergent
	// transactions with Write.
	Diverge func(ctx context.Context) error
	// Beyond returns a copy of fenced, the output of a Fence, whose end
	// position lies past anything the fenced primary wrote or will
	// write in the test: no standby can catch up to it.
	Beyond func(fenced map[string]string) map[string]string
	// CheckLost checks, with t.Error, that the rejoin of a diverged old
	// primary stated exactly what it lost, in the type's own terms: what
	// the type can count exactly it must state exactly.
	CheckLost func(t testing.TB, lost Lost)
}

// Lost is what the divergence case knows of the writes it lost: K
// transactions (one row each) committed at a after Diverge, then a
// fenced, b promoted and a rejoined to b, with the outputs of those steps.
type Lost struct {
	K        int
	Fenced   map[string]string // Fence at a, after the K transactions
	Promoted map[string]string // Promote at b
	Rejoined map[string]string // Rejoin at a, to b
}

// Timeouts of the cases. None is a pause: each bounds a wait on a
// condition.
const (
	// caseTimeout bounds each case.
	caseTimeout = 3 * time.Minute
	// opTimeout bounds one Write or Rows.
	opTimeout = 10 * time.Second
	// arriveTimeout bounds the wait for a row to reach a standby; a
	// standby whose primary restarted may take a few seconds to
	// reconnect (PostgreSQL retries every 5 s).
	arriveTimeout = 30 * time.Second
	// hopelessWait is the deadline given to a catch-up that cannot
	// succeed; it must return within hopelessReturn.
	hopelessWait   = 1500 * time.Millisecond
	hopelessReturn = 3 * time.Second
	// divergedK is how many transactions the divergence case loses.
	divergedK = 5
)

// Run runs the cases against f, in order, on the one pair: each starts
// where the one before left the servers, as the steps of plans do. A case
// that failed but ran to its end left them as the next one expects; once
// one stops half-way (a step failed that the rest of it needed), the
// cases after it are skipped, as they would start from an unknown state.
func Run(t *testing.T, f Fixture) {
	s := newSuite(t, f)
	cases := []struct {
		name string
		run  func(*testing.T, context.Context)
	}{
		{"fence is verified", s.fence},
		{"catch-up waits for the fenced end", s.catchUp},
		{"unfence rolls the fence back", s.unfence},
		{"promote is proven by a write", s.promote},
		{"rejoin follows the new primary", s.rejoin},
		{"rejoin after a divergence reports what was lost", s.diverged},
	}
	stopped := "" // the case that stopped half-way
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if stopped != "" {
				t.Skipf("skipped: case %q stopped half-way, and this one would start where it left the servers", stopped)
			}
			ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
			defer cancel()
			began := time.Now()
			stopped = c.name
			c.run(t, ctx) // FailNow ends the goroutine here
			stopped = ""
			t.Logf("case took %s", since(began))
		})
	}
}

// suite is the state the cases share: the topology, and every write
// tried, to check after each step that no acknowledged write went
// missing and no refused one appeared.
type suite struct {
	f     Fixture
	g     *config.Group
	r     *config.Resource
	steps resource.Steps

	nextID int
	// acked are the ids acknowledged, refused those refused; lost are
	// acknowledged ids a rejoin was expected to throw away.
	acked, refused, lost []int
	// fenced is the output of the first Fence at a; beforeFence the ids
	// acknowledged before it.
	fenced      map[string]string
	beforeFence []int
}

// newSuite builds the topology of f: group "conformance" with sites a
// and b, one resource "db" of f.Type, its settings prepared and checked
// by the type's own Config.
func newSuite(t *testing.T, f Fixture) *suite {
	t.Helper()
	for name, missing := range map[string]bool{
		"Type": f.Type == nil, "End": f.End == "", "Write": f.Write == nil, "Rows": f.Rows == nil,
		"Diverge": f.Diverge == nil, "Beyond": f.Beyond == nil, "CheckLost": f.CheckLost == nil,
	} {
		if missing {
			t.Fatalf("conformance fixture: %s is not set", name)
		}
	}
	steps, ok := f.Type.(resource.Steps)
	if !ok {
		t.Fatalf("conformance fixture: type %s has no recovery steps (resource.Steps)", f.Type.Name())
	}
	rt := f.Type.Config()
	r := &config.Resource{Name: "db", Type: f.Type.Name(), Settings: map[string]any{},
		Class: rt.Class, Data: rt.Class == config.ClassData}
	for _, site := range []string{SiteA, SiteB} {
		set, ok := f.Settings[site]
		if !ok {
			t.Fatalf("conformance fixture: no settings for site %s", site)
		}
		if rt.Prepare != nil {
			if errs := rt.Prepare(set, site, ""); len(errs) > 0 {
				t.Fatalf("conformance fixture: settings of site %s: %v", site, errs)
			}
		}
		r.Settings[site] = set
	}
	if rt.Across != nil {
		if errs := rt.Across(r.Settings); len(errs) > 0 {
			t.Fatalf("conformance fixture: settings across sites: %v", errs)
		}
	}
	g := &config.Group{Name: "conformance", Sites: []string{SiteA, SiteB}, Resources: []config.Resource{*r}}
	return &suite{f: f, g: g, r: r, steps: steps, nextID: 1}
}

// (1) Fence is verified, not requested: afterwards a write is refused,
// the output says where the writes end, and a second Fence says the same.
func (s *suite) fence(t *testing.T, ctx context.Context) {
	for range 10 {
		s.write(t, ctx, SiteA)
	}
	s.beforeFence = slices.Clone(s.acked)
	out := s.doFence(t, ctx, SiteA)
	if out[s.f.End] == "" {
		t.Fatalf("Fence(a) = %v: no end position under %q", out, s.f.End)
	}
	s.refuse(t, ctx, SiteA, "a fenced primary")
	again, err := s.actor(t, SiteA).Fence(ctx)
	if err != nil {
		t.Errorf("Fence(a) again: %v, want the first output %v (idempotent)", err, out)
	} else if !maps.Equal(out, again) {
		t.Errorf("Fence(a) again = %v, want the first output %v (idempotent)", again, out)
	}
	s.refuse(t, ctx, SiteA, "a primary fenced twice")
	s.fenced = out
}

// (2) CatchUp waits for the fenced end: b then holds every write
// acknowledged before the fence. Asked for a position it cannot reach, it
// fails when its context ends, not later, and leaves b a standby.
func (s *suite) catchUp(t *testing.T, ctx context.Context) {
	beyond := s.f.Beyond(s.fenced)
	if beyond[s.f.End] == "" || beyond[s.f.End] == s.fenced[s.f.End] {
		t.Fatalf("Beyond(%v) = %v: want another end position under %q", s.fenced, beyond, s.f.End)
	}
	s.hopelessCatchUp(t, ctx, beyond, "past all a wrote")
	s.refuse(t, ctx, SiteB, "a standby whose catch-up failed")

	s.doCatchUp(t, ctx, SiteB, s.fenced)
	rows := s.rows(t, ctx, SiteB)
	if missing := without(s.beforeFence, rows); len(missing) > 0 {
		t.Errorf("after CatchUp(b), b lacks rows %v acknowledged at a before the fence", missing)
	}
	if err := s.actor(t, SiteB).CatchUp(ctx, s.fenced); err != nil {
		t.Errorf("CatchUp(b) again (idempotent): %v", err)
	}
	s.refuse(t, ctx, SiteB, "a standby that caught up")
}

// (6, run third, when a fenced primary is at hand) Unfence puts the
// fenced primary back in service: writable at once, and b, left a standby
// by the failed catch-up, streams from it again.
func (s *suite) unfence(t *testing.T, ctx context.Context) {
	s.doUnfence(t, ctx, SiteA)
	s.write(t, ctx, SiteA)
	if err := s.actor(t, SiteA).Unfence(ctx); err != nil {
		t.Errorf("Unfence(a) again (idempotent): %v", err)
	}
	id := s.write(t, ctx, SiteA)
	s.waitRow(t, SiteB, id, "b streams from a again after the unfence")
	s.refuse(t, ctx, SiteB, "the standby of an unfenced primary")
	s.checkAcked(t, ctx, SiteA)
}

// (3) Promote is proven by a write: the standby, caught up to the fenced
// end, accepts a write as soon as Promote returns, and again after a
// second Promote. The old primary stays fenced.
func (s *suite) promote(t *testing.T, ctx context.Context) {
	s.write(t, ctx, SiteA)
	out := s.doFence(t, ctx, SiteA)
	s.doCatchUp(t, ctx, SiteB, out)
	s.doPromote(t, ctx, SiteB)
	s.write(t, ctx, SiteB)
	if _, err := s.actor(t, SiteB).Promote(ctx); err != nil {
		t.Errorf("Promote(b) again (idempotent): %v", err)
	}
	s.write(t, ctx, SiteB)
	s.refuse(t, ctx, SiteA, "the old primary after the promotion")
	s.checkAcked(t, ctx, SiteB)
}

// (4) Rejoin makes the old primary a standby of the new one: what b
// commits arrives at a, a refuses writes, nothing is reported lost after
// a clean switchover, and a second Rejoin changes nothing.
func (s *suite) rejoin(t *testing.T, ctx context.Context) {
	out := s.doRejoin(t, ctx, SiteA, SiteB)
	if lost := out[plan.OutputDataLost]; lost != "" {
		t.Errorf("Rejoin(a) after a clean switchover reports %s = %q, want nothing lost", plan.OutputDataLost, lost)
	}
	id := s.write(t, ctx, SiteB)
	s.waitRow(t, SiteA, id, "a follows b after Rejoin(a)")
	s.refuse(t, ctx, SiteA, "a rejoined standby")
	switch again, err := s.actor(t, SiteA).Rejoin(ctx, SiteB); {
	case err != nil:
		t.Errorf("Rejoin(a) again (idempotent): %v", err)
	case again[plan.OutputDataLost] != "":
		t.Errorf("Rejoin(a) again reports %s = %q, want nothing lost", plan.OutputDataLost, again[plan.OutputDataLost])
	}
	id = s.write(t, ctx, SiteB)
	s.waitRow(t, SiteA, id, "a follows b after a second Rejoin(a)")
	s.sameRows(t, ctx)
	s.checkAcked(t, ctx, SiteB)
}

// (5) Rejoin after a divergence: the pair switches back (a primary, b its
// standby), b is cut off, a commits K transactions, a is fenced, b cannot
// catch up and is promoted anyway. Rejoin(a) must then make a follow b,
// say in data_lost what it lost and, in the type's terms, exactly that
// (CheckLost); afterwards a holds exactly b's rows.
func (s *suite) diverged(t *testing.T, ctx context.Context) {
	// Switch back: a is the primary again, b its standby.
	s.write(t, ctx, SiteB)
	back := s.doFence(t, ctx, SiteB)
	s.doCatchUp(t, ctx, SiteA, back)
	s.doPromote(t, ctx, SiteA)
	s.write(t, ctx, SiteA)
	if out := s.doRejoin(t, ctx, SiteB, SiteA); out[plan.OutputDataLost] != "" {
		t.Errorf("Rejoin(b) after switching back reports %s = %q, want nothing lost", plan.OutputDataLost, out[plan.OutputDataLost])
	}
	id := s.write(t, ctx, SiteA)
	s.waitRow(t, SiteB, id, "b follows a after switching back")
	s.sameRows(t, ctx)

	began := time.Now()
	if err := s.f.Diverge(ctx); err != nil {
		t.Fatalf("Diverge: %v", err)
	}
	t.Logf("Diverge: %s", since(began))
	var lostIDs []int
	for range divergedK {
		lostIDs = append(lostIDs, s.write(t, ctx, SiteA))
	}
	s.lost = append(s.lost, lostIDs...)
	fenced := s.doFence(t, ctx, SiteA)
	s.hopelessCatchUp(t, ctx, fenced, "the end of a, which b was cut off from")
	if got := both(lostIDs, s.rows(t, ctx, SiteB)); len(got) > 0 {
		t.Fatalf("b holds rows %v committed at a after Diverge: it was not cut off", got)
	}
	promoted := s.doPromote(t, ctx, SiteB)
	s.write(t, ctx, SiteB)

	rejoined := s.doRejoin(t, ctx, SiteA, SiteB)
	if rejoined[plan.OutputDataLost] == "" {
		t.Errorf("Rejoin(a) of a primary that committed %d transactions b never received reports nothing under %s: %v",
			divergedK, plan.OutputDataLost, rejoined)
	}
	s.f.CheckLost(t, Lost{K: divergedK, Fenced: fenced, Promoted: promoted, Rejoined: rejoined})
	s.refuse(t, ctx, SiteA, "a rejoined after the divergence")
	if again, err := s.actor(t, SiteA).Rejoin(ctx, SiteB); err != nil {
		t.Errorf("Rejoin(a) again (idempotent): %v", err)
	} else {
		t.Logf("Rejoin(a) again: %v", again)
	}
	id = s.write(t, ctx, SiteB)
	s.waitRow(t, SiteA, id, "a follows b after the rejoin of its divergence")
	s.sameRows(t, ctx)
	s.checkAcked(t, ctx, SiteB)
}

// actor returns a fresh actor of the resource at site, as each step of a
// plan gets one.
func (s *suite) actor(t *testing.T, site string) resource.Actor {
	t.Helper()
	a, err := s.steps.Actor(s.g, s.r, site)
	if err != nil {
		t.Fatalf("actor at %s: %v", site, err)
	}
	return a
}

func (s *suite) doFence(t *testing.T, ctx context.Context, site string) map[string]string {
	t.Helper()
	began := time.Now()
	out, err := s.actor(t, site).Fence(ctx)
	if err != nil {
		t.Fatalf("Fence(%s): %v", site, err)
	}
	t.Logf("Fence(%s): %s: %v", site, since(began), out)
	return out
}

func (s *suite) doCatchUp(t *testing.T, ctx context.Context, site string, fenced map[string]string) {
	t.Helper()
	began := time.Now()
	if err := s.actor(t, site).CatchUp(ctx, fenced); err != nil {
		t.Fatalf("CatchUp(%s, %s): %v", site, fenced[s.f.End], err)
	}
	t.Logf("CatchUp(%s, %s): %s", site, fenced[s.f.End], since(began))
}

func (s *suite) doPromote(t *testing.T, ctx context.Context, site string) map[string]string {
	t.Helper()
	began := time.Now()
	out, err := s.actor(t, site).Promote(ctx)
	if err != nil {
		t.Fatalf("Promote(%s): %v", site, err)
	}
	t.Logf("Promote(%s): %s: %v", site, since(began), out)
	return out
}

func (s *suite) doRejoin(t *testing.T, ctx context.Context, site, primary string) map[string]string {
	t.Helper()
	began := time.Now()
	out, err := s.actor(t, site).Rejoin(ctx, primary)
	if err != nil {
		t.Fatalf("Rejoin(%s, %s): %v", site, primary, err)
	}
	t.Logf("Rejoin(%s, %s): %s: %v", site, primary, since(began), out)
	return out
}

func (s *suite) doUnfence(t *testing.T, ctx context.Context, site string) {
	t.Helper()
	began := time.Now()
	if err := s.actor(t, site).Unfence(ctx); err != nil {
		t.Fatalf("Unfence(%s): %v", site, err)
	}
	t.Logf("Unfence(%s): %s", site, since(began))
}

// hopelessCatchUp asks b to catch up to fenced, which it cannot reach,
// with a short deadline: CatchUp must fail, and return soon after the
// deadline.
func (s *suite) hopelessCatchUp(t *testing.T, ctx context.Context, fenced map[string]string, what string) {
	t.Helper()
	short, cancel := context.WithTimeout(ctx, hopelessWait)
	defer cancel()
	began := time.Now()
	err := s.actor(t, SiteB).CatchUp(short, fenced)
	took := time.Since(began)
	t.Logf("CatchUp(b, %s) with a %s deadline: %s: %v", fenced[s.f.End], hopelessWait, since(began), err)
	if err == nil {
		t.Errorf("CatchUp(b) to %s (%s) succeeded", fenced[s.f.End], what)
	}
	if took > hopelessReturn {
		t.Errorf("CatchUp(b) to %s (%s) returned after %s with a %s deadline: want within %s",
			fenced[s.f.End], what, took.Round(time.Millisecond), hopelessWait, hopelessReturn)
	}
}

// write commits a new row at site, which must accept it, and returns its
// id.
func (s *suite) write(t *testing.T, ctx context.Context, site string) int {
	t.Helper()
	id := s.nextID
	s.nextID++
	wctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := s.f.Write(wctx, site, id); err != nil {
		t.Fatalf("write row %d at %s: %v", id, site, err)
	}
	s.acked = append(s.acked, id)
	return id
}

// refuse tries a write at site, which must refuse it; what is refused
// must never show up later (checkAcked).
func (s *suite) refuse(t *testing.T, ctx context.Context, site, what string) {
	t.Helper()
	id := s.nextID
	s.nextID++
	wctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	s.refused = append(s.refused, id)
	err := s.f.Write(wctx, site, id)
	if err == nil {
		t.Errorf("%s (%s) accepted a write (row %d)", site, what, id)
		return
	}
	t.Logf("%s (%s) refused a write: %v", site, what, err)
}

func (s *suite) rows(t *testing.T, ctx context.Context, site string) []int {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	rows, err := s.f.Rows(rctx, site)
	if err != nil {
		t.Fatalf("rows at %s: %v", site, err)
	}
	return rows
}

// waitRow waits until row id is at site.
func (s *suite) waitRow(t *testing.T, site string, id int, what string) {
	t.Helper()
	began := time.Now()
	var rows []int
	var err error
	if !testbed.Poll(arriveTimeout, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
		defer cancel()
		rows, err = s.f.Rows(ctx, site)
		return err == nil && slices.Contains(rows, id)
	}) {
		t.Fatalf("%s: row %d did not arrive at %s within %s (last read: %d rows, %v)", what, id, site, arriveTimeout, len(rows), err)
	}
	t.Logf("row %d arrived at %s after %s", id, site, since(began))
}

// sameRows checks that a and b hold the same rows; the caller has waited
// for the last write to reach the standby.
func (s *suite) sameRows(t *testing.T, ctx context.Context) {
	t.Helper()
	a, b := s.rows(t, ctx, SiteA), s.rows(t, ctx, SiteB)
	if !slices.Equal(a, b) {
		t.Errorf("a and b hold different rows: only at a %v, only at b %v", without(a, b), without(b, a))
	}
}

// checkAcked checks that the primary at site holds every acknowledged
// write that was not meant to be lost, and no refused one.
func (s *suite) checkAcked(t *testing.T, ctx context.Context, site string) {
	t.Helper()
	rows := s.rows(t, ctx, site)
	if missing := without(without(s.acked, s.lost), rows); len(missing) > 0 {
		t.Errorf("the primary at %s lacks acknowledged rows %v", site, missing)
	}
	if extra := both(s.refused, rows); len(extra) > 0 {
		t.Errorf("the primary at %s holds rows %v whose writes were refused", site, extra)
	}
	if extra := both(s.lost, rows); len(extra) > 0 {
		t.Errorf("the primary at %s holds rows %v that were committed only at the diverged old primary", site, extra)
	}
}

// without returns the ids of xs not in ys.
func without(xs, ys []int) []int {
	var out []int
	for _, x := range xs {
		if !slices.Contains(ys, x) {
			out = append(out, x)
		}
	}
	return out
}

// both returns the ids of xs that are in ys.
func both(xs, ys []int) []int {
	var out []int
	for _, x := range xs {
		if slices.Contains(ys, x) {
			out = append(out, x)
		}
	}
	return out
}

func since(t time.Time) string { return fmt.Sprint(time.Since(t).Round(time.Millisecond)) }
