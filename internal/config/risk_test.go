package config_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/geo"
)

// Where good.yaml's locations may be put (brussels is at 50.85,4.35).
const (
	antwerpAt  = "    role: site\n    location: {latitude: 51.22, longitude: 4.40}"
	parisAt    = "    role: site\n    location: {latitude: 48.85, longitude: 2.35}"
	nowhereAt  = "    role: site\n    location: {latitude: 0, longitude: 0}"
	zaventemAt = "    role: witness\n    location: {latitude: 50.90, longitude: 4.48}"
	mainzAt    = "    role: witness\n    location: {latitude: 50.00, longitude: 8.27}"
)

// geoWarning is what a test expects of one geography warning.
type geoWarning struct {
	text  string // "field: message" prefix
	group string
	sites []string
}

func TestGeography(t *testing.T) {
	const (
		pair    = "sites[1].location: sites brussels and antwerp are 41 km apart, closer than min_site_distance (100 km): one regional disaster (a flood, a storm, a grid failure) can take both; move one of them further away, or set min_site_distance to the distance you accept (0 turns this warning off)"
		circle  = "groups[0].sites: group webshop: a disaster of 21 km radius around 51.03,4.38 takes brussels and antwerp"
		fix     = "; no failover survives that: move one of its sites further from the others"
		witness = "sites[2].location: witness frankfurt is 11 km from site brussels, closer than min_site_distance (100 km): one disaster can take the site and the quorum's tie-breaker together; move the witness further away, or set min_site_distance to the distance you accept (0 turns this warning off)"
		levels  = "levels:\n  - {name: cut, lose_links: [brussels-antwerp]}\n  - {name: fire, lose: [brussels]}\n  - {name: both, lose: [antwerp, brussels]}\n  - {name: flood, at: \"50.85,4.35\", radius: 60km}\nsites:"
	)
	both := []string{"brussels", "antwerp"}
	tests := []struct {
		name  string
		edits []string
		want  []geoWarning
	}{
		{"one site without coordinates: nothing to say", nil, nil},
		{"41 km apart", []string{"    role: site", antwerpAt}, []geoWarning{
			{pair, "", both},
			{circle + fix, "webshop", both},
		}},
		{"41 km apart, min_site_distance 0", []string{"    role: site", antwerpAt, "sites:", "min_site_distance: 0km\nsites:"}, nil},
		{"41 km apart, min_site_distance 0 without a unit", []string{"    role: site", antwerpAt, "sites:", "min_site_distance: 0\nsites:"}, nil},
		// The group's warning agrees with the pair's: a disaster 41 km
		// wide is wider than the 40 km the topology accepts.
		{"41 km apart, min_site_distance 40 km", []string{"    role: site", antwerpAt, "sites:", "min_site_distance: 40km\nsites:"}, nil},
		{"41 km apart, min_site_distance 20 km", []string{"    role: site", antwerpAt, "sites:", "min_site_distance: 20 km\nsites:"}, nil},
		{"41 km apart, min_site_distance in miles", []string{"    role: site", antwerpAt, "sites:", "min_site_distance: 30mi\nsites:"}, []geoWarning{
			{"sites[1].location: sites brussels and antwerp are 41 km apart, closer than min_site_distance (48 km)", "", both},
			{circle + fix, "webshop", both},
		}},
		{"0,0 is no coordinates", []string{"    role: site", nowhereAt}, nil},
		{"far apart", []string{"    role: site", parisAt}, nil},
		{"far apart, a level loses both", []string{"    role: site", parisAt, "sites:", levels}, []geoWarning{
			{"groups[0].sites: group webshop: a disaster of 133 km radius around 49.85,3.35 takes brussels and antwerp; levels that take it out: both" + fix, "webshop", both},
		}},
		{"41 km apart, levels by name and by area", []string{"    role: site", antwerpAt, "sites:", levels}, []geoWarning{
			{pair, "", both},
			{circle + "; levels that take it out: both, flood" + fix, "webshop", both},
		}},
		{"no coordinates, a level loses both by name", []string{"sites:", levels}, []geoWarning{
			{"groups[0].sites: group webshop: levels that take it out: both" + fix, "webshop", both},
		}},
		{"the witness 11 km from a site", []string{"    role: witness", zaventemAt}, []geoWarning{
			{witness, "", []string{"brussels", "frankfurt"}},
		}},
		{"the witness 11 km from a site, and 36 km from the other", []string{"    role: site", antwerpAt, "    role: witness", zaventemAt}, []geoWarning{
			{pair, "", both},
			{witness, "", []string{"brussels", "frankfurt"}},
			{"sites[2].location: witness frankfurt is 36 km from site antwerp", "", []string{"antwerp", "frankfurt"}},
			{circle + fix, "webshop", both},
		}},
		{"the witness far away", []string{"    role: site", parisAt, "    role: witness", mainzAt}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, probs := config.Parse("g.yaml", []byte(edited(t, tt.edits...)), driver.Types())
			if errs := config.Errors(probs); len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
			var got []config.Problem
			for _, p := range probs {
				if p.Kind == config.KindGeography {
					got = append(got, p)
				}
			}
			if len(got) != len(tt.want) {
				var lines []string
				for _, p := range got {
					lines = append(lines, p.Field+": "+p.Msg)
				}
				t.Fatalf("got %d geography warnings, want %d:\n%s", len(got), len(tt.want), strings.Join(lines, "\n"))
			}
			for i, w := range tt.want {
				p := got[i]
				if text := p.Field + ": " + p.Msg; !strings.HasPrefix(text, w.text) {
					t.Errorf("warning %d:\n got %s\nwant %s…", i, text, w.text)
				}
				if !p.Warning || p.Group != w.group || !cmp.Equal(p.Sites, w.sites) {
					t.Errorf("warning %d: warning %v, group %q, sites %v; want a warning, group %q, sites %v", i, p.Warning, p.Group, p.Sites, w.group, w.sites)
				}
			}
		})
	}
}

