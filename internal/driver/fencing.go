package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver/postgres"
	"github.com/siteflip/siteflip/internal/watchdog"
)

// GuardTarget is how the agent or its watchdog fences resource r of group
// g at site at once when the site's serve lease runs out: every database
// the agent could have let write, whatever it last observed
// (docs/design/safety.md). ok is false for resources that hold no data. A
// database the agent cannot kill (not on its machine) needs a fence
// command; without one the error says so, and the agent refuses to start.
func GuardTarget(g *config.Group, r *config.Resource, site string) (t watchdog.Target, ok bool, err error) {
	switch r.Type {
	case "postgres":
		s, ok := r.Settings[site].(*postgres.Settings)
		if !ok {
			return t, false, nil
		}
		t = watchdog.Target{Name: g.Name + "/" + r.Name, Kind: r.Type}
		local, why := postgres.IsLocal(*s)
		switch {
		case local:
			t.DataDir = s.DataDir
		case len(s.FenceCommand) > 0:
			if t.Settings, err = json.Marshal(s); err != nil {
				return t, false, err
			}
		default:
			return t, false, fmt.Errorf("group %s, resource %s at %s: the agent cannot stop this database when the serve lease runs out (%s): "+
				"run the agent on the database's machine (with its data directory, cloned first if this site's copy was lost), "+
				"or set fence_command (an argument list that stops it or makes it read-only; its effect is verified)",
				g.Name, r.Name, site, why)
		}
		return t, true, nil
	}
	return t, false, nil
}

// fenceCommandTimeout bounds a fence command.
const fenceCommandTimeout = 10 * time.Second

// FenceNow fences t at once, without asking the resource: a database on
// this machine is killed as a power cut would (killed says one ran),
// unless its control file says it runs as a standby, which accepts no
// writes; one elsewhere is fenced by its fence command, verified.
func FenceNow(t watchdog.Target) (killed bool, err error) {
	switch t.Kind {
	case "postgres":
		if t.DataDir != "" {
			killed, err := postgres.FenceDataDir(t.DataDir)
			if err != nil {
				return killed, fmt.Errorf("%s: %w", t.Name, err)
			}
			return killed, nil
		}
		var s postgres.Settings
		if err := json.Unmarshal(t.Settings, &s); err != nil {
			return false, fmt.Errorf("%s: decode its settings: %w", t.Name, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), fenceCommandTimeout)
		defer cancel()
		if err := postgres.RunFenceCommand(ctx, s); err != nil {
			return false, fmt.Errorf("%s: %w", t.Name, err)
		}
		return false, nil
	}
	return false, fmt.Errorf("%s: cannot fence %s resources", t.Name, t.Kind)
}

// Endpoint is the network address where resource r serves at site, which
// the other locations check before declaring the site lost; ok is false
// when the resource has none.
func Endpoint(r *config.Resource, site string) (addr string, ok bool) {
	switch r.Type {
	case "postgres":
		s, ok := r.Settings[site].(*postgres.Settings)
		if !ok || s.Host == "" || s.Host[0] == '/' {
			return "", false
		}
		return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), true
	}
	return "", false
}
