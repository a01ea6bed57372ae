package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver/postgres"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// ackWriter writes unique ids through the lab's multi-host connection
// string and remembers every acknowledged one.
type ackWriter struct {
	dsn   string
	mu    sync.Mutex
	acked []int64
	// failed counts failed connections and writes; lastAck and longest
	// measure the longest time between two acknowledged writes.
	failed  int
	lastAck time.Time
	longest time.Duration
	stop    context.CancelFunc
	done    chan struct{}
}

func startWriter(t *testing.T, topo *config.Topology) *ackWriter {
	t.Helper()
	dsn, err := WriterDSN(topo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &ackWriter{dsn: dsn + " connect_timeout=1", stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var conn *pgx.Conn
		for id := int64(1); ctx.Err() == nil; id++ {
			if conn == nil {
				cctx, c := context.WithTimeout(ctx, time.Second)
				conn, err = pgx.Connect(cctx, w.dsn)
				c()
				if err != nil {
					conn = nil
					w.fail()
					time.Sleep(20 * time.Millisecond)
					continue
				}
				_, _ = conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS acked (id bigint PRIMARY KEY)")
			}
			wctx, c := context.WithTimeout(ctx, time.Second)
			_, err := conn.Exec(wctx, "INSERT INTO acked (id) VALUES ($1)", id)
			c()
			if err != nil {
				conn.Close(context.Background())
				conn = nil
				w.fail()
				continue
			}
			w.mu.Lock()
			w.acked = append(w.acked, id)
			if now := time.Now(); !w.lastAck.IsZero() {
				w.longest = max(w.longest, now.Sub(w.lastAck))
				w.lastAck = now
			} else {
				w.lastAck = now
			}
			w.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	t.Cleanup(func() { w.stop(); <-w.done })
	return w
}

func (w *ackWriter) fail() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failed++
}

// since returns the failures and the longest gap between two
// acknowledged writes, and starts counting both again.
func (w *ackWriter) since() (failed int, longest time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	failed, longest = w.failed, w.longest
	w.failed, w.longest = 0, 0
	return failed, longest
}

func (w *ackWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// lost returns the acknowledged ids the current primary does not have.
func (w *ackWriter) lost(t *testing.T) []int64 {
	t.Helper()
	w.mu.Lock()
	ids := append([]int64(nil), w.acked...)
	w.mu.Unlock()
	return missingIDs(t, w.dsn, "acked", ids)
}

// missingIDs returns the ids of ids that table of the database at dsn
// does not hold.
func missingIDs(t *testing.T, dsn, table string, ids []int64) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT id FROM unnest($1::bigint[]) AS id WHERE id NOT IN (SELECT id FROM "+pgx.Identifier{table}.Sanitize()+")", ids)
	if err != nil {
		t.Fatal(err)
	}
	lost, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return lost
}

// runAndWait starts a run and waits for it to end.
func runAndWait(t *testing.T, c *api.Client, req api.RunRequest) plan.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	r, err := c.StartRun(ctx, req)
	cancel()
	if err != nil {
		t.Fatalf("start %s of %s: %v", req.Action, req.Group, err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	got, err := c.WaitRun(ctx, r.ID, 100*time.Millisecond)
	if err != nil {
		b, _ := json.MarshalIndent(got, "", "  ")
		t.Fatalf("%v; as last read:\n%s", err, b)
	}
	return got
}

func group(st status.Status) status.GroupStatus { return st.Groups[0] }

func protectedAt(site string) func(status.Status) bool {
	return func(st status.Status) bool {
		g := group(st)
		return g.State == status.StateProtected && g.ActiveSite == site
	}
}

// TestSwitchoversAndControllerCrash: switchovers with a writer running lose
// no acknowledged write; the controller's agent crashes right after the
// catch-up step of one of them, and the next controller finishes the run.
func TestSwitchoversAndControllerCrash(t *testing.T) {
	skipUnlessLab(t)
	mark := t.TempDir() + "/failpoint-fired"
	o, topo, c := labUpWith(t, []string{failpointEnvForTest + "=exit-after-step=catch-up", failpointEnvForTest + "_ONCE=" + mark})
	waitStatus(t, c, 60*time.Second, "protected at brussels", protectedAt("brussels"))
	w := startWriter(t, topo)
	waitFor(t, 10*time.Second, "the writer to start", func() bool { return w.count() > 20 })

	before := waitStatus(t, c, 10*time.Second, "a controller", func(st status.Status) bool { return st.Controller != "" })
	// Like a service manager, restart the controller's agent once the
	// failpoint has killed it: a step at its site waits for it.
	restarted := make(chan error, 1)
	go func() {
		err := restartWhenDead(o, before.Controller, time.Minute)
		if err != nil {
			t.Logf("restart the agent of %s: %v", before.Controller, err) // seen at once, not after the run
		}
		restarted <- err
	}()
	r := runAndWait(t, c, api.RunRequest{Group: "webshop", Action: plan.Switchover, To: "antwerp"})
	if r.State != plan.RunSucceeded {
		t.Fatalf("switchover %s: %s", r.State, r.Error)
	}
	st := waitStatus(t, c, 60*time.Second, "protected at antwerp", protectedAt("antwerp"))
	if group(st).Epoch != 2 {
		t.Errorf("epoch after one switchover: %d", group(st).Epoch)
	}
	after, _ := c.Status(t.Context())
	if after.Controller == before.Controller {
		t.Errorf("the failpoint did not move the controller (still %s)", after.Controller)
	}
	if lost := w.lost(t); len(lost) > 0 {
		t.Errorf("switchover lost %d acknowledged writes: %v", len(lost), lost[:min(len(lost), 10)])
	}
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	// Fail back home (the failpoint fires only once).
	waitStatus(t, c, 60*time.Second, "protected at antwerp, all up", func(st status.Status) bool {
		return protectedAt("antwerp")(st) && allReporting(st)
	})
	r = runAndWait(t, c, api.RunRequest{Group: "webshop", Action: plan.Failback})
	if r.State != plan.RunSucceeded || r.Plan.To != "brussels" {
		t.Fatalf("failback %s to %s: %s", r.State, r.Plan.To, r.Error)
	}
	waitStatus(t, c, 60*time.Second, "protected at brussels", protectedAt("brussels"))
	if lost := w.lost(t); len(lost) > 0 {
		t.Errorf("failback lost %d acknowledged writes", len(lost))
	}
	runs, err := c.Runs(t.Context(), "webshop")
	if err != nil || len(runs) != 2 || runs[0].By != "lab-admin" {
		t.Errorf("runs: %d, err %v", len(runs), err)
	}

	// A standby that cannot catch up (replay paused at antwerp): the
	// switchover rolls back after its catch-up bound and brussels serves
	// again, epoch unchanged, nothing lost.
	before = waitStatus(t, c, 30*time.Second, "protected at brussels", protectedAt("brussels"))
	pgExec(t, topo, "antwerp", "SELECT pg_wal_replay_pause()")
	r = runAndWait(t, c, api.RunRequest{Group: "webshop", Action: plan.Switchover, To: "antwerp"})
	if r.State != plan.RunRolledBack {
		t.Fatalf("switchover with a stuck standby: %s (%s)", r.State, r.Error)
	}
	t.Logf("rolled back: %s", r.Error)
	n := w.count()
	waitFor(t, 20*time.Second, "writes at brussels again", func() bool { return w.count() > n+20 })
	pgExec(t, topo, "antwerp", "SELECT pg_wal_replay_resume()")
	after = waitStatus(t, c, 60*time.Second, "protected at brussels", protectedAt("brussels"))
	if group(after).Epoch != group(before).Epoch {
		t.Errorf("a rolled-back switchover moved the epoch %d → %d", group(before).Epoch, group(after).Epoch)
	}
	if lost := w.lost(t); len(lost) > 0 {
		t.Errorf("the rolled-back switchover lost %d acknowledged writes", len(lost))
	}
}

// pgExec runs one statement on the lab's database at site.
func pgExec(t *testing.T, topo *config.Topology, site, sql string) {
	t.Helper()
	withPG(t, topo, site, func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, sql)
		return err
	})
}

// withPG calls f with a connection to the lab's database at site, for 5 s
// at most; an error fails the test.
func withPG(t *testing.T, topo *config.Topology, site string, f func(context.Context, *pgx.Conn) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := pgConnect(ctx, topo, site)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := f(ctx, conn); err != nil {
		t.Fatalf("at %s: %v", site, err)
	}
}

func pgConnect(ctx context.Context, topo *config.Topology, site string) (*pgx.Conn, error) {
	return pgConnectTo(ctx, topo, topo.Groups[0].Name, site)
}

// pgConnectTo connects to the database of group (its first resource) at
// site.
func pgConnectTo(ctx context.Context, topo *config.Topology, group, site string) (*pgx.Conn, error) {
	g, ok := topo.Group(group)
	if !ok {
		return nil, fmt.Errorf("no group %s in the lab topology", group)
	}
	s := g.Resources[0].Settings[site].(*postgres.Settings)
	pw, err := s.Password()
	if err != nil {
		return nil, err
	}
	return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s", s.Host, s.Port, s.Database, s.User, pw))
}

// healedReadOnly checks that the database of a healed site that is not
// active came up read-only, and stays so once its agent reports it: the
// agent has then read the group's record and decided.
func healedReadOnly(t *testing.T, c *api.Client, topo *config.Topology, site string) {
	t.Helper()
	if writable(t, topo, site) {
		t.Fatalf("heal started the old primary at %s writable", site)
	}
	st := waitStatus(t, c, 30*time.Second, site+"'s agent reporting its database", func(st status.Status) bool {
		for _, s := range group(st).Resources[0].Sites {
			if s.Site == site {
				return s.Observed && s.Role != status.RoleUnknown
			}
		}
		return false
	})
	for _, s := range group(st).Resources[0].Sites {
		if s.Site == site && s.Role == status.RolePrimary {
			t.Fatalf("%s's agent made its database a primary while %s is active", site, group(st).ActiveSite)
		}
	}
	if writable(t, topo, site) {
		t.Fatalf("the database at %s is writable while %s is active", site, group(st).ActiveSite)
	}
}

// writable says whether the database at site accepts writes: it runs and
// is not in recovery.
func writable(t *testing.T, topo *config.Topology, site string) bool {
	t.Helper()
	return acceptsWrites(t.Context(), topo, site)
}

// TestFailoverAndReprotect: the active site loses power; the group fails
// over to antwerp by itself; heal brussels (its old primary stays
// stopped); reprotect makes it a standby of antwerp; failback brings the
// group home. Then the standby falls too far behind before the next power
// cut: the group waits for a decision, and the command status shows
// recovers it.
func TestFailoverAndReprotect(t *testing.T) {
	skipUnlessLab(t)
	o, topo, c := labUp(t)
	waitStatus(t, c, 60*time.Second, "protected at brussels", protectedAt("brussels"))
	w := startWriter(t, topo)
	waitFor(t, 10*time.Second, "the writer to start", func() bool { return w.count() > 20 })
	checkRefusals(t, c, topo)

	// A failover is judged on the last lag the controller recorded.
	waitStatus(t, c, 30*time.Second, "a fresh lag record for antwerp", freshLag("antwerp"))
	if err := Disaster(o, "brussels"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	r := waitAutomaticFailover(t, c, "brussels", "antwerp")
	t.Logf("automatic failover: power cut → writable at antwerp %s (run start → writable %s)", r.Steps[len(r.Steps)-1].Ended.Sub(cut).Round(time.Millisecond), r.RTO())
	n := w.count()
	waitFor(t, 20*time.Second, "writes at antwerp", func() bool { return w.count() > n+20 })

	if err := Heal(context.Background(), o, "brussels"); err != nil {
		t.Fatal(err)
	}
	// Heal starts the old primary: it comes up read-only behind its boot
	// guard, and its agent leaves it so, since antwerp is active.
	healedReadOnly(t, c, topo, "brussels")
	r = runAndWait(t, c, api.RunRequest{Group: "webshop", Action: plan.Reprotect})
	if r.State != plan.RunSucceeded {
		t.Fatalf("reprotect %s: %s", r.State, r.Error)
	}
	t.Logf("reprotect: %s", r.DataLost)
	waitStatus(t, c, 60*time.Second, "protected at antwerp, brussels streaming with a lag under 1s", func(st status.Status) bool {
		if !protectedAt("antwerp")(st) {
			return false
		}
		for _, s := range group(st).Resources[0].Sites {
			if s.Site == "brussels" {
				return s.Streaming && s.LagSeconds != nil && *s.LagSeconds < 1
			}
		}
		return false
	})
	lostInFailover := len(w.lost(t))
	t.Logf("acknowledged writes lost in the failover (asynchronous replication): %d", lostInFailover)

	r = runAndWait(t, c, api.RunRequest{Group: "webshop", Action: plan.Failback})
	if r.State != plan.RunSucceeded {
		t.Fatalf("failback %s: %s", r.State, r.Error)
	}
	waitStatus(t, c, 60*time.Second, "protected at brussels", protectedAt("brussels"))
	if lost := len(w.lost(t)); lost != lostInFailover {
		t.Errorf("failback lost %d more acknowledged writes", lost-lostInFailover)
	}

	// The standby falls behind (replay paused) past max_data_loss, then
	// brussels loses power: no automatic failover, the group needs a
	// decision, and status names the command.
	pgExec(t, topo, "antwerp", "SELECT pg_wal_replay_pause()")
	waitStatus(t, c, 30*time.Second, "antwerp's lag above 6s recorded", func(st status.Status) bool {
		l := group(st).Resources[0].Sites[1].LastKnownLag
		return l != nil && l.Seconds > 6
	})
	epoch := group(waitStatus(t, c, 10*time.Second, "status", func(status.Status) bool { return true })).Epoch
	if err := Disaster(o, "brussels"); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, c, 30*time.Second, "webshop needs a decision", func(st status.Status) bool {
		return group(st).State == status.StateNeedsDecision
	})
	d := group(st).Decision
	if want := "siteflip failover webshop --to antwerp --accept-data-loss"; d == nil || d.Command != want || !strings.Contains(d.Reason, "max_data_loss") {
		t.Fatalf("decision %+v, want the command %q and the reason naming max_data_loss", d, want)
	}
	if group(st).ActiveSite != "brussels" || group(st).Epoch != epoch {
		t.Errorf("the group moved without a decision: active %s epoch %d", group(st).ActiveSite, group(st).Epoch)
	}
	r = runAndWait(t, c, api.RunRequest{Group: "webshop", Action: plan.Failover, To: "antwerp", AcceptDataLoss: true})
	if r.State != plan.RunSucceeded {
		t.Fatalf("decided failover %s: %s", r.State, r.Error)
	}
	waitStatus(t, c, 30*time.Second, "the decision cleared", func(st status.Status) bool {
		return group(st).Decision == nil && group(st).ActiveSite == "antwerp"
	})
}

// waitAutomaticFailover waits for the automatic failover of webshop from
// one site to another and returns its run.
func waitAutomaticFailover(t *testing.T, c *api.Client, from, to string) plan.Run {
	t.Helper()
	return waitAutomaticFailoverOf(t, c, "webshop", from, to)
}

// waitAutomaticFailoverOf waits for the automatic failover of group g.
func waitAutomaticFailoverOf(t *testing.T, c *api.Client, g, from, to string) plan.Run {
	t.Helper()
	var found plan.Run
	waitFor(t, 30*time.Second, "an automatic failover from "+from+" to "+to, func() bool {
		runs, err := c.Runs(t.Context(), g)
		if err != nil {
			return false
		}
		for _, r := range runs {
			if r.Plan.Action == plan.Failover && r.Plan.From == from && r.Plan.To == to && strings.HasSuffix(r.By, "(automatic)") && r.Done() {
				found = r
				return true
			}
		}
		return false
	})
	if found.State != plan.RunSucceeded {
		t.Fatalf("automatic failover %s: %s", found.State, found.Error)
	}
	return found
}

// restartWhenDead waits until the agent of site is no longer running and
// starts it again.
func restartWhenDead(o Options, site string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		st, err := loadState(o.Dir)
		if err != nil {
			return err
		}
		alive := false
		for _, p := range st.of(site) {
			alive = alive || (p.Name == "agent" && p.alive())
		}
		if !alive {
			// Only the agent: its database is the run's business (the
			// switchover fenced it, and its rejoin starts it again). A
			// heal would refuse to start a stopped primary that has no
			// boot guard, and leave the agent down.
			return StartAgent(o, site)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the agent of %s did not die within %s: the failpoint did not fire", site, within)
}

func allReporting(st status.Status) bool {
	for _, s := range st.Sites {
		if !s.Up || !s.Reporting {
			return false
		}
	}
	return true
}

// freshLag says a failover to the standby at site would go ahead now, with
// a recorded lag under a second.
func freshLag(site string) func(status.Status) bool {
	return func(st status.Status) bool {
		for _, s := range group(st).Resources[0].Sites {
			if s.Site == site {
				l := s.LastKnownLag
				return s.FailoverReady != nil && *s.FailoverReady && l != nil && l.Seconds < 1
			}
		}
		return false
	}
}

// checkRefusals: bad requests get a clear error and change nothing.
func checkRefusals(t *testing.T, c *api.Client, topo *config.Topology) {
	t.Helper()
	before, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	refuse := func(req api.RunRequest, want string) {
		t.Helper()
		_, err := c.StartRun(t.Context(), req)
		var re *api.RequestError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: got %v, want a refusal containing %q", req, err, want)
		}
	}
	refuse(api.RunRequest{Group: "nosuch", Action: plan.Switchover, To: "antwerp"}, `unknown group "nosuch"`)
	refuse(api.RunRequest{Group: "webshop", Action: plan.Switchover, To: "paris"}, `unknown site "paris"`)
	refuse(api.RunRequest{Group: "webshop", Action: plan.Switchover, To: "brussels"}, "already active there at brussels")
	refuse(api.RunRequest{Group: "webshop", Action: plan.Failback}, "already active there at brussels")

	// A standby too far behind: pause replay at antwerp until its lag
	// passes max_data_loss (5s); a failover is then refused.
	pgExec(t, topo, "antwerp", "SELECT pg_wal_replay_pause()")
	waitStatus(t, c, 30*time.Second, "antwerp's lag above 6s", func(st status.Status) bool {
		s := group(st).Resources[0].Sites[1]
		return s.LagSeconds != nil && *s.LagSeconds > 6
	})
	waitStatus(t, c, 30*time.Second, "the lag above 6s recorded", func(st status.Status) bool {
		l := group(st).Resources[0].Sites[1].LastKnownLag
		return l != nil && l.Seconds > 6
	})
	refuse(api.RunRequest{Group: "webshop", Action: plan.Failover}, "more than max_data_loss 5s")

	// A second run while one is in progress.
	pgExec(t, topo, "antwerp", "SELECT pg_wal_replay_resume()")
	waitStatus(t, c, 30*time.Second, "protected again", protectedAt("brussels"))
	first, err := c.StartRun(t.Context(), api.RunRequest{Group: "webshop", Action: plan.Reprotect})
	if err != nil {
		t.Fatal(err)
	}
	refuse(api.RunRequest{Group: "webshop", Action: plan.Switchover, To: "antwerp"}, "a run is already in progress")
	waitFor(t, 60*time.Second, "the reprotect to end", func() bool {
		r, err := c.Run(t.Context(), first.ID)
		return err == nil && r.Done()
	})

	after := waitStatus(t, c, 30*time.Second, "protected", protectedAt("brussels"))
	if group(after).Epoch != group(before).Epoch {
		t.Errorf("refused requests changed the epoch: %d → %d", group(before).Epoch, group(after).Epoch)
	}
}
