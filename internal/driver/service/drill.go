package service

import (
	"context"
	"fmt"
	"time"

	"github.com/siteflip/siteflip/internal/command"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/resource"
)

// Drill returns the service's part of a drill at site: the operator's
// drill.start and drill.stop, told the bubble in their environment. A
// service without them is left out of drills.
func (Type) Drill(g *config.Group, r *config.Resource, site string, b resource.Bubble) (resource.Drill, error) {
	sv, err := newService(g, r, site)
	if err != nil {
		return nil, err
	}
	return &drill{sv: sv, env: []string{
		"SITEFLIP_BUBBLE_ADDRESS=" + b.Address,
		"SITEFLIP_BUBBLE_NETNS=" + b.Netns,
		"SITEFLIP_RUN=" + b.Run,
	}}, nil
}

type drill struct {
	sv  *service
	env []string
}

// Clone has nothing to copy.
func (d *drill) Clone(ctx context.Context) (map[string]string, error) {
	return map[string]string{resource.OutputSkipped: "a service holds no data"}, nil
}

// Start runs drill.start, bounded by start_timeout.
func (d *drill) Start(ctx context.Context) (map[string]string, error) {
	dr := d.sv.s.Drill
	if dr == nil {
		return map[string]string{resource.OutputSkipped: "no drill.start command: the service is left out of drills"}, nil
	}
	out, err := d.run(ctx, dr.Start, d.sv.s.StartTimeout.D())
	if err != nil {
		return out, fmt.Errorf("%s: drill.start: %w; fix the drill.start command", d.sv.where, err)
	}
	return out, nil
}

// Teardown runs drill.stop, bounded by stop_timeout.
func (d *drill) Teardown(ctx context.Context) error {
	dr := d.sv.s.Drill
	if dr == nil {
		return nil
	}
	if _, err := d.run(ctx, dr.Stop, d.sv.s.StopTimeout.D()); err != nil {
		return fmt.Errorf("%s: drill.stop: %w; fix the drill.stop command, or stop the drill's copy by hand", d.sv.where, err)
	}
	return nil
}

// Leftovers finds none: what drill.start made, drill.stop removes.
func (d *drill) Leftovers() ([]string, error) { return nil, nil }

func (d *drill) run(ctx context.Context, argv []string, timeout time.Duration) (map[string]string, error) {
	out := map[string]string{}
	res, err := command.Run(ctx, command.Command{Argv: argv, Shell: d.sv.s.Shell, Env: d.env, Timeout: timeout})
	keep(out, res)
	return out, err
}
