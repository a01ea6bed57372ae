package safety

import (
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

const (
	lease  = time.Second
	margin = 500 * time.Millisecond
	grace  = 10 * time.Second
)

func TestLeaseRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		l := NewLease(lease, grace, start)
		if v := l.Verdict(time.Now()); v != Wait {
			t.Fatalf("a lease never granted, within the startup grace: %v, want Wait", v)
		}
		time.Sleep(grace)
		if v := l.Verdict(time.Now()); v != Fence {
			t.Fatalf("no grant for the whole startup grace: %v, want Fence", v)
		}

		l = NewLease(lease, grace, time.Now())
		l.Refused()
		if v := l.Verdict(time.Now()); v != Fence {
			t.Fatalf("refused by a location that marked it lost: %v, want Fence at once", v)
		}

		l = NewLease(lease, grace, time.Now())
		sent := time.Now()
		time.Sleep(300 * time.Millisecond) // the answer took 300 ms
		l.Granted(sent)
		if left := l.Left(time.Now()); left != 700*time.Millisecond {
			t.Errorf("a grant counts from when the request was sent: %s left, want 700ms", left)
		}
		// A late answer to an older request does not shorten the lease.
		l.Granted(sent.Add(-500 * time.Millisecond))
		if left := l.Left(time.Now()); left != 700*time.Millisecond {
			t.Errorf("an older grant shortened the lease: %s left", left)
		}
		time.Sleep(700*time.Millisecond - time.Nanosecond)
		if v := l.Verdict(time.Now()); v != Serve {
			t.Errorf("just before the end: %v, want Serve", v)
		}
		time.Sleep(time.Nanosecond)
		if v := l.Verdict(time.Now()); v != Fence {
			t.Errorf("at the end: %v, want Fence", v)
		}
	})
}

func TestGranterRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGranter([]string{"brussels", "antwerp"}, lease+margin, time.Now())
		if a := g.Ask("brussels", time.Now()); a != NotReady {
			t.Fatalf("before its marks are loaded: %v, want NotReady", a)
		}
		time.Sleep(2 * lease)
		if s := g.Silent(time.Now(), 0); len(s) != 0 {
			t.Fatalf("marks before its marks were loaded: %v", s)
		}
		g.Load([]string{"antwerp"})
		if a := g.Ask("antwerp", time.Now()); a != Refuse {
			t.Errorf("a site marked before a restart: %v, want Refuse", a)
		}
		// Started 2 s ago and never granted brussels: it counts from its
		// start, which has passed silentFor.
		if s := g.Silent(time.Now(), 0); len(s) != 1 || s[0] != "brussels" {
			t.Errorf("silent: %v, want [brussels]", s)
		}
		// A request slipped in while brussels' resources were probed.
		if a := g.Ask("brussels", time.Now()); a != Grant {
			t.Fatalf("brussels asks: %v, want Grant", a)
		}
		if g.Mark("brussels", time.Now()) {
			t.Fatal("marked a site it has just granted")
		}
		time.Sleep(lease + margin - time.Nanosecond)
		if s := g.Silent(time.Now(), 0); len(s) != 0 {
			t.Errorf("silent before its promise ran out: %v", s)
		}
		if s := g.Silent(time.Now(), 250*time.Millisecond); len(s) != 1 {
			t.Errorf("not a candidate 250 ms before its promise runs out: %v", s)
		}
		if g.Mark("brussels", time.Now()) {
			t.Error("marked before its promise ran out")
		}
		time.Sleep(time.Nanosecond)
		if !g.Mark("brussels", time.Now()) || !g.Marked("brussels") {
			t.Fatal("not marked once its promise ran out")
		}
		if a := g.Ask("brussels", time.Now()); a != Refuse {
			t.Errorf("a marked site asks: %v, want Refuse", a)
		}
		g.Unmarked("brussels", time.Now())
		if a := g.Ask("brussels", time.Now()); a != Grant {
			t.Errorf("after the mark was removed: %v, want Grant", a)
		}
		time.Sleep(lease)
		if s := g.Silent(time.Now(), 0); len(s) != 0 {
			t.Errorf("silent right after the mark was removed: %v", s)
		}
	})
}

