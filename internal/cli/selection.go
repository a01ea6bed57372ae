package cli

import (
	"fmt"
	"strings"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// selection is which groups a run verb acts on when it names none: --all,
// --site SITE, --label KEY=VALUE. Given together they narrow one another:
// a group must match every one.
type selection struct {
	all    bool
	site   string  // the groups whose active site this is, from the status
	labels []label // the groups that carry every one of these
}

// label is one --label KEY=VALUE.
type label struct{ key, value string }

// given says whether any selection flag was given.
func (s selection) given() bool { return s.all || s.site != "" || len(s.labels) > 0 }

// String is the selection as it would be typed.
func (s selection) String() string {
	var parts []string
	if s.all {
		parts = append(parts, "--all")
	}
	if s.site != "" {
		parts = append(parts, "--site "+s.site)
	}
	for _, l := range s.labels {
		kv := l.key + "=" + l.value
		if strings.ContainsAny(kv, " \t\"'") {
			kv = fmt.Sprintf("%q", kv)
		}
		parts = append(parts, "--label "+kv)
	}
	return strings.Join(parts, " ")
}

// parseLabel reads one --label KEY=VALUE.
func parseLabel(arg string) (label, error) {
	k, v, ok := strings.Cut(arg, "=")
	if !ok || k == "" || v == "" {
		return label{}, usageErrorf("--label %q: give KEY=VALUE, like --label tier=gold", arg)
	}
	return label{k, v}, nil
}

// selectGroups returns, in the topology's order, the groups of t that sel
// selects: those whose active site in st is sel.site, carrying every label
// of sel. A site that is not one, or a selection that matches nothing, is
// an error that says why.
func selectGroups(t *config.Topology, st status.Status, sel selection) ([]string, error) {
	if sel.site != "" {
		if err := checkSite(t, "--site", sel.site); err != nil {
			return nil, err
		}
	}
	active := map[string]string{}
	for _, g := range st.Groups {
		active[g.Name] = g.ActiveSite
	}
	var names []string
	atSite, labelled := 0, 0
	for _, g := range t.Groups {
		there := sel.site == "" || active[g.Name] == sel.site
		carries := true
		for _, l := range sel.labels {
			if v, ok := g.Labels[l.key]; !ok || v != l.value {
				carries = false
				break
			}
		}
		if there {
			atSite++
		}
		if carries {
			labelled++
		}
		if there && carries {
			names = append(names, g.Name)
		}
	}
	if len(names) > 0 {
		return names, nil
	}
	if len(t.Groups) == 0 {
		return nil, fmt.Errorf("no group matches %s: %s has no groups", sel, t.File)
	}
	// Say how many each part matched, so that the one that rules every
	// group out shows.
	var why []string
	if sel.site != "" {
		why = append(why, fmt.Sprintf("%d active at %s (`siteflip status` shows where each is)", atSite, sel.site))
	}
	if len(sel.labels) > 0 {
		var kvs []string
		for _, l := range sel.labels {
			kvs = append(kvs, l.key+"="+l.value)
		}
		why = append(why, fmt.Sprintf("%d labelled %s", labelled, strings.Join(kvs, " and ")))
	}
	return nil, fmt.Errorf("no group matches %s: of the %d groups in %s, %s", sel, len(t.Groups), t.File, strings.Join(why, ", "))
}

// checkSite refuses a flag's site that is not a location of t with role
// site, naming the ones that are.
func checkSite(t *config.Topology, flag, name string) error {
	var sites []string
	for _, s := range t.Sites {
		if s.Role == config.RoleSite {
			sites = append(sites, s.Name)
		}
	}
	switch s, ok := t.Site(name); {
	case !ok:
		return fmt.Errorf("%s %q: no such site in %s (sites: %s)", flag, name, t.File, strings.Join(sites, ", "))
	case s.Role != config.RoleSite:
		return fmt.Errorf("%s %s: %s is a witness, where no group runs; name a site (%s)", flag, name, name, strings.Join(sites, ", "))
	}
	return nil
}

// skipReason says why action, asked of a whole selection, leaves group gs
// alone, or "" when it does not: a failback of a group already at its
// preferred site, a switchover or failover to the site where it is
// already active. For one named group the agent refuses these instead,
// and the command fails; in a selection they are what was asked.
func skipReason(action plan.Action, to string, gs status.GroupStatus) string {
	if gs.ActiveSite == "" {
		return "" // not adopted yet: the agent says so
	}
	switch action {
	case plan.Failback:
		if gs.ActiveSite == gs.PreferredSite {
			return "already at its preferred site, " + gs.ActiveSite
		}
	case plan.Switchover, plan.Failover:
		if to != "" && gs.ActiveSite == to {
			return "already active at " + to
		}
	}
	return ""
}
