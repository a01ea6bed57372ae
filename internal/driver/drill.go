package driver

import (
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/resource"
)

// NewDrill returns resource r of group g at site as a part of the drill
// in bubble b; ok is false when its type has no bubble (a traffic type
// that sends nobody into drills: the drill goes on without it).
func NewDrill(g *config.Group, r *config.Resource, site string, b resource.Bubble) (d resource.Drill, ok bool, err error) {
	row, known := lookup(r.Type)
	dr, drills := row.(resource.Drills)
	if !known || !drills {
		return nil, false, nil
	}
	d, err = dr.Drill(g, r, site, b)
	return d, err == nil, err
}