// The simulation runs the serve-lease protocol between three locations
// (sites brussels and antwerp, witness frankfurt) on a fake clock, with
// the network, power and agents failing as the chaos suite makes them
// fail. Each location asks every other one for the lease every tenth of
// it, enforces it (an agent every tenth, its watchdog exactly), and marks
// a site lost from the granter's rules; a location's database is
// reachable while its machine runs and it is not fenced.

type location struct {
	name    string
	site    bool // a site has a database; the witness does not
	lease   *Lease
	granter *Granter
	power   bool // the machine runs
	agent   bool // the agent runs (its watchdog runs with the machine)
	fenced  bool
	fenceAt time.Time // the last time its database stopped
	served  []span    // when its database accepted writes
}

type span struct{ from, to time.Time }

type sim struct {
	t     *testing.T
	mu    sync.Mutex
	locs  map[string]*location
	cut   map[[2]string]bool    // links cut (both ways)
	loss  map[[2]string]float64 // chance a request on a link is lost
	rnd   *rand.Rand
	marks map[string]map[string]time.Time // site → by → when (the control plane)
	lost  map[string]time.Time            // when a site was first marked by every other location
	// refused and regranted count the answers of the rejoin protocol.
	refused int
}

func link(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

func newSim(t *testing.T, startedAnswering bool) *sim {
	s := &sim{t: t, locs: map[string]*location{}, cut: map[[2]string]bool{}, loss: map[[2]string]float64{},
		rnd: rand.New(rand.NewPCG(1, 2)), marks: map[string]map[string]time.Time{}, lost: map[string]time.Time{}}
	now := time.Now()
	names := []string{"brussels", "antwerp", "frankfurt"}
	for _, n := range names {
		var others []string
		for _, o := range names {
			if o != n && o != "frankfurt" {
				others = append(others, o)
			}
		}
		l := &location{name: n, site: n != "frankfurt", lease: NewLease(lease, grace, now), granter: NewGranter(others, lease+margin, now), power: true, agent: true}
		if startedAnswering {
			l.granter.Load(nil)
		}
		s.locs[n] = l
	}
	return s
}

// reaches says whether a request from a to b gets through now (s.mu held).
func (s *sim) reaches(a, b string) bool {
	if s.cut[link(a, b)] || !s.locs[a].power || !s.locs[b].power {
		return false
	}
	return s.rnd.Float64() >= s.loss[link(a, b)]
}

// quorum says whether loc and the locations it reaches make a majority:
// only then can it store a mark in the control plane (s.mu held).
func (s *sim) quorum(loc string) bool {
	n := 0
	for o, l := range s.locs {
		if o == loc || (l.power && !s.cut[link(loc, o)]) {
			n++
		}
	}
	return 2*n > len(s.locs)
}

// run starts every location's loops until stop is closed.
func (s *sim) run(stop chan struct{}) {
	for _, l := range s.locs {
		go s.renew(l, stop)
		go s.enforce(l, stop)
		go s.markLoop(l, stop)
	}
}

func every(d time.Duration, stop chan struct{}, f func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		f()
	}
}

func (s *sim) renew(l *location, stop chan struct{}) {
	every(lease/10, stop, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !l.power || !l.agent {
			return
		}
		sent := time.Now()
		for _, p := range s.locs {
			if p == l || !s.reaches(l.name, p.name) || !p.agent || !s.reaches(p.name, l.name) {
				continue
			}
			switch p.granter.Ask(l.name, sent) {
			case Grant:
				l.lease.Granted(sent)
			case Refuse:
				l.lease.Refused()
				s.refused++
				// The mark's author removes it (no run depends on it here)
				// and grants from then on.
				delete(s.marks[l.name], p.name)
				p.granter.Unmarked(l.name, time.Now())
			}
		}
	})
}

