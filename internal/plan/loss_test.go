package plan

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// moveRun is a run of action from → to started at minute t, whose
// activate step is done when activated, in state.
func moveRun(id string, t int, action Action, from, to string, activated bool, state string) Run {
	p := Plan{Group: "webshop", Action: action, From: from, To: to,
		Steps: []Step{{ID: "activate@" + to, Kind: Activate, Site: to}}}
	r := NewRun(id, "operator", Request{Action: action}, p, time.Unix(int64(t)*60, 0))
	if activated {
		r.Steps[0].State = StepDone
	}
	r.State = state
	return r
}

// rejoin is one rejoin step of a run: its resource, site, state and the
// data_lost it reported.
type rejoin struct {
	resource, site, state, lost string
}

// reprotectRun is a reprotect of a group active at active, started at
// minute t, with its rejoin steps.
func reprotectRun(id string, t int, active, state string, rejoins ...rejoin) Run {
	p := Plan{Group: "webshop", Action: Reprotect, From: active, To: active}
	for _, j := range rejoins {
		p.Steps = append(p.Steps, Step{ID: "rejoin:" + j.resource + "@" + j.site, Kind: Rejoin, Resource: j.resource, Site: j.site})
	}
	r := NewRun(id, "operator", Request{Action: Reprotect}, p, time.Unix(int64(t)*60, 0))
	for i, j := range rejoins {
		r.Steps[i].State = j.state
		if j.lost != "" {
			r.Steps[i].Output = map[string]string{OutputDataLost: j.lost}
		}
	}
	r.State = state
	return r
}

func told(r Run, by string) Run {
	r.DataLostBy = by
	return r
}

