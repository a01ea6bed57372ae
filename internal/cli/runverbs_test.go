package cli_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/cli"
	"github.com/siteflip/siteflip/internal/plan"
)

// runAgent answers one group's run verbs: news is held by a run (busy),
// a dry run gets its plan, failovers fail and every other run succeeds.
type runAgent struct {
	mu       sync.Mutex
	requests []api.RunRequest
}

func (a *runAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	t0 := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)
	run := func(group string, action plan.Action) plan.Run {
		r := plan.Run{ID: group + "-" + string(action), Group: group, By: "alice", State: plan.RunRunning, Started: t0,
			Plan: plan.Plan{Group: group, Action: action, From: "brussels", To: "antwerp", Epoch: 5, Steps: []plan.Step{
				{ID: "fence:db@brussels", Kind: plan.Fence, Resource: "db", Site: "brussels", Timeout: 30 * time.Second, Retries: 2},
				{ID: "activate@antwerp", Kind: plan.Activate, Site: "antwerp", Timeout: 10 * time.Second},
				{ID: "promote:db@antwerp", Kind: plan.Promote, Resource: "db", Site: "antwerp", Timeout: time.Minute},
				{ID: "check:orders@antwerp", Kind: plan.Check, Resource: "orders", Site: "antwerp", Timeout: 10 * time.Second, BestEffort: true},
			}, Rollback: []plan.Step{{ID: "unfence:db@brussels", Kind: plan.Unfence, Resource: "db", Site: "brussels", Timeout: 30 * time.Second}}}}
		r.Steps, r.Rollback = make([]plan.StepState, len(r.Plan.Steps)), make([]plan.StepState, len(r.Plan.Rollback))
		return r
	}
	switch {
	case r.URL.Path == "/v1/runs" && r.Method == http.MethodPost:
		var req api.RunRequest
		json.NewDecoder(r.Body).Decode(&req)
		a.mu.Lock()
		a.requests = append(a.requests, req)
		a.mu.Unlock()
		switch {
		case req.Group == "news":
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(map[string]string{"error": "group news: a run is already in progress (run r9); follow it with `siteflip run r9`", "code": api.CodeBusy})
		case req.DryRun:
			json.NewEncoder(w).Encode(run(req.Group, req.Action))
		default:
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(run(req.Group, req.Action))
		}
	case r.URL.Path == "/v1/runs":
		w.Write([]byte("[]"))
	case strings.HasPrefix(r.URL.Path, "/v1/runs/"):
		group, action, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v1/runs/"), "-")
		done := run(group, plan.Action(action))
		done.State, done.Ended = plan.RunSucceeded, t0.Add(3*time.Second)
		if done.Plan.Action == plan.Failover {
			done.State, done.Error = plan.RunFailed, "step promote:db@antwerp: timed out after 1m0s"
		}
		json.NewEncoder(w).Encode(done)
	default:
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"error": "not found"})
	}
}

// taken returns the requests since the last call.
func (a *runAgent) taken() []api.RunRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.requests
	a.requests = nil
	return r
}

