package mariadb

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/testbed"
)

// pair is a primary at site a and a standby at site b following it.
type pair struct {
	a, b Instance
}

// startPair installs, starts and connects two servers on loopback.
func startPair(t *testing.T) *pair {
	t.Helper()
	// The servers run as the mysql user; sockets want a short path.
	dir := testbed.SharedDir(t, "sf-mdb-")
	ports := testbed.FreePorts(t, 2)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var servers []*Server
	t.Cleanup(func() {
		for _, s := range servers {
			s.Kill()
		}
	})
	p := &pair{}
	for i, in := range []*Instance{&p.a, &p.b} {
		site := string(rune('a' + i))
		*in = Instance{Dir: filepath.Join(dir, site), Settings: Settings{
			Host: "127.0.0.1", Port: ports[i], Socket: filepath.Join(dir, site, "mariadb.sock"),
			DataDir: filepath.Join(dir, site+".data"), ServerID: i + 1,
			Admin: "siteflip", AdminPassword: "admin-pw", Repl: "repl", ReplPassword: "repl-pw", Proof: "siteflip_hb", ProofPassword: "hb-pw",
		}}
		began := time.Now()
		if err := in.Init(ctx); err != nil {
			t.Fatal(err)
		}
		srv, err := in.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, srv)
		t.Logf("site %s: installed and started in %s", site, time.Since(began).Round(time.Millisecond))
	}
	if err := SetupAccounts(ctx, p.a, true); err != nil {
		t.Fatal(err)
	}
	if _, err := p.a.RootSQL(ctx, `CREATE USER app@'%' IDENTIFIED BY 'app-pw';
CREATE DATABASE shop; CREATE TABLE shop.orders (id BIGINT PRIMARY KEY) ENGINE=InnoDB;
GRANT SELECT, INSERT ON shop.* TO app@'%'`); err != nil {
		t.Fatal(err)
	}
	// A new server boots read-only (its boot guard): promote the primary.
	if _, err := Promote(ctx, p.a.Settings); err != nil {
		t.Fatal(err)
	}
	if err := SetupAccounts(ctx, p.b, false); err != nil {
		t.Fatal(err)
	}
	if err := Follow(ctx, p.b.Settings, p.a.Settings); err != nil {
		t.Fatal(err)
	}
	return p
}

// write inserts order id at s as the application.
func write(ctx context.Context, s Settings, id int) error {
	db, conn, err := open(ctx, s, "app", "app-pw")
	if err != nil {
		return err
	}
	defer db.Close()
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "INSERT INTO shop.orders VALUES (?)", id)
	return err
}

// count counts the orders at s, as the application.
func count(ctx context.Context, s Settings) (int, error) {
	db, conn, err := open(ctx, s, "app", "app-pw")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	defer conn.Close()
	n := 0
	err = conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM shop.orders").Scan(&n)
	return n, err
}

func waitRole(t *testing.T, s Settings, role string, streaming bool) Observation {
	t.Helper()
	var last Observation
	var lastErr error
	ok := testbed.Poll(10*time.Second, func() bool {
		last, lastErr = Observe(t.Context(), s)
		return lastErr == nil && last.Role == role && last.Streaming == streaming
	})
	if !ok {
		t.Fatalf("mariadb at %s: %+v (%v), want role %s, streaming %v", s.Addr(), last, lastErr, role, streaming)
	}
	return last
}

// A switchover's primitives on two real servers: the fence is verified
// (a write refused, the end reported), the standby catches up to that end
// or times out without changing anything, and the promotion is proven by
// a write; each may run twice.
func TestFenceCatchUpPromote(t *testing.T) {
	testbed.RequireMariaDB(t)
	p := startPair(t)
	ctx := t.Context()
	waitRole(t, p.a.Settings, RolePrimary, false)
	waitRole(t, p.b.Settings, RoleStandby, true)
	for i := range 50 {
		if err := write(ctx, p.a.Settings, i); err != nil {
			t.Fatal(err)
		}
	}

	began := time.Now()
	res, err := Fence(ctx, p.a.Settings)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fenced in %s, writes end at %s", time.Since(began).Round(time.Millisecond), res.EndGTID)
	if !strings.HasPrefix(res.EndGTID, "0-1-") {
		t.Errorf("end %q, want a GTID of server 1 in domain 0", res.EndGTID)
	}
	if err := write(ctx, p.a.Settings, 1000); !isReadOnly(err) {
		t.Errorf("a write after the fence: %v, want error %d (read-only)", err, errReadOnly)
	}
	again, err := Fence(ctx, p.a.Settings)
	if err != nil || again != res {
		t.Errorf("fence again: %+v, %v; want %+v", again, err, res)
	}
	waitRole(t, p.a.Settings, RoleFenced, false)

	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	err = WaitCatchUp(short, p.b.Settings, "0-1-999999")
	cancel()
	if err == nil || !strings.Contains(err.Error(), "not yet 0-1-999999") {
		t.Errorf("catch up to a position never written: %v, want a timeout that says how far it got", err)
	}
	waitRole(t, p.b.Settings, RoleStandby, true)

	if err := WaitCatchUp(ctx, p.b.Settings, res.EndGTID); err != nil {
		t.Fatal(err)
	}
	if n, err := count(ctx, p.b.Settings); err != nil || n != 50 {
		t.Errorf("the standby holds %d orders (%v), want all 50", n, err)
	}

	began = time.Now()
	pr, err := Promote(ctx, p.b.Settings)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("promoted in %s, switch point %s", time.Since(began).Round(time.Millisecond), pr.SwitchGTID)
	if pr.SwitchGTID != res.EndGTID {
		t.Errorf("switch point %s, want the fenced end %s", pr.SwitchGTID, res.EndGTID)
	}
	waitRole(t, p.b.Settings, RolePrimary, false)
	if err := write(ctx, p.b.Settings, 2000); err != nil {
		t.Errorf("a write at the new primary: %v", err)
	}
	if _, err := Promote(ctx, p.b.Settings); err != nil {
		t.Errorf("promote again: %v", err)
	}
}

// Errors say what and where.
func TestNothingListening(t *testing.T) {
	s := Settings{Host: "127.0.0.1", Port: testbed.FreePort(t), Admin: "siteflip", AdminPassword: "x"}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := Observe(ctx, s)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("connect to mariadb at %s as siteflip", s.Addr())) {
		t.Errorf("observe with nothing listening: %v", err)
	}
}

// A primary killed right after it acknowledged writes still holds every
// one of them when it starts again: crash recovery must not cut
// acknowledged commits from its binlog. (With init-rpl-role=SLAVE in the
// boot guard it did: a commit InnoDB had not flushed yet, which the binlog
// held, was truncated away.)
func TestKilledPrimaryKeepsAcknowledgedWrites(t *testing.T) {
	testbed.RequireMariaDB(t)
	p := startPair(t)
	ctx := t.Context()
	waitRole(t, p.a.Settings, RolePrimary, false)
	const n = 30
	for i := range n {
		if err := write(ctx, p.a.Settings, i); err != nil {
			t.Fatal(err)
		}
	}
	if killed, err := killServer(p.a.Dir); err != nil || !killed {
		t.Fatalf("kill the primary: killed %v, %v", killed, err)
	}
	srv, err := p.a.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	if got, err := count(ctx, p.a.Settings); err != nil || got != n {
		t.Errorf("after a kill and a restart the primary holds %d of the %d acknowledged writes (%v)", got, n, err)
	}
}
