//go:build chaos

package chaos

import (
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/plan"
)

// The scenarios again, on the lab's news group on MariaDB, with the same
// invariants: never two writable servers, no acknowledged write lost in a
// switchover, loss within max_data_loss otherwise, no failover on a lossy
// link or a lost witness or standby site.

func skipUnlessMariaDB(t *testing.T) {
	t.Helper()
	if err := lab.MariaDBAvailable(); err != nil {
		t.Skip(err)
	}
}

var mariadb = Options{MariaDB: true}

func TestMariaDBActiveSiteKilled(t *testing.T) { skipUnlessMariaDB(t); activeSiteKilled(t, mariadb) }

func TestMariaDBActiveSiteIsolated(t *testing.T) { skipUnlessMariaDB(t); isolatedWith(t, mariadb) }

// TestMariaDBActiveSiteIsolatedSynchronous: semi-synchronous replication
// whose fallback to asynchronous is the agent's, recorded with the
// quorum: the cut-off primary acknowledges nothing the standby lacks.
func TestMariaDBActiveSiteIsolatedSynchronous(t *testing.T) {
	skipUnlessMariaDB(t)
	isolatedWith(t, Options{MariaDB: true, Synchronous: true})
}

// TestMariaDBStandbySiteLostSynchronous: commits wait for the lost
// standby until the active site records the degrade; then it serves on.
func TestMariaDBStandbySiteLostSynchronous(t *testing.T) {
	skipUnlessMariaDB(t)
	standbySiteLostWith(t, Options{MariaDB: true, Synchronous: true})
}

func TestMariaDBLossBetweenSites(t *testing.T) { skipUnlessMariaDB(t); lossBetweenSites(t, mariadb) }

func TestMariaDBWitnessLost(t *testing.T) { skipUnlessMariaDB(t); witnessLost(t, mariadb) }

func TestMariaDBStandbySiteLost(t *testing.T) { skipUnlessMariaDB(t); standbySiteLostWith(t, mariadb) }

// TestMariaDBAgentKilled: the agent of the active site dies; its watchdog
// kills the server (it holds the writable mark) before antwerp is
// promoted.
func TestMariaDBAgentKilled(t *testing.T) { skipUnlessMariaDB(t); agentKilled(t, mariadb) }

// TestMariaDBSwitchover: a switchover with the writer running loses no
// acknowledged write, and the writes pause briefly.
func TestMariaDBSwitchover(t *testing.T) {
	skipUnlessMariaDB(t)
	e := start(t, mariadb)
	event := time.Now()
	r, err := harnessRun(t, e, api.RunRequest{Group: e.Group, Action: plan.Switchover, To: "antwerp"})
	if err != nil {
		t.Fatal(err)
	}
	if r.State != plan.RunSucceeded {
		t.Fatalf("switchover %s: %s", r.State, r.Error)
	}
	writeAtAntwerp(t, e, event)
	t.Logf("switchover: run start → writable %s; longest gap between acknowledged writes %s", r.RTO(), LongestGap(e.Writer.Acks(), event).Round(time.Millisecond))
	check(t, e, event, 0)
}

// TestMariaDBPrimaryKilled: only the primary's server dies (kill -9); its
// site and agent stay. The agent starts it again as the primary, and it
// still holds every write it acknowledged (crash recovery once cut the
// last ones from its binlog, behind its replica's back).
func TestMariaDBPrimaryKilled(t *testing.T) {
	skipUnlessMariaDB(t)
	e := start(t, mariadb)
	event := time.Now()
	if err := lab.KillDatabase(e.Lab, "brussels"); err != nil {
		t.Fatal(err)
	}
	var back Ack
	waitFor(t, 30*time.Second, "writes at brussels again", func() bool {
		a, ok := LastAckBy(e.Writer.Acks(), "brussels")
		back = a
		return ok && a.At.After(event.Add(500*time.Millisecond))
	})
	t.Logf("server killed → brussels acknowledges writes again after at most %s", back.At.Sub(event).Round(time.Millisecond))
	noFailover(t, e)
	check(t, e, event, 0)
}
