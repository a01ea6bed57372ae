package dashboard

import (
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/testbed"
	"github.com/siteflip/siteflip/internal/testbed/browser"
)

// TestPageInBrowser drives the page in a headless Chromium against two
// fake locations: signing in, the map, the groups, a status change
// without reload, the runs and a run's timeline, the roles' actions and
// the confirm dialog, a phone's width, and the move to another location
// when the first one's stream ends.
func TestPageInBrowser(t *testing.T) {
	if testing.Short() && os.Getenv("SITEFLIP_REQUIRE_BROWSER") != "1" {
		t.Skip("starts Chromium")
	}
	brussels := newFakeAgent(t, "brussels")
	antwerp := newFakeAgent(t, "antwerp")
	locations := []map[string]string{
		{"name": "brussels", "role": "site", "url": brussels.url()},
		{"name": "antwerp", "role": "site", "url": antwerp.url()},
	}
	for _, a := range []*fakeAgent{brussels, antwerp} {
		a.locations = locations
		a.status = fixtureStatus(a.site, time.Now().UTC().Truncate(time.Second))
		a.runs = fixtureRuns()
	}
	b := browser.Start(t, browser.Options{Trust: []*x509.Certificate{brussels.srv.Certificate(), antwerp.srv.Certificate()}})
	ctx := b.Ctx

	// wait polls a JavaScript condition until it holds.
	wait := func(t *testing.T, what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(25*time.Millisecond))); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`'at: ' + location.href + ' login hidden=' + document.querySelector('#login').hidden + ' error=' + document.querySelector('#login-error').textContent + ' value=' + document.querySelector('#login-token').value + ' live=' + document.querySelector('#live').dataset.state + '/' + document.querySelector('#live').dataset.site + ' token=' + sessionStorage.getItem('siteflip.token') + '\nfocus: ' + document.activeElement.outerHTML.slice(0, 200) + '\ndialog: ' + document.querySelector('dialog#confirm').open + ' ' + document.querySelector('#confirm-title').textContent + ' ' + document.querySelector('#confirm-plan').textContent + '\n' + document.body.outerHTML.slice(0, 3000)`))
			t.Fatalf("waiting for %s (%s): %v\npage: %s", what, cond, err, html)
		}
	}
	eval, do := b.Eval, b.Do

	// Without a token, the agent answers 401: the form shows its words.
	do(t, chromedp.Navigate(brussels.url()+"/"))
	wait(t, "the sign-in form", `!document.querySelector('#login').hidden && document.querySelector('#login-error').textContent.includes('siteflip token')`)
	do(t, chromedp.SendKeys(`#login-token`, "viewer-token\r"))

	t.Run("map", func(t *testing.T) {
		wait(t, "three locations on the map", `document.querySelectorAll('svg#map g.site').length === 3`)
		for site, up := range map[string]string{"brussels": "true", "antwerp": "true", "luxembourg": "true"} {
			if got := eval(t, fmt.Sprintf(`document.querySelector('g.site[data-site=%q]').dataset.up`, site)); got != up {
				t.Errorf("%s: data-up=%s, want %s", site, got, up)
			}
		}
		if got := eval(t, `[...document.querySelectorAll('g.site[data-controller=true]')].map(e => e.dataset.site).join()`); got != "brussels" {
			t.Errorf("controller marked on %q, want brussels", got)
		}
		if got := eval(t, `String(document.querySelectorAll('line.link[data-seen=both]').length)`); got != "3" {
			t.Errorf("%s links seen both ways, want 3", got)
		}
		wait(t, "the countries' outline", `document.querySelector('svg#map path.land').getAttribute('d').length > 1000`)
		wait(t, "live from brussels", `document.querySelector('#live').dataset.state === 'live' && document.querySelector('#live').dataset.site === 'brussels'`)
		browser.Screenshot(t, ctx, "overview")
	})

	t.Run("groups", func(t *testing.T) {
		if got := eval(t, `document.querySelector('tr.group[data-group=webshop]').dataset.active`); got != "brussels" {
			t.Errorf("webshop data-active=%q, want brussels", got)
		}
		if got := eval(t, `document.querySelector('tr.group[data-group=billing]').dataset.state`); got != "unprotected" {
			t.Errorf("billing data-state=%q, want unprotected", got)
		}
		if got := eval(t, `document.querySelector('tr.group[data-group=billing]').textContent`); !strings.Contains(got, "systemctl start postgresql@15-main") {
			t.Errorf("billing's row lacks its problem's command: %q", got)
		}
		for group, want := range map[string]string{"webshop": "at_risk", "billing": "not_ready"} {
			if got := eval(t, fmt.Sprintf(`document.querySelector('tr.group[data-group=%s] td[data-readiness]').dataset.readiness`, group)); got != want {
				t.Errorf("%s data-readiness=%q, want %q", group, got, want)
			}
		}
		// The verdict is a word and a shape, not a colour alone; notes
		// wait for the group's page.
		if got := eval(t, `document.querySelector('tr.group[data-group=webshop] td[data-readiness]').textContent`); !strings.Contains(got, "▲ at risk") ||
			!strings.Contains(got, "ldap (tcp 127.0.2.1:3389) is unreachable from antwerp") || strings.Contains(got, "41 km") {
			t.Errorf("webshop's readiness cell: %q", got)
		}
		do(t, chromedp.ScrollIntoView(`table.groups`))
		browser.Screenshot(t, ctx, "groups")
	})

	t.Run("site down without reload", func(t *testing.T) {
		brussels.setStatus(func(st *jsonview.Status) {
			// antwerp's agent is gone: it reports nothing, and the others
			// no longer reach it.
			s := &st.Sites[1]
			s.Up, s.Reporting, s.Sees, s.Version = false, false, map[string]bool{}, ""
			s.SeenBy, s.UnseenBy = []string{}, []string{"brussels", "luxembourg"}
			for _, i := range []int{0, 2} {
				st.Sites[i].Sees["antwerp"] = false
				st.Sites[i].SeenBy = slices.DeleteFunc(st.Sites[i].SeenBy, func(n string) bool { return n == "antwerp" })
			}
		})
		wait(t, "antwerp down", `document.querySelector('g.site[data-site=antwerp]').dataset.up === 'false'`)
		for pair, want := range map[string]string{"brussels antwerp": "none", "antwerp luxembourg": "none", "brussels luxembourg": "both"} {
			from, to, _ := strings.Cut(pair, " ")
			if got := eval(t, fmt.Sprintf(`document.querySelector('line.link[data-from=%s][data-to=%s]').dataset.seen`, from, to)); got != want {
				t.Errorf("%s–%s: data-seen=%q, want %q", from, to, got, want)
			}
		}
		if got := eval(t, `document.querySelector('g.site[data-site=antwerp] text.word').textContent`); got != "down" {
			t.Errorf("antwerp's word on the map: %q, want down", got)
		}
		browser.Screenshot(t, ctx, "site-down")
		if got := eval(t, `document.querySelector('#announce').textContent`); !strings.Contains(got, "antwerp is down") {
			t.Errorf("the live region did not say antwerp is down: %q", got)
		}
		brussels.setStatus(func(st *jsonview.Status) { *st = fixtureStatus("brussels", st.ReadAt) })
		wait(t, "antwerp up again", `document.querySelector('g.site[data-site=antwerp]').dataset.up === 'true'`)
	})

	t.Run("viewer has no actions", func(t *testing.T) {
		do(t, chromedp.Navigate(brussels.url()+"/#/group/webshop"))
		wait(t, "the group page", `document.querySelector('figure.lag-figure polyline.series') !== null`)
		if got := eval(t, `String(document.querySelectorAll('button[data-action]').length)`); got != "0" {
			t.Errorf("a viewer's page has %s action buttons", got)
		}
		if got := eval(t, `document.querySelector('figure.lag-figure figcaption').textContent`); !strings.Contains(got, "limit 5.0 s") {
			t.Errorf("lag summary: %q", got)
		}
		if got := eval(t, `String(document.querySelectorAll('figure.lag-figure line.limit').length)`); got != "1" {
			t.Errorf("%s max_data_loss lines, want 1", got)
		}
		if got := eval(t, `[...document.querySelectorAll('#readiness-reasons li')].map(e => e.dataset.severity + ':' + e.dataset.kind).join()`); got != "at_risk:dependency,note:geography" {
			t.Errorf("the group page's readiness reasons: %q", got)
		}
		if got := eval(t, `document.querySelector('#readiness-reasons li[data-kind=dependency]').textContent`); !strings.Contains(got, "fix: start ldap where antwerp reaches it") {
			t.Errorf("the dependency reason lacks its fix: %q", got)
		}
		if got := eval(t, `[...document.querySelectorAll('table.dependencies tr[data-dependency=ldap] td')].map(e => e.dataset.site + '=' + e.dataset.reachable).join()`); got != "brussels=true,antwerp=false" {
			t.Errorf("ldap per site: %q", got)
		}
		do(t, chromedp.ScrollIntoView(`#readiness-reasons`))
		browser.Screenshot(t, ctx, "group-readiness")
		do(t, chromedp.ScrollIntoView(`figure.lag-figure`))
		browser.Screenshot(t, ctx, "group")
	})

	t.Run("runs", func(t *testing.T) {
		do(t, chromedp.Navigate(brussels.url()+"/#/runs"))
		wait(t, "three runs", `document.querySelectorAll('tr.run').length === 3`)
		if got := eval(t, `[...document.querySelectorAll('tr.run')].map(e => e.dataset.state).join()`); got != "rolled-back,succeeded,succeeded" {
			t.Errorf("runs' states, newest first: %s", got)
		}
		browser.Screenshot(t, ctx, "runs")
		do(t, chromedp.Navigate(brussels.url()+"/#/run/webshop-20261205-084012-switchover"))
		wait(t, "the timeline", `document.querySelectorAll('#timeline [data-step]').length === 8`)
		if got := eval(t, `[...document.querySelectorAll('#timeline [data-step]')].map(e => e.dataset.state).join()`); got != "done,done,done,done,done,done,done,pending" {
			t.Errorf("steps' states: %s", got)
		}
		// The two promotes of one wave overlap side by side.
		overlap := eval(t, `(() => {
			const r = (id) => document.querySelector('#timeline [data-step="' + id + '"] .bar').getBoundingClientRect();
			const a = r('promote:db@antwerp'), b = r('promote:www@antwerp');
			return String(a.left === b.left && b.right < a.right);
		})()`)
		if overlap != "true" {
			t.Errorf("promote:db and promote:www do not start together")
		}
		if got := eval(t, `String(document.querySelectorAll('a.report').length)`); got != "3" {
			t.Errorf("%s report links, want 3", got)
		}
		browser.Screenshot(t, ctx, "run")
		// A report goes through fetch, with the token a link cannot send.
		do(t, chromedp.Click(`a.report[data-format=md]`))
		testbed.WaitFor(t, 5*time.Second, "the report's request", func() bool {
			reports, _ := brussels.asked()
			return slices.Contains(reports, "webshop-20261205-084012-switchover md")
		})
		do(t, chromedp.Navigate(brussels.url()+"/#/run/billing-20261205-085500-failover"))
		wait(t, "the failed step", `document.querySelector('#timeline [data-step="catch-up:db@brussels"]')?.dataset.state === 'failed'`)
		if got := eval(t, `document.querySelector('#timeline [data-step="unfence:db@antwerp"]').dataset.rollback`); got != "true" {
			t.Errorf("the rollback step is not marked: %q", got)
		}
	})

	t.Run("operator switchover", func(t *testing.T) {
		do(t, chromedp.Navigate("about:blank"), chromedp.Navigate(brussels.url()+"/#token=operator-token"))
		wait(t, "the token taken from the address", `location.hash === '#/' && sessionStorage.getItem('siteflip.token') === 'operator-token'`)
		do(t, chromedp.Navigate(brussels.url()+"/#/group/webshop"))
		wait(t, "the switchover button", `document.querySelector('button[data-action=switchover][data-group=webshop]') !== null`)
		do(t, chromedp.Click(`button[data-action=switchover][data-group=webshop]`))
		wait(t, "the dry run's plan", `document.querySelector('dialog#confirm').open && document.querySelectorAll('#confirm-plan li').length === 7 && !document.querySelector('#confirm-go').disabled`)
		if got := eval(t, `String(document.querySelector('#confirm-loss-row').hidden)`); got != "true" {
			t.Errorf("an operator is offered to accept data loss")
		}
		do(t, chromedp.SendKeys(`#confirm-reason`, "move before the storage work"))
		browser.Screenshot(t, ctx, "confirm")
		do(t, chromedp.Click(`#confirm-go`))
		wait(t, "the run's link", `document.querySelector('#confirm-result a[href="#/run/run-new"]') !== null`)
		reqs := brussels.runRequests()
		if len(reqs) != 2 || !reqs[0].DryRun || reqs[1].DryRun || reqs[1].To != "antwerp" || reqs[1].Action != plan.Switchover || reqs[1].Reason != "move before the storage work" {
			t.Errorf("run requests: %+v", reqs)
		}
		// Esc closes the dialog, and the focus goes back to its button.
		do(t, chromedp.KeyEvent("\x1b"))
		wait(t, "the dialog closed", `!document.querySelector('dialog#confirm').open`)
		wait(t, "the focus back on switchover", `document.activeElement.dataset.action === 'switchover'`)

		// Pause: no plan, the reason goes with it.
		do(t, chromedp.Click(`button[data-action=pause][data-group=webshop]`))
		wait(t, "the pause dialog", `document.querySelector('dialog#confirm').open && !document.querySelector('#confirm-go').disabled`)
		do(t, chromedp.Click(`#confirm-go`))
		wait(t, "the pause's answer", `document.querySelector('#confirm-result').textContent.includes('webshop is paused')`)
		if _, paused := brussels.asked(); !slices.Equal(paused, []string{"pause webshop"}) {
			t.Errorf("pause requests: %q", paused)
		}
		do(t, chromedp.KeyEvent("\x1b"))
		wait(t, "the dialog closed", `!document.querySelector('dialog#confirm').open`)
		wait(t, "the focus back on pause", `document.activeElement.dataset.action === 'pause'`)
		do(t, chromedp.Evaluate[chromedp.Void](`document.querySelector('button[data-action=switchover][data-group=webshop]').focus()`))

		// By keyboard alone: Enter on the focused button opens the dialog.
		do(t, chromedp.KeyEvent("\r"))
		wait(t, "the dialog open again", `document.querySelector('dialog#confirm').open && document.querySelectorAll('#confirm-plan li').length === 7`)
		do(t, chromedp.KeyEvent("\x1b"))
		wait(t, "the dialog closed", `!document.querySelector('dialog#confirm').open`)
	})

	t.Run("admin failover with data loss", func(t *testing.T) {
		do(t, chromedp.Evaluate[chromedp.Void](`sessionStorage.clear()`), chromedp.Navigate("about:blank"), chromedp.Navigate(brussels.url()+"/#token=admin-token"))
		do(t, chromedp.Navigate(brussels.url()+"/#/group/webshop"))
		wait(t, "the failover button", `document.querySelector('button[data-action=failover][data-group=webshop]') !== null`)
		do(t, chromedp.Click(`button[data-action=failover][data-group=webshop]`))
		wait(t, "the plan", `document.querySelectorAll('#confirm-plan li').length > 0`)
		do(t, chromedp.Click(`#confirm-accept-loss`))
		wait(t, "Go held until the name is typed", `!document.querySelector('#confirm-name-row').hidden && document.querySelectorAll('#confirm-plan li').length > 0 && document.querySelector('#confirm-go').disabled`)
		do(t, chromedp.SendKeys(`#confirm-name`, "webshop"))
		wait(t, "Go enabled", `!document.querySelector('#confirm-go').disabled`)
		do(t, chromedp.Click(`#confirm-cancel`))
		wait(t, "the dialog closed", `!document.querySelector('dialog#confirm').open`)
	})

	t.Run("phone", func(t *testing.T) {
		do(t, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile), chromedp.Navigate(brussels.url()+"/#/"))
		wait(t, "the map", `document.querySelectorAll('svg#map g.site').length === 3`)
		if got := eval(t, `String(document.documentElement.scrollWidth)`); got != "390" {
			t.Errorf("the page is %s px wide at a phone's 390", got)
		}
		browser.Screenshot(t, ctx, "phone")
		do(t, chromedp.ResetViewport(), chromedp.EmulateViewport(1280, 800))
	})

	t.Run("reconnect to another location", func(t *testing.T) {
		do(t, chromedp.Navigate(brussels.url()+"/#/"))
		wait(t, "live from brussels", `document.querySelector('#live').dataset.site === 'brussels' && document.querySelector('#live').dataset.state === 'live'`)
		brussels.unavailable()
		wait(t, "live from antwerp", `document.querySelector('#live').dataset.site === 'antwerp' && document.querySelector('#live').dataset.state === 'live'`)
		antwerp.setStatus(func(st *jsonview.Status) { st.Groups[0].State = "unreachable" })
		wait(t, "antwerp's status", `document.querySelector('tr.group[data-group=webshop]').dataset.state === 'unreachable'`)
		if got := eval(t, `document.querySelector('#announce').textContent`); !strings.Contains(got, "brussels cannot read the control plane: no quorum where it stands") {
			t.Errorf("the live region did not say why the page left brussels: %q", got)
		}
	})

	t.Run("token refused", func(t *testing.T) {
		// antwerp's stream ends; brussels refuses the stream, antwerp the
		// token: the page asks to sign in again.
		antwerp.signOut()
		wait(t, "the sign-in form", `!document.querySelector('#login').hidden && document.querySelector('#login-error').textContent.includes('siteflip token') && sessionStorage.getItem('siteflip.token') === null`)
	})

	for _, m := range b.Console() {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Content-Security-Policy") {
			t.Errorf("browser console: %s", m)
		}
	}
}
