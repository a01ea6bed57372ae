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
//     service runs (healthy or not). Services running at several sites, or
//     a site that does not report them (down, or not observed yet, which
//     may run them): wait, for the same reason;
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
	// Services: where each runs (healthy or not), and whether every site
	// reports each: a site down or not yet observed may run them.
	services, running := 0, map[string]int{}
	for i, r := range g.Resources {
		if r.Class != config.ClassService || i >= len(gs.Resources) {
			continue
		}
		services++
		for _, site := range g.Sites {
			var ss *ResourceSiteStatus
			for j := range gs.Resources[i].Sites {
				if gs.Resources[i].Sites[j].Site == site {
					ss = &gs.Resources[i].Sites[j]
				}
			}
			switch {
			case ss == nil || !ss.Up || ss.Role == RoleUnknown:
				return "", fmt.Sprintf("service %s at %s is not known to run or not: wait until every site reports it", r.Name, site)
			case ss.Role == RolePrimary || ss.Role == RoleDown:
				running[site]++
			}
		}
	}
	if services > 0 {
		if sites := all(services, running); len(sites) == 1 && len(running) == 1 {
			return sites[0], "every service runs at " + sites[0]
		}
		for _, site := range g.Sites {
			if running[site] > 0 {
				return "", fmt.Sprintf("its services run at more than one site or only in part (%s runs %d of %d)", site, running[site], services)
			}
		}
	}
	if !up[g.PreferredSite] {
		return "", "it holds no data and runs no service, and its preferred site " + g.PreferredSite + " is not up"
	}
	return g.PreferredSite, "it holds no data and runs no service: its preferred site"
}
