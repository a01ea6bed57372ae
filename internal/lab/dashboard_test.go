package lab

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/testbed/browser"
)

// TestDashboard drives the dashboard of a real lab in a headless Chromium
// that trusts the lab's CA as an operator's browser would: the page shows
// the three locations and webshop protected; a switchover started from the
// page succeeds and its timeline shows every step as the run records it; a
// viewer's page offers no actions and the API refuses them; and a page
// served by brussels, left open through brussels' power cut, moves to
// another location by itself and shows brussels down and webshop active
// at antwerp within 3 s of the control plane saying so, without a reload.
func TestDashboard(t *testing.T) {
	skipUnlessLab(t)
	if browser.Path() == "" && os.Getenv("SITEFLIP_REQUIRE_BROWSER") != "1" {
		t.Skip("no Chromium: install Debian's chromium package (scripts/deps.sh does)")
	}
	o, _, c := labUp(t)
	waitStatus(t, c, 30*time.Second, "lab healthy", func(st status.Status) bool { return unhealthy(st) == "" })

	ca := labCA(t, o.Dir)
	operator := labToken(t, o, "lab-operator", "operator")
	viewer := labToken(t, o, "lab-viewer", "viewer")
	b := browser.Start(t, browser.Options{CAs: []*x509.Certificate{ca}})
	ctx := b.Ctx
	brussels, antwerp := "https://"+locations[0].addr(agentPort), "https://"+locations[1].addr(agentPort)

	wait, eval, do := b.Wait, b.Eval, b.Do
	signIn := func(t *testing.T, base, token, route string) {
		t.Helper()
		do(t, chromedp.Navigate("about:blank"), chromedp.Navigate(base+"/#token="+token))
		wait(t, 10*time.Second, "the token taken from the address", `location.hash === '#/' && sessionStorage.getItem('siteflip.token') !== null`)
		if route != "#/" {
			do(t, chromedp.Navigate(base+"/"+route))
		}
	}

	t.Run("overview", func(t *testing.T) {
		signIn(t, brussels, operator, "#/")
		wait(t, 10*time.Second, "three locations up, webshop protected at brussels", `document.querySelectorAll('svg#map g.site[data-up=true]').length === 3 &&
			document.querySelector('tr.group[data-group=webshop]')?.dataset.state === 'protected' &&
			document.querySelector('tr.group[data-group=webshop]')?.dataset.active === 'brussels'`)
		if got := eval(t, `[...document.querySelectorAll('svg#map g.site')].map(e => e.dataset.site).sort().join()`); got != "antwerp,brussels,frankfurt" {
			t.Errorf("locations on the map: %s", got)
		}
		if got := eval(t, `document.querySelector('#live').dataset.site`); got != "brussels" {
			t.Errorf("the page reads %s, want brussels", got)
		}
		wait(t, 10*time.Second, "the countries' outline", `document.querySelector('svg#map path.land')?.getAttribute('d')?.length > 1000`)
		browser.Screenshot(t, ctx, "lab-overview")
	})

	var runID string
	t.Run("switchover from the page", func(t *testing.T) {
		do(t, chromedp.Navigate(brussels+"/#/group/webshop"))
		wait(t, 10*time.Second, "the switchover button", `document.querySelector('button[data-action=switchover][data-group=webshop]') !== null`)
		do(t, chromedp.Click(`button[data-action=switchover][data-group=webshop]`))
		wait(t, 10*time.Second, "the dry run's plan", `document.querySelector('dialog#confirm').open && document.querySelectorAll('#confirm-plan li').length > 0 && !document.querySelector('#confirm-go').disabled`)
		if got := eval(t, `document.querySelector('#confirm-target').value`); got != "antwerp" {
			t.Errorf("the switchover's target is %q, want antwerp", got)
		}
		do(t, chromedp.SendKeys(`#confirm-reason`, "lab test: switchover from the dashboard"))
		// Every change the page announces from here on, to tell that the
		// group never looked split while its name moved to antwerp.
		do(t, chromedp.Evaluate[chromedp.Void](`window.heard = [];
			new MutationObserver(() => document.querySelectorAll('#announce p').forEach(p => window.heard.includes(p.textContent) || window.heard.push(p.textContent)))
				.observe(document.querySelector('#announce'), {childList: true, subtree: true})`))
		do(t, chromedp.Click(`#confirm-go`))
		wait(t, 10*time.Second, "the run's link", `document.querySelector('#confirm-result a[href^="#/run/"]') !== null`)
		runID = strings.TrimPrefix(eval(t, `document.querySelector('#confirm-result a[href^="#/run/"]').getAttribute('href')`), "#/run/")
		do(t, chromedp.KeyEvent("\x1b"))

		ctx2, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		run, err := c.WaitRun(ctx2, runID, 100*time.Millisecond)
		if err != nil || run.State != plan.RunSucceeded {
			t.Fatalf("the page's switchover %s: %s %v (%s)", runID, run.State, err, run.Error)
		}
		if run.Plan.Action != plan.Switchover || run.Plan.To != "antwerp" || run.By != "lab-operator" || run.Reason != "lab test: switchover from the dashboard" {
			t.Errorf("the run the page started: %s to %s by %s, reason %q", run.Plan.Action, run.Plan.To, run.By, run.Reason)
		}
		// The audit trail says who started it, and that a token vouched
		// for them, as for any request of the command line.
		recs, err := c.Audit(t.Context(), run.Started.Add(-time.Minute), 1000)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, rec := range recs {
			if rec.Run == runID && rec.Request == "POST /v1/runs" {
				found = rec.Who == "lab-operator" && rec.Via == "token" && rec.Role == "operator" && rec.Reason == run.Reason
			}
		}
		if !found {
			t.Errorf("no audit record of lab-operator starting %s with a token: %+v", runID, recs)
		}
		// Every step of the run, in the state the run records: the page
		// shows the run as its last runs event did, a second at most
		// before the run ended, and follows it live.
		doc := jsonview.RunOf(run)
		want := map[string]string{}
		for _, s := range append(doc.Steps, doc.Rollback...) {
			want[s.ID] = s.State
		}
		wantJSON, _ := json.Marshal(want)
		// The page reads a status a second at most: it would have seen
		// the second of split-brain that every switchover showed while the
		// old site's name still answered for itself.
		wait(t, 5*time.Second, "the page announcing webshop protected at antwerp", `window.heard.some(s => s === 'Group webshop: protected at antwerp')`)
		if heard := eval(t, `window.heard.join(' | ')`); strings.Contains(heard, "split-brain") {
			t.Errorf("the page announced a split-brain during the switchover: %s", heard)
		}
		do(t, chromedp.Navigate(brussels+"/#/run/"+runID))
		wait(t, 10*time.Second, "every step of the run on the timeline, as the run records it", fmt.Sprintf(`(() => {
			const want = %s, rows = [...document.querySelectorAll('#timeline [data-step]')];
			return rows.length === Object.keys(want).length && rows.every(e => want[e.dataset.step] === e.dataset.state);
		})()`, wantJSON))
		if got := eval(t, `document.querySelector('#timeline .rollback-title')?.textContent ?? ''`); len(doc.Rollback) > 0 && got != "Rollback (not needed)" {
			t.Errorf("the rollback of a run that succeeded is headed %q", got)
		}
		if got := eval(t, `String(document.querySelectorAll('a.report').length)`); got != "3" {
			t.Errorf("%s report links, want 3", got)
		}
		browser.Screenshot(t, ctx, "lab-run")
		do(t, chromedp.Navigate(brussels+"/#/"))
		wait(t, 10*time.Second, "webshop protected at antwerp", `document.querySelector('tr.group[data-group=webshop]')?.dataset.active === 'antwerp' &&
			document.querySelector('tr.group[data-group=webshop]')?.dataset.state === 'protected'`)
	})

	t.Run("lag chart", func(t *testing.T) {
		do(t, chromedp.Navigate(brussels+"/#/group/webshop"))
		// The agents sample every 5 s; a line needs two samples.
		wait(t, 20*time.Second, "brussels' lag drawn", `document.querySelector('figure.lag-figure polyline.series') !== null`)
		if got := eval(t, `String(document.querySelectorAll('figure.lag-figure line.limit').length)`); got == "0" {
			t.Errorf("no max_data_loss line on the lag chart")
		}
		do(t, chromedp.ScrollIntoView(`figure.lag-figure`))
		browser.Screenshot(t, ctx, "lab-group")
	})

	t.Run("viewer", func(t *testing.T) {
		signIn(t, antwerp, viewer, "#/group/webshop")
		wait(t, 10*time.Second, "the group page", `document.querySelector('tr.group, figure.lag-figure, #live[data-state=live]') !== null && document.querySelector('#live').dataset.state === 'live'`)
		if got := eval(t, `String(document.querySelectorAll('button[data-action]').length)`); got != "0" {
			t.Errorf("a viewer's page has %s action buttons", got)
		}
		// The API refuses the viewer whatever the page offers.
		body, _ := json.Marshal(api.RunRequest{Group: demoGroup, Action: plan.Switchover, To: "brussels"})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, antwerp+"/v1/runs", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+viewer)
		req.Header.Set("Content-Type", "application/json")
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("a viewer's switchover: %s, want 403", resp.Status)
		}
	})

	t.Run("brussels lost under the open page", func(t *testing.T) {
		back := runAndWait(t, c, api.RunRequest{Group: demoGroup, Action: plan.Switchover, To: "brussels", Reason: "lab test: back to brussels"})
		if back.State != plan.RunSucceeded {
			t.Fatalf("switchover back: %s: %s", back.State, back.Error)
		}
		// An automatic failover needs a standby whose lag the control
		// plane recorded, streaming, in this epoch: wait for antwerp's,
		// as brussels saw it after the switchover back.
		waitStatus(t, c, 60*time.Second, "webshop protected at brussels, antwerp's lag recorded streaming", func(st status.Status) bool {
			g := groupOf(st, demoGroup)
			if unhealthy(st) != "" || g.ActiveSite != "brussels" {
				return false
			}
			for _, r := range g.Resources {
				for _, s := range r.Sites {
					if r.Name == demoResource && s.Site == "antwerp" {
						l := s.LastKnownLag
						return l != nil && l.Streaming && l.Epoch == g.Epoch && l.SeenAt.After(back.Ended)
					}
				}
			}
			return false
		})
		signIn(t, brussels, operator, "#/")
		wait(t, 10*time.Second, "webshop at brussels, read from brussels", `document.querySelector('tr.group[data-group=webshop]')?.dataset.active === 'brussels' && document.querySelector('#live').dataset.site === 'brussels'`)
		do(t, chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`))

		if err := Disaster(o, "brussels"); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, 60*time.Second, "brussels down and webshop active at antwerp", func(st status.Status) bool {
			b, _ := st.Site("brussels")
			return !b.Up && groupOf(st, demoGroup).ActiveSite == "antwerp"
		})
		wait(t, 3*time.Second, "the page showing brussels down and webshop at antwerp", `document.querySelector('g.site[data-site=brussels]').dataset.up === 'false' &&
			document.querySelector('tr.group[data-group=webshop]')?.dataset.active === 'antwerp'`)
		if got := eval(t, `String(window.sameDocument === true)`); got != "true" {
			t.Errorf("the page was reloaded")
		}
		if got := eval(t, `document.querySelector('#live').dataset.site`); got == "brussels" {
			t.Errorf("the page still says it reads brussels")
		}
		browser.Screenshot(t, ctx, "lab-brussels-down")
	})

	for _, m := range b.Console() {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Content-Security-Policy") {
			t.Errorf("browser console: %s", m)
		}
	}
}

// labCA is the lab's certificate authority.
func labCA(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(dir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatalf("the lab's CA: no PEM block in %s", filepath.Join(dir, "pki", "ca.crt"))
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("the lab's CA: %v", err)
	}
	return ca
}

// labToken makes a login token as the lab's person id would, with
// `siteflip token` and their own credential.
func labToken(t *testing.T, o Options, id, role string) string {
	t.Helper()
	pki := filepath.Join(o.Dir, "pki")
	cmd := exec.Command(o.Exe, "token", "--config", filepath.Join(o.Dir, "siteflip.yaml"),
		"--cert", filepath.Join(pki, id+".crt"), "--key", filepath.Join(pki, id+".key"), "--role", role, "--ttl", "1h", "-o", "json")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("siteflip token for %s: %v\n%s", id, err, out)
	}
	var doc jsonview.Token
	if err := json.Unmarshal(out, &doc); err != nil || doc.Token == "" || doc.Role != role {
		t.Fatalf("siteflip token for %s: %v: %s", id, err, out)
	}
	return doc.Token
}
