package dashboard

import (
	"time"

	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/plan"
)

// The documents below are what the agents of a lab of two sites and a
// witness send: made with the jsonview types, so that they stay true to
// the real ones.

var t0 = time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func fixtureStatus(answeredBy string, at time.Time) jsonview.Status {
	site := func(name, role string, lat, lon float64, others ...string) jsonview.Site {
		sees := map[string]bool{}
		for _, o := range others {
			sees[o] = true
		}
		return jsonview.Site{Name: name, Role: role, Latitude: lat, Longitude: lon, Up: true, Reporting: true,
			SeenBy: others, UnseenBy: []string{}, Sees: sees, LostBy: []string{}, Version: "v0.16.0"}
	}
	return jsonview.Status{
		Header:       jsonview.Header{APIVersion: jsonview.APIVersion, Kind: jsonview.KindStatus},
		Installation: "lab", AnsweredBy: answeredBy, ReadAt: at, Revision: 4211,
		Controller: "brussels", ControllerTerm: 7, ControllerElectedAt: t0.Add(-2 * time.Hour), RaftLeader: "brussels",
		Problems: []jsonview.Problem{},
		Sites: []jsonview.Site{
			site("brussels", "site", 50.85, 4.35, "antwerp", "luxembourg"),
			site("antwerp", "site", 51.22, 4.40, "brussels", "luxembourg"),
			site("luxembourg", "witness", 49.61, 6.13, "brussels", "antwerp"),
		},
		Groups: []jsonview.Group{
			{
				Name: "webshop", PreferredSite: "brussels", ActiveSite: "brussels", Epoch: 12, State: "protected",
				Policy: "automatic", MaxDataLossSeconds: ptr(5.0), RTOTargetSeconds: ptr(60.0), Problems: []jsonview.Problem{},
				Resources: []jsonview.Resource{
					{Name: "db", Type: "postgres", Class: "data", Sites: []jsonview.ResourceSite{
						{Site: "brussels", Observed: true, Up: true, Role: "primary", Timeline: ptr(int64(4)), Position: "0/3A0001F8", Streaming: ptr(false)},
						{Site: "antwerp", Observed: true, Up: true, Role: "standby", Timeline: ptr(int64(4)), Position: "0/3A0001F8", Streaming: ptr(true),
							LagBytes: ptr(int64(0)), LagSeconds: ptr(0.02), SenderState: "streaming", FailoverReady: ptr(true), FailoverBoundSeconds: ptr(0.02)},
					}},
					{Name: "www", Type: "dns", Class: "traffic", Sites: []jsonview.ResourceSite{
						{Site: "brussels", Observed: true, Up: true, Role: "primary", Target: "www.lab.example → 10.0.1.10"},
						{Site: "antwerp", Observed: true, Up: true, Role: "standby", Ready: ptr(true), Target: "www.lab.example → 10.0.1.10"},
					}},
				},
				Readiness: &jsonview.Readiness{Verdict: "at_risk", Reasons: []jsonview.Reason{
					{Kind: "dependency", Severity: "at_risk", Site: "antwerp", Message: "ldap (tcp 127.0.2.1:3389) is unreachable from antwerp: connection refused",
						Fix: "start ldap where antwerp reaches it (tcp 127.0.2.1:3389), or open the way from antwerp to it"},
					{Kind: "geography", Severity: "note", Message: "brussels and antwerp are 41 km apart, closer than min_site_distance 100 km",
						Fix: "place the sites further apart (siteflip check, siteflip whatif)"},
				}},
				Dependencies: []jsonview.Dependency{
					{Name: "ldap", Type: "tcp", Site: "brussels", Target: "127.0.1.1:3389", Known: true, Reachable: true, CheckedAt: t0, ChangedAt: t0.Add(-time.Hour)},
					{Name: "ldap", Type: "tcp", Site: "antwerp", Target: "127.0.2.1:3389", Known: true, Error: "connection refused", CheckedAt: t0, ChangedAt: t0.Add(-time.Minute)},
				},
			},
			{
				Name: "billing", PreferredSite: "antwerp", ActiveSite: "antwerp", Epoch: 3, State: "unprotected",
				Policy: "manual", MaxDataLossSeconds: ptr(0.0), RTOTargetSeconds: ptr(120.0),
				Paused: true, PausedBy: "lab-operator", PausedAt: ptr(t0.Add(-30 * time.Minute)), PauseReason: "storage maintenance",
				Problems: []jsonview.Problem{{Kind: "standby-down", Message: "ledger at brussels is down: connection refused",
					Command: "systemctl start postgresql@15-main", On: "brussels", Site: "brussels", Resource: "ledger"}},
				Resources: []jsonview.Resource{
					{Name: "ledger", Type: "postgres", Class: "data", Sites: []jsonview.ResourceSite{
						{Site: "antwerp", Observed: true, Up: true, Role: "primary", Timeline: ptr(int64(2)), Streaming: ptr(false)},
						{Site: "brussels", Observed: true, Up: false, Role: "down", Streaming: ptr(false), Error: "connection refused",
							LagUnknown: "the standby is down", FailoverReady: ptr(false)},
					}},
				},
				Readiness: &jsonview.Readiness{Verdict: "not_ready", Reasons: []jsonview.Reason{
					{Kind: "protection", Severity: "not_ready", Site: "brussels", Message: "billing is unprotected: ledger at brussels is down: connection refused",
						Fix: "at brussels: systemctl start postgresql@15-main"},
					{Kind: "pause", Severity: "at_risk", Message: "billing is paused by lab-operator: it does not fail over by itself", Fix: "siteflip resume billing"},
				}},
			},
		},
	}
}

