//go:build chaos

package chaos

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/pki"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/testbed"
)

// The scenarios of docs/design/safety.md: hostile callers and sick
// databases. Each asserts the invariants of chaos_test.go (check).

// identities are the lab's certificate names: the locations, and one
// person of each role and one bound to none.
var identities = []string{"brussels", "antwerp", "frankfurt", "lab-admin", "lab-operator", "lab-viewer", "lab-nobody"}

// clientAs is a client of the lab's agents with the certificate of name.
func clientAs(t *testing.T, e *Env, name string) *api.Client {
	t.Helper()
	dir := filepath.Dir(e.Topo.TLS.CAFile)
	cfg, err := pki.ClientConfig(pki.Files{CA: e.Topo.TLS.CAFile, Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}, "")
	if err != nil {
		t.Fatal(err)
	}
	c := api.NewClientTLS(e.Topo, cfg)
	t.Cleanup(c.Close)
	return c
}

// TestForgedSteps: the review's forged promote (antwerp) and rejoin
// (brussels), sent by every identity with no run in progress, and again
// with the run ID and term of a real run: all refused, nothing moves, and
// the audit trail names each caller.
func TestForgedSteps(t *testing.T) {
	e := start(t, Options{})
	event := time.Now()
	st, err := e.WaitStatus(t.Context(), 30*time.Second, func(st status.Status) bool { return group(st).State == status.StateProtected })
	if err != nil {
		t.Fatal(err)
	}
	forged := []struct {
		site string
		req  api.StepRequest
	}{
		{"antwerp", api.StepRequest{Group: "webshop", Resource: "db", Kind: plan.Promote, Epoch: 1, Timeout: 10 * time.Second}},
		{"brussels", api.StepRequest{Group: "webshop", Resource: "db", Kind: plan.Rejoin, Epoch: 1, Timeout: 10 * time.Second}},
		{"antwerp", api.StepRequest{RunID: "20261203T000000-webshop-failover-0000", Step: "promote:db@antwerp", Group: "webshop", Resource: "db",
			Kind: plan.Promote, Epoch: 2, Term: st.ControllerTerm, Timeout: 10 * time.Second}},
	}
	for _, name := range identities {
		c := clientAs(t, e, name)
		for _, f := range forged {
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			res, err := c.Step(ctx, f.site, f.req)
			cancel()
			var re *api.RequestError
			if !errors.As(err, &re) || (re.Status != 403 && re.Status != 409) {
				t.Errorf("%s sent %s of db to %s: %+v, %v; want a refusal (403 or 409)", name, f.req.Kind, f.site, res, err)
			}
		}
	}
	// Every forged step reaches the trail, refused, under its caller's
	// name.
	viewer := clientAs(t, e, "lab-viewer")
	var refused map[string]int
	trailComplete := func() bool {
		recs, err := viewer.Audit(t.Context(), event.Add(-time.Minute), 10000)
		if err != nil {
			return false
		}
		refused = map[string]int{}
		for _, r := range recs {
			if r.Request == "POST /v1/steps" && r.Result == audit.Refused {
				refused[r.Who] += 1 + r.Suppressed
			}
		}
		for _, name := range identities {
			if refused[name] != len(forged) {
				return false
			}
		}
		return true
	}
	if !testbed.Poll(10*time.Second, trailComplete) {
		t.Errorf("audit trail: refused steps by caller %v, want %d each from %v", refused, len(forged), identities)
	}
	st, err = e.WaitStatus(t.Context(), 10*time.Second, func(status.Status) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if g := group(st); g.ActiveSite != "brussels" || g.Epoch != 1 || g.State != status.StateProtected || g.Run != "" {
		t.Errorf("after the forged steps: active %s epoch %d state %s run %q (%v)", g.ActiveSite, g.Epoch, g.State, g.Run, g.Problems)
	}
	check(t, e, event, 0)
}

// TestUnobservableThenCutOff: the active site's database stops answering
// its agent (every connection slot taken, the observer's session ended),
// then the site is cut off from the others while its clients still reach
// it. It must fence itself within its serve lease all the same.
func TestUnobservableThenCutOff(t *testing.T) {
	e := start(t, Options{})
	if _, err := e.WaitStatus(t.Context(), 30*time.Second, func(st status.Status) bool { return group(st).State == status.StateProtected }); err != nil {
		t.Fatal(err)
	}
	hogs := exhaustSlots(t, e, "brussels")
	_, err := e.WaitStatus(t.Context(), 20*time.Second, func(st status.Status) bool {
		return group(st).Resources[0].Sites[0].Role == status.RoleUnknown
	})
	if err != nil {
		t.Fatalf("the agent never reported brussels' database unobservable: %v", err)
	}
	t.Logf("brussels' database does not answer its agent (%d connections hold every slot)", len(hogs))
	// Until the lag a failover would trust is too stale: what brussels
	// writes meanwhile is unknown to the others.
	if _, err := e.WaitStatus(t.Context(), 30*time.Second, func(st status.Status) bool {
		r := group(st).Resources[0].Sites[1].FailoverReady
		return r != nil && !*r
	}); err != nil {
		t.Fatalf("the lag record never became too stale for a failover: %v", err)
	}
	event := time.Now()
	if err := e.Net.Isolate("brussels", netns.Host, "router"); err != nil {
		t.Fatal(err)
	}
	// The stale lag needs a person: with the review's bug, brussels would
	// still accept writes while antwerp is promoted. On a loaded machine
	// the quorum's new leader may first leave antwerp's report out for a
	// moment (a decision for another reason): wait for the lag's.
	st, err := e.WaitStatus(t.Context(), 30*time.Second, func(st status.Status) bool {
		g := group(st)
		return (g.State == status.StateNeedsDecision && strings.Contains(g.Decision.Command, "--accept-data-loss")) ||
			(g.ActiveSite == "antwerp" && g.Run == "")
	})
	if err != nil {
		t.Fatal(err)
	}
	if g := group(st); g.State == status.StateNeedsDecision {
		t.Logf("needs a decision, as it should: %s", g.Decision.Reason)
		if !strings.Contains(g.Decision.Command, "--accept-data-loss") {
			t.Errorf("decision %+v: the command should accept the data loss", g.Decision)
		}
		r, err := clientAs(t, e, "lab-admin").StartRun(t.Context(), api.RunRequest{Group: "webshop", Action: plan.Failover, To: "antwerp",
			AcceptDataLoss: true, Reason: "chaos: brussels unobservable, then cut off"})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("decided: run %s", r.ID)
	}
	waitFailover(t, e, "antwerp")
	last, _ := LastAckBy(e.Writer.Acks(), "brussels")
	t.Logf("cut → last write acknowledged at brussels %s", last.At.Sub(event).Round(time.Millisecond))
	if d := last.At.Sub(event); d > 2*time.Second {
		t.Errorf("brussels acknowledged writes %s after it was cut off: it did not fence itself within its serve lease", d)
	}
	for _, h := range hogs {
		h.Close(context.Background())
	}
	check(t, e, event, 5*time.Second)
	if err := e.Net.HealAll(); err != nil {
		t.Error(err)
	}
}

// exhaustSlots takes every connection slot of site's database, and ends
// the agent's observer session, so that the agent cannot observe it.
func exhaustSlots(t *testing.T, e *Env, site string) []*pgx.Conn {
	t.Helper()
	dsn, err := lab.SiteDSN(e.Topo, site)
	if err != nil {
		t.Fatal(err)
	}
	var hogs []*pgx.Conn
	grab := func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return false
		}
		hogs = append(hogs, c)
		return true
	}
	for grab() {
		if len(hogs) > 500 {
			t.Fatal("500 connections and still room: is max_connections that high?")
		}
	}
	if len(hogs) == 0 {
		t.Fatalf("no connection to %s", site)
	}
	// End the observer's session, and take its slot before it reconnects.
	gone := func() bool {
		var n int
		err := hogs[0].QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'siteflip-observer'`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		for grab() {
		}
		var left int
		err = hogs[0].QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'siteflip-observer'`).Scan(&left)
		return n == 0 && err == nil && left == 0
	}
	if !testbed.Poll(10*time.Second, gone) {
		t.Fatal("the observer kept its connection")
	}
	return hogs
}