// TestRunVerbs: every run verb takes --yes and --dry-run; what the
// command line can check is checked before anything is asked; off a
// terminal only failover needs --yes; the exit code says how it ended.
func TestRunVerbs(t *testing.T) {
	agent := &runAgent{}
	srv := httptest.NewServer(agent)
	defer srv.Close()
	topo := filepath.Join(t.TempDir(), "siteflip.yaml")
	if err := os.WriteFile(topo, []byte(strings.Replace(selectionTopology, "ADDR", srv.Listener.Addr().String(), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	siteflip := func(stdin string, args ...string) (code int, stdout, stderr string) {
		var o, e bytes.Buffer
		code = cli.Main(append([]string{"--config", topo}, args...), strings.NewReader(stdin), &o, &e)
		return code, o.String(), e.String()
	}

	t.Run("dry run", func(t *testing.T) {
		for _, args := range [][]string{
			{"failover", "webshop", "--dry-run"}, {"switchover", "webshop", "--to", "antwerp", "--dry-run"},
			{"reprotect", "webshop", "--dry-run"}, {"failback", "--dry-run", "webshop"}, {"drill", "webshop", "--dry-run", "--at", "antwerp"},
		} {
			code, out, errOut := siteflip("", args...)
			if code != 0 || errOut != "" {
				t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
			}
			for _, want := range []string{
				"dry run: " + args[0] + " of webshop", "nothing was started\n",
				"  1  fence:db@brussels     fence     brussels  30s      2        -\n",
				"  4  check:orders@antwerp  check     antwerp   10s      0        best effort\n",
				"    brussels: fence db\n", "    antwerp: activate, promote db, check orders\n",
				"  checks: orders at antwerp\n", "  rollback, if a step before activate fails:\n",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("%v: output lacks %q:\n%s", args, want, out)
				}
			}
			reqs := agent.taken()
			if len(reqs) != 1 || !reqs[0].DryRun || reqs[0].Action != plan.Action(args[0]) {
				t.Errorf("%v: asked %+v, want one dry run", args, reqs)
			}
		}
	})

	t.Run("dry run of a busy group", func(t *testing.T) {
		code, _, errOut := siteflip("", "reprotect", "news", "--dry-run")
		if code != 5 || !strings.Contains(errOut, "a run is already in progress") {
			t.Errorf("exit %d, stderr %q; want 5", code, errOut)
		}
		agent.taken()
	})

	t.Run("--yes everywhere", func(t *testing.T) {
		for _, args := range [][]string{
			{"switchover", "webshop", "--to", "antwerp", "--yes"}, {"reprotect", "webshop", "--yes"},
			{"failback", "webshop", "--yes"}, {"drill", "webshop", "--yes"},
		} {
			code, out, errOut := siteflip("", args...)
			if code != 0 || !strings.Contains(out, "succeeded") || strings.Contains(out, "confirm") || strings.Contains(out, "[y/N]") {
				t.Errorf("%v: exit %d, stderr %q:\n%s", args, code, errOut, out)
			}
			if reqs := agent.taken(); len(reqs) != 1 || reqs[0].DryRun {
				t.Errorf("%v: asked %+v, want one run", args, reqs)
			}
		}
		// A failed run: exit 1.
		code, out, errOut := siteflip("", "failover", "webshop", "--yes")
		if code != 1 || !strings.Contains(out, "run webshop-failover failed") || !strings.Contains(errOut, "run webshop-failover failed: step promote:db@antwerp: timed out") {
			t.Errorf("failover: exit %d, stderr %q:\n%s", code, errOut, out)
		}
		agent.taken()
	})

	t.Run("off a terminal", func(t *testing.T) {
		// The planned runs go ahead without asking, as scripts call them.
		code, out, _ := siteflip("", "failback", "webshop")
		if code != 0 || strings.Contains(out, "[y/N]") || len(agent.taken()) != 1 {
			t.Errorf("failback: exit %d:\n%s", code, out)
		}
		// A failover needs --yes; whatever stdin holds is not an answer.
		code, out, errOut := siteflip("webshop\n", "failover", "webshop")
		if code != 2 || out != "" || !strings.Contains(errOut, "standard input is not a terminal to confirm it: add --yes; nothing was changed") {
			t.Errorf("failover: exit %d, stdout %q, stderr %q; want 2", code, out, errOut)
		}
		if reqs := agent.taken(); len(reqs) != 0 {
			t.Errorf("failover without --yes asked %+v", reqs)
		}
	})

	t.Run("on a terminal", func(t *testing.T) {
		defer cli.AssumeTerminal()()
		code, out, errOut := siteflip("n\n", "switchover", "webshop", "--to", "antwerp")
		if code != 1 || !strings.Contains(out, "Go ahead? [y/N] ") || !strings.Contains(errOut, "not confirmed: nothing was changed") || len(agent.taken()) != 0 {
			t.Errorf("switchover answered n: exit %d, stderr %q:\n%s", code, errOut, out)
		}
		code, out, _ = siteflip("y\n", "switchover", "webshop", "--to", "antwerp")
		if code != 0 || len(agent.taken()) != 1 {
			t.Errorf("switchover answered y: exit %d:\n%s", code, out)
		}
		code, out, errOut = siteflip("shop\n", "failover", "webshop")
		if code != 1 || !strings.Contains(out, "Type the group name to confirm: ") || !strings.Contains(errOut, "not confirmed") || len(agent.taken()) != 0 {
			t.Errorf("failover answered shop: exit %d, stderr %q:\n%s", code, errOut, out)
		}
		// --yes does not ask, also on a terminal.
		code, out, _ = siteflip("", "reprotect", "webshop", "--yes")
		if code != 0 || strings.Contains(out, "[y/N]") || len(agent.taken()) != 1 {
			t.Errorf("reprotect --yes: exit %d:\n%s", code, out)
		}
	})

	t.Run("checked before asking", func(t *testing.T) {
		defer cli.AssumeTerminal()()
		tests := []struct {
			args   []string
			code   int
			stderr string
		}{
			{[]string{"failover", "nosuch"}, 3, `siteflip failover: unknown group "nosuch" in ` + topo + " (groups: webshop, crm, ledger, news)\n"},
			{[]string{"drill", "nosuch", "--dry-run"}, 3, `siteflip drill: unknown group "nosuch"`},
			{[]string{"failover", "webshop", "--to", "paris"}, 3, `siteflip failover: --to "paris": no such site in ` + topo + " (sites: brussels, antwerp); nothing was changed\n"},
			{[]string{"switchover", "webshop", "--to", "frankfurt"}, 3, `siteflip switchover: --to "frankfurt" is not a site of group webshop (its sites: brussels, antwerp); nothing was changed` + "\n"},
			{[]string{"drill", "webshop", "--at", "paris"}, 3, `siteflip drill: --at "paris": no such site`},
			{[]string{"failover", "webshop", "--dry-run", "--force"}, 2, "siteflip failover: --dry-run and --force: "},
			{[]string{"drill", "webshop", "--dry-run", "--cleanup"}, 2, "siteflip drill: --dry-run and --cleanup: "},
			{[]string{"drill", "webshop", "--cleanup", "--at", "antwerp"}, 2, "siteflip drill: --cleanup removes what the group's drills left behind at every site: it takes no --at or --keep"},
			{[]string{"switchover", "webshop"}, 2, "siteflip switchover: say where to: siteflip switchover webshop --to SITE\n"},
			{[]string{"failover", "webshop", "crm"}, 2, "siteflip failover: unexpected argument(s): crm\n"},
			{[]string{"failover", "webshop", "--colour"}, 2, "siteflip failover: unknown flag: --colour\n"},
			// The agent refuses: busy.
			{[]string{"switchover", "news", "--to", "antwerp", "--yes"}, 5, "siteflip switchover: group news: a run is already in progress (run r9)"},
		}
		for _, tt := range tests {
			code, out, errOut := siteflip("", tt.args...)
			if code != tt.code || !strings.HasPrefix(errOut, tt.stderr) || out != "" {
				t.Errorf("siteflip %s: exit %d, stdout %q, stderr:\n%s\nwant %d and a stderr starting %q", strings.Join(tt.args, " "), code, out, errOut, tt.code, tt.stderr)
			}
		}
		if reqs := agent.taken(); len(reqs) != 1 || reqs[0].Group != "news" {
			t.Errorf("asked %+v, want only news's switchover", reqs)
		}
	})

	t.Run("runs of an unknown group", func(t *testing.T) {
		code, out, errOut := siteflip("", "runs", "nosuch")
		if code != 3 || out != "" || !strings.HasPrefix(errOut, `siteflip runs: unknown group "nosuch" in `) {
			t.Errorf("exit %d, stdout %q, stderr %q; want 3", code, out, errOut)
		}
		if code, out, _ := siteflip("", "runs", "webshop"); code != 0 || !strings.HasPrefix(out, "RUN ") {
			t.Errorf("runs webshop: exit %d:\n%s", code, out)
		}
	})
}
