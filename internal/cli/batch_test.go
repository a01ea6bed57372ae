package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/cli"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// selectionTopology has four labelled groups; its first location's agent
// is ADDR, the others' addresses refuse connections.
const selectionTopology = `name: shop
` + testSites + `groups:
  - name: webshop
    preferred_site: brussels
    labels: {tier: gold, team: web}
    resources: &db
      - name: db
        type: postgres
        sites:
          brussels: {host: 127.0.0.1, port: 15433, data_dir: /srv/pg/brussels}
          antwerp: {host: 127.0.0.1, port: 15434, data_dir: /srv/pg/antwerp}
  - name: crm
    preferred_site: brussels
    labels: {tier: gold}
    resources: *db
  - name: ledger
    preferred_site: brussels
    labels: {tier: silver}
    resources: *db
  - name: news
    preferred_site: antwerp
    labels: {team: web}
    resources: *db
`

// fakeAgent answers status with every group active at antwerp, refuses
// ledger's runs (not protected), and ends crm's runs rolled back, the
// others' succeeded.
type fakeAgent struct {
	mu       sync.Mutex
	requests []api.RunRequest
}

func (a *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	t0 := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)
	run := func(group string, action plan.Action) plan.Run {
		return plan.Run{ID: group + "-run", Group: group, By: "alice", State: plan.RunRunning, Started: t0,
			Plan: plan.Plan{Group: group, Action: action, From: "antwerp", To: "brussels", Epoch: 5}}
	}
	switch {
	case r.URL.Path == "/v1/status":
		st := status.Status{Installation: "shop", AnsweredBy: "brussels"}
		for _, g := range []struct{ name, preferred string }{{"webshop", "brussels"}, {"crm", "brussels"}, {"ledger", "brussels"}, {"news", "antwerp"}} {
			st.Groups = append(st.Groups, status.GroupStatus{Name: g.name, PreferredSite: g.preferred, ActiveSite: "antwerp", Epoch: 5})
		}
		json.NewEncoder(w).Encode(st)
	case r.URL.Path == "/v1/runs" && r.Method == http.MethodPost:
		var req api.RunRequest
		json.NewDecoder(r.Body).Decode(&req)
		a.mu.Lock()
		a.requests = append(a.requests, req)
		a.mu.Unlock()
		if req.Group == "ledger" {
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(map[string]string{"error": "group ledger: group is not protected (state unprotected: db at brussels is down); a failback needs a streaming standby at brussels; run `siteflip reprotect ledger` first"})
			return
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(run(req.Group, req.Action))
	case strings.HasPrefix(r.URL.Path, "/v1/runs/"):
		group := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/runs/"), "-run")
		done := run(group, plan.Failback)
		done.State, done.Ended = plan.RunSucceeded, t0.Add(3*time.Second)
		if group == "crm" {
			done.State, done.Error = plan.RunRolledBack, "step promote:db@brussels: timed out after 30s"
		}
		json.NewEncoder(w).Encode(done)
	default:
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"error": "not found"})
	}
}

func (a *fakeAgent) asked() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var groups []string
	for _, r := range a.requests {
		groups = append(groups, r.Group)
	}
	slices.Sort(groups)
	a.requests = nil
	return groups
}

