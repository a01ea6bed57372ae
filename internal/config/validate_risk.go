package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/siteflip/siteflip/internal/geo"
)

// riskDefaults fills in min_site_distance and, for every group, its
// dependencies' probe interval, timeout and DNS record type.
func (t *Topology) riskDefaults() {
	if t.MinSiteDistance == nil {
		t.MinSiteDistance = new(Distance(DefaultMinSiteDistance))
	}
	for i := range t.Groups {
		for j := range t.Groups[i].Requires {
			d := &t.Groups[i].Requires[j]
			if d.Interval == nil {
				d.Interval = new(Duration(DefaultDependencyInterval))
			}
			if d.Timeout == nil {
				d.Timeout = new(Duration(DefaultDependencyTimeout))
			}
			if d.Type != DependencyDNS {
				continue
			}
			for sn, e := range d.Sites {
				if e.QType == "" {
					e.QType = "A"
					d.Sites[sn] = e
				}
			}
		}
	}
}

// locationList names every location, for messages.
func (v *validator) locationList() string { return strings.Join(v.t.SiteNames(), ", ") }

// locations checks that a location gives both of its coordinates, or
// neither (geography leaves it out then).
func (v *validator) locations() {
	for i := range v.t.Sites {
		f := fmt.Sprintf("sites[%d].location", i)
		_, lat := v.t.pos[f+".latitude"]
		_, lon := v.t.pos[f+".longitude"]
		if lat != lon {
			v.add(f, "give both latitude and longitude (decimal degrees, like {latitude: 50.85, longitude: 4.35}), or leave location out")
		}
	}
}

// levels checks the disasters the installation plans for and fills in
// their Area and Links.
func (v *validator) levels() {
	t := v.t
	names := map[string]string{}
	for i := range t.Levels {
		l := &t.Levels[i]
		f := fmt.Sprintf("levels[%d]", i)
		v.uniqueName(f+".name", "level", l.Name, "", names)
		_, atWritten := t.pos[f+".at"]
		_, radiusWritten := t.pos[f+".radius"]
		if len(l.Lose) == 0 && len(l.LoseLinks) == 0 && !atWritten && !radiusWritten {
			v.add(f, "the level takes nothing: give lose (the locations destroyed), lose_links (the links cut, as LOCATION-LOCATION) or at and radius (the area destroyed)")
		}
		lost := map[string]bool{}
		for j, n := range l.Lose {
			lf := fmt.Sprintf("%s.lose[%d]", f, j)
			_, known := t.Site(n)
			switch {
			case !known:
				v.add(lf, "%q is not a location (locations: %s)", n, v.locationList())
			case lost[n]:
				v.add(lf, "%q is listed twice", n)
			}
			lost[n] = true
		}
		l.Links = nil
		cut := map[[2]string]string{}
		for j, s := range l.LoseLinks {
			lf := fmt.Sprintf("%s.lose_links[%d]", f, j)
			link, ok := v.link(lf, s)
			if !ok {
				continue
			}
			key := link
			if key[1] < key[0] {
				key[0], key[1] = key[1], key[0]
			}
			if prev, dup := cut[key]; dup {
				v.add(lf, "%q is the link %s already lists (a link is cut both ways)", s, prev)
				continue
			}
			cut[key] = lf
			l.Links = append(l.Links, link)
		}
		l.Area = nil
		switch {
		case atWritten && !radiusWritten:
			v.add(f+".radius", "is missing: at and radius go together; give the radius of the area destroyed, like 60km")
		case radiusWritten && !atWritten:
			v.add(f+".at", "is missing: at and radius go together; give the centre of the area destroyed as LATITUDE,LONGITUDE, like 50.85,4.35")
		case atWritten:
			p, err := geo.ParsePoint(l.At)
			if err != nil {
				v.add(f+".at", "%v", err)
			}
			if l.Radius != nil && l.Radius.M() <= 0 {
				v.add(f+".radius", "must be above zero: give the radius of the area destroyed, like 60km")
			}
			if err == nil && l.Radius.M() > 0 {
				l.Area = &geo.Circle{Center: p, Radius: l.Radius.M()}
			}
		}
	}
}

// link parses a link LOCATION-LOCATION (Topology.ParseLink).
func (v *validator) link(field, s string) ([2]string, bool) {
	l, err := v.t.ParseLink(s)
	if err != nil {
		v.add(field, "%v", err)
		return [2]string{}, false
	}
	return l, true
}

// dependencyFields lists, per type, the fields of a site's entry besides
// at.
var dependencyFields = map[string][]string{
	DependencyTCP:  {"address"},
	DependencyHTTP: {"url", "expect_status"},
	DependencyDNS:  {"address", "query", "qtype"},
	DependencySQL:  {"engine", "dsn", "dsn_env"},
}

