package status

import "time"

// Readiness verdicts: one per group, the worst of its reasons.
const (
	Ready    = "ready"     // nothing known stands in the way of a failover
	AtRisk   = "at_risk"   // a failover would work, with a weakness named
	NotReady = "not_ready" // a failover would be refused, lose too much, or fail
)

// Severities of a readiness reason: a verdict, or SeverityNote for a
// standing fact of the design (geography) that is shown but does not
// change the verdict.
const SeverityNote = "note"

// Readiness is a group's verdict on whether it can fail over now, with
// every reason found (docs/design/risk.md).
type Readiness struct {
	Verdict string            `json:"verdict"`
	Reasons []ReadinessReason `json:"reasons"`
}

// ReadinessReason is one thing that makes a group less than ready, or a
// note about it.
type ReadinessReason struct {
	// Kind names the rule: protection, lag, synchronous, dependency,
	// drill, check, certificate, clock, geography, pause.
	Kind     string `json:"kind"`
	Severity string `json:"severity"` // AtRisk, NotReady or SeverityNote
	Message  string `json:"message"`
	// Fix is the command or change that removes the reason.
	Fix  string `json:"fix,omitempty"`
	Site string `json:"site,omitempty"`
}

// DependencyStatus is one outside service a group requires, as one site
// of the group last probed it.
type DependencyStatus struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Site     string `json:"site"`
	Critical bool   `json:"critical,omitempty"`
	Target   string `json:"target,omitempty"`
	// Known is false while the site publishes no probe of it (its agent
	// is down, not reporting, or has not probed yet).
	Known     bool      `json:"known"`
	Reachable bool      `json:"reachable"`
	Error     string    `json:"error,omitempty"`
	CheckedAt time.Time `json:"checked_at,omitzero"`
	Since     time.Time `json:"since,omitzero"`
}
