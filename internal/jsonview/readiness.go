package jsonview

import (
	"time"

	"github.com/siteflip/siteflip/internal/status"
)

// KindReadiness is `siteflip readiness -o json`.
const KindReadiness = "readiness"

// ReadinessReport is `siteflip readiness -o json`: the verdict of each
// group selected, with its reasons, and how many groups have each verdict.
type ReadinessReport struct {
	Header
	Installation string           `json:"installation"`
	AnsweredBy   string           `json:"answered_by"`
	ReadAt       time.Time        `json:"read_at"`
	Ready        int              `json:"ready"`
	AtRisk       int              `json:"at_risk"`
	NotReady     int              `json:"not_ready"`
	Groups       []GroupReadiness `json:"groups"`
}

// GroupReadiness is one group's verdict and its reasons.
type GroupReadiness struct {
	Name    string   `json:"name"`
	Verdict string   `json:"verdict"`
	Reasons []Reason `json:"reasons"`
}

// ReadinessReportOf is the document of the groups of st named in groups,
// in that order. A group whose answering agent judged no readiness (an
// earlier version) is not_ready, with a reason saying so.
func ReadinessReportOf(st status.Status, groups []string) ReadinessReport {
	out := ReadinessReport{Header: header(KindReadiness), Installation: st.Installation, AnsweredBy: st.AnsweredBy, ReadAt: utc(st.Time), Groups: []GroupReadiness{}}
	for _, name := range groups {
		gr := GroupReadiness{Name: name, Verdict: status.NotReady, Reasons: []Reason{{Kind: "protection", Severity: status.NotReady,
			Message: "the answering agent, " + st.AnsweredBy + ", does not judge readiness (an earlier version)", Fix: "upgrade the agents (docs/deploy.md)"}}}
		for _, g := range st.Groups {
			if r := ReadinessOf(g.Readiness); g.Name == name && r != nil {
				gr.Verdict, gr.Reasons = r.Verdict, r.Reasons
			}
		}
		switch gr.Verdict {
		case status.Ready:
			out.Ready++
		case status.AtRisk:
			out.AtRisk++
		default:
			out.NotReady++
		}
		out.Groups = append(out.Groups, gr)
	}
	return out
}
