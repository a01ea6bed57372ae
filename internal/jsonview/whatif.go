package jsonview

import (
	"time"

	"github.com/siteflip/siteflip/internal/whatif"
)

// KindWhatIf is the document of `siteflip whatif -o json` and GET
// /v1/whatif.
const KindWhatIf = "whatif"

// WhatIf is what a disaster would do, played against the live state
// (docs/whatif.md).
type WhatIf struct {
	Header
	Event WhatIfEvent `json:"event"`
	// AnsweredBy is the location whose reading of the control plane the
	// event was played against, ReadAt when it read it.
	AnsweredBy   string             `json:"answered_by"`
	ReadAt       time.Time          `json:"read_at"`
	ControlPlane WhatIfControlPlane `json:"control_plane"`
	Groups       []WhatIfGroup      `json:"groups"`
	Summary      WhatIfSummary      `json:"summary"`
}

// WhatIfEvent is the disaster played.
type WhatIfEvent struct {
	// Text says it in words.
	Text        string `json:"text"`
	Level       string `json:"level,omitempty"`
	Description string `json:"description,omitempty"`
	// Destroyed are the locations destroyed; LinksCut the links cut, each
	// written A-B.
	Destroyed []string `json:"destroyed"`
	LinksCut  []string `json:"links_cut"`
	// Area is the area destroyed; absent when none was given.
	Area *WhatIfArea `json:"area,omitempty"`
}

// WhatIfArea is a circle on the map.
type WhatIfArea struct {
	Center   string  `json:"center"` // LAT,LON
	RadiusKm float64 `json:"radius_km"`
}

// WhatIfControlPlane is what the disaster does to the control plane.
type WhatIfControlPlane struct {
	// Quorum is whether the control plane keeps its quorum; Judged is
	// false when the agents use an existing etcd cluster (Quorum is then
	// assumed, and Message says so).
	Quorum          bool     `json:"quorum"`
	Judged          bool     `json:"judged"`
	Voters          []string `json:"voters"`
	SurvivingVoters []string `json:"surviving_voters"`
	// Fenced are the surviving sites that see no other location and
	// fence themselves; AlreadyDown the locations down or not reporting
	// before the event.
	Fenced      []string `json:"fenced"`
	AlreadyDown []string `json:"already_down"`
	// ControllerCandidates are where a controller could be elected.
	ControllerCandidates []string `json:"controller_candidates"`
	Message              string   `json:"message"`
}

// WhatIfGroup is what the disaster does to one group.
type WhatIfGroup struct {
	Name       string `json:"name"`
	ActiveSite string `json:"active_site"`
	// Outcome is unaffected, degraded, automatic_failover,
	// needs_decision, needs_force or lost.
	Outcome   string `json:"outcome"`
	Survives  bool   `json:"survives"`
	Automatic bool   `json:"automatic"`
	// To is where the group serves afterwards; absent when lost.
	To     string `json:"to,omitempty"`
	Reason string `json:"reason"`
	// Command is what a person runs (absent when nothing is to be run),
	// Fix what to change when the group is lost.
	Command string `json:"command,omitempty"`
	Fix     string `json:"fix,omitempty"`
	// ExpectedRTOSeconds is the median of RTOSamples measurements (0 when
	// nothing moves); null when unknown.
	ExpectedRTOSeconds *float64 `json:"expected_rto_seconds"`
	RTOSamples         int      `json:"rto_samples"`
	RTOBasis           string   `json:"rto_basis"`
	RTOTargetSeconds   float64  `json:"rto_target_seconds"`
	// ExpectedDataLossSeconds is the standby's last lag (0 when
	// synchronous, or nothing moves); DataLossBoundSeconds the most a
	// failover may lose; each null when unknown or not applicable.
	ExpectedDataLossSeconds *float64 `json:"expected_data_loss_seconds"`
	DataLossBoundSeconds    *float64 `json:"data_loss_bound_seconds"`
	DataLossBasis           string   `json:"data_loss_basis"`
	// Approvals are the approval steps the failover waits at.
	Approvals               []string           `json:"approvals"`
	DependenciesUnreachable []WhatIfDependency `json:"dependencies_unreachable"`
}

// WhatIfDependency is an outside service the group's site cannot reach.
type WhatIfDependency struct {
	Name string `json:"name"`
	Site string `json:"site"`
	Why  string `json:"why"`
}

// WhatIfSummary counts the groups: those that survive and those lost;
// of the survivors, those the controller fails over by itself and those
// that need a person (a decision or a force).
type WhatIfSummary struct {
	Survive     int `json:"survive"`
	Lost        int `json:"lost"`
	Automatic   int `json:"automatic"`
	NeedAPerson int `json:"need_a_person"`
}

// WhatIfOf makes the document of a what-if's result.
func WhatIfOf(r whatif.Result) WhatIf {
	ev := WhatIfEvent{Text: r.Event.String(), Level: r.Event.Level, Description: r.Event.Description,
		Destroyed: nonNil(r.Event.Destroyed), LinksCut: []string{}}
	for _, l := range r.Event.Cut {
		ev.LinksCut = append(ev.LinksCut, l[0]+"-"+l[1])
	}
	if a := r.Event.Area; a != nil {
		ev.Area = &WhatIfArea{Center: a.Center.String(), RadiusKm: a.Radius.Km()}
	}
	cp := r.ControlPlane
	doc := WhatIf{Header: header(KindWhatIf), Event: ev, AnsweredBy: r.AnsweredBy, ReadAt: utc(r.ReadAt),
		ControlPlane: WhatIfControlPlane{Quorum: cp.Quorum, Judged: cp.Judged, Voters: nonNil(cp.Voters), SurvivingVoters: nonNil(cp.SurvivingVoters),
			Fenced: nonNil(cp.Fenced), AlreadyDown: nonNil(cp.AlreadyDown), ControllerCandidates: nonNil(cp.Controller), Message: cp.Message},
		Groups: []WhatIfGroup{}}
	for _, g := range r.Groups {
		wg := WhatIfGroup{Name: g.Name, ActiveSite: g.ActiveSite, Outcome: string(g.Outcome), Survives: g.Survives, Automatic: g.Automatic,
			To: g.To, Reason: g.Reason, Command: g.Command, Fix: g.Fix,
			RTOSamples: g.RTO.Samples, RTOBasis: g.RTO.Basis, RTOTargetSeconds: seconds(g.RTO.Target),
			DataLossBasis: g.Loss.Basis, Approvals: nonNil(g.Approvals), DependenciesUnreachable: []WhatIfDependency{}}
		if g.RTO.Known {
			wg.ExpectedRTOSeconds = new(seconds(g.RTO.Expected))
		}
		if g.Loss.Known {
			wg.ExpectedDataLossSeconds = new(seconds(g.Loss.Expected))
		}
		if g.Loss.BoundKnown {
			wg.DataLossBoundSeconds = new(seconds(g.Loss.Bound))
		}
		for _, d := range g.Dependencies {
			wg.DependenciesUnreachable = append(wg.DependenciesUnreachable, WhatIfDependency(d))
		}
		doc.Groups = append(doc.Groups, wg)
		switch {
		case !g.Survives:
			doc.Summary.Lost++
		default:
			doc.Summary.Survive++
		}
		switch g.Outcome {
		case whatif.AutomaticFailover:
			doc.Summary.Automatic++
		case whatif.NeedsDecision, whatif.NeedsForce:
			doc.Summary.NeedAPerson++
		}
	}
	return doc
}