// TestSelections runs the run verbs on selections of groups against one
// agent: one run per selected group, one summary, and the exit status
// says whether every group got what was asked.
func TestSelections(t *testing.T) {
	agent := &fakeAgent{}
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
	contains := func(t *testing.T, out string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(out, l) {
				t.Errorf("output lacks %q:\n%s", l, out)
			}
		}
	}

	t.Run("failback --all: one failed, one refused, one skipped", func(t *testing.T) {
		code, out, errOut := siteflip("", "failback", "--all", "--reason", "antwerp drill over")
		if want := "siteflip failback: 2 of 4 groups failed: crm (rolled-back), ledger (refused)\n"; code != 1 || errOut != want {
			t.Errorf("exit %d, stderr %q; want 1, %q", code, errOut, want)
		}
		contains(t, out,
			"news: skipped: already at its preferred site, antwerp\n",
			"webshop: run webshop-run: failback of webshop from antwerp to brussels (epoch 5), started by alice\n",
			"\nGROUP    RUN          STATE        TOOK   ERROR / NOTE\n",
			"webshop  webshop-run  succeeded    3.00s  -\n",
			"crm      crm-run      rolled-back  3.00s  step promote:db@brussels: timed out after 30s\n",
			"ledger   -            refused      -      group ledger: group is not protected (state unprotected: db at brussels is down); a failback needs a streaming standby at brussels; run `siteflip reprotect ledger` first\n",
			"news     -            skipped      -      already at its preferred site, antwerp\n",
			"4 group(s): 1 succeeded, 1 rolled-back, 1 refused, 1 skipped\n",
		)
		if i, j := strings.Index(out, "webshop  webshop-run"), strings.Index(out, "news     -"); i < 0 || j < i {
			t.Errorf("rows not in the topology's order:\n%s", out)
		}
		if got, want := agent.asked(), []string{"crm", "ledger", "webshop"}; !slices.Equal(got, want) {
			t.Errorf("runs asked for %v, want %v (not the skipped news)", got, want)
		}
	})

	t.Run("a label: every group got what was asked", func(t *testing.T) {
		code, out, errOut := siteflip("", "failback", "--label", "team=web", "--parallel", "1")
		if code != 0 || errOut != "" {
			t.Errorf("exit %d, stderr %q; want 0, nothing", code, errOut)
		}
		contains(t, out, "webshop  webshop-run  succeeded  3.00s  -\n", "news     -            skipped    -      already at its preferred site, antwerp\n",
			"2 group(s): 1 succeeded, 1 skipped\n")
		if got := agent.asked(); !slices.Equal(got, []string{"webshop"}) {
			t.Errorf("runs asked for %v, want webshop", got)
		}
	})

	t.Run("switchover to where some already are", func(t *testing.T) {
		code, out, _ := siteflip("", "switchover", "--site", "antwerp", "--label", "tier=gold", "--to", "antwerp")
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		contains(t, out, "webshop  -    skipped  -     already active at antwerp\n", "2 group(s): 2 skipped\n")
		if got := agent.asked(); len(got) != 0 {
			t.Errorf("runs asked for %v, want none", got)
		}
	})

	t.Run("no group matches", func(t *testing.T) {
		code, out, errOut := siteflip("", "reprotect", "--site", "brussels", "--label", "tier=gold")
		want := fmt.Sprintf("siteflip reprotect: no group matches --site brussels --label tier=gold: of the 4 groups in %s, 0 active at brussels (`siteflip status` shows where each is), 2 labelled tier=gold\n", topo)
		if code != 1 || out != "" || errOut != want {
			t.Errorf("exit %d, stdout %q, stderr %q; want 1, nothing, %q", code, out, errOut, want)
		}
	})

	t.Run("failover off a terminal needs --yes", func(t *testing.T) {
		code, out, errOut := siteflip("2\n", "failover", "--label", "tier=gold")
		if code != 2 || out != "" || !strings.Contains(errOut, "standard input is not a terminal to confirm it: add --yes; nothing was changed") {
			t.Errorf("exit %d, stdout %q, stderr %q; want 2, nothing, add --yes", code, out, errOut)
		}
		if got := agent.asked(); len(got) != 0 {
			t.Errorf("runs asked for %v without a confirmation", got)
		}
	})

	t.Run("failover asks for the number of groups on a terminal", func(t *testing.T) {
		defer cli.AssumeTerminal()()
		code, out, errOut := siteflip("crm\n", "failover", "--label", "tier=gold")
		if code != 1 || !strings.Contains(errOut, "not confirmed: nothing was changed") {
			t.Errorf("exit %d, stderr %q; want 1, not confirmed", code, errOut)
		}
		contains(t, out, "Failover recovers 2 group(s) at the other site now (webshop, crm); writes not yet replicated are lost.\nType the number of groups (2) to confirm: ")
		if got := agent.asked(); len(got) != 0 {
			t.Errorf("runs asked for %v before a confirmation", got)
		}
		code, out, _ = siteflip("2\n", "failover", "--label", "tier=gold", "--accept-data-loss")
		if code != 1 || !strings.Contains(out, "webshop  webshop-run  succeeded") {
			t.Errorf("confirmed: exit %d (want 1: crm rolls back):\n%s", code, out)
		}
		agent.mu.Lock()
		for _, r := range agent.requests {
			if r.Action != plan.Failover || !r.AcceptDataLoss {
				t.Errorf("request %+v: want a failover accepting data loss", r)
			}
		}
		agent.mu.Unlock()
		agent.asked()
	})

	t.Run("one group as before", func(t *testing.T) {
		code, out, _ := siteflip("", "failback", "webshop")
		if code != 0 || !strings.HasPrefix(out, "run webshop-run: failback of webshop from antwerp to brussels (epoch 5), started by alice\n") ||
			!strings.Contains(out, "\nrun webshop-run succeeded in 3.00s\n") || strings.Contains(out, "GROUP") {
			t.Errorf("exit %d:\n%s", code, out)
		}
		agent.asked()
	})
}

