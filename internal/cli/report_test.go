package cli_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/plan"
)

// testSites are three locations whose first agent is ADDR, the others'
// addresses refusing connections.
const testSites = `sites:
  - name: brussels
    agent: {address: "ADDR"}
    etcd: {peer_url: "http://127.0.0.1:12381", client_url: "http://127.0.0.1:12391"}
  - name: antwerp
    agent: {address: "127.0.0.1:3"}
    etcd: {peer_url: "http://127.0.0.1:12382", client_url: "http://127.0.0.1:12392"}
  - name: frankfurt
    role: witness
    agent: {address: "127.0.0.1:5"}
    etcd: {peer_url: "http://127.0.0.1:12383", client_url: "http://127.0.0.1:12393"}
`

// reportTopology is a topology whose first location's agent is addr.
const reportTopology = `name: shop
` + testSites + `groups:
  - name: webshop
    preferred_site: brussels
    rto_target: 2s
    resources:
      - name: db
        type: postgres
        sites:
          brussels: {host: 127.0.0.1, port: 15433, data_dir: /srv/pg/brussels}
          antwerp: {host: 127.0.0.1, port: 15434, data_dir: /srv/pg/antwerp}
`

// TestReport runs `siteflip report` against an agent that knows one run,
// a switchover of webshop that took 2.5 s against a target of 2 s.
func TestReport(t *testing.T) {
	t0 := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)
	run := plan.Run{ID: "r1", Group: "webshop", By: "alice", State: plan.RunSucceeded, Started: t0, Ended: t0.Add(3 * time.Second),
		WritableAt: t0.Add(2500 * time.Millisecond),
		Plan: plan.Plan{Group: "webshop", Action: plan.Switchover, From: "brussels", To: "antwerp", Steps: []plan.Step{
			{ID: "fence:db@brussels", Kind: plan.Fence, Resource: "db", Site: "brussels"},
			{ID: "promote:db@antwerp", Kind: plan.Promote, Resource: "db", Site: "antwerp"},
		}},
		Steps: []plan.StepState{
			{State: plan.StepDone, Attempts: 1, Started: t0, Ended: t0.Add(time.Second)},
			{State: plan.StepDone, Attempts: 1, Started: t0.Add(time.Second), Ended: t0.Add(2500 * time.Millisecond)},
		},
	}
	runCLI := againstAgent(t, reportTopology, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/v1/runs/r1" {
			// As the agent answers an unknown run.
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"error": "run " + strings.TrimPrefix(r.URL.Path, "/v1/runs/") + ": no such run; `siteflip runs` lists them"})
			return
		}
		json.NewEncoder(w).Encode(run)
	}))
	dir := t.TempDir()
	siteflip := runCLI

	t.Run("markdown on stdout", func(t *testing.T) {
		code, out, errOut := siteflip("report", "r1")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{
			"# switchover of webshop from brussels to antwerp\n",
			"| RTO | 2.5s (from the run's start to writable at antwerp) | 2s | **FAIL** |",
			"| `promote:db@antwerp` |",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("json to a file", func(t *testing.T) {
		path := filepath.Join(dir, "r1.json")
		code, out, errOut := siteflip("report", "r1", "-o", "json", "--out", path)
		if code != 0 || out != path+"\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and the path", code, out, errOut)
		}
		var doc struct {
			Version    int      `json:"version"`
			RTO        *float64 `json:"rto_seconds"`
			RTOVerdict string   `json:"rto_verdict"`
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Version != 1 || doc.RTO == nil || *doc.RTO != 2.5 || doc.RTOVerdict != "fail" {
			t.Errorf("report %s", b)
		}
	})

	t.Run("html to a file, replacing it whole", func(t *testing.T) {
		path := filepath.Join(dir, "r1.html")
		if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := siteflip("report", "r1", "-o", "html", "--out", path); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("<!DOCTYPE html>")) || !bytes.Contains(b, []byte("fence:db@brussels")) {
			t.Errorf("%s is not the report:\n%.200s", path, b)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("stat %s: %v, %v; want mode 0644", path, fi.Mode(), err)
		}
		left, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*"))
		if len(left) > 0 {
			t.Errorf("temporary files left: %v", left)
		}
	})

	t.Run("unknown run", func(t *testing.T) {
		// Refused by the agent (404): exit 3, for report and for run.
		for _, verb := range []string{"report", "run"} {
			code, out, errOut := siteflip(verb, "nosuch")
			if want := "siteflip " + verb + ": run nosuch: no such run; `siteflip runs` lists them\n"; code != 3 || out != "" || errOut != want {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want 3, nothing, %q", verb, code, out, errOut, want)
			}
		}
	})

	t.Run("a file that cannot be written", func(t *testing.T) {
		path := filepath.Join(dir, "no", "such", "dir", "r1.md")
		code, out, errOut := siteflip("report", "r1", "--out", path)
		if code != 1 || out != "" || !strings.Contains(errOut, "write "+path) {
			t.Errorf("exit %d, stdout %q, stderr %q; want 1 and the path named", code, out, errOut)
		}
	})
}
