package lab

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// siteflipCLI runs the lab's siteflip binary with the lab's topology and
// returns what it printed and its exit code.
func siteflipCLI(t *testing.T, o Options, stdin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.Exe, append([]string{"--config", filepath.Join(o.Dir, "siteflip.yaml")}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	t.Fatalf("siteflip %s: %v\n%s", strings.Join(args, " "), err, out.String())
	return "", -1
}

// TestForceAfterQuorumLoss: with the quorum present, `failover --force` is
// refused and changes nothing. Then antwerp and frankfurt lose power
// together: brussels, alone, fences itself, and nothing answers the status.
// `siteflip failover webshop --force` brings brussels back: the control
// plane answers from brussels alone, and webshop is active there in a new
// epoch and accepts writes again, with no acknowledged write lost.
func TestForceAfterQuorumLoss(t *testing.T) {
	skipUnlessLab(t)
	o, topo, c := labUp(t)
	before := waitStatus(t, c, 60*time.Second, "protected at brussels", protectedAt("brussels"))
	w := startWriter(t, topo)
	waitFor(t, 10*time.Second, "the writer to start", func() bool { return w.count() > 20 })

	// With the quorum present: refused, nothing changed.
	out, code := siteflipCLI(t, o, "", "failover", "webshop", "--force", "--yes", "--to", "brussels")
	if code == 0 || !strings.Contains(out, "has a quorum") || !strings.Contains(out, "siteflip failover webshop --to brussels") {
		t.Errorf("failover --force with the quorum present: exit %d, output:\n%s\nwant a refusal naming the quorum and the normal failover", code, out)
	}
	t.Logf("refused with the quorum present: %s", strings.TrimSpace(out))
	out, code = siteflipCLI(t, o, "shop\n", "failover", "webshop", "--force", "--to", "brussels")
	if code == 0 || !strings.Contains(out, "gone for good") || !strings.Contains(out, "two primaries") || !strings.Contains(out, "not confirmed") {
		t.Errorf("failover --force not confirmed: exit %d, output:\n%s", code, out)
	}
	out, code = siteflipCLI(t, o, "", "failover", "webshop", "--force", "--yes", "--to", "frankfurt")
	if code == 0 || !strings.Contains(out, `"frankfurt" is not a site of group webshop`) {
		t.Errorf("failover --force to the witness: exit %d, output:\n%s", code, out)
	}
	after := waitStatus(t, c, 10*time.Second, "protected at brussels", protectedAt("brussels"))
	if g := group(after); g.Epoch != group(before).Epoch || hasProblem(g, "runs the control plane alone") {
		t.Fatalf("a refused force changed the group: epoch %d → %d, problems %v", group(before).Epoch, g.Epoch, g.Problems)
	}

	// Power cut at antwerp and frankfurt at once.
	for _, site := range []string{"antwerp", "frankfurt"} {
		if err := Disaster(o, site); err != nil {
			t.Fatal(err)
		}
	}
	cut := time.Now()
	waitFor(t, 10*time.Second, "brussels to fence its primary", func() bool {
		return len(processesOf(t, filepath.Join(o.Dir, "brussels", "pg", "data"))) == 0
	})
	t.Logf("brussels fenced itself %s after the power cut", time.Since(cut).Round(10*time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	if st, err := c.Status(ctx); err == nil {
		t.Errorf("status answered by %s without a quorum", st.AnsweredBy)
	}
	cancel()
	acked := w.count()

	// The person declares antwerp and frankfurt lost.
	start := time.Now()
	firstWrite := make(chan time.Duration, 1)
	go func() {
		for time.Since(start) < 2*time.Minute {
			if w.count() > acked {
				firstWrite <- time.Since(start)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	out, code = siteflipCLI(t, o, "", "failover", "webshop", "--force", "--yes")
	took := time.Since(start)
	t.Logf("siteflip failover webshop --force (%s, exit %d):\n%s", took.Round(10*time.Millisecond), code, out)
	if code != 0 {
		t.Fatalf("failover --force failed")
	}
	select {
	case d := <-firstWrite:
		t.Logf("force command → first acknowledged write at brussels: %s (command returned after %s)", d.Round(time.Millisecond), took.Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("no write acknowledged within 30s of the force")
	}
	st := waitStatus(t, c, 30*time.Second, "webshop active at brussels in a new epoch, answered by brussels", func(st status.Status) bool {
		g := group(st)
		s := g.Resources[0].Sites[0]
		return st.AnsweredBy == "brussels" && st.Controller == "brussels" && g.ActiveSite == "brussels" && g.Epoch > group(before).Epoch &&
			g.Run == "" && s.Site == "brussels" && s.Up && s.Role == status.RolePrimary
	})
	g := group(st)
	t.Logf("webshop: %s at %s, epoch %d → %d; problems: %v", g.State, g.ActiveSite, group(before).Epoch, g.Epoch, g.Problems)
	if !hasProblem(g, "brussels runs the control plane alone") {
		t.Errorf("status does not say that brussels is forced: %v", g.Problems)
	}
	for _, name := range []string{"antwerp", "frankfurt"} {
		if s, _ := st.Site(name); s.Up || s.Reporting {
			t.Errorf("%s shown up (%v) or reporting (%v) after it was declared lost", name, s.Up, s.Reporting)
		}
	}
	n := w.count()
	waitFor(t, 10*time.Second, "writes at brussels", func() bool { return w.count() > n+20 })
	runs, err := c.Runs(t.Context(), "webshop")
	if err != nil || len(runs) == 0 {
		t.Fatalf("runs: %v (%d)", err, len(runs))
	}
	r := runs[len(runs)-1]
	if r.By != "lab-admin (--force)" || r.State != plan.RunSucceeded || r.Plan.To != "brussels" {
		t.Errorf("the forced run: by %q, %s to %s (%s)", r.By, r.State, r.Plan.To, r.Error)
	}
	t.Logf("forced run %s: RTO %s", r.ID, r.RTO())
	if lost := w.lost(t); len(lost) > 0 {
		t.Errorf("%d acknowledged writes lost", len(lost))
	}

	// Asked again, the force has nothing more to do and changes nothing.
	out, code = siteflipCLI(t, o, "", "failover", "webshop", "--force", "--yes", "--to", "brussels")
	if code != 0 || !strings.Contains(out, "was forced before") || !strings.Contains(out, "nothing to recover") {
		t.Errorf("force repeated: exit %d, output:\n%s", code, out)
	}
	if again := group(waitStatus(t, c, 10*time.Second, "status", func(status.Status) bool { return true })); again.Epoch != g.Epoch {
		t.Errorf("the repeated force moved the epoch %d → %d", g.Epoch, again.Epoch)
	}

	// The way back: antwerp and frankfurt start again with their old etcd
	// data. Each finds that it was removed, sets its data aside and joins
	// as a new member; brussels's forced state ends once another location
	// votes and grants it the lease, and the group is protected again.
	start = time.Now()
	for _, site := range []string{"frankfurt", "antwerp"} {
		if err := Heal(context.Background(), o, site); err != nil {
			t.Fatal(err)
		}
	}
	st = waitStatus(t, c, 60*time.Second, "all locations back, brussels no longer forced, webshop protected", func(st status.Status) bool {
		g := group(st)
		return allReporting(st) && !hasProblem(g, "runs the control plane alone") && protectedAt("brussels")(st) && g.Epoch == group(before).Epoch+1
	})
	t.Logf("antwerp and frankfurt back as new members, webshop protected, %s after heal", time.Since(start).Round(10*time.Millisecond))
	for _, site := range []string{"antwerp", "frankfurt"} {
		aside, _ := filepath.Glob(filepath.Join(o.Dir, site, "etcd.removed-*"))
		if len(aside) != 1 {
			t.Errorf("%s: old etcd data set aside: %v, want one directory", site, aside)
		}
	}
	n = w.count()
	waitFor(t, 10*time.Second, "writes at brussels", func() bool { return w.count() > n+20 })
	if lost := w.lost(t); len(lost) > 0 {
		t.Errorf("%d acknowledged writes lost", len(lost))
	}
}

// TestForceFailoverAfterQuorumLoss: webshop is active at antwerp when
// antwerp and frankfurt lose power together; `failover --force` at
// brussels, the only site left, recovers it there with a failover run
// whose old site was declared lost.
func TestForceFailoverAfterQuorumLoss(t *testing.T) {
	skipUnlessLab(t)
	o, topo, c := labUp(t)
	waitStatus(t, c, 60*time.Second, "protected at brussels", protectedAt("brussels"))
	w := startWriter(t, topo)
	waitFor(t, 10*time.Second, "the writer to start", func() bool { return w.count() > 20 })
	if r := runAndWait(t, c, api.RunRequest{Group: "webshop", Action: plan.Switchover, To: "antwerp"}); r.State != plan.RunSucceeded {
		t.Fatalf("switchover %s: %s", r.State, r.Error)
	}
	before := waitStatus(t, c, 60*time.Second, "protected at antwerp", protectedAt("antwerp"))
	waitStatus(t, c, 30*time.Second, "a fresh lag record for brussels", freshLag("brussels"))

	// The witness first: brussels must never see antwerp lost while it
	// still has a quorum with the witness, or the automatic failover
	// would start (and stay stuck without a quorum) before the force.
	for _, site := range []string{"frankfurt", "antwerp"} {
		if err := Disaster(o, site); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second) // brussels's lease runs out; it holds no primary
	acked := w.count()
	start := time.Now()
	out, code := siteflipCLI(t, o, "", "failover", "webshop", "--force", "--yes")
	t.Logf("siteflip failover webshop --force (%s, exit %d):\n%s", time.Since(start).Round(10*time.Millisecond), code, out)
	if code != 0 {
		t.Fatalf("failover --force failed")
	}
	waitFor(t, 30*time.Second, "writes at brussels", func() bool { return w.count() > acked+20 })
	t.Logf("force command → 20 writes acknowledged at brussels: %s", time.Since(start).Round(time.Millisecond))
	st := waitStatus(t, c, 30*time.Second, "webshop active at brussels in a new epoch", func(st status.Status) bool {
		g := group(st)
		return st.AnsweredBy == "brussels" && g.ActiveSite == "brussels" && g.Epoch == group(before).Epoch+1 && g.Run == ""
	})
	if !hasProblem(group(st), "brussels runs the control plane alone") {
		t.Errorf("status does not say that brussels is forced: %v", group(st).Problems)
	}
	if a, _ := st.Site("antwerp"); !a.Lost {
		t.Errorf("antwerp not shown lost: %+v", a)
	}
	runs, err := c.Runs(t.Context(), "webshop")
	if err != nil || len(runs) == 0 {
		t.Fatalf("runs: %v", err)
	}
	r := runs[len(runs)-1]
	// The force's own run, or the controller's: the marks the force
	// stores let the controller here fail over at the same moment, and
	// the force then reports that run (its output names it).
	byForce, byController := r.By == "lab-admin (--force)", r.By == "controller brussels (automatic)" && strings.Contains(out, r.ID)
	if !(byForce || byController) || r.State != plan.RunSucceeded || r.Plan.From != "antwerp" || r.Plan.To != "brussels" {
		t.Errorf("forced failover run: by %q, %s from %s to %s (%s)", r.By, r.State, r.Plan.From, r.Plan.To, r.Error)
	}
}

func hasProblem(g status.GroupStatus, sub string) bool {
	for _, p := range g.Problems {
		if strings.Contains(p, sub) {
			return true
		}
	}
	return false
}
