package status

import (
	"fmt"
	"strings"
	"time"
)

// Forced is a location that a person forced to run the control plane alone
// after the quorum was lost (`siteflip failover GROUP --force`,
// docs/force.md). While the record exists the location serves without a
// serve lease: the person declared the other locations lost.
type Forced struct {
	Site   string    `json:"site"`
	By     string    `json:"by"` // the operator certificate's name
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	// Lost are the locations declared lost, removed from the control plane;
	// each comes back only as a new member, its old etcd data set aside.
	Lost []string `json:"lost"`
}

// NoteForced adds to every group the problem that a forced location is:
// its primaries serve without the other locations' consent, and the lost
// locations must come back the way docs/force.md says.
func (st *Status) NoteForced(forced []Forced) {
	for _, f := range forced {
		p := Problem{Kind: KindForced, Site: f.Site, Message: fmt.Sprintf("%s runs the control plane alone, forced by %s at %s after the quorum was lost (%s); declared lost: %s; "+
			"it serves without a serve lease until another location is back (docs/force.md)",
			f.Site, f.By, f.At.UTC().Format(time.RFC3339), f.Reason, strings.Join(f.Lost, ", "))}
		for i := range st.Groups {
			st.Groups[i].note(p)
		}
	}
}