// The warnings are kept on the topology, for readiness.
func TestGeographyKept(t *testing.T) {
	topo, probs := config.Parse("g.yaml", []byte(edited(t, "    role: site", antwerpAt)), driver.Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	var kinds []string
	for _, w := range topo.Warnings {
		if w.Kind != "" || w.Field == "tls" {
			kinds = append(kinds, w.Field+" "+w.Kind)
		}
	}
	want := []string{"tls ", "sites[1].location geography", "groups[0].sites geography"}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("Topology.Warnings (-want +got):\n%s", diff)
	}
}

func TestRiskDefaults(t *testing.T) {
	deps := `    requires:
      - name: ldap
        type: tcp
        sites: {brussels: {address: "10.1.0.5:389"}, antwerp: {address: "10.2.0.5:389"}}
      - name: names
        type: dns
        interval: 10s
        timeout: 0.5s
        sites:
          brussels: {address: "10.1.0.53:53", query: ldap.shop.example.}
          antwerp: {address: "10.2.0.53:53", query: ldap.shop.example., qtype: srv}
`
	topo, probs := config.Parse("d.yaml", []byte(edited(t, "    resources:\n", deps+"    resources:\n")), driver.Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	if got := topo.MinSiteDistance.M(); got != config.DefaultMinSiteDistance {
		t.Errorf("min_site_distance = %v, want the default %v", got, geo.Distance(config.DefaultMinSiteDistance))
	}
	g, _ := topo.Group("webshop")
	type probe struct {
		Interval, Timeout time.Duration
		QType             map[string]string
	}
	var got []probe
	for _, d := range g.Requires {
		p := probe{Interval: d.Interval.D(), Timeout: d.Timeout.D(), QType: map[string]string{}}
		for sn, e := range d.Sites {
			p.QType[sn] = e.QType
		}
		got = append(got, p)
	}
	want := []probe{
		{config.DefaultDependencyInterval, config.DefaultDependencyTimeout, map[string]string{"brussels": "", "antwerp": ""}},
		{10 * time.Second, 500 * time.Millisecond, map[string]string{"brussels": "A", "antwerp": "SRV"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("probes (-want +got):\n%s", diff)
	}

	topo, probs = config.Parse("d.yaml", []byte(edited(t, "sites:", "min_site_distance: 0km\nsites:")), driver.Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	if topo.MinSiteDistance == nil || topo.MinSiteDistance.M() != 0 {
		t.Errorf("min_site_distance: 0km is kept as 0, got %v", topo.MinSiteDistance)
	}
}

// Load parses the levels it accepts: their areas and links.
func TestLevelsParsed(t *testing.T) {
	const levels = `levels:
  - {name: cut, lose_links: [antwerp-brussels, brussels-frankfurt]}
  - {name: fire, lose: [brussels]}
  - name: flood
    at: 50.85, 4.35
    radius: 60km
sites:`
	topo, probs := config.Parse("l.yaml", []byte(edited(t, "sites:", levels)), driver.Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	cut, _ := topo.Level("cut")
	if want := [][2]string{{"antwerp", "brussels"}, {"brussels", "frankfurt"}}; !cmp.Equal(cut.Links, want) || cut.Area != nil {
		t.Errorf("cut: links %v, area %v; want %v and no area", cut.Links, cut.Area, want)
	}
	flood, _ := topo.Level("flood")
	if want := (geo.Circle{Center: geo.Point{Lat: 50.85, Lon: 4.35}, Radius: 60_000}); flood.Area == nil || *flood.Area != want || flood.Links != nil {
		t.Errorf("flood: area %v, links %v; want %v and no links", flood.Area, flood.Links, want)
	}
	if _, ok := topo.Level("asteroid"); ok {
		t.Error("a level that is not in the file was found")
	}
	if got := flood.Destroys(topo.Sites); !cmp.Equal(got, []string{"brussels"}) {
		t.Errorf("flood destroys %v; want brussels only (antwerp and frankfurt have no coordinates)", got)
	}
}

func TestSiteDistance(t *testing.T) {
	topo, probs := config.Parse("s.yaml", []byte(edited(t, "    role: site", antwerpAt)), driver.Types())
	if errs := config.Errors(probs); len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	tests := []struct {
		a, b string
		km   float64 // -1: not known
	}{
		{"brussels", "antwerp", 41.4},
		{"antwerp", "brussels", 41.4},
		{"brussels", "brussels", 0},
		{"brussels", "frankfurt", -1}, // frankfurt has no coordinates
		{"brussels", "paris", -1},
	}
	for _, tt := range tests {
		d, ok := topo.SiteDistance(tt.a, tt.b)
		switch {
		case tt.km < 0 && ok:
			t.Errorf("SiteDistance(%s, %s) = %v, want none", tt.a, tt.b, d)
		case tt.km >= 0 && (!ok || math.Abs(d.Km()-tt.km) > 0.5):
			t.Errorf("SiteDistance(%s, %s) = %v, %v; want %.1f km", tt.a, tt.b, d, ok, tt.km)
		}
	}
}