// TestSelectionUsage: the flags of a selection are checked before any
// agent is asked (here none answers) and say what to type instead.
func TestSelectionUsage(t *testing.T) {
	topo := filepath.Join(t.TempDir(), "siteflip.yaml")
	if err := os.WriteFile(topo, []byte(strings.Replace(selectionTopology, "ADDR", "127.0.0.1:1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args   []string
		code   int
		stderr string // a prefix of stderr
	}{
		{[]string{"reprotect"}, 2, "siteflip reprotect: name the group: siteflip reprotect GROUP, or select groups with --all, --site SITE or --label KEY=VALUE\n"},
		{[]string{"reprotect", "webshop", "--all"}, 2, "siteflip reprotect: webshop and --all: name one group or select groups, not both: siteflip reprotect webshop, or siteflip reprotect --all\n"},
		{[]string{"failback", "--site", "antwerp", "webshop"}, 2, "siteflip failback: webshop and --site antwerp: name one group or select groups, not both"},
		{[]string{"reprotect", "--all", "--parallel", "0"}, 2, "siteflip reprotect: --parallel 0: give 1 or more\n"},
		{[]string{"reprotect", "--all", "--parallel", "many"}, 2, `siteflip reprotect: invalid argument "many" for "--parallel" flag`},
		{[]string{"failback", "--label", "tier"}, 2, `siteflip failback: --label "tier": give KEY=VALUE, like --label tier=gold` + "\n"},
		{[]string{"failback", "--label", "tier=gold", "--label", "=web"}, 2, `siteflip failback: --label "=web": give KEY=VALUE`},
		{[]string{"switchover", "--all"}, 2, "siteflip switchover: say where to: siteflip switchover --all --to SITE\n"},
		{[]string{"switchover", "--all", "--to", "frankfurt"}, 3, "siteflip switchover: --to frankfurt: frankfurt is a witness, where no group runs; name a site (brussels, antwerp)\n"},
		{[]string{"reprotect", "--site", "paris"}, 3, `siteflip reprotect: --site "paris": no such site in ` + topo + " (sites: brussels, antwerp)\n"},
		{[]string{"failover", "--all", "--force", "--yes"}, 2, "siteflip failover: --force recovers one group at a time"},
		{[]string{"failover", "--all"}, 2, "siteflip failover: failover of --all loses the writes not yet replicated, and standard input is not a terminal to confirm it: add --yes"},
		{[]string{"drill", "--all"}, 2, "siteflip drill: unknown flag: --all\n"},
		// Valid: then the status is needed, and no location answers.
		{[]string{"reprotect", "--all"}, 4, "siteflip reprotect: no location answered:\n"},
		{[]string{"reprotect", "--all", "--dry-run"}, 4, "siteflip reprotect: no location answered:\n"},
		{[]string{"failover", "--all", "--yes"}, 4, "siteflip failover: no location answered:\n"},
	}
	for _, tt := range tests {
		var o, e bytes.Buffer
		code := cli.Main(append([]string{"--config", topo}, tt.args...), strings.NewReader(""), &o, &e)
		if code != tt.code || !strings.HasPrefix(e.String(), tt.stderr) || o.Len() > 0 {
			t.Errorf("siteflip %s: exit %d, stdout %q, stderr:\n%s\nwant %d and a stderr starting %q", strings.Join(tt.args, " "), code, o.String(), e.String(), tt.code, tt.stderr)
		}
	}
}
