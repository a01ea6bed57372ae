package cli

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/testbed"
)

// TestSelectGroups: the topology says which groups exist and their
// labels, the status where each is active.
func TestSelectGroups(t *testing.T) {
	topo := &config.Topology{
		File: "shop.yaml",
		Sites: []config.Site{
			{Name: "brussels", Role: config.RoleSite},
			{Name: "antwerp", Role: config.RoleSite},
			{Name: "frankfurt", Role: config.RoleWitness},
		},
		Groups: []config.Group{
			{Name: "webshop", Labels: map[string]string{"tier": "gold", "team": "web"}},
			{Name: "crm", Labels: map[string]string{"tier": "gold"}},
			{Name: "ledger", Labels: map[string]string{"tier": "silver"}},
			{Name: "news"},
			{Name: "wiki", Labels: map[string]string{"tier": "gold"}},  // not in the status: the agents do not know it yet
			{Name: "fresh", Labels: map[string]string{"tier": "gold"}}, // not adopted yet
		},
	}
	st := status.Status{Groups: []status.GroupStatus{
		{Name: "news", ActiveSite: "antwerp"},
		{Name: "webshop", ActiveSite: "antwerp"},
		{Name: "crm", ActiveSite: "brussels"},
		{Name: "ledger", ActiveSite: "antwerp"},
		{Name: "fresh"},
		{Name: "gone", ActiveSite: "antwerp"}, // no longer in the topology
	}}
	gold, web := label{"tier", "gold"}, label{"team", "web"}
	tests := []struct {
		name    string
		sel     selection
		want    []string
		wantErr string
	}{
		{"all, in the topology's order", selection{all: true}, []string{"webshop", "crm", "ledger", "news", "wiki", "fresh"}, ""},
		{"site, from the status", selection{site: "antwerp"}, []string{"webshop", "ledger", "news"}, ""},
		{"all and site", selection{all: true, site: "brussels"}, []string{"crm"}, ""},
		{"label", selection{labels: []label{gold}}, []string{"webshop", "crm", "wiki", "fresh"}, ""},
		{"labels: all of them", selection{labels: []label{gold, web}}, []string{"webshop"}, ""},
		{"site and label", selection{site: "antwerp", labels: []label{gold}}, []string{"webshop"}, ""},
		{"a label's key alone does not match", selection{labels: []label{{"tier", "bronze"}}}, nil,
			"no group matches --label tier=bronze: of the 6 groups in shop.yaml, 0 labelled tier=bronze"},
		{"none at the site with the label", selection{site: "brussels", labels: []label{web}}, nil,
			"no group matches --site brussels --label team=web: of the 6 groups in shop.yaml, 1 active at brussels (`siteflip status` shows where each is), 1 labelled team=web"},
		{"unknown site", selection{site: "paris"}, nil, `--site "paris": no such site in shop.yaml (sites: brussels, antwerp)`},
		{"a witness", selection{site: "frankfurt"}, nil, "--site frankfurt: frankfurt is a witness, where no group runs; name a site (brussels, antwerp)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := selectGroups(topo, st, tt.sel)
			if gotErr := errString(err); gotErr != tt.wantErr {
				t.Errorf("error:\n got %s\nwant %s", gotErr, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("selected (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("no groups at all", func(t *testing.T) {
		_, err := selectGroups(&config.Topology{File: "empty.yaml"}, status.Status{}, selection{all: true})
		if want := "no group matches --all: empty.yaml has no groups"; errString(err) != want {
			t.Errorf("error %q, want %q", errString(err), want)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestParseLabel(t *testing.T) {
	tests := []struct {
		arg     string
		want    label
		wantErr bool
	}{
		{"tier=gold", label{"tier", "gold"}, false},
		{"team=payments & billing", label{"team", "payments & billing"}, false},
		{"url=a=b", label{"url", "a=b"}, false}, // a key holds no '=' (config), a value may
		{"tier", label{}, true},
		{"=gold", label{}, true},
		{"tier=", label{}, true},
	}
	for _, tt := range tests {
		got, err := parseLabel(tt.arg)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseLabel(%q) = %+v, %v; want %+v, error %v", tt.arg, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "give KEY=VALUE") {
			t.Errorf("parseLabel(%q): %v does not say what to give", tt.arg, err)
		}
	}
	sel := selection{all: true, site: "antwerp", labels: []label{{"tier", "gold"}, {"team", "payments & billing"}}}
	if got, want := sel.String(), `--all --site antwerp --label tier=gold --label "team=payments & billing"`; got != want {
		t.Errorf("selection as typed: %s, want %s", got, want)
	}
}

// A selection leaves alone the groups already where the verb would put
// them; anything else is for the agent to plan or refuse.
func TestSkipReason(t *testing.T) {
	home := status.GroupStatus{Name: "webshop", PreferredSite: "brussels", ActiveSite: "brussels"}
	away := status.GroupStatus{Name: "webshop", PreferredSite: "brussels", ActiveSite: "antwerp"}
	unadopted := status.GroupStatus{Name: "webshop", PreferredSite: "brussels"}
	tests := []struct {
		action plan.Action
		to     string
		gs     status.GroupStatus
		want   string
	}{
		{plan.Failback, "", home, "already at its preferred site, brussels"},
		{plan.Failback, "", away, ""},
		{plan.Failback, "", unadopted, ""},
		{plan.Failback, "", status.GroupStatus{}, ""}, // not in the status
		{plan.Switchover, "antwerp", away, "already active at antwerp"},
		{plan.Switchover, "brussels", away, ""},
		{plan.Failover, "antwerp", away, "already active at antwerp"},
		{plan.Failover, "", away, ""}, // to the other site
		{plan.Reprotect, "", home, ""},
		{plan.Reprotect, "", away, ""},
	}
	for _, tt := range tests {
		if got := skipReason(tt.action, tt.to, tt.gs); got != tt.want {
			t.Errorf("%s --to %q of %+v: %q, want %q", tt.action, tt.to, tt.gs, got, tt.want)
		}
	}
}

// fakeRunner starts runs that end when every slot the batch can fill is
// filled: a batch that kept fewer runs going than it may would stall it,
// one that kept more shows in most.
type fakeRunner struct {
	parallel, starts int // the bound, and how many runs the batch starts in all
	refuse           map[string]error
	fail             map[string]string
	hold             map[string]bool // runs that go on until the batch stops waiting
	started          func(group string)

	mu                 sync.Mutex
	going, most, ended int
	stalled            []string
	requests           []api.RunRequest
}

var t0 = time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

func (f *fakeRunner) StartRun(ctx context.Context, req api.RunRequest) (plan.Run, error) {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	if err := f.refuse[req.Group]; err != nil {
		f.mu.Unlock()
		return plan.Run{}, err
	}
	f.going++
	f.most = max(f.most, f.going)
	f.mu.Unlock()
	if f.started != nil {
		f.started(req.Group)
	}
	return plan.Run{ID: "r-" + req.Group, Group: req.Group, By: "alice", State: plan.RunRunning, Started: t0,
		Plan: plan.Plan{Group: req.Group, Action: req.Action, From: "antwerp", To: "brussels", Epoch: 5}}, nil
}

func (f *fakeRunner) WaitRun(ctx context.Context, id string, poll time.Duration) (plan.Run, error) {
	group := strings.TrimPrefix(id, "r-")
	run := plan.Run{ID: id, Group: group, By: "alice", Started: t0,
		Plan: plan.Plan{Group: group, Action: plan.Failback, From: "antwerp", To: "brussels", Epoch: 5}}
	if f.hold[group] {
		<-ctx.Done()
		run.State = plan.RunRunning
		return run, ctx.Err()
	}
	full := testbed.Poll(10*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.going >= min(f.parallel, f.starts-f.ended)
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if !full {
		f.stalled = append(f.stalled, group)
	}
	f.going--
	f.ended++
	run.State, run.Ended = plan.RunSucceeded, t0.Add(2500*time.Millisecond)
	if msg, ok := f.fail[group]; ok {
		run.State, run.Error = plan.RunRolledBack, msg
	}
	return run, nil
}

func targetsOf(groups ...string) []target {
	var ts []target
	for _, g := range groups {
		ts = append(ts, target{req: api.RunRequest{Group: g, Action: plan.Failback, Reason: "brussels is back"}})
	}
	return ts
}

// A batch keeps --parallel runs going, never more, and says in the
// selection's order what became of each group.
func TestRunBatch(t *testing.T) {
	for _, parallel := range []int{1, 3, 8} {
		f := &fakeRunner{parallel: parallel, starts: 10}
		var names []string
		for i := range 10 {
			names = append(names, "g"+string(rune('a'+i)))
		}
		out := runBatch(t.Context(), f, targetsOf(names...), parallel, io.Discard)
		if f.most != parallel || len(f.stalled) > 0 {
			t.Errorf("--parallel %d: at most %d runs going at once, stalled %v; want %d, none", parallel, f.most, f.stalled, parallel)
		}
		for i, o := range out {
			if o.group != names[i] || o.state != plan.RunSucceeded || o.run.ID != "r-"+names[i] {
				t.Errorf("--parallel %d: outcome %d: %+v", parallel, i, o)
			}
		}
		if err := batchErr(out); err != nil {
			t.Errorf("--parallel %d: %v", parallel, err)
		}
	}

	t.Run("every kind of outcome", func(t *testing.T) {
		f := &fakeRunner{parallel: 2, starts: 3,
			refuse: map[string]error{
				"ledger": &api.RequestError{Status: 409, Msg: "group ledger: group is not protected (state unprotected: db at brussels: not streaming); run `siteflip reprotect ledger` first"},
				"wiki":   errors.New("no location answered:\n  brussels: connection refused\n  antwerp: connection refused"),
			},
			fail: map[string]string{"crm": "step promote:db@brussels: timed out"},
		}
		ts := targetsOf("webshop", "news", "crm", "ledger", "wiki", "shop")
		ts[1].skip = "already at its preferred site, brussels"
		out := runBatch(t.Context(), f, ts, 2, io.Discard)
		type row struct{ group, run, state, note string }
		var got []row
		for _, o := range out {
			got = append(got, row{o.group, o.run.ID, o.state, o.note})
		}
		want := []row{
			{"webshop", "r-webshop", "succeeded", ""},
			{"news", "", "skipped", "already at its preferred site, brussels"},
			{"crm", "r-crm", "rolled-back", "step promote:db@brussels: timed out"},
			{"ledger", "", "refused", "group ledger: group is not protected (state unprotected: db at brussels: not streaming); run `siteflip reprotect ledger` first"},
			{"wiki", "", "not started", "no location answered:\n  brussels: connection refused\n  antwerp: connection refused"},
			{"shop", "r-shop", "succeeded", ""},
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(row{})); diff != "" {
			t.Errorf("outcomes (-want +got):\n%s", diff)
		}
		for _, r := range f.requests {
			if r.Group == "news" || r.Reason != "brussels is back" {
				t.Errorf("request %+v: a skipped group is not asked for; every request keeps the reason", r)
			}
		}
		var b strings.Builder
		printBatch(&b, out)
		for _, line := range []string{
			"GROUP    RUN        STATE        TOOK   ERROR / NOTE\n",
			"webshop  r-webshop  succeeded    2.50s  -\n",
			"news     -          skipped      -      already at its preferred site, brussels\n",
			"crm      r-crm      rolled-back  2.50s  step promote:db@brussels: timed out\n",
			"wiki     -          not started  -      no location answered: brussels: connection refused; antwerp: connection refused\n",
			"6 group(s): 2 succeeded, 1 skipped, 1 rolled-back, 1 refused, 1 not started\n",
		} {
			if !strings.Contains(b.String(), line) {
				t.Errorf("summary lacks %q:\n%s", line, b.String())
			}
		}
		wantErr := "3 of 6 groups failed: crm (rolled-back), ledger (refused), wiki (not started)"
		if err := batchErr(out); err == nil || err.Error() != wantErr {
			t.Errorf("exit error %v, want %s", err, wantErr)
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// slow is started and goes on; the interrupt comes as it starts,
		// so with one slot nothing after it is started.
		f := &fakeRunner{parallel: 1, starts: 1, hold: map[string]bool{"slow": true},
			started: func(g string) {
				if g == "slow" {
					cancel()
				}
			}}
		ts := targetsOf("slow", "next", "home")
		ts[2].skip = "already at its preferred site, brussels"
		out := runBatch(ctx, f, ts, 1, io.Discard)
		if o := out[0]; o.state != plan.RunRunning || o.run.ID != "r-slow" || !strings.Contains(o.note, "`siteflip run r-slow` shows it") {
			t.Errorf("the run going on: %+v", o)
		}
		if o := out[1]; o.state != stateNotStarted || o.run.ID != "" {
			t.Errorf("the group after the interrupt: %+v", o)
		}
		if o := out[2]; o.state != stateSkipped {
			t.Errorf("the skipped group: %+v", o)
		}
		if len(f.requests) != 1 {
			t.Errorf("%d runs asked for, want 1 (slow)", len(f.requests))
		}
		if err := batchErr(out); err == nil || err.Error() != "2 of 3 groups failed: slow (running), next (not started)" {
			t.Errorf("exit error %v", err)
		}
	})
}
