package lab

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

func skipUnlessMariaDBLab(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a whole lab (three agents, two MariaDB servers); skipped with -short")
	}
	if err := MariaDBAvailable(); err != nil {
		t.Skip(err)
	}
}

// mdbWriter writes unique ids to whichever news server accepts them,
// trying the sites in order, and remembers every acknowledged one.
type mdbWriter struct {
	servers []string
	pw      string
	mu      sync.Mutex
	acked   []int64
	stop    context.CancelFunc
	done    chan struct{}
}

func (w *mdbWriter) open(server string) *sql.DB {
	db, _ := sql.Open("mysql", fmt.Sprintf("app:%s@tcp(%s)/%s?timeout=1s&readTimeout=2s&writeTimeout=2s", w.pw, server, newsDatabase))
	db.SetMaxOpenConns(1)
	return db
}

func startMDBWriter(t *testing.T, topo *config.Topology, dir string) *mdbWriter {
	t.Helper()
	pw, err := appPassword(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := &mdbWriter{pw: pw, done: make(chan struct{})}
	for _, site := range topo.SiteNames() {
		if in, ok, err := mariadbInstance(topo, site); err == nil && ok {
			w.servers = append(w.servers, in.Settings.Addr())
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	go func() {
		defer close(w.done)
		var db *sql.DB
		next := 0
		// One write every 5 ms at most: a pace, not a wait.
		pace := time.NewTicker(5 * time.Millisecond)
		defer pace.Stop()
		for id := int64(1); ctx.Err() == nil; id++ {
			select {
			case <-ctx.Done():
				continue
			case <-pace.C:
			}
			if db == nil {
				db = w.open(w.servers[next%len(w.servers)])
				_, _ = db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS acked (id BIGINT PRIMARY KEY) ENGINE=InnoDB")
			}
			wctx, c := context.WithTimeout(ctx, time.Second)
			_, err := db.ExecContext(wctx, "INSERT INTO acked (id) VALUES (?)", id)
			c()
			if err != nil {
				db.Close()
				db = nil
				next++
				continue
			}
			w.mu.Lock()
			w.acked = append(w.acked, id)
			w.mu.Unlock()
		}
		if db != nil {
			db.Close()
		}
	}()
	t.Cleanup(func() { w.stop(); <-w.done })
	return w
}

func (w *mdbWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// lost returns the acknowledged ids the server at addr does not have.
func (w *mdbWriter) lost(t *testing.T, addr string) []int64 {
	t.Helper()
	w.mu.Lock()
	ids := append([]int64(nil), w.acked...)
	w.mu.Unlock()
	db := w.open(addr)
	defer db.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	have := map[int64]bool{}
	rows, err := db.QueryContext(ctx, "SELECT id FROM acked")
	if err != nil {
		t.Fatalf("read the acknowledged ids at %s: %v", addr, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		have[id] = true
	}
	var lost []int64
	for _, id := range ids {
		if !have[id] {
			lost = append(lost, id)
		}
	}
	return lost
}

// mdbAddr is the address of the news server at site.
func mdbAddr(t *testing.T, topo *config.Topology, site string) string {
	t.Helper()
	in, ok, err := mariadbInstance(topo, site)
	if err != nil || !ok {
		t.Fatalf("no news server at %s: %v", site, err)
	}
	return in.Settings.Addr()
}

// mdbWritable says whether the news server at site accepts a write of
// the application.
func mdbWritable(t *testing.T, w *mdbWriter, addr string) bool {
	t.Helper()
	db := w.open(addr)
	defer db.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err := db.ExecContext(ctx, "INSERT INTO acked (id) VALUES (-1) ON DUPLICATE KEY UPDATE id = id")
	var me *mysql.MySQLError
	if err != nil && !(errors.As(err, &me) && me.Number == 1290) && !errors.Is(err, syscall.ECONNREFUSED) {
		t.Logf("write at %s: %v", addr, err)
	}
	return err == nil
}

// TestNewsOnMariaDB is the news group's life on MariaDB: a switchover
// and a failback lose no acknowledged write; a power cut at the active
// site fails the group over by itself; the healed old primary comes up
// read-only, reprotect rejoins it (its transactions the new primary
// lacks reported, not silently dropped), and failback brings it home.
func TestNewsOnMariaDB(t *testing.T) {
	skipUnlessMariaDBLab(t)
	o, topo, c := labUpOptions(t, Options{DB: DBMariaDB})
	bru, ant := mdbAddr(t, topo, "brussels"), mdbAddr(t, topo, "antwerp")
	waitStatus(t, c, 60*time.Second, "news protected at brussels", protectedAt("brussels"))
	w := startMDBWriter(t, topo, o.Dir)
	waitFor(t, 10*time.Second, "the writer to start", func() bool { return w.count() > 20 })

	// Both servers are set up as the driver needs: the agents say so at
	// start, and so does `siteflip check --servers`.
	for _, site := range []string{"brussels", "antwerp"} {
		waitFor(t, 30*time.Second, site+"'s agent to check its server", func() bool {
			b, _ := os.ReadFile(filepath.Join(o.Dir, site, "agent.log"))
			return strings.Contains(string(b), "database setup checked: nothing wrong")
		})
	}
	cmd := exec.Command(o.Exe, "check", "--servers")
	cmd.Env = append(os.Environ(), "SITEFLIP_CONFIG="+filepath.Join(o.Dir, "siteflip.yaml"))
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), "server ok") != 2 {
		t.Errorf("check --servers: %v\n%s", err, out)
	}
	replica, _, err := mariadbInstance(topo, "antwerp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replica.RootSQL(t.Context(), "SET GLOBAL gtid_strict_mode=0"); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(o.Exe, "check", "--servers")
	cmd.Env = append(os.Environ(), "SITEFLIP_CONFIG="+filepath.Join(o.Dir, "siteflip.yaml"))
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "resource db at antwerp: mariadb at "+ant) || !strings.Contains(string(out), "gtid_strict_mode") {
		t.Errorf("check --servers with gtid_strict_mode off at antwerp: %v\n%s", err, out)
	}
	if _, err := replica.RootSQL(t.Context(), "SET GLOBAL gtid_strict_mode=1"); err != nil {
		t.Fatal(err)
	}

	r := runAndWait(t, c, api.RunRequest{Group: newsGroup, Action: plan.Switchover, To: "antwerp"})
	if r.State != plan.RunSucceeded {
		t.Fatalf("switchover %s: %s", r.State, r.Error)
	}
	t.Logf("switchover: run start → writable %s", r.RTO())
	waitStatus(t, c, 60*time.Second, "news protected at antwerp", protectedAt("antwerp"))
	n := w.count()
	waitFor(t, 20*time.Second, "writes at antwerp", func() bool { return w.count() > n+20 })
	if lost := w.lost(t, ant); len(lost) > 0 {
		t.Errorf("the switchover lost %d acknowledged writes: %v", len(lost), lost[:min(len(lost), 10)])
	}
	if mdbWritable(t, w, bru) {
		t.Error("the old primary at brussels accepts writes after the switchover")
	}

	r = runAndWait(t, c, api.RunRequest{Group: newsGroup, Action: plan.Failback})
	if r.State != plan.RunSucceeded || r.Plan.To != "brussels" {
		t.Fatalf("failback %s to %s: %s", r.State, r.Plan.To, r.Error)
	}
	waitStatus(t, c, 60*time.Second, "news protected at brussels", protectedAt("brussels"))
	n = w.count()
	waitFor(t, 20*time.Second, "writes at brussels", func() bool { return w.count() > n+20 })
	if lost := w.lost(t, bru); len(lost) > 0 {
		t.Errorf("the failback lost %d acknowledged writes", len(lost))
	}

	// A power cut at the active site.
	waitStatus(t, c, 30*time.Second, "a fresh lag record for antwerp", freshLag("antwerp"))
	if err := Disaster(o, "brussels"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	r = waitAutomaticFailoverOf(t, c, newsGroup, "brussels", "antwerp")
	t.Logf("automatic failover: power cut → writable at antwerp %s (run start → writable %s)", r.Steps[len(r.Steps)-1].Ended.Sub(cut).Round(time.Millisecond), r.RTO())
	n = w.count()
	waitFor(t, 20*time.Second, "writes at antwerp", func() bool { return w.count() > n+20 })

	if err := Heal(context.Background(), o, "brussels"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, 30*time.Second, "brussels' agent reporting its server", func(st status.Status) bool {
		for _, s := range group(st).Resources[0].Sites {
			if s.Site == "brussels" {
				return s.Observed && s.Role != status.RoleUnknown
			}
		}
		return false
	})
	if mdbWritable(t, w, bru) {
		t.Fatal("the healed old primary at brussels accepts writes while antwerp is active")
	}
	// A transaction only the old primary has: written as root on its
	// socket, past read_only, as a stray job might.
	old, _, err := mariadbInstance(topo, "brussels")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.RootSQL(t.Context(), "INSERT INTO news.articles (title) VALUES ('errant: only at brussels')"); err != nil {
		t.Fatal(err)
	}
	r = runAndWait(t, c, api.RunRequest{Group: newsGroup, Action: plan.Reprotect})
	if r.State != plan.RunSucceeded {
		t.Fatalf("reprotect %s: %s", r.State, r.Error)
	}
	t.Logf("reprotect: data lost: %s", r.DataLost)
	if !strings.Contains(r.DataLost, "transaction") {
		t.Errorf("reprotect of a primary with an errant transaction reports no data lost: %q", r.DataLost)
	}
	// The copy came from antwerp's agent, as it would from another
	// machine, not from its data directory.
	if b, _ := os.ReadFile(filepath.Join(o.Dir, "antwerp", "agent.log")); !strings.Contains(string(b), `msg="copy sent" site=antwerp resource=news/db to=brussels`) {
		t.Errorf("antwerp's agent sent no copy for the reclone")
	}
	saved, _ := filepath.Glob(filepath.Join(old.Dir, "lost-*", "errant.sql"))
	found := false
	for _, f := range saved {
		b, _ := os.ReadFile(f)
		found = found || strings.Contains(string(b), "errant: only at brussels")
	}
	if !found {
		t.Errorf("the errant transaction is not in any saved errant.sql (%v)", saved)
	}
	waitStatus(t, c, 60*time.Second, "news protected at antwerp, brussels streaming", func(st status.Status) bool {
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
	inFailover := map[int64]bool{}
	for _, id := range w.lost(t, ant) {
		inFailover[id] = true
	}
	t.Logf("acknowledged writes lost in the failover (asynchronous replication): %d", len(inFailover))

	r = runAndWait(t, c, api.RunRequest{Group: newsGroup, Action: plan.Failback})
	if r.State != plan.RunSucceeded {
		t.Fatalf("failback %s: %s", r.State, r.Error)
	}
	waitStatus(t, c, 60*time.Second, "news protected at brussels", protectedAt("brussels"))
	n = w.count()
	waitFor(t, 20*time.Second, "writes at brussels", func() bool { return w.count() > n+20 })
	for _, id := range w.lost(t, bru) {
		if !inFailover[id] {
			t.Errorf("the failback lost acknowledged write %d", id)
		}
	}
}
