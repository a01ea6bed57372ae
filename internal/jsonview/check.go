package jsonview

// KindCheck is the document of `siteflip check -o json`.
const KindCheck = "check"

// Check is what `siteflip check -o json` prints: the topology's problems
// in the order of the text output.
type Check struct {
	Header
	Problems []CheckProblem `json:"problems"`
}

// CheckProblem is one problem of a topology.
type CheckProblem struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Field    string `json:"field"`
	Message  string `json:"message"`
	Severity string `json:"severity"` // error or warning
	// Kind sorts warnings: geography (where the locations are), or
	// absent for the others.
	Kind string `json:"kind,omitempty"`
	// Group and Sites are the group and the locations the problem
	// concerns, when it names them.
	Group string   `json:"group,omitempty"`
	Sites []string `json:"sites,omitempty"`
}

// CheckOf makes the document of a check's problems (never null).
func CheckOf(probs []CheckProblem) Check {
	if probs == nil {
		probs = []CheckProblem{}
	}
	return Check{Header: header(KindCheck), Problems: probs}
}
