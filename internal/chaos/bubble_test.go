//go:build chaos

package chaos

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/plan"
)

// TestBubble: a drill at antwerp runs in antwerp's bubble namespace, at
// production's own service address. Inside the bubble the VIP is the
// drill's copy, a primary named after the drill; outside, the same
// address is production, which the writer goes on writing to without an
// error. The drill's checks, run from inside the bubble, pass; at its end
// nothing runs in the bubble any more.
func TestBubble(t *testing.T) {
	e := start(t, Options{})
	site, ok := e.Topo.Site("antwerp")
	if !ok {
		t.Fatal("antwerp is not in the lab's topology")
	}
	vip, ns := site.Bubble.Address, site.Bubble.Netns
	if ns == "" {
		t.Fatalf("antwerp's bubble %+v has no network namespace", site.Bubble)
	}
	event := time.Now()
	failedBefore := e.Writer.Failed()
	d := startDrill(t, e, 15*time.Second)

	// Inside the bubble, the VIP is the copy.
	inside := pivotQuery(t, e, "antwerp", vip, "SELECT pg_is_in_recovery(), current_setting('cluster_name')")
	recovery, name, _ := strings.Cut(inside, "|")
	if recovery != "f" || !strings.HasPrefix(name, "drill-") || !strings.Contains(d.ID, strings.TrimPrefix(name, "drill-")) {
		t.Errorf("inside %s, %s is %q: want a primary (f) named after drill %s", ns, vip, inside, d.ID)
	}
	// Outside, the same address is production.
	dsn, err := lab.WriterDSN(e.Topo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		cancel()
		t.Fatalf("connect to production through %s: %v", vip, err)
	}
	var prodName string
	err = conn.QueryRow(ctx, "SHOW cluster_name").Scan(&prodName)
	conn.Close(context.Background())
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if prodName == name {
		t.Errorf("from the root namespace %s is the drill's copy %q, want production", vip, prodName)
	}
	t.Logf("at %s: inside the bubble %q, outside %q", vip, inside, prodName)

	got := drillEnded(t, e, d.ID, 2*time.Minute)
	if got.State != plan.RunSucceeded || got.Verification != plan.Verified {
		t.Errorf("drill %s, verification %q: %s", got.State, got.Verification, got.Error)
	}
	for i, s := range got.Plan.Steps {
		if s.Kind == plan.Check {
			t.Logf("check %s@%s: %s", s.Resource, s.Site, got.Steps[i].Output)
		}
	}
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("processes left in %s after the drill: %q (%v)", ns, out, err)
	}
	noDrillLeft(t, e)
	if n := e.Writer.Failed() - failedBefore; n > 0 {
		t.Errorf("the writer failed %d times during the drill", n)
	}
	waitFor(t, 5*time.Second, "a write after the drill", func() bool {
		_, ok := FirstAckAfter(e.Writer.Acks(), got.Ended, "")
		return ok
	})
	check(t, e, event, 0)
}

// pivotQuery runs query with psql inside site's bubble (lab pivot),
// against addr as the lab's user, and returns its one row, unaligned.
func pivotQuery(t *testing.T, e *Env, site, addr, query string) string {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join(e.Lab.Dir, "secrets", "postgres.password"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd, err := lab.PivotCommand(ctx, e.Lab, site, "psql", "-X", "-A", "-t", "-h", addr, "-p", "5432", "-U", "siteflip", "-d", "webshop", "-c", query)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "PGPASSWORD="+strings.TrimSpace(string(pw)), "PGCONNECT_TIMEOUT=5")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql in %s's bubble: %v\n%s", site, err, out)
	}
	return strings.TrimSpace(string(out))
}
