package status

import (
	"testing"

	"github.com/siteflip/siteflip/internal/config"
)

func TestAdoptionSite(t *testing.T) {
	db := config.Resource{Name: "db", Type: "postgres", Class: config.ClassData, Data: true}
	app := config.Resource{Name: "app", Type: "service", Class: config.ClassService}
	web := config.Resource{Name: "web", Type: "service", Class: config.ClassService}
	name := config.Resource{Name: "name", Type: "dns", Class: config.ClassTraffic}
	// at says which sites see a resource as primary.
	type at map[string][]string
	bothUp := map[string]bool{"brussels": true, "antwerp": true}
	tests := []struct {
		name      string
		resources []config.Resource
		primary   at
		up        map[string]bool
		want      string
	}{
		{"data primary at one site", []config.Resource{db, name}, at{"db": {"antwerp"}, "name": {"brussels"}}, bothUp, "antwerp"},
		{"data primary at two sites: wait", []config.Resource{db}, at{"db": {"brussels", "antwerp"}}, bothUp, ""},
		{"data primary nowhere: wait", []config.Resource{db}, at{}, bothUp, ""},
		{"data decides, services do not", []config.Resource{db, app}, at{"db": {"brussels"}, "app": {"antwerp"}}, bothUp, "brussels"},
		// A group of a name only stayed initializing for ever.
		{"a name only: the preferred site", []config.Resource{name}, at{}, bothUp, "brussels"},
		{"a name only, the preferred site down: wait", []config.Resource{name}, at{}, map[string]bool{"antwerp": true}, ""},
		{"services run at one site", []config.Resource{app, web, name}, at{"app": {"antwerp"}, "web": {"antwerp"}}, bothUp, "antwerp"},
		{"a service runs at two sites: wait", []config.Resource{app}, at{"app": {"brussels", "antwerp"}}, bothUp, ""},
		{"services run in part: wait", []config.Resource{app, web}, at{"app": {"antwerp"}}, bothUp, ""},
		{"services run nowhere: the preferred site", []config.Resource{app, name}, at{}, bothUp, "brussels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &config.Group{Name: "g", PreferredSite: "brussels", Sites: []string{"brussels", "antwerp"}, Resources: tt.resources}
			var gs GroupStatus
			for _, r := range tt.resources {
				rs := ResourceStatus{Name: r.Name}
				for _, site := range g.Sites {
					role := RoleStandby
					for _, p := range tt.primary[r.Name] {
						if p == site {
							role = RolePrimary
						}
					}
					rs.Sites = append(rs.Sites, ResourceSiteStatus{Site: site, Up: true, Role: role})
				}
				gs.Resources = append(gs.Resources, rs)
			}
			got, why := AdoptionSite(g, gs, tt.up)
			if got != tt.want {
				t.Errorf("AdoptionSite = %q (%s), want %q", got, why, tt.want)
			}
			if why == "" {
				t.Error("no reason given")
			}
		})
	}
}