// TestAgentFailsWhilePartitioned: the active site's agent fails (returns
// an error, as a broken component would) at the moment its serve lease
// runs out, before fencing anything. Its watchdog, left armed, fences.
func TestAgentFailsWhilePartitioned(t *testing.T) {
	e := start(t, Options{AgentEnv: []string{"SITEFLIP_FAILPOINT=error-on-lease-loss"}})
	event := time.Now()
	if err := e.Net.Isolate("brussels", netns.Host, "router"); err != nil {
		t.Fatal(err)
	}
	waitFailover(t, e, "antwerp")
	first := writeAtAntwerp(t, e, event)
	waitFor(t, 30*time.Second, "brussels' agent to exit", func() bool { return !agentRunning(e, "brussels") })
	last, _ := LastAckBy(e.Writer.Acks(), "brussels")
	t.Logf("cut → last write at brussels %s (its watchdog fenced it); first at antwerp %s",
		last.At.Sub(event).Round(time.Millisecond), first.At.Sub(event).Round(time.Millisecond))
	if last.At.After(first.At) {
		t.Errorf("brussels acknowledged a write after antwerp did")
	}
	check(t, e, event, 5*time.Second)
	if err := e.Net.HealAll(); err != nil {
		t.Error(err)
	}
}

// TestClientTurnsOffSynchronousCommit: in synchronous mode, a second
// client commits with synchronous_commit = local, and a database setting
// weakens it for everybody. The setting withdraws the guarantee (recorded
// degraded, with the reason) until it is removed; then the active site is
// cut off: the synchronous writer loses nothing, the client that opted
// out loses at most its serve lease's worth.
func TestClientTurnsOffSynchronousCommit(t *testing.T) {
	e := start(t, Options{Synchronous: true})
	waitSynchronous(t, e)
	db := e.Writer.DSN
	conn, err := pgx.Connect(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `ALTER DATABASE webshop SET synchronous_commit = local`); err != nil {
		t.Fatal(err)
	}
	st, err := e.WaitStatus(t.Context(), 20*time.Second, func(st status.Status) bool {
		s := group(st).Resources[0].Synchronous
		return s != nil && s.State == status.SyncDegraded && strings.Contains(s.Reason, "synchronous_commit")
	})
	if err != nil {
		t.Fatalf("a database setting weakening synchronous_commit was not recorded: %v", err)
	}
	t.Logf("recorded: %s", group(st).Resources[0].Synchronous.Reason)
	if _, err := conn.Exec(t.Context(), `ALTER DATABASE webshop RESET synchronous_commit`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WaitStatus(t.Context(), 30*time.Second, syncOn); err != nil {
		t.Fatalf("the guarantee did not come back once the setting was removed: %v", err)
	}
	conn.Close(context.Background())

	optOut := &Writer{DSN: db, Table: WritesTable, Interval: 5 * time.Millisecond, Setup: "SET synchronous_commit = local", IDBase: 1 << 40}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() { optOut.Run(ctx); close(done) }()
	waitFor(t, 10*time.Second, "the opting-out client to write", func() bool { return len(optOut.Acks()) > 100 })

	event := time.Now()
	if err := e.Net.Isolate("brussels", netns.Host, "router"); err != nil {
		t.Fatal(err)
	}
	waitFailover(t, e, "antwerp")
	writeAtAntwerp(t, e, event)
	cancel()
	<-done
	check(t, e, event, 0) // the synchronous writer: nothing lost
	present, err := e.Present(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	lost := Lost(optOut.Acks(), present)
	t.Logf("the client that turned synchronous commit off lost %d of %d acknowledged writes (PostgreSQL lets a session opt out)", len(lost), len(optOut.Acks()))
	for _, a := range lost {
		if a.At.Before(event) || a.At.After(event.Add(2*time.Second)) {
			t.Errorf("opted-out write %d acknowledged at %s lost: outside the serve lease after the cut at %s",
				a.ID, a.At.Format("15:04:05.000"), event.Format("15:04:05.000"))
			break
		}
	}
	if err := e.Net.HealAll(); err != nil {
		t.Error(err)
	}
}

// TestClockOff: every location's wall clock is off by seconds, each its
// own way. Whoever is controller, the group is protected, a lost site
// fails over by itself, and nothing compares two machines' clocks.
func TestClockOff(t *testing.T) {
	e := start(t, Options{SiteEnv: map[string][]string{
		"brussels":  {"SITEFLIP_CLOCK_OFFSET=-5s"},
		"antwerp":   {"SITEFLIP_CLOCK_OFFSET=9s"},
		"frankfurt": {"SITEFLIP_CLOCK_OFFSET=-13s"},
	}})
	st, err := e.WaitStatus(t.Context(), 30*time.Second, func(st status.Status) bool { return group(st).State == status.StateProtected })
	if err != nil {
		t.Fatalf("never protected with the clocks off: %v; %v", err, group(st).Problems)
	}
	t.Logf("controller at %s", st.Controller)
	event := time.Now()
	if err := lab.Disaster(e.Lab, "brussels"); err != nil {
		t.Fatal(err)
	}
	st = waitFailover(t, e, "antwerp")
	if g := group(st); g.Decision != nil {
		t.Errorf("a decision was asked for: %+v", g.Decision)
	}
	first := writeAtAntwerp(t, e, event)
	t.Logf("RTO with the clocks off: %s", first.At.Sub(event).Round(time.Millisecond))
	check(t, e, event, 5*time.Second)
}

// TestSiteLostRightAfterReprotect: a site lost right after a reprotect,
// the moment status says protected, fails over by itself: status says
// protected only once a failover would go ahead.
func TestSiteLostRightAfterReprotect(t *testing.T) {
	e := start(t, Options{})
	if _, err := harnessRun(t, e, api.RunRequest{Group: "webshop", Action: plan.Reprotect, Reason: "chaos"}); err != nil {
		t.Fatal(err)
	}
	st, err := e.WaitStatus(t.Context(), 30*time.Second, func(st status.Status) bool { return group(st).State == status.StateProtected })
	if err != nil {
		t.Fatal(err)
	}
	event := time.Now()
	if err := lab.Disaster(e.Lab, "brussels"); err != nil {
		t.Fatal(err)
	}
	st = waitFailover(t, e, "antwerp")
	if g := group(st); g.Decision != nil {
		t.Errorf("status said protected, but the failover needed a decision: %s", g.Decision.Reason)
	}
	check(t, e, event, 5*time.Second)
}

// TestPowerBackDuringFailover: the old active site's power comes back
// while its group fails over: its database first (as a machine that boots
// would start it), its agent later. The database comes up read-only behind
// its boot guard and never accepts a write.
func TestPowerBackDuringFailover(t *testing.T) {
	e := start(t, Options{})
	event := time.Now()
	if err := lab.Disaster(e.Lab, "brussels"); err != nil {
		t.Fatal(err)
	}
	// The power comes back as the others declare brussels lost, which is
	// when the failover starts: the database first, as a booting machine
	// would start it, then the agent once it is up.
	if _, err := e.WaitStatus(t.Context(), 30*time.Second, func(st status.Status) bool {
		b, _ := st.Site("brussels")
		return len(b.LostBy) > 0
	}); err != nil {
		t.Fatal(err)
	}
	if err := lab.StartDatabase(t.Context(), e.Lab, "brussels"); err != nil {
		t.Fatal(err)
	}
	if err := lab.StartAgent(e.Lab, "brussels"); err != nil {
		t.Fatal(err)
	}
	waitFailover(t, e, "antwerp")
	// Until brussels' agent reports its database: it has then read the
	// group's record and decided what to do with it.
	if _, err := e.WaitStatus(t.Context(), 30*time.Second, func(st status.Status) bool {
		b := group(st).Resources[0].Sites[0]
		return b.Observed && b.Role != status.RoleUnknown
	}); err != nil {
		t.Fatal(err)
	}
	for _, s := range e.Probe.Samples() {
		if s.Site == "brussels" && s.Writable && s.Start.After(event.Add(100*time.Millisecond)) {
			t.Errorf("brussels accepted a write at %s, after its power cut: it came back writable", s.Start.Format("15:04:05.000"))
			break
		}
	}
	st, err := e.WaitStatus(t.Context(), 10*time.Second, func(status.Status) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("brussels' database after its return: %+v", group(st).Resources[0].Sites[0])
	if r := group(st).Resources[0].Sites[0].Role; r == status.RolePrimary {
		t.Errorf("brussels' database is a primary again next to antwerp")
	}
	if _, err := harnessRun(t, e, api.RunRequest{Group: "webshop", Action: plan.Reprotect}); err != nil {
		t.Fatalf("reprotect after the return: %v", err)
	}
	if _, err := e.WaitStatus(t.Context(), 30*time.Second, func(st status.Status) bool { return group(st).State == status.StateProtected }); err != nil {
		t.Fatal(err)
	}
	check(t, e, event, 5*time.Second)
}

// TestSecondDisasterAndFlap: brussels loses power and the group fails over
// to antwerp; brussels comes back and is reprotected; then antwerp loses
// power: a second disaster at another site, which must fail over at once,
// not be held back as a flap. Brussels is lost again after that: the same
// site lost again within flap_period, a flap, which fails over only after
// flap_confirm.
func TestSecondDisasterAndFlap(t *testing.T) {
	e := start(t, Options{})
	event := time.Now()
	if err := lab.Disaster(e.Lab, "brussels"); err != nil {
		t.Fatal(err)
	}
	waitFailover(t, e, "antwerp")
	backAndReprotect(t, e, "brussels")
	if err := lab.Disaster(e.Lab, "antwerp"); err != nil {
		t.Fatal(err)
	}
	waitFailover(t, e, "brussels")
	if n := e.logged("the same site lost again soon after its previous loss"); n > 0 {
		t.Errorf("the loss of antwerp after that of brussels was damped as a flap (%d times)", n)
	}
	backAndReprotect(t, e, "antwerp")
	if err := lab.Disaster(e.Lab, "brussels"); err != nil {
		t.Fatal(err)
	}
	waitFailover(t, e, "antwerp")
	if n := e.logged("the same site lost again soon after its previous loss"); n != 1 {
		t.Errorf("brussels lost a second time within flap_period: damped %d times, want once", n)
	}
	check(t, e, event, 5*time.Second)
}

// backAndReprotect brings site back after a power cut and reprotects the
// group, until a failover to site would go ahead again.
func backAndReprotect(t *testing.T, e *Env, site string) {
	t.Helper()
	if err := lab.Heal(t.Context(), e.Lab, site); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WaitStatus(t.Context(), 60*time.Second, func(st status.Status) bool {
		s, _ := st.Site(site)
		return s.Up && s.Reporting && !s.Lost
	}); err != nil {
		t.Fatalf("%s back: %v", site, err)
	}
	if _, err := harnessRun(t, e, api.RunRequest{Group: "webshop", Action: plan.Reprotect, Reason: "chaos: " + site + " is back"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WaitStatus(t.Context(), 60*time.Second, func(st status.Status) bool {
		g := group(st)
		if g.State != status.StateProtected {
			return false
		}
		for _, s := range g.Resources[0].Sites {
			if s.Site == site {
				return s.FailoverReady != nil && *s.FailoverReady
			}
		}
		return false
	}); err != nil {
		t.Fatalf("protected with %s ready to take over: %v", site, err)
	}
}

// TestFencedDuringPromote: antwerp's database is killed as its promotion
// begins, as a serve lease that runs out under the load of many
// promotions would. Nothing starts a database while its group's run is in
// progress, so the promote step failed on every retry ("connection
// refused") and the failover never ended. The step starts it behind its
// boot guard, promotes it, and the failover ends.
func TestFencedDuringPromote(t *testing.T) {
	once := filepath.Join(t.TempDir(), "failpoint-fired")
	e := start(t, Options{AgentEnv: []string{"SITEFLIP_FAILPOINT=fence-before-promote", "SITEFLIP_FAILPOINT_ONCE=" + once}})
	event := time.Now()
	if err := lab.Disaster(e.Lab, "brussels"); err != nil {
		t.Fatal(err)
	}
	waitFailover(t, e, "antwerp")
	if n := e.logged("failpoint: the database is killed as its promotion begins"); n != 1 {
		t.Fatalf("the failpoint fired %d times, want once", n)
	}
	if n := e.logged("starting it behind its boot guard first"); n == 0 {
		t.Error("the promote step did not say it started the killed database")
	}
	first := writeAtAntwerp(t, e, event)
	t.Logf("RTO with the database killed at the promotion: %s", first.At.Sub(event).Round(time.Millisecond))
	if st, err := e.WaitStatus(t.Context(), 10*time.Second, func(st status.Status) bool {
		for _, s := range group(st).Resources[0].Sites {
			if s.Site == "antwerp" {
				return s.Observed && s.Role == status.RolePrimary
			}
		}
		return false
	}); err != nil {
		t.Errorf("antwerp's database is not seen as the primary after the failover: %v; %+v", err, group(st).Resources[0].Sites)
	}
	check(t, e, event, 5*time.Second)
}