// enforce is the watchdog: it fences the moment the lease runs out (the
// agent's own loop would do it within a tenth of the lease), and starts
// the database again once the lease is back.
func (s *sim) enforce(l *location, stop chan struct{}) {
	if !l.site {
		return
	}
	every(lease/100, stop, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		now := time.Now()
		if !l.power {
			return
		}
		switch l.lease.Verdict(now) {
		case Fence:
			if !l.fenced {
				l.fenced, l.fenceAt = true, now
			}
		case Serve:
			if l.agent {
				l.fenced = false
			}
		}
		if !l.fenced && l.lease.Valid(now) {
			if n := len(l.served); n > 0 && now.Sub(l.served[n-1].to) <= lease/100 {
				l.served[n-1].to = now
			} else {
				l.served = append(l.served, span{now, now})
			}
		}
	})
}

func (s *sim) markLoop(l *location, stop chan struct{}) {
	every(lease/10, stop, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		now := time.Now()
		if !l.power || !l.agent {
			return
		}
		silent := map[string]bool{}
		for _, site := range l.granter.Silent(now, 0) {
			silent[site] = true
		}
		for _, site := range []string{"brussels", "antwerp"} {
			target := s.locs[site]
			if site == l.name {
				continue
			}
			if !l.granter.Marked(site) {
				if !silent[site] || (!s.cut[link(l.name, site)] && target.power && !target.fenced) {
					continue // not silent, or its database answers from here
				}
				if !l.granter.Mark(site, now) {
					continue
				}
			}
			if _, stored := s.marks[site][l.name]; stored || !s.quorum(l.name) {
				continue // stored once this location reaches a quorum
			}
			if s.marks[site] == nil {
				s.marks[site] = map[string]time.Time{}
			}
			s.marks[site][l.name] = now
			if len(s.marks[site]) == len(s.locs)-1 {
				if _, ok := s.lost[site]; !ok {
					s.lost[site] = now
				}
				// The invariant: a site is lost only once it has fenced,
				// and its lease ran out at least the margin before.
				if v := target.lease.Left(now); v > -margin {
					s.t.Errorf("%s declared lost at %s while its lease ran %s more", site, now.Format("05.000"), v+margin)
				}
				if target.power && target.site && !target.fenced {
					s.t.Errorf("%s declared lost while its database still runs", site)
				}
			}
		}
	})
}

