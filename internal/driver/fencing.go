package driver

import (
	"fmt"
	"net"
	"strconv"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver/postgres"
	"github.com/siteflip/siteflip/internal/watchdog"
)

// GuardTarget is what must be fenced at once, by the agent or its
// watchdog, when the site's serve lease runs out while resource r serves
// as primary there. ok is false for resources that never accept writes.
func GuardTarget(g *config.Group, r *config.Resource, site string) (t watchdog.Target, ok bool) {
	switch r.Type {
	case "postgres":
		s, ok := r.Settings[site].(*postgres.Settings)
		if !ok {
			return t, false
		}
		return watchdog.Target{Name: g.Name + "/" + r.Name, Kind: r.Type, DataDir: s.DataDir}, true
	}
	return t, false
}

// FenceNow fences t at once, as a power cut would, without asking the
// resource: it is used when the site may no longer serve.
func FenceNow(t watchdog.Target) error {
	switch t.Kind {
	case "postgres":
		return postgres.KillDataDir(t.DataDir)
	}
	return fmt.Errorf("%s: cannot fence %s resources", t.Name, t.Kind)
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
