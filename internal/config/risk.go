package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/geo"
	"go.yaml.in/yaml/v3"
)

// DefaultMinSiteDistance is how far apart two sites (or a site and the
// witness) should be, when the topology does not say: one regional
// disaster (a flood, a storm, a grid failure) should not take both.
const DefaultMinSiteDistance = 100 * 1000 // metres

// Distance is a length written with its unit ("100km", "500m", "30mi").
type Distance geo.Distance

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Distance) UnmarshalYAML(n *yaml.Node) error {
	v, err := geo.ParseDistance(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{err.Error()}}
	}
	*d = Distance(v)
	return nil
}

// check lets DecodeStrict report a distance it cannot read where it is
// written.
func (d *Distance) check(s string) error {
	_, err := geo.ParseDistance(s)
	return err
}

// MarshalYAML implements yaml.Marshaler.
func (d Distance) MarshalYAML() (any, error) { return geo.Distance(d).String(), nil }

// Known says whether the file gives the location's coordinates: 0,0 (in
// the Gulf of Guinea, where no site stands) is how it says it does not,
// and geography leaves such a location out.
func (l Location) Known() bool { return l != Location{} }

// Point is the location as a geo.Point.
func (l Location) Point() geo.Point { return geo.Point{Lat: l.Latitude, Lon: l.Longitude} }

// SiteDistance is the great-circle distance between locations a and b;
// false when either does not exist or has no coordinates.
func (t *Topology) SiteDistance(a, b string) (geo.Distance, bool) {
	sa, okA := t.Site(a)
	sb, okB := t.Site(b)
	if !okA || !okB || !sa.Location.Known() || !sb.Location.Known() {
		return 0, false
	}
	return geo.Between(sa.Location.Point(), sb.Location.Point()), true
}

// M returns the distance in metres (geo.Distance), 0 for nil.
func (d *Distance) M() geo.Distance {
	if d == nil {
		return 0
	}
	return geo.Distance(*d)
}

// Level is a kind of disaster an installation plans for, named so that
// `siteflip whatif --level NAME` and `siteflip check` can play it: the
// locations it destroys, the links between locations it cuts, or every
// location within Radius of At. A level may combine them.
type Level struct {
	Name string `yaml:"name"`
	// Description says what the level stands for ("a fibre cut between
	// the data centres", "the 2021 floods").
	Description string `yaml:"description"`
	// Lose lists the locations destroyed.
	Lose []string `yaml:"lose"`
	// LoseLinks lists the links cut, each as LOCATION-LOCATION.
	LoseLinks []string `yaml:"lose_links"`
	// At is the centre of the area destroyed, as LAT,LON, and Radius its
	// radius; both or neither.
	At     string    `yaml:"at"`
	Radius *Distance `yaml:"radius"`

	// Area is At and Radius parsed, nil without them (filled in by Load).
	Area *geo.Circle `yaml:"-"`
	// Links are LoseLinks parsed, each pair of location names in the
	// order written (filled in by Load).
	Links [][2]string `yaml:"-"`
}

// Dependency probe types.
const (
	DependencyTCP  = "tcp"  // a TCP connection is accepted
	DependencyHTTP = "http" // GET answers with an expected status
	DependencyDNS  = "dns"  // a server answers a query with records
	DependencySQL  = "sql"  // a database answers SELECT 1
)

// Dependency is an outside service a group needs wherever it runs (LDAP,
// a central database, DNS, a licence server). Every site's agent probes
// its own address for it, so that a standby site that cannot reach it is
// known before a failover needs it (docs/design/risk.md).
type Dependency struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"` // DependencyTCP, DependencyHTTP, DependencyDNS or DependencySQL
	// Critical: a site of the group that cannot reach it makes the group
	// not ready to fail over there; otherwise only at risk.
	Critical bool `yaml:"critical"`
	// Interval is how often each site probes it, Timeout how long one
	// probe may take; nil when the file leaves them out, filled in by Load.
	Interval *Duration `yaml:"interval"`
	Timeout  *Duration `yaml:"timeout"`
	// Sites holds where each site of the group reaches it: one entry for
	// every site of the group.
	Sites map[string]DependencySite `yaml:"sites"`
}

// DependencySite is where one site reaches a dependency; which fields a
// type needs is said next to each.
type DependencySite struct {
	// Address is host:port (tcp; dns: the server to ask).
	Address string `yaml:"address"`
	// URL is what GET asks (http).
	URL string `yaml:"url"`
	// ExpectStatus is the HTTP status that means up (http); 0: any 2xx
	// or 3xx.
	ExpectStatus int `yaml:"expect_status"`
	// Query is the name to resolve (dns), QType its record type (A by
	// default).
	Query string `yaml:"query"`
	QType string `yaml:"qtype"`
	// Engine is postgres or mariadb (sql), DSNEnv the environment
	// variable that holds the connection string (it may hold a
	// password), DSN the string itself when it holds none.
	Engine string `yaml:"engine"`
	DSN    string `yaml:"dsn"`
	DSNEnv string `yaml:"dsn_env"`
	// At is the location that hosts it, when it is one of the topology's:
	// `whatif` then knows that losing that location loses it too.
	At string `yaml:"at"`
}

// Defaults of a dependency's probe.
const (
	DefaultDependencyInterval = 5 * time.Second
	DefaultDependencyTimeout  = 2 * time.Second
)

// Destroys lists the locations of sites that l destroys: those it names in
// Lose and those inside its area (a location without coordinates is in
// none), in the order of sites.
func (l Level) Destroys(sites []Site) []string {
	var out []string
	for _, s := range sites {
		inArea := l.Area != nil && s.Location.Known() && l.Area.Contains(s.Location.Point())
		if slices.Contains(l.Lose, s.Name) || inArea {
			out = append(out, s.Name)
		}
	}
	return out
}

// Level returns the level named name.
func (t *Topology) Level(name string) (*Level, bool) {
	for i := range t.Levels {
		if t.Levels[i].Name == name {
			return &t.Levels[i], true
		}
	}
	return nil, false
}

// ParseLink reads a link between two locations, written
// LOCATION-LOCATION (brussels-antwerp). Names may hold '-' themselves:
// the one split into two known locations is the link.
func (t *Topology) ParseLink(s string) ([2]string, error) {
	var found [][2]string
	for i := range len(s) {
		if s[i] != '-' {
			continue
		}
		a, b := s[:i], s[i+1:]
		_, okA := t.Site(a)
		_, okB := t.Site(b)
		if okA && okB {
			found = append(found, [2]string{a, b})
		}
	}
	switch {
	case len(found) == 0:
		return [2]string{}, fmt.Errorf("%q is not a link between two locations: write it LOCATION-LOCATION, like brussels-antwerp (locations: %s)", s, strings.Join(t.SiteNames(), ", "))
	case len(found) > 1:
		return [2]string{}, fmt.Errorf("%q can be read as %s and %s or as %s and %s: rename a location, so that no two names joined by '-' make a third's",
			s, found[0][0], found[0][1], found[1][0], found[1][1])
	case found[0][0] == found[0][1]:
		return [2]string{}, fmt.Errorf("%q joins %s to itself: a link is between two different locations", s, found[0][0])
	}
	return found[0], nil
}