func TestServeLeaseProtocol(t *testing.T) {
	type change func(s *sim)
	cutOff := func(site string) change {
		return func(s *sim) {
			for o := range s.locs {
				if o != site {
					s.cut[link(site, o)] = true
				}
			}
		}
	}
	heal := func(s *sim) { clear(s.cut); clear(s.loss) }
	powerCut := func(site string) change {
		return func(s *sim) { s.locs[site].power, s.locs[site].agent = false, false }
	}
	powerBack := func(site string) change {
		return func(s *sim) {
			l := s.locs[site]
			l.power, l.agent, l.fenced = true, true, true // its database comes up fenced (boot guard)
			l.lease = NewLease(lease, grace, time.Now())
			var others []string
			for o := range s.locs {
				if o != site && o != "frankfurt" {
					others = append(others, o)
				}
			}
			l.granter = NewGranter(others, lease+margin, time.Now())
			var mine []string
			for marked, by := range s.marks {
				if _, ok := by[site]; ok {
					mine = append(mine, marked)
				}
			}
			l.granter.Load(mine)
		}
	}
	agentDies := func(site string) change { return func(s *sim) { s.locs[site].agent = false } }
	lossy := func(a, b string, p float64) change { return func(s *sim) { s.loss[link(a, b)] = p } }
	type step struct {
		at time.Duration
		do change
	}
	for _, tt := range []struct {
		name  string
		steps []step
		// expectations, from the first step's time
		lost       string // the site every other location marks lost ("" for none)
		lostWithin [2]time.Duration
		fenced     []string // sites whose database stops at some point
		regranted  bool     // a marked site asked again, had its mark removed and serves
	}{
		{name: "healthy", fenced: nil},
		{name: "power cut at brussels", steps: []step{{0, powerCut("brussels")}},
			lost: "brussels", lostWithin: [2]time.Duration{lease + margin - lease/10, lease + margin + 2*lease/10}},
		{name: "brussels cut off, its database still running", steps: []step{{0, cutOff("brussels")}},
			lost: "brussels", lostWithin: [2]time.Duration{lease + margin - lease/10, lease + margin + 2*lease/10}, fenced: []string{"brussels"}},
		{name: "brussels' agent dies, its database runs until the watchdog fences it", steps: []step{{0, agentDies("brussels")}},
			lost: "brussels", lostWithin: [2]time.Duration{lease + margin - lease/10, lease + margin + 2*lease/10}, fenced: []string{"brussels"}},
		{name: "link between the sites cut: the witness keeps both", steps: []step{{0, func(s *sim) { s.cut[link("brussels", "antwerp")] = true }}}},
		{name: "30% loss between the sites", steps: []step{{0, lossy("brussels", "antwerp", 0.3)}}},
		{name: "30% loss on every link", steps: []step{{0, lossy("brussels", "antwerp", 0.3)}, {0, lossy("brussels", "frankfurt", 0.3)}, {0, lossy("antwerp", "frankfurt", 0.3)}}},
		{name: "witness lost", steps: []step{{0, powerCut("frankfurt")}}},
		{name: "witness cut off, then the link between the sites too", steps: []step{{0, cutOff("frankfurt")}, {5 * time.Second, func(s *sim) { s.cut[link("brussels", "antwerp")] = true }}},
			fenced: []string{"brussels", "antwerp"}},
		{name: "brussels cut off, then healed: it asks, is refused, the mark goes, it serves again",
			steps: []step{{0, cutOff("brussels")}, {5 * time.Second, heal}},
			lost:  "brussels", lostWithin: [2]time.Duration{lease + margin - lease/10, lease + margin + 2*lease/10}, fenced: []string{"brussels"}, regranted: true},
		{name: "power back at brussels after it was declared lost",
			steps: []step{{0, powerCut("brussels")}, {3 * time.Second, powerBack("brussels")}},
			lost:  "brussels", lostWithin: [2]time.Duration{lease + margin - lease/10, lease + margin + 2*lease/10}, regranted: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSim(t, true)
				stop := make(chan struct{})
				s.run(stop)
				time.Sleep(3 * lease) // settle: every lease granted
				event := time.Now()
				for _, st := range tt.steps {
					time.Sleep(event.Add(st.at).Sub(time.Now()))
					s.mu.Lock()
					st.do(s)
					s.mu.Unlock()
				}
				time.Sleep(event.Add(20 * time.Second).Sub(time.Now()))
				close(stop)
				synctest.Wait()
				s.mu.Lock()
				defer s.mu.Unlock()
				for site, at := range s.lost {
					if site != tt.lost {
						t.Errorf("%s declared lost at %s", site, at.Sub(event))
					}
				}
				if tt.lost != "" {
					at, ok := s.lost[tt.lost]
					switch d := at.Sub(event); {
					case !ok:
						t.Errorf("%s never declared lost", tt.lost)
					case d < tt.lostWithin[0] || d > tt.lostWithin[1]:
						t.Errorf("%s declared lost %s after the event, want within %v", tt.lost, d, tt.lostWithin)
					}
				}
				for _, name := range []string{"brussels", "antwerp"} {
					l := s.locs[name]
					want := false
					for _, f := range tt.fenced {
						want = want || f == name
					}
					if got := !l.fenceAt.IsZero(); got != want {
						t.Errorf("%s fenced: %v, want %v", name, got, want)
					}
					if want && tt.lost == name {
						// A cut-off primary stops within the lease.
						if d := l.fenceAt.Sub(event); d > lease {
							t.Errorf("%s fenced %s after the event, want within %s", name, d, lease)
						}
					}
				}
				if tt.regranted {
					b := s.locs["brussels"]
					if s.refused == 0 || !b.lease.Valid(time.Now()) || b.fenced {
						t.Errorf("brussels after it came back: refused %d times, lease valid %v, fenced %v", s.refused, b.lease.Valid(time.Now()), b.fenced)
					}
				}
				// Never two databases accepting writes at once while one
				// of them was declared lost.
				if at, ok := s.lost["brussels"]; ok {
					for _, sp := range s.locs["brussels"].served {
						if sp.to.After(at) && sp.from.Before(at) {
							t.Errorf("brussels served across the moment it was declared lost (%s–%s)", sp.from.Sub(event), sp.to.Sub(event))
						}
					}
				}
			})
		})
	}
}