// switchoverPlan is the plan of a switchover of group from one site to
// another, as the planner makes it for a database and a name.
func switchoverPlan(group, from, to string) plan.Plan {
	if to == "" {
		to = "antwerp"
	}
	step := func(id string, kind plan.Kind, res, site string, wave int) plan.Step {
		return plan.Step{ID: id, Kind: kind, Resource: res, Site: site, Timeout: 30 * time.Second, Retries: 2, Wave: wave}
	}
	return plan.Plan{Group: group, Action: plan.Switchover, From: from, To: to, Epoch: 12,
		Steps: []plan.Step{
			step("fence:db@"+from, plan.Fence, "db", from, 0),
			step("catch-up:db@"+to, plan.CatchUp, "db", to, 0),
			step("activate", plan.Activate, "", to, 0),
			step("promote:db@"+to, plan.Promote, "db", to, 1),
			step("promote:www@"+to, plan.Promote, "www", to, 1),
			step("rejoin:db@"+from, plan.Rejoin, "db", from, 0),
			step("check:http@"+to, plan.Check, "http", to, 0),
		},
		Rollback: []plan.Step{step("unfence:db@"+from, plan.Unfence, "db", from, 0)},
	}
}

// fixtureRuns are three runs: a switchover that succeeded (two steps side
// by side), a drill, and a failover that rolled back.
func fixtureRuns() jsonview.Runs {
	done := func(r *plan.Run, offsets ...float64) {
		for i := range r.Steps {
			if 2*i+1 >= len(offsets) {
				break
			}
			r.Steps[i] = plan.StepState{State: plan.StepDone, Attempts: 1,
				Started: r.Started.Add(time.Duration(offsets[2*i] * float64(time.Second))),
				Ended:   r.Started.Add(time.Duration(offsets[2*i+1] * float64(time.Second)))}
		}
	}
	sw := plan.NewRun("webshop-20261205-084012-switchover", "lab-operator", plan.Request{Action: plan.Switchover, To: "antwerp"},
		switchoverPlan("webshop", "brussels", "antwerp"), t0.Add(-20*time.Minute))
	sw.Role, sw.Reason = "operator", "quarterly switchover test"
	done(&sw, 0, 0.3, 0.3, 0.9, 0.9, 1.0, 1.0, 1.6, 1.0, 1.3, 1.6, 3.2, 3.2, 3.5)
	sw.State, sw.Ended, sw.WritableAt = plan.RunSucceeded, sw.Started.Add(3500*time.Millisecond), sw.Started.Add(1600*time.Millisecond)
	sw.Verification = plan.Verified

	back := plan.NewRun("webshop-20261205-085030-switchover", "lab-operator", plan.Request{Action: plan.Switchover, To: "brussels"},
		switchoverPlan("webshop", "antwerp", "brussels"), t0.Add(-10*time.Minute))
	back.Role = "operator"
	done(&back, 0, 0.2, 0.2, 0.7, 0.7, 0.8, 0.8, 1.5, 0.8, 1.1, 1.5, 2.9, 2.9, 3.1)
	back.State, back.Ended, back.WritableAt = plan.RunSucceeded, back.Started.Add(3100*time.Millisecond), back.Started.Add(1500*time.Millisecond)

	fo := plan.NewRun("billing-20261205-085500-failover", "lab-admin", plan.Request{Action: plan.Failover, To: "brussels"},
		switchoverPlan("billing", "antwerp", "brussels"), t0.Add(-5*time.Minute))
	fo.Plan.Action = plan.Failover
	fo.Role, fo.Reason = "admin", "antwerp storage alarm"
	done(&fo, 0, 0.4)
	fo.Steps[1] = plan.StepState{State: plan.StepFailed, Attempts: 3, Started: fo.Started.Add(400 * time.Millisecond), Ended: fo.Started.Add(6 * time.Second),
		Error: "catch-up: the standby is 12 s behind, over max_data_loss 0 s"}
	for i := 2; i < len(fo.Steps); i++ {
		fo.Steps[i].State = plan.StepSkipped
	}
	fo.Rollback[0] = plan.StepState{State: plan.StepDone, Attempts: 1, Started: fo.Started.Add(6 * time.Second), Ended: fo.Started.Add(6500 * time.Millisecond)}
	fo.State, fo.Ended, fo.Error = plan.RunRolledBack, fo.Started.Add(6500*time.Millisecond), "step catch-up:db@brussels failed: the standby is 12 s behind"

	// Newest first, as the events send them.
	return jsonview.RunsOf([]plan.Run{fo, back, sw})
}

// lagHistory is an hour of a standby's lag, sampled every 5 s, with a
// stretch where it was not known and a peak over max_data_loss.
func lagHistory(answeredBy, group string, now time.Time) map[string]any {
	type point struct {
		At         time.Time `json:"at"`
		LagSeconds *float64  `json:"lag_seconds,omitempty"`
		LagBytes   int64     `json:"lag_bytes"`
		Streaming  bool      `json:"streaming"`
	}
	series := []map[string]any{}
	if group == "webshop" {
		points := []point{}
		for i := 720; i > 0; i-- {
			p := point{At: now.Add(-time.Duration(i) * 5 * time.Second), Streaming: true}
			switch {
			case i > 300 && i < 330:
				p.Streaming = false // not known
			case i >= 400 && i < 430:
				p.LagSeconds = ptr(0.5 + float64(430-i)*0.25)
			default:
				p.LagSeconds = ptr(0.02 + float64(i%7)*0.01)
			}
			points = append(points, p)
		}
		series = append(series, map[string]any{"group": "webshop", "resource": "db", "site": "antwerp", "max_data_loss_seconds": 5, "points": points})
	}
	return map[string]any{"api_version": jsonview.APIVersion, "kind": "lag_history", "answered_by": answeredBy,
		"interval_seconds": 5, "window_seconds": 3600, "series": series}
}
