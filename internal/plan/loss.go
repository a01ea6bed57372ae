package plan

import (
	"slices"
	"strings"
)

// What a failover lost is found later: a failover rejoins nothing, and
// only the rejoin of its old site (by a reprotect) can tell what existed
// only there. FailoverLoss decides which failover a run's rejoins tell
// about, and what it lost; the engine writes it onto that failover.

// Loss is what a failover lost, as the rejoins of its old site found it.
type Loss struct {
	// Failover is the failover's run ID; Site is its old site, rejoined.
	Failover string
	Site     string
	// DataLost is what existed only at Site, in the resource types' terms;
	// "" when nothing did.
	DataLost string
}

// RejoinedSites lists, in plan order, the sites at which every rejoin
// step of r is done.
func (r *Run) RejoinedSites() []string {
	var sites []string
	pending := map[string]bool{}
	for i, s := range r.Plan.Steps {
		if s.Kind != Rejoin {
			continue
		}
		if !slices.Contains(sites, s.Site) {
			sites = append(sites, s.Site)
		}
		if i >= len(r.Steps) || r.Steps[i].State != StepDone {
			pending[s.Site] = true
		}
	}
	return slices.DeleteFunc(sites, func(s string) bool { return pending[s] })
}

// FailoverLoss says which failover run's rejoins of site complete the
// finding of, and what that failover lost. history is the group's runs
// (run itself may be among them, as last stored).
//
// The failover is the last run of the group, up to run, that changed
// site's part: made it active, or moved the group away from it. Only when
// that run is a failover away from site, done and still without a verdict
// (DataLostBy), is there something to tell: once site was made active
// again, or left in a switchover, what a failover left there was settled
// before, and a rejoin cannot see it any more. ok is false too when run
// has not finished rejoining site.
//
// The finding gathers every rejoin of site since that failover, in the
// earlier runs and in run: a rejoin tried again reports no loss the second
// time, so a reprotect that rewound and then failed must not have its
// finding forgotten by the next one.
func FailoverLoss(history []Run, run Run, site string) (Loss, bool) {
	if !slices.Contains(run.RejoinedSites(), site) {
		return Loss{}, false
	}
	runs := slices.DeleteFunc(slices.Clone(history), func(r Run) bool {
		return r.ID == run.ID || r.Group != run.Group || r.Started.After(run.Started)
	})
	runs = append(runs, run)
	slices.SortStableFunc(runs, func(a, b Run) int { return a.Started.Compare(b.Started) })
	last := -1
	for i := range runs {
		if runs[i].moved(site) {
			last = i
		}
	}
	if last < 0 {
		return Loss{}, false
	}
	f := runs[last]
	if f.ID == run.ID || f.Plan.Action != Failover || f.Plan.From != site || f.Plan.To == site || !f.Done() || f.DataLostBy != "" {
		return Loss{}, false
	}
	var lost []string
	for _, r := range runs[last+1:] {
		for i, s := range r.Plan.Steps {
			if s.Kind != Rejoin || s.Site != site || i >= len(r.Steps) || r.Steps[i].State != StepDone {
				continue
			}
			what := r.Steps[i].Output[OutputDataLost]
			if what == "" {
				continue
			}
			l := s.Resource + " at " + s.Site + ": " + what
			if r.ID != run.ID {
				l += " (found by run " + r.ID + ")"
			}
			lost = append(lost, l)
		}
	}
	return Loss{Failover: f.ID, Site: site, DataLost: strings.Join(lost, "; ")}, true
}

// moved says whether r made site the group's active site or moved the
// group away from it.
func (r *Run) moved(site string) bool {
	switch {
	case r.Plan.Action == Drill || (r.Plan.From != site && r.Plan.To != site):
		return false
	case r.Plan.Action == Failover && r.Plan.From == r.Plan.To:
		// A recovery where the group already was, after a force: the
		// record was written with the run, which has no activate step.
		return true
	}
	for i, s := range r.Plan.Steps {
		if s.Kind == Activate {
			return i < len(r.Steps) && r.Steps[i].State == StepDone
		}
	}
	return false
}
