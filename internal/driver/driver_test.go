package driver

import (
	"testing"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/watchdog"
)

// Every row of the table is one type with one name, declares its class,
// and implements what its class needs: a data type is observed, carries
// out steps and can be fenced without being asked; a traffic type runs in
// the agent.
func TestTableRows(t *testing.T) {
	seen := map[string]bool{}
	for _, row := range table {
		name := row.Name()
		if seen[name] {
			t.Errorf("type %q has two rows", name)
		}
		seen[name] = true
		c := row.Config()
		if c.New == nil || c.Prepare == nil {
			t.Errorf("%s: settings without New or Prepare", name)
		}
		switch c.Class {
		case config.ClassData:
			_, observes := row.(resource.Observes)
			_, steps := row.(resource.Steps)
			_, fences := row.(resource.HardFence)
			if !observes || !steps || !fences {
				t.Errorf("%s (data): observes %v, steps %v, hard fence %v; want all", name, observes, steps, fences)
			}
		case config.ClassTraffic:
			if _, moves := row.(resource.Moves); !moves {
				t.Errorf("%s (traffic) does not run in the agent", name)
			}
		case config.ClassCheck:
			_, verifies := row.(resource.Verifies)
			_, observes := row.(resource.Observes)
			_, steps := row.(resource.Steps)
			if !verifies || observes || steps {
				t.Errorf("%s (check): verifies %v, observes %v, steps %v; want a verifier only", name, verifies, observes, steps)
			}
		case config.ClassService:
			// A program: observed, started and stopped, stopped when the
			// lease runs out; no data, so no hard fence.
			_, observes := row.(resource.Observes)
			_, steps := row.(resource.Steps)
			_, yields := row.(resource.Yields)
			_, fences := row.(resource.HardFence)
			if !observes || !steps || !yields || fences {
				t.Errorf("%s (service): observes %v, steps %v, yields %v, hard fence %v; want all but the hard fence", name, observes, steps, yields, fences)
			}
		case config.ClassScript:
			_, steps := row.(resource.Steps)
			_, observes := row.(resource.Observes)
			if !steps || observes {
				t.Errorf("%s (script): steps %v, observes %v; want steps only", name, steps, observes)
			}
		case config.ClassGate:
			// The controller waits; nothing runs at a site.
			_, steps := row.(resource.Steps)
			_, observes := row.(resource.Observes)
			if steps || observes {
				t.Errorf("%s (gate): steps %v, observes %v; want neither", name, steps, observes)
			}
		default:
			t.Errorf("%s: class %q has no row yet", name, c.Class)
		}
		if _, syncs := row.(resource.Synchronizes); syncs != c.Synchronous {
			t.Errorf("%s: declares synchronous %v but implements it: %v", name, c.Synchronous, syncs)
		}
	}
	if got := len(Types()); got != len(table) {
		t.Errorf("Types() has %d types for %d rows", got, len(table))
	}
	for _, name := range []string{"postgres", "mariadb", "bgp", "vrf", "dns", "haproxy", "service", "script", "check", "approval"} {
		if !seen[name] {
			t.Errorf("no row for %s", name)
		}
	}
}

// Asking a type for a capability it lacks says which type and what.
func TestMissingCapability(t *testing.T) {
	g := &config.Group{Name: "webshop"}
	r := &config.Resource{Name: "vip", Type: "bgp"}
	if _, err := NewSync(g, r, "brussels"); err == nil || err.Error() != "group webshop, resource vip: bgp resources have no synchronous mode" {
		t.Errorf("NewSync of a bgp resource: %v", err)
	}
	r.Type = "nosuch"
	if _, err := NewSync(g, r, "brussels"); err == nil || err.Error() != `group webshop, resource vip: unknown type "nosuch" (known: approval, bgp, check, dns, haproxy, mariadb, postgres, script, service, vrf)` {
		t.Errorf("NewSync of an unknown type: %v", err)
	}
	if _, err := FenceNow(watchdog.Target{Name: "webshop/vip", Kind: "bgp"}); err == nil {
		t.Error("FenceNow of a bgp resource: no error")
	}
}