func TestFailoverLoss(t *testing.T) {
	failover := moveRun("f1", 1, Failover, "brussels", "antwerp", true, RunSucceeded)
	tests := []struct {
		name    string
		history []Run
		run     Run
		site    string
		want    Loss
		ok      bool
	}{{
		name:    "the reprotect finds what existed only at the old site",
		history: []Run{failover},
		run:     reprotectRun("p1", 10, "antwerp", RunRunning, rejoin{"db", "brussels", StepDone, "8192 bytes of WAL"}),
		site:    "brussels",
		want:    Loss{Failover: "f1", Site: "brussels", DataLost: "db at brussels: 8192 bytes of WAL"}, ok: true,
	}, {
		name:    "the reprotect finds nothing: the failover lost nothing it could see",
		history: []Run{failover},
		run:     reprotectRun("p1", 10, "antwerp", RunRunning, rejoin{"db", "brussels", StepDone, ""}, rejoin{"cache", "brussels", StepDone, ""}),
		site:    "brussels",
		want:    Loss{Failover: "f1", Site: "brussels"}, ok: true,
	}, {
		name:    "every resource of the site must have rejoined",
		history: []Run{failover},
		run:     reprotectRun("p1", 10, "antwerp", RunRunning, rejoin{"db", "brussels", StepDone, "8192 bytes of WAL"}, rejoin{"cache", "brussels", StepFailed, ""}),
		site:    "brussels",
	}, {
		name: "a reprotect that failed after rewinding is not forgotten by the next one",
		history: []Run{failover,
			reprotectRun("p1", 10, "antwerp", RunFailed, rejoin{"db", "brussels", StepDone, "8192 bytes of WAL"}, rejoin{"cache", "brussels", StepFailed, ""})},
		run:  reprotectRun("p2", 20, "antwerp", RunRunning, rejoin{"db", "brussels", StepDone, ""}, rejoin{"cache", "brussels", StepDone, "2 keys"}),
		site: "brussels",
		want: Loss{Failover: "f1", Site: "brussels", DataLost: "db at brussels: 8192 bytes of WAL (found by run p1); cache at brussels: 2 keys"}, ok: true,
	}, {
		name:    "the run itself as stored in the history counts once, as it is now",
		history: []Run{failover, reprotectRun("p1", 10, "antwerp", RunRunning, rejoin{"db", "brussels", StepRunning, ""})},
		run:     reprotectRun("p1", 10, "antwerp", RunRunning, rejoin{"db", "brussels", StepDone, "8192 bytes of WAL"}),
		site:    "brussels",
		want:    Loss{Failover: "f1", Site: "brussels", DataLost: "db at brussels: 8192 bytes of WAL"}, ok: true,
	}, {
		name:    "a failover already told is not told again",
		history: []Run{told(failover, "p0")},
		run:     reprotectRun("p1", 10, "antwerp", RunRunning, rejoin{"db", "brussels", StepDone, ""}),
		site:    "brussels",
	}, {
		name:    "a failover still going is not told",
		history: []Run{moveRun("f1", 1, Failover, "brussels", "antwerp", true, RunRunning)},
		run:     reprotectRun("p1", 10, "antwerp", RunRunning, rejoin{"db", "brussels", StepDone, ""}),
		site:    "brussels",
	}, {
		name:    "a rolled-back failover moved nothing and lost nothing",
		history: []Run{moveRun("f1", 1, Failover, "brussels", "antwerp", false, RunRolledBack)},
		run:     reprotectRun("p1", 10, "antwerp", RunRunning, rejoin{"db", "brussels", StepDone, ""}),
		site:    "brussels",
	}, {
		name: "an old failover, settled since brussels was active again, is not told by a later rejoin",
		history: []Run{failover,
			moveRun("s1", 5, Switchover, "antwerp", "brussels", true, RunSucceeded)},
		run:  moveRun("s2", 10, Switchover, "brussels", "antwerp", true, RunRunning),
		site: "brussels",
	}, {
		name:    "a switchover's own rejoin of the site it left tells no failover",
		history: []Run{failover},
		run: func() Run {
			r := moveRun("s1", 10, Switchover, "antwerp", "brussels", true, RunRunning)
			r.Plan.Steps = append(r.Plan.Steps, Step{ID: "rejoin:db@antwerp", Kind: Rejoin, Resource: "db", Site: "antwerp"})
			r.Steps = append(r.Steps, StepState{State: StepDone})
			return r
		}(),
		site: "antwerp",
	}, {
		name: "three sites: each rejoined site tells the failover that left it",
		history: []Run{failover,
			moveRun("f2", 5, Failover, "antwerp", "frankfurt", true, RunSucceeded)},
		run:  reprotectRun("p1", 10, "frankfurt", RunRunning, rejoin{"db", "brussels", StepDone, "1 MB"}, rejoin{"db", "antwerp", StepDone, ""}),
		site: "brussels",
		want: Loss{Failover: "f1", Site: "brussels", DataLost: "db at brussels: 1 MB"}, ok: true,
	}, {
		name: "three sites: the second failover",
		history: []Run{failover,
			moveRun("f2", 5, Failover, "antwerp", "frankfurt", true, RunSucceeded)},
		run:  reprotectRun("p1", 10, "frankfurt", RunRunning, rejoin{"db", "brussels", StepDone, "1 MB"}, rejoin{"db", "antwerp", StepDone, ""}),
		site: "antwerp",
		want: Loss{Failover: "f2", Site: "antwerp"}, ok: true,
	}, {
		name:    "a forced recovery where the group was lost nothing at another site",
		history: []Run{moveRun("f1", 1, Failover, "antwerp", "antwerp", false, RunSucceeded)},
		run:     reprotectRun("p1", 10, "antwerp", RunRunning, rejoin{"db", "brussels", StepDone, ""}),
		site:    "brussels",
	}, {
		name: "runs of other groups and later runs do not count",
		history: []Run{failover, func() Run {
			r := moveRun("x", 5, Switchover, "antwerp", "brussels", true, RunSucceeded)
			r.Group = "news"
			return r
		}(), moveRun("later", 20, Switchover, "antwerp", "brussels", true, RunSucceeded)},
		run:  reprotectRun("p1", 10, "antwerp", RunRunning, rejoin{"db", "brussels", StepDone, ""}),
		site: "brussels",
		want: Loss{Failover: "f1", Site: "brussels"}, ok: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FailoverLoss(tt.history, tt.run, tt.site)
			if ok != tt.ok || !cmp.Equal(got, tt.want) {
				t.Errorf("FailoverLoss = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestRejoinedSites(t *testing.T) {
	r := reprotectRun("p1", 10, "frankfurt", RunRunning,
		rejoin{"db", "brussels", StepDone, ""}, rejoin{"db", "antwerp", StepFailed, ""}, rejoin{"app", "brussels", StepDone, ""}, rejoin{"app", "antwerp", StepDone, ""})
	if got, want := r.RejoinedSites(), []string{"brussels"}; !cmp.Equal(got, want) {
		t.Errorf("RejoinedSites = %v, want %v", got, want)
	}
}
