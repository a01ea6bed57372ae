package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/testbed"
)

func TestRejoinParseGTIDs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[uint32]gtid
		err  string
	}{
		{"", map[uint32]gtid{}, ""},
		{"0-1-12", map[uint32]gtid{0: {0, 1, 12}}, ""},
		{"0-1-12,1-2-5", map[uint32]gtid{0: {0, 1, 12}, 1: {1, 2, 5}}, ""},
		{" 0-1-3 , 0-2-7,", map[uint32]gtid{0: {0, 2, 7}}, ""}, // one domain twice: the higher
		{"0-2-7,0-1-3", map[uint32]gtid{0: {0, 2, 7}}, ""},
		{"0-1", nil, `GTID "0-1": want domain-server-sequence`},
		{"0-1-2-3", nil, `GTID "0-1-2-3": want domain-server-sequence`},
		{"0-x-2", nil, `GTID "0-x-2": strconv.ParseUint: parsing "x": invalid syntax`},
		{"4294967296-1-2", nil, `GTID "4294967296-1-2": strconv.ParseUint: parsing "4294967296": value out of range`},
	} {
		got, err := parseGTIDs(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("parseGTIDs(%q): %v, want error %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseGTIDs(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// The errant transactions are, per domain of the old primary's end,
// those numbered above the switch point, raised by what the old primary
// itself applied from the other site.
func TestRejoinErrantRanges(t *testing.T) {
	type r = errantRange
	for _, tc := range []struct {
		name                   string
		end, switchAt, applied string
		want                   []r
		count                  uint64
	}{
		{"clean switchover", "0-1-50", "0-1-50", "", nil, 0},
		{"nothing written", "", "0-1-50", "", nil, 0},
		{"end before the switch point", "0-1-40", "0-1-50", "", nil, 0},
		{"failover lost ten", "0-1-60", "0-1-50", "", []r{{0, gtid{0, 1, 50}, true, gtid{0, 1, 60}}}, 10},
		{"switch point from another server", "0-1-60", "0-2-55", "", []r{{0, gtid{0, 2, 55}, true, gtid{0, 1, 60}}}, 5},
		{"switch point empty: the whole domain", "0-1-3", "", "", []r{{0, gtid{}, false, gtid{0, 1, 3}}}, 3},
		{"a domain the switch point lacks", "0-1-60,1-1-5", "0-1-60", "", []r{{1, gtid{}, false, gtid{1, 1, 5}}}, 5},
		{"two domains", "1-1-9,0-1-60", "0-1-58,1-1-7", "", []r{{0, gtid{0, 1, 58}, true, gtid{0, 1, 60}}, {1, gtid{1, 1, 7}, true, gtid{1, 1, 9}}}, 4},
		{"a rejoined replica, restarted", "0-2-100", "0-1-50", "0-2-100", nil, 0},
		{"a replica that wrote itself", "0-1-105", "0-1-50", "0-2-100", []r{{0, gtid{0, 2, 100}, true, gtid{0, 1, 105}}}, 5},
		{"applied before the switch point", "0-1-60", "0-1-55", "0-2-30", []r{{0, gtid{0, 1, 55}, true, gtid{0, 1, 60}}}, 5},
		{"applied where the switch point has none", "0-1-60", "", "0-2-30", []r{{0, gtid{0, 2, 30}, true, gtid{0, 1, 60}}}, 30},
	} {
		got, err := errantRanges(tc.end, tc.switchAt, tc.applied)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: errantRanges(%q, %q, %q) = %+v, want %+v", tc.name, tc.end, tc.switchAt, tc.applied, got, tc.want)
		}
		l := lostInfo{Ranges: got}
		if n := l.expected(); n != tc.count {
			t.Errorf("%s: %d errant, want %d", tc.name, n, tc.count)
		}
	}
	for _, bad := range [][3]string{{"x", "", ""}, {"", "0-1", ""}, {"", "", "1-2-3-4"}} {
		if _, err := errantRanges(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("errantRanges(%q): no error", bad)
		}
	}
	start, stop, domains := (&lostInfo{Ranges: []r{{0, gtid{0, 1, 58}, true, gtid{0, 1, 60}}, {1, gtid{}, false, gtid{1, 1, 9}}}}).startStop()
	if start != "0-1-58" || stop != "0-1-60,1-1-9" || domains != "0,1" {
		t.Errorf("mariadb-binlog positions: start %q stop %q domains %q", start, stop, domains)
	}
}

func TestRejoinSummarize(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "",
		"0-1-5":                           "0-1-5",
		"0-1-5,0-1-6,0-1-7":               "0-1-5..0-1-7",
		"0-1-5,1-1-2,0-1-6":               "0-1-5..0-1-6,1-1-2",
		"0-2-51,0-1-52":                   "0-2-51..0-1-52",
		"0-1-5,0-1-6,1-3-9,1-3-10,1-3-11": "0-1-5..0-1-6,1-3-9..1-3-11",
	} {
		var gs []string
		if in != "" {
			gs = strings.Split(in, ",")
		}
		if got := summarize(gs); got != want {
			t.Errorf("summarize(%q) = %q, want %q", in, got, want)
		}
	}
	have := map[uint32]gtid{0: {0, 2, 10}}
	for want, ok := range map[string]bool{"0-2-10": true, "0-2-9": true, "0-1-9": true, "0-1-10": false, "0-2-11": false, "1-2-1": false, "": true} {
		w, _ := parseGTIDs(want)
		if coversExactly(have, w) != ok {
			t.Errorf("0-2-10 covers %q: %v, want %v", want, !ok, ok)
		}
	}
}

// traceRejoin records when each step of a rejoin began.
func traceRejoin(t *testing.T) func() string {
	var steps []string
	last, began := time.Now(), time.Now()
	prev := ""
	rejoinTrace = func(step string) {
		now := time.Now()
		if prev != "" {
			steps = append(steps, fmt.Sprintf("%s %s", prev, now.Sub(last).Round(time.Millisecond)))
		} else {
			steps = append(steps, fmt.Sprintf("read %s", now.Sub(last).Round(time.Millisecond)))
		}
		prev, last = step, now
	}
	t.Cleanup(func() { rejoinTrace = func(string) {} })
	return func() string {
		if prev != "" {
			steps = append(steps, fmt.Sprintf("%s %s", prev, time.Since(last).Round(time.Millisecond)))
		}
		out := fmt.Sprintf("%s in all: %s", time.Since(began).Round(time.Millisecond), strings.Join(steps, ", "))
		steps, prev, last, began = nil, "", time.Now(), time.Now()
		return out
	}
}

// sameRows waits until a holds the rows b holds.
func sameRows(t *testing.T, a, b Settings) int {
	t.Helper()
	var na, nb int
	var errA, errB error
	if !testbed.Poll(10*time.Second, func() bool {
		na, errA = count(t.Context(), a)
		nb, errB = count(t.Context(), b)
		return errA == nil && errB == nil && na == nb
	}) {
		t.Fatalf("mariadb at %s holds %d orders (%v), the primary at %s %d (%v)", a.Addr(), na, errA, b.Addr(), nb, errB)
	}
	return na
}

// A clean switchover, then the old primary rejoins: nothing errant, no
// reclone, it replicates the new primary's writes; run again it only
// verifies; killed and rejoined again (a replica holding the new
// primary's transactions beyond the switch point) it is still not
// errant.
func TestRejoinClean(t *testing.T) {
	testbed.RequireMariaDB(t)
	p := startPair(t)
	t.Cleanup(func() { _, _ = killServer(p.a.Dir) }) // Rejoin may restart it
	ctx := t.Context()
	trace := traceRejoin(t)
	waitRole(t, p.b.Settings, RoleStandby, true)
	for i := range 20 {
		if err := write(ctx, p.a.Settings, i); err != nil {
			t.Fatal(err)
		}
	}
	fr, err := Fence(ctx, p.a.Settings)
	if err != nil {
		t.Fatal(err)
	}
	if err := WaitCatchUp(ctx, p.b.Settings, fr.EndGTID); err != nil {
		t.Fatal(err)
	}
	pr, err := Promote(ctx, p.b.Settings)
	if err != nil {
		t.Fatal(err)
	}
	// The switch point survives RESET SLAVE ALL in @@gtid_slave_pos (it
	// lives in mysql.gtid_slave_pos), and the new primary's own writes
	// leave it alone.
	for i := 100; i < 105; i++ {
		if err := write(ctx, p.b.Settings, i); err != nil {
			t.Fatal(err)
		}
	}
	if o, err := Observe(ctx, p.b.Settings); err != nil || o.SlavePos != pr.SwitchGTID || o.SlavePos != fr.EndGTID {
		t.Fatalf("the new primary's gtid_slave_pos after RESET SLAVE ALL and 5 writes: %q (%v), want the switch point %q = the fenced end %q",
			o.SlavePos, err, pr.SwitchGTID, fr.EndGTID)
	}

	res, err := Rejoin(ctx, p.a, p.b.Settings)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rejoined: %+v; %s", res, trace())
	if res != (RejoinResult{}) {
		t.Errorf("a clean rejoin: %+v, want nothing errant, no reclone", res)
	}
	waitRole(t, p.a.Settings, RoleStandby, true)
	if err := write(ctx, p.b.Settings, 200); err != nil {
		t.Fatal(err)
	}
	if n := sameRows(t, p.a.Settings, p.b.Settings); n != 26 {
		t.Errorf("%d orders, want 26", n)
	}

	again, err := Rejoin(ctx, p.a, p.b.Settings)
	if err != nil || again != (RejoinResult{}) {
		t.Errorf("rejoin again: %+v, %v; want only a verification", again, err)
	}
	t.Logf("again: %s", trace())

	// Killed as a replica, it restarts holding the new primary's writes
	// beyond the switch point: not errant.
	if _, err := killServer(p.a.Dir); err != nil {
		t.Fatal(err)
	}
	if err := write(ctx, p.b.Settings, 300); err != nil {
		t.Fatal(err)
	}
	res, err = Rejoin(ctx, p.a, p.b.Settings)
	if err != nil || res != (RejoinResult{}) {
		t.Fatalf("rejoin of the killed replica: %+v, %v; want nothing errant, no reclone", res, err)
	}
	t.Logf("killed replica rejoined: %s", trace())
	waitRole(t, p.a.Settings, RoleStandby, true)
	if n := sameRows(t, p.a.Settings, p.b.Settings); n != 27 {
		t.Errorf("%d orders, want 27", n)
	}
	if _, err := os.Stat(markerPath(p.a)); err == nil {
		t.Errorf("the rejoin marker is left behind")
	}
}

// A failover that loses the old primary's last K transactions: the old
// primary, killed, rejoins; they are reported with their GTIDs and saved
// decoded, the server is recloned from the new primary and replicates
// it. The saved transactions can be replayed at the new primary as the
// readme says. A reclone found midway is finished.
func TestRejoinErrant(t *testing.T) {
	testbed.RequireMariaDB(t)
	const n, k = 30, 5
	p := startPair(t)
	t.Cleanup(func() { _, _ = killServer(p.a.Dir) })
	ctx := t.Context()
	trace := traceRejoin(t)
	waitRole(t, p.b.Settings, RoleStandby, true)
	for i := range n - k {
		if err := write(ctx, p.a.Settings, i); err != nil {
			t.Fatal(err)
		}
	}
	oa, err := Observe(ctx, p.a.Settings)
	if err != nil {
		t.Fatal(err)
	}
	if err := WaitCatchUp(ctx, p.b.Settings, oa.BinlogPos); err != nil {
		t.Fatal(err)
	}
	if _, err := p.b.RootSQL(ctx, "STOP SLAVE"); err != nil {
		t.Fatal(err)
	}
	for i := n - k; i < n; i++ {
		if err := write(ctx, p.a.Settings, i); err != nil {
			t.Fatal(err)
		}
	}
	if oa, err = Observe(ctx, p.a.Settings); err != nil {
		t.Fatal(err)
	}
	pr, err := Promote(ctx, p.b.Settings)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1000; i < 1003; i++ {
		if err := write(ctx, p.b.Settings, i); err != nil {
			t.Fatal(err)
		}
	}
	// The last commits are on disk before the kill, so that the count of
	// errant transactions is known. (Crash recovery keeps a commit that
	// InnoDB holds only prepared, as the binlog has it, since the boot
	// guard no longer sets init-rpl-role=SLAVE, which cut it away:
	// TestKilledPrimaryKeepsAcknowledgedWrites.)
	redoFlushed(t, p.a)
	if _, err := killServer(p.a.Dir); err != nil {
		t.Fatal(err)
	}
	sw, _ := parseGTIDs(pr.SwitchGTID)
	end, _ := parseGTIDs(oa.BinlogPos)
	var want []string
	for s := sw[0].Seq + 1; s <= end[0].Seq; s++ {
		want = append(want, fmt.Sprintf("0-1-%d", s))
	}
	t.Logf("switch point %s, the old primary's end %s", pr.SwitchGTID, oa.BinlogPos)

	res, err := Rejoin(ctx, p.a, p.b.Settings)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rejoined: %+v; %s", res, trace())
	if res.ErrantCount != k || res.Errant != want[0]+".."+want[k-1] || !res.Recloned || res.SavedTo == "" || res.Divergence != "" {
		t.Errorf("rejoin: %+v, want %d errant, %s..%s, saved, recloned", res, k, want[0], want[k-1])
	}
	sqlText, err := os.ReadFile(filepath.Join(res.SavedTo, "errant.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		has := strings.Contains(string(sqlText), fmt.Sprintf("INSERT INTO shop.orders VALUES (%d)", i))
		if has != (i >= n-k) {
			t.Errorf("errant.sql holds the insert of order %d: %v, want %v", i, has, i >= n-k)
		}
	}
	readme, err := os.ReadFile(filepath.Join(res.SavedTo, lostReadme))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range want {
		if !strings.Contains(string(readme), "\n  "+g+"\n") {
			t.Errorf("%s does not list %s:\n%s", lostReadme, g, readme)
		}
	}
	if !strings.Contains(string(readme), fmt.Sprintf("Lost: %d transactions", k)) {
		t.Errorf("%s:\n%s", lostReadme, readme)
	}
	if old, _ := filepath.Glob(p.a.Settings.DataDir + ".old-*"); len(old) != 1 {
		t.Errorf("old data directories: %v, want one", old)
	}
	if _, err := os.Stat(markerPath(p.a)); err == nil {
		t.Errorf("the rejoin marker is left behind")
	}
	waitRole(t, p.a.Settings, RoleStandby, true)
	if got := sameRows(t, p.a.Settings, p.b.Settings); got != n-k+3 {
		t.Errorf("%d orders, want %d", got, n-k+3)
	}
	if err := write(ctx, p.b.Settings, 2000); err != nil {
		t.Fatal(err)
	}
	sameRows(t, p.a.Settings, p.b.Settings)

	again, err := Rejoin(ctx, p.a, p.b.Settings)
	if err != nil || again != (RejoinResult{}) {
		t.Errorf("rejoin again: %+v, %v; want only a verification", again, err)
	}

	// The readme's replay, at the new primary: the lost orders come back,
	// with new GTIDs, and reach the rejoined server.
	replay := filepath.Join(t.TempDir(), "replay.sql")
	cmd := exec.Command("sh", "-c", strings.ReplaceAll(replaySed, "> replay.sql", "> "+replay))
	cmd.Dir = res.SavedTo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", replaySed, err, out)
	}
	if !strings.Contains(string(readme), replaySed) {
		t.Errorf("the readme does not say how to replay as tested here:\n%s", readme)
	}
	cmd = exec.Command("sh", "-c", "mariadb --no-defaults -S "+p.b.Settings.Socket+" < "+replay)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("replay at the new primary: %v: %s", err, out)
	}
	if got := sameRows(t, p.a.Settings, p.b.Settings); got != n+4 {
		t.Errorf("after the replay: %d orders, want %d", got, n+4)
	}
	waitRole(t, p.a.Settings, RoleStandby, true)
	ob, err := Observe(ctx, p.b.Settings)
	if err != nil || strings.Contains(ob.BinlogPos, "-1-") {
		t.Errorf("the new primary's gtid_binlog_pos after the replay: %q (%v), want its own server_id", ob.BinlogPos, err)
	}

	// A reclone that stopped after moving the data directory aside (the
	// machine crashed while the server started from the copy): run
	// again, it starts over from a new backup.
	if _, err := killServer(p.a.Dir); err != nil {
		t.Fatal(err)
	}
	old := p.a.Settings.DataDir + ".old-crashed"
	if err := os.Mkdir(old, 0o750); err != nil {
		t.Fatal(err)
	}
	m := &rejoinMarker{Began: time.Now().UTC(), Primary: p.b.Settings.Addr(), Old: old,
		Lost: lostInfo{Errant: res.Errant, Count: res.ErrantCount, SavedTo: res.SavedTo}}
	if err := writeRejoinMarker(p.a, m); err != nil {
		t.Fatal(err)
	}
	trace()
	res2, err := Rejoin(ctx, p.a, p.b.Settings)
	if err != nil {
		t.Fatal(err)
	}
	steps := trace()
	t.Logf("a reclone finished: %+v; %s", res2, steps)
	if !strings.Contains(steps, "backup") {
		t.Errorf("finishing a reclone: no new backup (%s)", steps)
	}
	if !res2.Recloned || res2.Errant != res.Errant || res2.SavedTo != res.SavedTo {
		t.Errorf("finishing a reclone: %+v, want recloned, reporting %+v", res2, res)
	}
	if _, err := os.Stat(markerPath(p.a)); err == nil {
		t.Errorf("the rejoin marker is left behind")
	}
	waitRole(t, p.a.Settings, RoleStandby, true)
	sameRows(t, p.a.Settings, p.b.Settings)

	// A reclone that ended but for the marker's removal: only verified.
	if err := writeRejoinMarker(p.a, m); err != nil {
		t.Fatal(err)
	}
	trace()
	res3, err := Rejoin(ctx, p.a, p.b.Settings)
	steps = trace()
	t.Logf("a reclone ended but for its marker: %+v; %s", res3, steps)
	if err != nil || res3 != res2 || strings.Contains(steps, "backup") {
		t.Errorf("a reclone ended but for its marker: %+v, %v (%s), want %+v without a new backup", res3, err, steps, res2)
	}
	if _, err := os.Stat(markerPath(p.a)); err == nil {
		t.Errorf("the rejoin marker is left behind")
	}

	// The backup's position is where its binlog file and offset are in
	// the primary's binlog, whatever the third field says.
	var file, offset string
	if err := admin(ctx, p.b.Settings, func(c *sql.Conn) error {
		rows, err := c.QueryContext(ctx, "SHOW MASTER STATUS")
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(sql.NullString)
		}
		if !rows.Next() {
			return fmt.Errorf("SHOW MASTER STATUS: no row")
		}
		if err := rows.Scan(vals...); err != nil {
			return err
		}
		file, offset = vals[0].(*sql.NullString).String, vals[1].(*sql.NullString).String
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ob, err = Observe(ctx, p.b.Settings)
	if err != nil {
		t.Fatal(err)
	}
	info := t.TempDir()
	if err := os.WriteFile(filepath.Join(info, "xtrabackup_binlog_info"), []byte(file+"\t"+offset+"\t9-9-9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if pos, err := backupGTID(ctx, info, p.b.Settings); err != nil || pos != ob.BinlogPos {
		t.Errorf("the backup's position at %s:%s: %q, %v; want the primary's %q", file, offset, pos, err, ob.BinlogPos)
	}

	// Round two, the other way: b's binlog holds a's transactions, its
	// own and the replayed ones; a is promoted without b's last three.
	t.Cleanup(func() { _, _ = killServer(p.b.Dir) })
	for i := 3000; i < 3010; i++ {
		if err := write(ctx, p.b.Settings, i); err != nil {
			t.Fatal(err)
		}
	}
	sameRows(t, p.a.Settings, p.b.Settings)
	if _, err := p.a.RootSQL(ctx, "STOP SLAVE"); err != nil {
		t.Fatal(err)
	}
	for i := 3010; i < 3013; i++ {
		if err := write(ctx, p.b.Settings, i); err != nil {
			t.Fatal(err)
		}
	}
	if ob, err = Observe(ctx, p.b.Settings); err != nil {
		t.Fatal(err)
	}
	if pr, err = Promote(ctx, p.a.Settings); err != nil {
		t.Fatal(err)
	}
	if err := write(ctx, p.a.Settings, 4000); err != nil {
		t.Fatal(err)
	}
	redoFlushed(t, p.b)
	if _, err := killServer(p.b.Dir); err != nil {
		t.Fatal(err)
	}
	sw, _ = parseGTIDs(pr.SwitchGTID)
	end, _ = parseGTIDs(ob.BinlogPos)
	trace()
	res, err = Rejoin(ctx, p.b, p.a.Settings)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("round two, switch point %s, end %s: %+v; %s", pr.SwitchGTID, ob.BinlogPos, res, trace())
	wantErrant := fmt.Sprintf("0-2-%d..0-2-%d", sw[0].Seq+1, end[0].Seq)
	if res.ErrantCount != 3 || res.Errant != wantErrant || !res.Recloned {
		t.Errorf("round two: %+v, want 3 errant, %s, recloned", res, wantErrant)
	}
	if sqlText, err = os.ReadFile(filepath.Join(res.SavedTo, "errant.sql")); err != nil {
		t.Fatal(err)
	}
	for i := 3008; i < 3013; i++ {
		has := strings.Contains(string(sqlText), fmt.Sprintf("INSERT INTO shop.orders VALUES (%d)", i))
		if has != (i >= 3010) {
			t.Errorf("round two: errant.sql holds the insert of order %d: %v, want %v", i, has, i >= 3010)
		}
	}
	waitRole(t, p.b.Settings, RoleStandby, true)
	sameRows(t, p.b.Settings, p.a.Settings)
}

// A standby away too long: the primary purged the binlogs it needs. The
// GTID comparison finds nothing errant; the primary refuses its position
// (error 1236), nothing is saved as lost, and Rejoin reclones it — from a
// copy streamed as the primary's agent does, the primary's data directory
// being out of reach (on another machine).
func TestRejoinPurged(t *testing.T) {
	testbed.RequireMariaDB(t)
	p := startPair(t)
	t.Cleanup(func() { _, _ = killServer(p.b.Dir) })
	ctx := t.Context()
	trace := traceRejoin(t)
	waitRole(t, p.b.Settings, RoleStandby, true)
	for i := range 10 {
		if err := write(ctx, p.a.Settings, i); err != nil {
			t.Fatal(err)
		}
	}
	sameRows(t, p.b.Settings, p.a.Settings)
	if _, err := killServer(p.b.Dir); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 15; i++ {
		if err := write(ctx, p.a.Settings, i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.a.RootSQL(ctx, "FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	status, err := p.a.RootSQL(ctx, "SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	// A binlog stays until InnoDB has checkpointed its commits.
	current := strings.Fields(status)[0]
	var logs string
	if !testbed.Poll(10*time.Second, func() bool {
		logs, err = p.a.RootSQL(ctx, "PURGE BINARY LOGS TO '"+current+"'; SHOW BINARY LOGS")
		return err == nil && len(strings.Split(logs, "\n")) == 1
	}) {
		t.Fatalf("purge the binlogs before %s: %v; left: %s", current, err, logs)
	}

	elsewhere := p.a.Settings
	elsewhere.DataDir = "/nonexistent/mariadb"
	streamed := 0
	src := func(ctx context.Context) (io.ReadCloser, error) {
		streamed++
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(Copy(ctx, p.a, pw)) }()
		return pr, nil
	}
	res, err := RejoinFrom(ctx, p.b, elsewhere, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rejoined: %+v; %s", res, trace())
	if streamed != 1 {
		t.Errorf("the copy was streamed %d times, want once", streamed)
	}
	if !res.Recloned || res.Errant != "" || res.SavedTo != "" || !strings.Contains(res.Divergence, "error 1236") || !strings.Contains(res.Divergence, "purged") {
		t.Errorf("rejoin of a standby whose binlogs are purged: %+v, want the primary's refusal, nothing lost, a reclone", res)
	}
	if saves, _ := filepath.Glob(filepath.Join(p.b.Dir, "lost-*")); len(saves) != 0 {
		t.Errorf("saves of lost transactions: %v, want none", saves)
	}
	waitRole(t, p.b.Settings, RoleStandby, true)
	if got := sameRows(t, p.b.Settings, p.a.Settings); got != 15 {
		t.Errorf("%d orders, want 15", got)
	}
}

// When the primary refuses a position the comparison found nothing
// errant in, the readme says so and where the binlogs are.
func TestRejoinReadmeDivergence(t *testing.T) {
	l := lostInfo{Server: "10.0.0.1:3306", ServerID: 1, DataDir: "/var/lib/mysql", Primary: "10.0.0.2:3306", PrimaryID: 2,
		SwitchPoint: "0-1-43", End: "0-1-43", Divergence: "10.0.0.2:3306 refuses its position (IO error 1236): … diverged",
		At: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	text := l.readme("")
	for _, want := range []string{
		"LOST TRANSACTIONS of the MariaDB server at 10.0.0.1:3306 (server_id 1, data directory /var/lib/mysql)",
		"Written by siteflip on 2025-01-02T03:04:05Z, when this server rejoined 10.0.0.2:3306 (server_id 2)",
		"the new primary refused its position:\n  10.0.0.2:3306 refuses its position (IO error 1236): … diverged",
		"What this server applied from a primary:     (none)",
		"/var/lib/mysql.old-<UTC time>",
		l.key() + "\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the readme lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Lost: ") || strings.Contains(text, "errant.sql") {
		t.Errorf("the readme of a divergence names saved transactions:\n%s", text)
	}
	if l.what() != "diverged history" {
		t.Errorf("what: %q", l.what())
	}
}

// redoFlushed waits until InnoDB's redo log is flushed as far as it is
// written.
func redoFlushed(t *testing.T, in Instance) {
	t.Helper()
	var last string
	if !testbed.Poll(10*time.Second, func() bool {
		out, err := in.RootSQL(t.Context(), "SHOW ENGINE INNODB STATUS")
		if err != nil {
			last = err.Error()
			return false
		}
		var lsn, flushed string
		for _, line := range strings.Split(strings.ReplaceAll(out, `\n`, "\n"), "\n") {
			if v, ok := strings.CutPrefix(line, "Log sequence number"); ok {
				lsn = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "Log flushed up to"); ok {
				flushed = strings.TrimSpace(v)
			}
		}
		last = fmt.Sprintf("written %q, flushed %q", lsn, flushed)
		return lsn != "" && lsn == flushed
	}) {
		t.Fatalf("InnoDB's redo log at %s is not flushed: %s", in.Settings.Addr(), last)
	}
}

// Settings of a primary elsewhere: the reclone says what to do by hand.
func TestRejoinRecloneElsewhere(t *testing.T) {
	testbed.RequireMariaDB(t)
	p := startPair(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	elsewhere := p.a.Settings
	elsewhere.DataDir = "/nonexistent/mariadb"
	err := recloneHere(ctx, elsewhere, nil)
	if err == nil || !strings.Contains(err.Error(), "its agent streams the copy") || !strings.Contains(err.Error(), "mariadb-backup --prepare") {
		t.Errorf("reclone from a primary elsewhere: %v", err)
	}
	if err := recloneHere(ctx, p.a.Settings, nil); err != nil {
		t.Errorf("reclone from a primary here: %v", err)
	}
}