// dependencyWhat is what a site's entry of a type gives, for messages.
var dependencyWhat = map[string]string{
	DependencyTCP:  "address",
	DependencyHTTP: "url",
	DependencyDNS:  "server address and query",
	DependencySQL:  "engine and dsn_env",
}

const dependencyTypes = "tcp, http, dns or sql"

// requires checks the outside services group g needs; groupSites are its
// valid sites.
func (v *validator) requires(f string, g *Group, groupSites map[string]bool) {
	names := map[string]string{}
	for k := range g.Requires {
		d := &g.Requires[k]
		df := fmt.Sprintf("%s.requires[%d]", f, k)
		v.uniqueName(df+".name", "dependency", d.Name, fmt.Sprintf(" in group %q", g.Name), names)
		_, typeOK := dependencyFields[d.Type]
		switch {
		case d.Type == "":
			v.add(df+".type", "is missing: use %s", dependencyTypes)
		case !typeOK:
			v.add(df+".type", "%q is not a dependency type: use %s", d.Type, dependencyTypes)
		}
		interval := v.positive(df+".interval", d.Interval, DefaultDependencyInterval)
		timeout := v.positive(df+".timeout", d.Timeout, DefaultDependencyTimeout)
		if interval && timeout && d.Timeout.D() >= d.Interval.D() {
			v.add(df+".timeout", "%s is not shorter than interval (%s): a probe must end before the next one starts; shorten timeout or lengthen interval", d.Timeout.D(), d.Interval.D())
		}
		for _, sn := range sortedKeys(d.Sites) {
			if !groupSites[sn] {
				v.add(df+".sites."+sn, "%q is not a site of group %q (its sites: %s): only the group's sites probe its dependencies; remove the entry",
					sn, g.Name, strings.Join(g.Sites, ", "))
			}
		}
		what := dependencyWhat[d.Type]
		if what == "" {
			what = "entry"
		}
		for _, sn := range validSites(g, groupSites) {
			e, ok := d.Sites[sn]
			if !ok {
				v.add(df+".sites", "give %s's %s for %s: every site of the group probes it from where it is", sn, what, d.Name)
				continue
			}
			sf := df + ".sites." + sn
			if typeOK {
				v.dependencySite(sf, sn, d, &e)
				d.Sites[sn] = e
			}
			if _, known := v.t.Site(e.At); e.At != "" && !known {
				v.add(sf+".at", "%q is not a location (locations: %s): name the location that hosts %s, or leave at out", e.At, v.locationList(), d.Name)
			}
		}
	}
}

// dependencySite checks one site's entry of dependency d, at field f.
func (v *validator) dependencySite(f, site string, d *Dependency, e *DependencySite) {
	own := dependencyFields[d.Type]
	for _, key := range []string{"address", "url", "expect_status", "query", "qtype", "engine", "dsn", "dsn_env"} {
		if _, written := v.t.pos[f+"."+key]; written && !slices.Contains(own, key) {
			v.add(f+"."+key, "is not a field of type %s (its fields: %s and at)", d.Type, strings.Join(own, ", "))
		}
	}
	switch d.Type {
	case DependencyTCP, DependencyDNS:
		if e.Address == "" {
			v.add(f+".address", "is missing: give the host:port where %s reaches %s, like 10.1.0.5:389", site, d.Name)
		} else {
			v.hostPort(f+".address", e.Address)
		}
	}
	switch d.Type {
	case DependencyHTTP:
		u, err := url.Parse(e.URL)
		switch {
		case e.URL == "":
			v.add(f+".url", "is missing: give the URL %s asks for %s, like https://10.1.0.5/health", site, d.Name)
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			v.add(f+".url", "%q is not an http or https URL with a host, like https://10.1.0.5/health", e.URL)
		}
		if s := e.ExpectStatus; s != 0 && (s < 100 || s > 599) {
			v.add(f+".expect_status", "%d is not an HTTP status: give one from 100 to 599, or leave it out for any 2xx or 3xx", s)
		}
	case DependencyDNS:
		if _, ok := mdns.IsDomainName(e.Query); e.Query == "" {
			v.add(f+".query", "is missing: give the name to ask %s for, like ldap.shop.example.", d.Name)
		} else if !ok || strings.ContainsAny(e.Query, " \t") {
			v.add(f+".query", "%q is not a domain name: give the name to ask for, like ldap.shop.example.", e.Query)
		}
		if qt, ok := mdns.StringToType[strings.ToUpper(e.QType)]; !ok || qt == mdns.TypeNone {
			v.add(f+".qtype", "%q is not a DNS record type: use A, AAAA, SRV, MX, TXT … (default A)", e.QType)
		} else {
			e.QType = strings.ToUpper(e.QType)
		}
	case DependencySQL:
		switch e.Engine {
		case "postgres", "mariadb":
		case "":
			v.add(f+".engine", "is missing: use postgres or mariadb")
		default:
			v.add(f+".engine", "%q is not an engine: use postgres or mariadb", e.Engine)
		}
		switch {
		case e.DSN == "" && e.DSNEnv == "":
			v.add(f, "give dsn_env, the environment variable that holds the connection string, or dsn when the string holds no password")
		case e.DSN != "" && e.DSNEnv != "":
			v.add(f+".dsn_env", "dsn and dsn_env are both set: give only one of them")
		case e.DSNEnv != "" && !EnvName(e.DSNEnv):
			v.add(f+".dsn_env", "%q is not an environment variable name: use letters, digits and underscores, like LDAP_DB_DSN", e.DSNEnv)
		}
	}
}

