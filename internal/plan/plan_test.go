package plan

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
)

// group is webshop: db, and app that depends on db, at brussels and
// antwerp, preferred at brussels, max_data_loss 5s.
func group() *config.Group {
	return &config.Group{
		Name: "webshop", PreferredSite: "brussels", Sites: []string{"brussels", "antwerp"},
		MaxDataLoss: new(config.Duration(5 * time.Second)),
		Resources: []config.Resource{
			{Name: "app", Type: "service", Class: config.ClassService, DependsOn: []string{"db"}},
			{Name: "db", Type: "postgres", Class: config.ClassData, Data: true},
		},
	}
}

func known(active, state string, up map[string]bool, lagSeconds float64) Known {
	standbyAt := func(site string) []status.ResourceSiteStatus {
		var out []status.ResourceSiteStatus
		for _, s := range []string{"brussels", "antwerp"} {
			role := status.RolePrimary
			if s != active {
				role = status.RoleStandby
			}
			out = append(out, status.ResourceSiteStatus{Site: s, Up: true, Role: role})
		}
		return out
	}
	return Known{
		Status: status.GroupStatus{Name: "webshop", ActiveSite: active, Epoch: 7, State: state,
			Resources: []status.ResourceStatus{{Name: "db", Sites: standbyAt(active)}, {Name: "app", Sites: standbyAt(active)}}},
		SiteUp: up,
		LastLag: map[string]map[string]status.Lag{
			"db": {
				"antwerp":  {Seconds: lagSeconds, Bytes: 4096, Epoch: 7, MeasuredAt: time.Unix(100, 0), SeenAt: time.Unix(100, 0), Streaming: true},
				"brussels": {Seconds: lagSeconds, Epoch: 7, Streaming: true},
			},
		},
		ServeLease: time.Second,
	}
}

var bothUp = map[string]bool{"brussels": true, "antwerp": true, "frankfurt": true}
var brusselsDown = map[string]bool{"brussels": false, "antwerp": true, "frankfurt": true}

