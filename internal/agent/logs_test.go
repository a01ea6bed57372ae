package agent

import (
	"testing"

	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/logging"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/testbed"
)

// A line about another location names it under a key of its own: the
// agent's logger already carries its own location as site, and a second
// site key would make the line say two things (the JSON format would
// write the key twice). The scheduler at frankfurt starting a drill at
// antwerp is one such line.
func TestLogsOneKeyOnce(t *testing.T) {
	topo, snap := scheduleWorld(t)
	store := &drillFake{drills: map[string]status.DrillRecord{}}
	ctl := scheduleController(topo, store)
	var out testbed.Buffer
	log, err := logging.New(&out, logging.FormatJSON, "debug")
	if err != nil {
		t.Fatal(err)
	}
	ctl.log = siteLogger(log, ctl.site.Name)
	ds := ctl.newDrillScheduler(coord.Fence{Key: "k", Term: 7})
	defer ds.stop()
	ds.check(t.Context(), snap)
	if len(store.started) != 1 {
		t.Fatalf("started %d drills, want 1", len(store.started))
	}

	found := false
	for _, rec := range testbed.LogRecords(t, out.String()) {
		if rec["site"] != "frankfurt" {
			t.Errorf("line %v: site is not the agent's own location", rec)
		}
		if rec["msg"] == "scheduled drill started" {
			found = true
			if rec["target_site"] != "antwerp" || rec["group"] != "webshop" || rec["run"] != store.started[0].ID {
				t.Errorf("drill line %v: want target_site antwerp, group webshop, run %s", rec, store.started[0].ID)
			}
		}
	}
	if !found {
		t.Fatalf("no line says the drill started:\n%s", out.String())
	}
}
