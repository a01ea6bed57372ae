package status

import (
	"slices"
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
		unknown   at // not observed: down, or its agent not reporting yet
		sick      at // runs, its health probe failing
	}{
		{"data primary at one site", []config.Resource{db, name}, at{"db": {"antwerp"}, "name": {"brussels"}}, bothUp, "antwerp", nil, nil},
		{"data primary at two sites: wait", []config.Resource{db}, at{"db": {"brussels", "antwerp"}}, bothUp, "", nil, nil},
		{"data primary nowhere: wait", []config.Resource{db}, at{}, bothUp, "", nil, nil},
		{"data decides, services do not", []config.Resource{db, app}, at{"db": {"brussels"}, "app": {"antwerp"}}, bothUp, "brussels", nil, nil},
		// A group of a name only stayed initializing for ever.
		{"a name only: the preferred site", []config.Resource{name}, at{}, bothUp, "brussels", nil, nil},
		{"a name only, the preferred site down: wait", []config.Resource{name}, at{}, map[string]bool{"antwerp": true}, "", nil, nil},
		{"services run at one site", []config.Resource{app, web, name}, at{"app": {"antwerp"}, "web": {"antwerp"}}, bothUp, "antwerp", nil, nil},
		{"a service runs at two sites: wait", []config.Resource{app}, at{"app": {"brussels", "antwerp"}}, bothUp, "", nil, nil},
		{"services run in part: wait", []config.Resource{app, web}, at{"app": {"antwerp"}}, bothUp, "", nil, nil},
		{"services run nowhere: the preferred site", []config.Resource{app, name}, at{}, bothUp, "brussels", nil, nil},
		// A site that does not report may run them: adopted elsewhere,
		// the group would then have its services stopped where they ran.
		{"services run nowhere known, a site not reporting: wait", []config.Resource{app}, at{}, bothUp, "", at{"app": {"antwerp"}}, nil},
		{"a service runs unhealthy at one site: there", []config.Resource{app}, at{}, bothUp, "antwerp", nil, at{"app": {"antwerp"}}},
		{"a service runs unhealthy at one site, another healthy at the other: wait", []config.Resource{app, web}, at{"web": {"brussels"}}, bothUp, "", nil, at{"app": {"antwerp"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &config.Group{Name: "g", PreferredSite: "brussels", Sites: []string{"brussels", "antwerp"}, Resources: tt.resources}
			var gs GroupStatus
			for _, r := range tt.resources {
				rs := ResourceStatus{Name: r.Name}
				for _, site := range g.Sites {
					role, up := RoleStandby, true
					if slices.Contains(tt.primary[r.Name], site) {
						role = RolePrimary
					}
					if slices.Contains(tt.sick[r.Name], site) {
						role = RoleDown
					}
					if slices.Contains(tt.unknown[r.Name], site) {
						role, up = RoleUnknown, false
					}
					rs.Sites = append(rs.Sites, ResourceSiteStatus{Site: site, Up: up, Role: role})
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
