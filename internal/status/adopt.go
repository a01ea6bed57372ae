package status

import (
	"fmt"
	"strings"

	"github.com/siteflip/siteflip/internal/config"
)

// AdoptionSite says where a group without a record is adopted, the active
// site of its first record, and why; "" while it cannot be told, with the
// reason (status shows the group initializing until then):
//   - a group with data: the one site where every data resource is
//     observed up as primary. None or several: wait, as guessing could
//     record the wrong site and make the other copy's writes the ones lost;
//   - a group without data but with services: the one site where every
//     service runs. Services running at several sites: wait, for the same
//     reason;
//   - a group whose resources tell nothing of a site (names, routes,
//     proxies, or services running nowhere): its preferred site, once
//     that site is up. Network resources follow the record, and a
//     reprotect starts the services that do not run there.
func AdoptionSite(g *config.Group, gs GroupStatus, up map[string]bool) (site, why string) {
	count := func(keep func(config.Resource) bool) (n int, at map[string]int) {
		at = map[string]int{}
		for i, r := range g.Resources {
			if !keep(r) || i >= len(gs.Resources) {
				continue
			}
			n++
			for _, s := range gs.Resources[i].Sites {
				if s.Up && s.Role == RolePrimary {
					at[s.Site]++
				}
			}
		}
		return n, at
	}
	all := func(n int, at map[string]int) []string {
		var out []string
		for _, s := range g.Sites {
			if at[s] == n {
				out = append(out, s)
			}
		}
		return out
	}
	if n, at := count(func(r config.Resource) bool { return r.Data }); n > 0 {
		sites := all(n, at)
		switch len(sites) {
		case 0:
			return "", "its data is primary at no site"
		case 1:
		default:
			return "", fmt.Sprintf("its data is primary at %d sites (%s), not one", len(sites), strings.Join(sites, ", "))
		}
		return sites[0], "every resource that holds data is primary at " + sites[0]
	}
	n, at := count(func(r config.Resource) bool { return r.Class == config.ClassService })
	if sites := all(n, at); n > 0 && len(sites) == 1 {
		return sites[0], "every service runs at " + sites[0]
	}
	for _, s := range g.Sites {
		if at[s] > 0 {
			return "", fmt.Sprintf("its services run at more than one site or only in part (%s runs %d of %d)", s, at[s], n)
		}
	}
	if !up[g.PreferredSite] {
		return "", "it holds no data and runs no service, and its preferred site " + g.PreferredSite + " is not up"
	}
	return g.PreferredSite, "it holds no data and runs no service: its preferred site"
}
