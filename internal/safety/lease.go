package safety

import (
	"slices"
	"time"
)

// Lease is the serve lease one location holds (docs/design/fencing.md): it
// may serve until the last grant it received, counted from when it sent
// the request, plus the lease's length. It enforces the lease once a
// grant or a refusal came in, or once the startup grace has passed
// without any: the other agents may not be listening yet when a whole
// installation starts.
//
// Times are the machine's monotonic clock; a Lease is not safe for
// concurrent use.
type Lease struct {
	length, grace time.Duration
	started       time.Time
	until         time.Time
	answered      bool
}

// NewLease is the lease of an agent started at now.
func NewLease(length, grace time.Duration, now time.Time) *Lease {
	return &Lease{length: length, grace: grace, started: now}
}

// Granted: a location granted the request sent at sent.
func (l *Lease) Granted(sent time.Time) {
	if until := sent.Add(l.length); until.After(l.until) {
		l.until = until
	}
	l.answered = true
}

// Refused: a location answered that it marked this one lost. The lease is
// not extended, and is enforced at once.
func (l *Lease) Refused() { l.answered = true }

// Enforced says whether an expired lease fences now: after the first
// answer, or after the startup grace.
func (l *Lease) Enforced(now time.Time) bool {
	return l.answered || now.Sub(l.started) >= l.grace
}

// Answered says whether a location answered, granting or refusing.
func (l *Lease) Answered() bool { return l.answered }

// Left is how long the lease still runs (negative once it ran out).
func (l *Lease) Left(now time.Time) time.Duration { return l.until.Sub(now) }

// Valid says whether this location may serve at now.
func (l *Lease) Valid(now time.Time) bool { return now.Before(l.until) }

// Verdict is what a location does with its primaries.
type Verdict int

const (
	// Serve: the lease runs.
	Serve Verdict = iota
	// Wait: the lease never ran and is not enforced yet (startup grace).
	Wait
	// Fence: the lease ran out and is enforced: stop every primary.
	Fence
)

// Verdict at now.
func (l *Lease) Verdict(now time.Time) Verdict {
	switch {
	case l.Valid(now):
		return Serve
	case !l.Enforced(now):
		return Wait
	default:
		return Fence
	}
}

// Granter is what one location promises the others: a grant to a site is
// the promise not to mark it lost until silentFor (serve lease + fence
// margin) after the grant. It marks a site lost only once that has passed
// and none of the site's resources answers (the agent probes them between
// Silent and Mark), and grants it nothing more until the mark is removed
// from the control plane (Unmarked).
//
// Times are the machine's monotonic clock; a Granter is not safe for
// concurrent use.
type Granter struct {
	silentFor time.Duration
	lastGrant map[string]time.Time
	marked    map[string]bool // nil until Load
}

// NewGranter is the granter of an agent started at now, for the sites it
// may mark (a witness is granted but never marked: it runs no database). A location that
// just started may have granted before it stopped: it counts from now, so
// it never marks a site earlier than it promised.
func NewGranter(sites []string, silentFor time.Duration, now time.Time) *Granter {
	g := &Granter{silentFor: silentFor, lastGrant: map[string]time.Time{}}
	for _, s := range sites {
		g.lastGrant[s] = now
	}
	return g
}

// Load sets the marks this location stored before (read from the control
// plane); until then it grants nothing and marks nothing: a location that
// restarts must not forget whom it declared lost.
func (g *Granter) Load(marked []string) {
	g.marked = map[string]bool{}
	for _, s := range marked {
		g.marked[s] = true
	}
}

// Loaded says whether Load was called.
func (g *Granter) Loaded() bool { return g.marked != nil }

// Answer is the reply to a lease request.
type Answer int

const (
	// Grant the lease.
	Grant Answer = iota
	// NotReady: the marks are not loaded yet; the site may ask again.
	NotReady
	// Refuse: this location marked the site lost; the agent tries to
	// remove its mark (if no run depends on it) and grants once it is gone.
	Refuse
)

// Ask answers site's request for the lease at now.
func (g *Granter) Ask(site string, now time.Time) Answer {
	switch {
	case g.marked == nil:
		return NotReady
	case g.marked[site]:
		return Refuse
	}
	if _, ok := g.lastGrant[site]; ok {
		g.lastGrant[site] = now // a witness is granted, but never marked
	}
	return Grant
}

// Silent lists the sites, not marked, that were granted nothing for
// silentFor less lead: candidates to mark once their resources do not
// answer. A lead lets the agent probe the resources while the promise
// runs out, so that the mark is not late by the probe's timeout; Mark
// still waits for the whole silentFor.
func (g *Granter) Silent(now time.Time, lead time.Duration) []string {
	if g.marked == nil {
		return nil
	}
	var out []string
	for s, t := range g.lastGrant {
		if !g.marked[s] && now.Sub(t) >= g.silentFor-lead {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// Mark marks site lost at now, unless it was granted meanwhile (a request
// may come in while its resources are probed). It says whether site is
// marked now.
func (g *Granter) Mark(site string, now time.Time) bool {
	if g.marked == nil {
		return false
	}
	if g.marked[site] {
		return true
	}
	if now.Sub(g.lastGrant[site]) < g.silentFor {
		return false
	}
	g.marked[site] = true
	return true
}

// Declare marks site lost without waiting: a person declared it lost
// (siteflip force). Nothing happens before Load.
func (g *Granter) Declare(site string) {
	if g.marked != nil {
		g.marked[site] = true
	}
}

// Marked says whether this location marked site lost.
func (g *Granter) Marked(site string) bool { return g.marked[site] }

// Unmarked: the mark on site was removed from the control plane at now.
// The site is granted again, and counted silent from now.
func (g *Granter) Unmarked(site string, now time.Time) {
	if g.marked != nil {
		g.marked[site] = false
	}
	g.lastGrant[site] = now
}