// geoWarn records a geography warning about group (or the whole
// installation, "") and the locations sites.
func (v *validator) geoWarn(field, group string, sites []string, format string, args ...any) {
	v.probs = append(v.probs, Problem{Pos: v.t.pos.lookup(field), Field: field, Msg: fmt.Sprintf(format, args...),
		Warning: true, Kind: KindGeography, Group: group, Sites: sites})
}

// geography warns about sites, and a witness and a site, closer than
// min_site_distance, and about every group that one disaster takes out
// entirely. Locations without coordinates are left out.
func (v *validator) geography() {
	t := v.t
	limit := t.MinSiteDistance.M()
	for j, b := range t.Sites {
		if !b.Location.Known() || (b.Role != RoleSite && b.Role != RoleWitness) {
			continue
		}
		for _, a := range t.Sites[:j] {
			if !a.Location.Known() || a.Name == b.Name || (a.Role != RoleSite && a.Role != RoleWitness) {
				continue
			}
			d := geo.Between(a.Location.Point(), b.Location.Point())
			if d >= limit {
				continue
			}
			f := fmt.Sprintf("sites[%d].location", j)
			switch {
			case a.Role == RoleSite && b.Role == RoleSite:
				v.geoWarn(f, "", []string{a.Name, b.Name},
					"sites %s and %s are %s apart, closer than min_site_distance (%s): one regional disaster (a flood, a storm, a grid failure) can take both; "+
						"move one of them further away, or set min_site_distance to the distance you accept (0 turns this warning off)",
					a.Name, b.Name, d, limit)
			case a.Role != b.Role:
				site, witness := a.Name, b.Name
				if a.Role == RoleWitness {
					site, witness = b.Name, a.Name
				}
				v.geoWarn(f, "", []string{site, witness},
					"witness %s is %s from site %s, closer than min_site_distance (%s): one disaster can take the site and the quorum's tie-breaker together; "+
						"move the witness further away, or set min_site_distance to the distance you accept (0 turns this warning off)",
					witness, d, site, limit)
			}
		}
	}
	for i := range t.Groups {
		v.groupGeography(fmt.Sprintf("groups[%d]", i), &t.Groups[i], limit)
	}
}

// groupGeography warns when one disaster takes every site of group g: a
// level, or a circle smaller than limit.
func (v *validator) groupGeography(f string, g *Group, limit geo.Distance) {
	var sites []Site
	var names []string
	var points []geo.Point
	for _, sn := range g.Sites {
		s, ok := v.t.Site(sn)
		if !ok || s.Role != RoleSite || slices.Contains(names, sn) {
			continue
		}
		sites = append(sites, *s)
		names = append(names, sn)
		if s.Location.Known() {
			points = append(points, s.Location.Point())
		}
	}
	if len(sites) < 2 {
		return
	}
	var levels []string
	for _, l := range v.t.Levels {
		if len(l.Destroys(sites)) == len(sites) {
			levels = append(levels, l.Name)
		}
	}
	var circle *geo.Circle
	if len(points) == len(sites) {
		c := geo.Enclosing(points)
		circle = &c
	}
	// Small: one disaster narrower than min_site_distance (its diameter)
	// takes every site, as two sites closer than it are taken by one.
	small := circle != nil && 2*circle.Radius < limit
	if !small && len(levels) == 0 {
		return
	}
	var parts []string
	if circle != nil {
		parts = append(parts, fmt.Sprintf("a disaster of %s radius around %.2f,%.2f takes %s", circle.Radius, circle.Center.Lat, circle.Center.Lon, andList(names)))
	}
	if len(levels) > 0 {
		parts = append(parts, "levels that take it out: "+strings.Join(levels, ", "))
	}
	v.geoWarn(f+".sites", g.Name, names, "group %s: %s; no failover survives that: move one of its sites further from the others",
		g.Name, strings.Join(parts, "; "))
}

// andList writes names as "a", "a and b", "a, b and c".
func andList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