// ids renders steps as "kind:resource@site" strings, best-effort ones
// marked with a "?".
func ids(steps []Step) []string {
	out := []string{}
	for _, s := range steps {
		id := s.ID
		if s.BestEffort {
			id += "?"
		}
		out = append(out, id)
	}
	return out
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name     string
		known    Known
		req      Request
		to       string
		steps    []string
		rollback []string
		err      error
	}{
		{
			name:  "switchover: fence dependents first, catch up, activate, promote dependencies first, rejoin",
			known: known("brussels", status.StateProtected, bothUp, 0.01),
			req:   Request{Action: Switchover, To: "antwerp"},
			to:    "antwerp",
			steps: []string{
				"fence:app@brussels", "fence:db@brussels",
				"catch-up:db@antwerp", // a service has nothing to catch up
				"activate@antwerp",
				"promote:db@antwerp", "promote:app@antwerp",
				"rejoin:db@brussels", "rejoin:app@brussels",
			},
			rollback: []string{"unfence:db@brussels", "unfence:app@brussels"},
		},
		{
			name:  "switchover without --to goes to the other site",
			known: known("antwerp", status.StateProtected, bothUp, 0),
			req:   Request{Action: Switchover},
			to:    "brussels",
			steps: []string{
				"fence:app@antwerp", "fence:db@antwerp",
				"catch-up:db@brussels",
				"activate@brussels",
				"promote:db@brussels", "promote:app@brussels",
				"rejoin:db@antwerp", "rejoin:app@antwerp",
			},
			rollback: []string{"unfence:db@antwerp", "unfence:app@antwerp"},
		},
		{
			name:  "failover with the old site dead: no fencing steps, activate, promote",
			known: known("brussels", status.StateUnreachable, brusselsDown, 0.2),
			req:   Request{Action: Failover},
			to:    "antwerp",
			steps: []string{"activate@antwerp", "promote:db@antwerp", "promote:app@antwerp"},
		},
		{
			name:     "failover with the old site reachable: best-effort fences first, unfenced on rollback",
			known:    known("brussels", status.StateDown, bothUp, 0.2),
			req:      Request{Action: Failover, To: "antwerp"},
			to:       "antwerp",
			steps:    []string{"fence:app@brussels?", "fence:db@brussels?", "activate@antwerp", "promote:db@antwerp", "promote:app@antwerp"},
			rollback: []string{"unfence:db@brussels", "unfence:app@brussels"},
		},
		{
			name: "failover to a site whose standby is down",
			known: func() Known {
				k := known("brussels", status.StateUnreachable, brusselsDown, 0.2)
				k.Status.Resources[0].Sites[1] = status.ResourceSiteStatus{Site: "antwerp", Role: status.RoleDown}
				return k
			}(),
			req: Request{Action: Failover},
			err: ErrTargetNotReady,
		},
		{
			name:  "failover past max_data_loss is refused",
			known: known("brussels", status.StateUnreachable, brusselsDown, 12),
			req:   Request{Action: Failover},
			err:   ErrDataLoss,
		},
		{
			name:  "failover past max_data_loss with --accept-data-loss",
			known: known("brussels", status.StateUnreachable, brusselsDown, 12),
			req:   Request{Action: Failover, AcceptDataLoss: true},
			to:    "antwerp",
			steps: []string{"activate@antwerp", "promote:db@antwerp", "promote:app@antwerp"},
		},
		{
			name: "failover with a lag never measured is refused",
			known: func() Known {
				k := known("brussels", status.StateUnreachable, brusselsDown, 0)
				delete(k.LastLag["db"], "antwerp")
				return k
			}(),
			req: Request{Action: Failover},
			err: ErrNoLag,
		},
		{
			name: "failover when the standby had stopped streaming before the primary was lost",
			known: func() Known {
				k := known("brussels", status.StateUnreachable, brusselsDown, 0)
				l := k.LastLag["db"]["antwerp"]
				l.Streaming = false
				k.LastLag["db"]["antwerp"] = l
				return k
			}(),
			req: Request{Action: Failover},
			err: ErrNoLag,
		},
		{
			name: "failover with a lag measured in an earlier epoch",
			known: func() Known {
				k := known("brussels", status.StateUnreachable, brusselsDown, 0)
				l := k.LastLag["db"]["antwerp"]
				l.Epoch = 6
				k.LastLag["db"]["antwerp"] = l
				return k
			}(),
			req: Request{Action: Failover},
			err: ErrNoLag,
		},
		{
			// 0.2 s of lag, measured 3 s before its primary was last seen
			// (its observation stalled), and 1 s of serve lease: 4.2 s.
			name: "failover with a stale measurement still within max_data_loss",
			known: func() Known {
				k := known("brussels", status.StateUnreachable, brusselsDown, 0.2)
				l := k.LastLag["db"]["antwerp"]
				l.SeenAt = l.MeasuredAt.Add(3 * time.Second)
				k.LastLag["db"]["antwerp"] = l
				return k
			}(),
			req:   Request{Action: Failover},
			to:    "antwerp",
			steps: []string{"activate@antwerp", "promote:db@antwerp", "promote:app@antwerp"},
		},
		{
			name: "failover with a measurement too stale: what the primary wrote since is unknown",
			known: func() Known {
				k := known("brussels", status.StateUnreachable, brusselsDown, 0.2)
				l := k.LastLag["db"]["antwerp"]
				l.SeenAt = l.MeasuredAt.Add(10 * time.Minute)
				k.LastLag["db"]["antwerp"] = l
				return k
			}(),
			req: Request{Action: Failover},
			err: ErrDataLoss,
		},
		{
			// 4.5 s of lag is within 5 s, but a cut-off primary may have
			// acknowledged writes for a serve lease more.
			name:  "failover whose lag plus the serve lease passes max_data_loss",
			known: known("brussels", status.StateUnreachable, brusselsDown, 4.5),
			req:   Request{Action: Failover},
			err:   ErrDataLoss,
		},
		{
			name:  "failover to a site that is down",
			known: known("antwerp", status.StateUnreachable, brusselsDown, 0),
			req:   Request{Action: Failover, To: "brussels"},
			err:   ErrTargetDown,
		},
		{
			name:  "reprotect: the other site rejoins, dependencies first",
			known: known("antwerp", status.StateUnprotected, bothUp, 0),
			req:   Request{Action: Reprotect},
			to:    "antwerp",
			steps: []string{"rejoin:db@brussels", "rejoin:app@brussels"},
		},
		{
			name:  "failback goes to the preferred site",
			known: known("antwerp", status.StateProtected, bothUp, 0),
			req:   Request{Action: Failback},
			to:    "brussels",
			steps: []string{
				"fence:app@antwerp", "fence:db@antwerp",
				"catch-up:db@brussels",
				"activate@brussels",
				"promote:db@brussels", "promote:app@brussels",
				"rejoin:db@antwerp", "rejoin:app@antwerp",
			},
			rollback: []string{"unfence:db@antwerp", "unfence:app@antwerp"},
		},
		{
			name:  "failback while not protected is refused",
			known: known("antwerp", status.StateUnprotected, bothUp, 0),
			req:   Request{Action: Failback},
			err:   ErrNotProtected,
		},
		{
			name:  "failback when already at the preferred site",
			known: known("brussels", status.StateProtected, bothUp, 0),
			req:   Request{Action: Failback},
			err:   ErrAlreadyActive,
		},
		{
			name:  "switchover to the active site",
			known: known("brussels", status.StateProtected, bothUp, 0),
			req:   Request{Action: Switchover, To: "brussels"},
			err:   ErrAlreadyActive,
		},
		{
			name:  "switchover to an unknown site",
			known: known("brussels", status.StateProtected, bothUp, 0),
			req:   Request{Action: Switchover, To: "paris"},
			err:   ErrUnknownSite,
		},
		{
			name:  "switchover to the witness",
			known: known("brussels", status.StateProtected, bothUp, 0),
			req:   Request{Action: Switchover, To: "frankfurt"},
			err:   ErrUnknownSite,
		},
		{
			name:  "group not adopted yet",
			known: known("", status.StateInitializing, bothUp, 0),
			req:   Request{Action: Switchover},
			err:   ErrNotAdopted,
		},
		{
			name:  "unknown action",
			known: known("brussels", status.StateProtected, bothUp, 0),
			req:   Request{Action: "teleport"},
			err:   ErrBadAction,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Build(group(), tt.known, tt.req)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got error %v, want %v", err, tt.err)
				}
				if !strings.Contains(err.Error(), "webshop") {
					t.Errorf("error does not name the group: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.From != tt.known.Status.ActiveSite || p.To != tt.to || p.Epoch != 7 || p.Group != "webshop" || p.Action != tt.req.Action {
				t.Errorf("plan header: %+v", p)
			}
			if diff := cmp.Diff(tt.steps, ids(p.Steps)); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.rollback, ids(p.Rollback), cmp.Comparer(func(a, b []string) bool {
				return len(a) == 0 && len(b) == 0 || cmp.Equal(a, b)
			})); diff != "" {
				t.Errorf("rollback (-want +got):\n%s", diff)
			}
			seen := map[string]bool{}
			for _, s := range append(p.Steps, p.Rollback...) {
				if seen[s.ID] {
					t.Errorf("step id %s twice", s.ID)
				}
				seen[s.ID] = true
				if s.Timeout <= 0 {
					t.Errorf("step %s has no timeout", s.ID)
				}
			}
		})
	}
}

