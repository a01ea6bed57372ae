package cli_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/whatif"
)

// whatIfTopology is reportTopology with a second group and a level.
const whatIfTopology = reportTopology + `  - name: erp
    preferred_site: brussels
    resources:
      - name: db
        type: postgres
        sites:
          brussels: {host: 127.0.0.1, port: 15435, data_dir: /srv/pg/brussels-erp}
          antwerp: {host: 127.0.0.1, port: 15436, data_dir: /srv/pg/antwerp-erp}
levels:
  - name: medium
    description: a fire at the Brussels data centre
    lose: [brussels]
`

// TestWhatIf runs `siteflip whatif` against an agent that answers one
// what-if: webshop fails over to antwerp by itself, erp is lost. The
// question reaches the agent as asked; a question the topology refuses
// reaches no agent and exits 2; a lost group still exits 0.
func TestWhatIf(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	res := whatif.Result{
		Event:      whatif.Event{Destroyed: []string{"brussels"}, Level: "medium", Description: "a fire at the Brussels data centre"},
		AnsweredBy: "antwerp", ReadAt: t0,
		ControlPlane: whatif.ControlPlane{Judged: true, Quorum: true, Voters: []string{"brussels", "antwerp", "frankfurt"},
			SurvivingVoters: []string{"antwerp", "frankfurt"}, Controller: []string{"antwerp", "frankfurt"},
			Message: "quorum kept: 2 of 3 voters survive (antwerp and frankfurt); a controller can be elected at antwerp or frankfurt"},
		Groups: []whatif.Group{
			{Name: "webshop", ActiveSite: "brussels", Outcome: whatif.AutomaticFailover, Survives: true, Automatic: true, To: "antwerp",
				Reason:       "the active site brussels is destroyed: the controller fails over to antwerp by itself",
				RTO:          whatif.RTO{Known: true, Expected: 2100 * time.Millisecond, Samples: 5, Basis: "median of 3 failovers and 2 drills", Target: 2 * time.Second},
				Loss:         whatif.DataLoss{Known: true, Basis: "synchronous", Within: true},
				Dependencies: []whatif.Dependency{{Name: "ldap", Site: "antwerp", Why: "its host brussels is destroyed"}}},
			{Name: "erp", ActiveSite: "brussels", Outcome: whatif.Lost, Reason: "no site of the group survives: brussels destroyed, antwerp down already",
				Fix: "move a site further away: no site of the group survives brussels destroyed", RTO: whatif.RTO{Basis: "not survivable", Target: 30 * time.Second}},
		},
	}
	var mu sync.Mutex
	var asked []string
	runCLI := againstAgent(t, whatIfTopology, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(jsonview.WhatIfOf(res))
	}))
	siteflip := func(args ...string) (int, string, string) { return runCLI(append([]string{"whatif"}, args...)...) }

	t.Run("text", func(t *testing.T) {
		code, out, errOut := siteflip("--level", "medium")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{
			"what if: level medium (a fire at the Brussels data centre); brussels destroyed — quorum kept\n",
			"  quorum kept: 2 of 3 voters survive (antwerp and frankfurt); a controller can be elected at antwerp or frankfurt\n",
			"\nwebshop: survives — automatic failover to antwerp, expected RTO 2.1 s (median of 3 failovers and 2 drills), expected data loss 0 s (synchronous)\n",
			"  dependency ldap unreachable from antwerp: its host brussels is destroyed\n",
			"\nerp: NOT SURVIVABLE\n  no site of the group survives: brussels destroyed, antwerp down already\n  fix: move a site further away",
			"\n1 of 2 groups survive (1 fail over by themselves, 0 need a person); 1 lost\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		code, out, errOut := siteflip("--lose", "brussels,frankfurt", "--lose-links", "antwerp-frankfurt", "--at", "50.85,4.35", "--radius", "60km", "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got jsonview.WhatIf
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		var want jsonview.WhatIf
		b, _ := json.Marshal(jsonview.WhatIfOf(res))
		json.Unmarshal(b, &want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-answered +printed):\n%s", diff)
		}
		mu.Lock()
		last := asked[len(asked)-1]
		mu.Unlock()
		if last != "/v1/whatif?at=50.85%2C4.35&lose=brussels%2Cfrankfurt&lose_links=antwerp-frankfurt&radius=60km" {
			t.Errorf("asked %s", last)
		}
	})
	t.Run("refused before asking", func(t *testing.T) {
		mu.Lock()
		before := len(asked)
		mu.Unlock()
		for _, tt := range []struct {
			args []string
			want string
		}{
			{nil, "name what to lose: --lose, --lose-links, --at with --radius, or --level"},
			{[]string{"--at", "50.85,4.35"}, "--at needs --radius"},
			{[]string{"--lose", "paris"}, `unknown location "paris" (locations: brussels, antwerp, frankfurt)`},
			{[]string{"--level", "major"}, `unknown level "major" (levels: medium)`},
			{[]string{"--lose", "brussels", "-o", "yaml"}, `-o "yaml"`},
		} {
			code, out, errOut := siteflip(tt.args...)
			if code != 2 || out != "" || !strings.Contains(errOut, tt.want) {
				t.Errorf("whatif %v: exit %d, stdout %q, stderr %q; want 2 and %q", tt.args, code, out, errOut, tt.want)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(asked) != before {
			t.Errorf("a refused question reached the agent: %v", asked[before:])
		}
	})
}