func TestDataLossErrorSaysWhatToDo(t *testing.T) {
	_, err := Build(group(), known("brussels", status.StateUnreachable, brusselsDown, 12), Request{Action: Failover})
	for _, want := range []string{"db at antwerp", "lag 12s (4096 bytes)", "max_data_loss 5s", "siteflip failover webshop --to antwerp --accept-data-loss"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestOrder(t *testing.T) {
	g := &config.Group{Name: "g", Resources: []config.Resource{
		{Name: "web", DependsOn: []string{"app", "dns"}},
		{Name: "app", DependsOn: []string{"db"}},
		{Name: "dns"},
		{Name: "db"},
	}}
	got, err := Order(g)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got {
		names = append(names, r.Name)
	}
	if diff := cmp.Diff([]string{"dns", "db", "app", "web"}, names); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	g.Resources[3].DependsOn = []string{"web"}
	if _, err := Order(g); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: got %v", err)
	}
}

func TestBuildDrill(t *testing.T) {
	g := group()
	g.Resources = append(g.Resources,
		config.Resource{Name: "name", Type: "dns", Class: config.ClassTraffic},
		config.Resource{Name: "orders", Type: "check", Class: config.ClassCheck, DependsOn: []string{"db"}})
	standbyDown := known("brussels", status.StateUnprotected, bothUp, 0)
	standbyDown.Status.Resources[0].Sites[1] = status.ResourceSiteStatus{Site: "antwerp", Role: status.RoleDown}
	tests := []struct {
		name     string
		known    Known
		req      Request
		to       string
		steps    []string
		rollback []string
		err      error
	}{
		{
			name:  "drill at the standby site: clone data, start data and traffic, check, tear down in reverse",
			known: known("brussels", status.StateProtected, bothUp, 0),
			req:   Request{Action: Drill},
			to:    "antwerp",
			steps: []string{"clone:db@antwerp", "start:db@antwerp", "start:app@antwerp", "start:name@antwerp", "check:orders@antwerp",
				"teardown:name@antwerp?", "teardown:app@antwerp?", "teardown:db@antwerp?"},
			rollback: []string{"teardown:name@antwerp?", "teardown:app@antwerp?", "teardown:db@antwerp?"},
		},
		{
			name:  "drill kept up for a while",
			known: known("antwerp", status.StateProtected, bothUp, 0),
			req:   Request{Action: Drill, Keep: time.Minute},
			to:    "brussels",
			steps: []string{"clone:db@brussels", "start:db@brussels", "start:app@brussels", "start:name@brussels", "check:orders@brussels", "keep@brussels",
				"teardown:name@brussels?", "teardown:app@brussels?", "teardown:db@brussels?"},
			rollback: []string{"teardown:name@brussels?", "teardown:app@brussels?", "teardown:db@brussels?"},
		},
		{
			name:  "a drill never copies the active site",
			known: known("brussels", status.StateProtected, bothUp, 0),
			req:   Request{Action: Drill, To: "brussels"},
			err:   ErrNoDrillSite,
		},
		{
			name:  "no standby to copy",
			known: standbyDown,
			req:   Request{Action: Drill},
			err:   ErrNoDrillSite,
		},
		{
			name:  "no standby to copy at the named site",
			known: standbyDown,
			req:   Request{Action: Drill, To: "antwerp"},
			err:   ErrTargetNotReady,
		},
		{
			name:  "a drill site that is down",
			known: known("brussels", status.StateProtected, map[string]bool{"brussels": true, "antwerp": false}, 0),
			req:   Request{Action: Drill},
			err:   ErrTargetDown,
		},
		{
			name:  "a switchover runs the checks at its end",
			known: known("brussels", status.StateProtected, bothUp, 0),
			req:   Request{Action: Switchover, To: "antwerp"},
			to:    "antwerp",
			steps: []string{"fence:name@brussels", "fence:app@brussels", "fence:db@brussels",
				"catch-up:db@antwerp", // a service and a name have nothing to catch up
				"activate@antwerp",
				"promote:db@antwerp", "promote:app@antwerp", "promote:name@antwerp",
				"rejoin:db@brussels", "rejoin:app@brussels", "rejoin:name@brussels",
				"check:orders@antwerp"},
		},
		{
			name:  "a failover runs the checks at its end",
			known: known("brussels", status.StateUnreachable, brusselsDown, 0.2),
			req:   Request{Action: Failover},
			to:    "antwerp",
			steps: []string{"activate@antwerp", "promote:db@antwerp", "promote:app@antwerp", "promote:name@antwerp", "check:orders@antwerp"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Build(g, tt.known, tt.req)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.To != tt.to || p.Epoch != 7 {
				t.Errorf("to %s epoch %d", p.To, p.Epoch)
			}
			if diff := cmp.Diff(tt.steps, ids(p.Steps)); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if tt.rollback != nil {
				if diff := cmp.Diff(tt.rollback, ids(p.Rollback)); diff != "" {
					t.Errorf("rollback (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// gate is an approval resource's settings, as the plan reads them.
type gate struct {
	timeout time.Duration
	message string
}

func (g gate) ApprovalTimeout() time.Duration { return g.timeout }
func (g gate) ApprovalMessage() string        { return g.message }

func TestBuildWithApprovals(t *testing.T) {
	stack := func(gates ...config.Resource) *config.Group {
		g := group()
		g.Resources = append(g.Resources,
			config.Resource{Name: "storage", Type: "script", Class: config.ClassScript},
			config.Resource{Name: "vm", Type: "service", Class: config.ClassService, DependsOn: []string{"storage"}})
		g.Resources = append(g.Resources, gates...)
		return g
	}
	confirm := config.Resource{Name: "confirm", Type: "approval", Class: config.ClassGate,
		Settings: map[string]any{"antwerp": gate{timeout: time.Hour, message: "move the web shop?"}}}
	storageReady := config.Resource{Name: "storage-ready", Type: "approval", Class: config.ClassGate, DependsOn: []string{"storage"},
		Settings: map[string]any{"antwerp": gate{}}}
	dbOnly := config.Resource{Name: "db-ok", Type: "approval", Class: config.ClassGate, DependsOn: []string{"db"}}
	tests := []struct {
		name  string
		g     *config.Group
		req   Request
		known Known
		steps []string
	}{
		{
			name: "an approval without depends_on comes before the first fence",
			g:    stack(confirm), req: Request{Action: Switchover, To: "antwerp"}, known: known("brussels", status.StateProtected, bothUp, 0),
			steps: []string{"approve:confirm@antwerp",
				"fence:vm@brussels", "fence:storage@brussels", "fence:app@brussels", "fence:db@brussels",
				"catch-up:db@antwerp", "catch-up:storage@antwerp",
				"activate@antwerp",
				"promote:db@antwerp", "promote:app@antwerp", "promote:storage@antwerp", "promote:vm@antwerp",
				"rejoin:db@brussels", "rejoin:app@brussels", "rejoin:storage@brussels", "rejoin:vm@brussels"},
		},
		{
			name: "an approval that depends on the storage flip waits between it and the VMs",
			g:    stack(storageReady), req: Request{Action: Failover}, known: known("brussels", status.StateUnreachable, brusselsDown, 0.2),
			steps: []string{"activate@antwerp", "promote:db@antwerp", "promote:app@antwerp", "promote:storage@antwerp",
				"approve:storage-ready@antwerp", "promote:vm@antwerp"},
		},
		{
			name: "both kinds in one failover",
			g:    stack(confirm, dbOnly), req: Request{Action: Failover}, known: known("brussels", status.StateUnreachable, brusselsDown, 0.2),
			steps: []string{"approve:confirm@antwerp", "activate@antwerp", "promote:db@antwerp", "approve:db-ok@antwerp",
				"promote:app@antwerp", "promote:storage@antwerp", "promote:vm@antwerp"},
		},
		{
			name: "a drill never waits for a person",
			g:    stack(confirm, storageReady), req: Request{Action: Drill}, known: known("brussels", status.StateProtected, bothUp, 0),
			steps: []string{"clone:db@antwerp", "start:db@antwerp", "start:app@antwerp", "start:storage@antwerp", "start:vm@antwerp",
				"teardown:vm@antwerp?", "teardown:storage@antwerp?", "teardown:app@antwerp?", "teardown:db@antwerp?"},
		},
		{
			name: "reprotect starts a service that does not run at the active site, then rejoins",
			g:    group(), req: Request{Action: Reprotect},
			known: func() Known {
				k := known("antwerp", status.StateDown, bothUp, 0)
				k.Status.Resources[1].Sites[1] = status.ResourceSiteStatus{Site: "antwerp", Up: true, Role: status.RoleStandby, Streaming: true}
				return k
			}(),
			steps: []string{"promote:app@antwerp", "rejoin:db@brussels", "rejoin:app@brussels"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Build(tc.g, tc.known, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.steps, ids(p.Steps)); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			for _, s := range p.Steps {
				if s.Kind != Approve {
					continue
				}
				switch s.Resource {
				case "confirm":
					if s.Timeout != time.Hour || s.Message != "move the web shop?" {
						t.Errorf("confirm: timeout %s message %q, want the approval's", s.Timeout, s.Message)
					}
				default:
					if s.Timeout != defaultApprovalTimeout || s.Retries != 0 {
						t.Errorf("%s: timeout %s retries %d, want the default and none", s.ID, s.Timeout, s.Retries)
					}
				}
			}
		})
	}
}

// waves renders steps as ids with their wave: "id~w".
func waves(steps []Step) []string {
	out := []string{}
	for _, s := range steps {
		id := s.ID
		if s.Wave != 0 {
			id += "~" + strconv.Itoa(s.Wave)
		}
		out = append(out, id)
	}
	return out
}

func TestPriorityWaves(t *testing.T) {
	// db (1) ← storage, app-a, app-b (2; app-b also on storage) ← web (3).
	g := &config.Group{
		Name: "webshop", PreferredSite: "brussels", Sites: []string{"brussels", "antwerp"},
		MaxDataLoss: new(config.Duration(5 * time.Second)),
		Resources: []config.Resource{
			{Name: "web", Type: "service", Class: config.ClassService, Priority: 3, DependsOn: []string{"app-a", "app-b"}},
			{Name: "app-a", Type: "service", Class: config.ClassService, Priority: 2, DependsOn: []string{"db"}},
			{Name: "app-b", Type: "service", Class: config.ClassService, Priority: 2, DependsOn: []string{"db", "storage"}},
			{Name: "storage", Type: "script", Class: config.ClassScript, Priority: 2},
			{Name: "db", Type: "postgres", Class: config.ClassData, Data: true, Priority: 1},
		},
	}
	k := known("brussels", status.StateUnreachable, brusselsDown, 0.1)
	p, err := Build(g, k, Request{Action: Failover})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"activate@antwerp",
		"promote:db@antwerp",
		// Priority 2, depth 0 (storage) and depth 1 (app-a, app-b: side by side).
		"promote:storage@antwerp",
		"promote:app-a@antwerp~1", "promote:app-b@antwerp~1",
		"promote:web@antwerp",
	}
	if diff := cmp.Diff(want, waves(p.Steps)); diff != "" {
		t.Errorf("failover (-want +got):\n%s", diff)
	}
	k = known("brussels", status.StateProtected, bothUp, 0.1)
	p, err = Build(g, k, Request{Action: Switchover, To: "antwerp"})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		"fence:web@brussels", "fence:app-a@brussels~1", "fence:app-b@brussels~1", "fence:storage@brussels", "fence:db@brussels",
		// Only data and scripts catch up: no wave of services there.
		"catch-up:db@antwerp", "catch-up:storage@antwerp",
		"activate@antwerp",
		"promote:db@antwerp", "promote:storage@antwerp", "promote:app-a@antwerp~2", "promote:app-b@antwerp~2", "promote:web@antwerp",
		"rejoin:db@brussels", "rejoin:storage@brussels", "rejoin:app-a@brussels~3", "rejoin:app-b@brussels~3", "rejoin:web@brussels",
	}
	if diff := cmp.Diff(want, waves(p.Steps)); diff != "" {
		t.Errorf("switchover (-want +got):\n%s", diff)
	}
	// Without priorities: one step at a time, as before.
	for i := range g.Resources {
		g.Resources[i].Priority = 0
	}
	p, err = Build(g, k, Request{Action: Switchover, To: "antwerp"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		if s.Wave != 0 {
			t.Errorf("%s is in wave %d in a group without priorities", s.ID, s.Wave)
		}
	}
}
