package mariadb

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/osuser"
	"github.com/siteflip/siteflip/internal/priority"
)

// Rejoin (docs/design/mariadb.md, "Rejoin"): an old primary becomes a
// replica of the new one, by GTID. What it wrote that the new primary
// never received (its errant transactions) is saved aside, decoded, and
// the server is recloned from the new primary: MariaDB has no rewind.

// RejoinResult says what a rejoin did.
type RejoinResult struct {
	// Errant is the GTIDs the old primary held that the new one lacks, as
	// found in its binlog: per domain the first and last, "0-1-58..0-1-60"
	// ("0-1-58" for one), comma-separated between domains; "" for none.
	// Every one is listed in SavedTo/LOST-TRANSACTIONS.txt.
	Errant string
	// ErrantCount is how many transactions Errant holds (GTID events
	// found in the binlog).
	ErrantCount int64
	// SavedTo is the directory (under the instance's Dir) holding
	// errant.sql (mariadb-binlog -v of exactly those transactions) and
	// LOST-TRANSACTIONS.txt; "" when nothing was lost.
	SavedTo string
	// Recloned says the data directory was replaced by a copy of the
	// primary's; the old one stays at <data_dir>.old-<UTC time>.
	Recloned bool
	// Divergence is the primary's refusal (error 1236) of a position the
	// GTID comparison found nothing errant in: the histories differ where
	// sequence numbers cannot tell (or the primary purged binlogs the
	// server needs). The server was recloned; "" when it did not happen.
	Divergence string
}

// rejoinTrace, when a test sets it, hears each step of a rejoin as it
// begins: for timings.
var rejoinTrace = func(step string) {}

// errDivergence is error 1236 of the IO thread: the primary refuses the
// position the replica asks for (it diverged, or the binlogs it needs
// are purged).
const errDivergence = 1236

// divergedError is the primary refusing the replica's position.
type divergedError struct{ msg string }

func (e *divergedError) Error() string { return e.msg }

// Rejoin makes the local server in (on this machine: its server may run,
// read-only behind its boot guard, or be stopped after a kill) replicate
// from primary by GTID:
//
//  1. A server that is not running is started (read-only, not
//     replicating); a writable one is fenced first. A reclone found under
//     way (the marker <data_dir>.siteflip-rejoin, its old data directory
//     moved aside) is finished before anything else.
//  2. Already a healthy replica of primary: it is only verified.
//  3. Its end F (@@gtid_binlog_pos) is compared with the switch point P,
//     the primary's @@gtid_slave_pos (Promote's RESET SLAVE ALL keeps it,
//     verified in TestRejoinClean). What it applied itself from a primary
//     (its own @@gtid_slave_pos) raises P: such transactions came from the
//     other site, as after a restart of a replica that already rejoined
//     (see errantRanges).
//  4. Nothing errant: CHANGE MASTER … MASTER_USE_GTID=slave_pos,
//     MASTER_DEMOTE_TO_SLAVE=1, START SLAVE, verified. If the primary
//     still refuses the position (IO error 1236), it is recloned.
//  5. Errant transactions: saved with mariadb-binlog under
//     in.Dir/lost-<UTC time>/ (errant.sql, LOST-TRANSACTIONS.txt), then
//     the server is recloned from the primary with mariadb-backup (the
//     primary's data directory must be on this machine), and follows it
//     from the backup's GTID position, verified.
//
// Verified means: one replica connection, to primary, with
// Using_Gtid=Slave_Pos, both threads running, and MASTER_GTID_WAIT of
// the primary's @@gtid_binlog_pos returned 0, within ctx. Each step may
// run again; a crash midway leaves the marker, and Rejoin run again
// finishes the work.
//
// Transactions in MyISAM or Aria tables that crash recovery could not
// cut are not detected by the GTID comparison. The replication
// connection does not use TLS yet (MASTER_SSL).
func Rejoin(ctx context.Context, in Instance, primary Settings) (RejoinResult, error) {
	return RejoinFrom(ctx, in, primary, nil)
}

// RejoinFrom is Rejoin, with a reclone made from the copy src gives (the
// primary's agent streams it): the primary may be on another machine.
// With src nil the copy is made here, from the primary's data directory.
func RejoinFrom(ctx context.Context, in Instance, primary Settings, src Source) (RejoinResult, error) {
	var res RejoinResult
	if in.Settings.Addr() == primary.Addr() {
		return res, fmt.Errorf("rejoin mariadb at %s: it is the primary given", in.Settings.Addr())
	}
	m, err := readRejoinMarker(in)
	if err != nil {
		return res, err
	}
	if m != nil && m.moved() {
		// The old data directory was moved aside: the one in place is a
		// copy of the primary's, partial unless the server already runs
		// from it as a healthy replica (the reclone ended but for the
		// marker's removal).
		if done, err := recloneDone(ctx, in, primary); err != nil || !done {
			return finishReclone(ctx, in, primary, m, src)
		}
		return RejoinResult{Errant: m.Lost.Errant, ErrantCount: m.Lost.Count, SavedTo: m.Lost.SavedTo, Divergence: m.Divergence, Recloned: true},
			removeStaleMarker(in, m)
	}
	if _, running := in.Running(); !running {
		if _, err := in.Start(ctx); err != nil {
			return res, fmt.Errorf("rejoin mariadb at %s: start it (read-only): %w", in.Settings.Addr(), err)
		}
	}

	pst, err := primaryState(ctx, primary)
	if err != nil {
		return res, fmt.Errorf("rejoin mariadb at %s: %w", in.Settings.Addr(), err)
	}

	var end, applied string
	var serverID int
	healthy, writable := false, false
	err = admin(ctx, in.Settings, func(c *sql.Conn) error {
		rows, err := slaves(ctx, c)
		if err != nil {
			return err
		}
		if len(rows) == 1 && followsHealthy(rows[0], primary) {
			healthy = true
			return verifyFollowing(ctx, c, in.Settings, primary)
		}
		var readOnly bool
		if err := c.QueryRowContext(ctx, "SELECT @@read_only").Scan(&readOnly); err != nil {
			return err
		}
		writable = !readOnly
		return nil
	})
	if err == nil && writable {
		// It must stop writing before its end is read. Fence ends every
		// other client session: it runs on a connection of its own.
		_, err = Fence(ctx, in.Settings)
	}
	if err == nil && !healthy {
		err = admin(ctx, in.Settings, func(c *sql.Conn) error {
			rows, err := slaves(ctx, c)
			if err != nil {
				return err
			}
			if len(rows) > 0 {
				if _, err := c.ExecContext(ctx, "STOP ALL SLAVES"); err != nil {
					return fmt.Errorf("stop its replication: %w", err)
				}
			}
			return c.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos, @@gtid_slave_pos, @@server_id").Scan(&end, &applied, &serverID)
		})
	}
	if err != nil {
		return res, fmt.Errorf("rejoin mariadb at %s to %s: %w", in.Settings.Addr(), primary.Addr(), err)
	}
	if healthy {
		return res, removeStaleMarker(in, m)
	}

	rejoinTrace("compare")
	ranges, err := errantRanges(end, pst.slavePos, applied)
	if err != nil {
		return res, fmt.Errorf("rejoin mariadb at %s: compare its end %q with the switch point %q of %s: %w",
			in.Settings.Addr(), end, pst.slavePos, primary.Addr(), err)
	}
	lost := lostInfo{
		Server: in.Settings.Addr(), ServerID: serverID, DataDir: in.Settings.DataDir,
		Primary: primary.Addr(), PrimaryID: pst.serverID, SwitchPoint: pst.slavePos, Applied: applied, End: end,
	}
	if len(ranges) == 0 {
		rejoinTrace("follow")
		err := followPrimary(ctx, in.Settings, primary, true, "")
		var div *divergedError
		if !errors.As(err, &div) {
			if err != nil {
				return res, fmt.Errorf("rejoin mariadb at %s: %w", in.Settings.Addr(), err)
			}
			return res, removeStaleMarker(in, m)
		}
		res.Divergence = div.msg
		if !strings.Contains(div.msg, "purged") { // purged binlogs: nothing lost, only too far behind
			lost.Divergence = div.msg
		}
	} else {
		lost.Ranges = ranges
	}
	if lost.Ranges != nil || lost.Divergence != "" {
		rejoinTrace("save")
		if err := saveLost(ctx, in, in.Settings.DataDir, &lost); err != nil {
			return res, fmt.Errorf("rejoin mariadb at %s: save its %s aside: %w", in.Settings.Addr(), lost.what(), err)
		}
		res.Errant, res.ErrantCount, res.SavedTo = lost.Errant, lost.Count, lost.SavedTo
	}
	rejoinTrace("reclone")
	if err := recloneHere(ctx, primary, src); err != nil {
		return res, fmt.Errorf("rejoin mariadb at %s: it must be recloned from %s (%s): %w", in.Settings.Addr(), primary.Addr(), lost.why(), err)
	}
	m = &rejoinMarker{Began: time.Now().UTC(), Primary: primary.Addr(), Lost: lost, Divergence: res.Divergence}
	return finishReclone(ctx, in, primary, m, src)
}

// primaryStatus is what Rejoin reads from the primary.
type primaryStatus struct {
	slavePos string
	serverID int
}

// primaryState reads the switch point of the primary, which must be one:
// writable and not replicating.
func primaryState(ctx context.Context, primary Settings) (primaryStatus, error) {
	var st primaryStatus
	err := admin(ctx, primary, func(c *sql.Conn) error {
		o, err := observeOn(ctx, c, primary)
		if err != nil {
			return err
		}
		if o.Role != RolePrimary {
			return fmt.Errorf("mariadb at %s is %s, not a primary: promote it first", primary.Addr(), o.Role)
		}
		st.slavePos = o.SlavePos
		return c.QueryRowContext(ctx, "SELECT @@server_id").Scan(&st.serverID)
	})
	return st, err
}

// followsHealthy says a replica row follows primary by GTID, both
// threads running.
func followsHealthy(r map[string]string, primary Settings) bool {
	return sameUpstream(r, primary) && r["Using_Gtid"] == "Slave_Pos" &&
		r["Slave_IO_Running"] == "Yes" && r["Slave_SQL_Running"] == "Yes"
}

func sameUpstream(r map[string]string, primary Settings) bool {
	return r["Master_Host"] == primary.Host && r["Master_Port"] == strconv.Itoa(primary.Port)
}

// followPrimary points the server s at primary and starts replicating,
// verified. demote folds what s wrote itself into its gtid_slave_pos (an
// old primary); slavePos, when not empty, is set as gtid_slave_pos first
// (a reclone: the backup's position).
func followPrimary(ctx context.Context, s, primary Settings, demote bool, slavePos string) error {
	return admin(ctx, s, func(c *sql.Conn) error {
		rows, err := slaves(ctx, c)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r["Connection_name"] != "" {
				return fmt.Errorf("it has the replication connection %q besides the default one: drop it (STOP SLAVE %q; RESET SLAVE %q ALL)",
					r["Connection_name"], r["Connection_name"], r["Connection_name"])
			}
		}
		if len(rows) > 0 {
			if _, err := c.ExecContext(ctx, "STOP SLAVE"); err != nil {
				return fmt.Errorf("stop its replication: %w", err)
			}
		}
		if slavePos != "" {
			if _, err := c.ExecContext(ctx, "SET GLOBAL gtid_slave_pos = ?", slavePos); err != nil {
				return fmt.Errorf("SET GLOBAL gtid_slave_pos = '%s' (the backup's position): %w", slavePos, err)
			}
		}
		q := "CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos"
		if demote {
			q += ", MASTER_DEMOTE_TO_SLAVE=1"
		}
		if _, err := c.ExecContext(ctx, q, primary.Host, primary.Port, primary.Repl, primary.ReplPassword); err != nil {
			return fmt.Errorf("follow %s (CHANGE MASTER): %w", primary.Addr(), err)
		}
		// A new epoch starts asynchronous; this server is no primary.
		if _, err := c.ExecContext(ctx, "SET GLOBAL rpl_semi_sync_master_enabled=OFF"); err != nil {
			return fmt.Errorf("turn its semi-synchronous primary side off: %w", err)
		}
		if _, err := c.ExecContext(ctx, "START SLAVE"); err != nil {
			return fmt.Errorf("start replication from %s: %w", primary.Addr(), err)
		}
		return verifyFollowing(ctx, c, s, primary)
	})
}

// verifyFollowing waits until the server on c replicates from primary:
// one replica connection, by GTID, both threads running, and everything
// the primary had logged when asked applied, with the same GTID or a
// later one in each domain (MASTER_GTID_WAIT compares sequence numbers
// only). The primary's refusal of the position (error 1236) is a
// *divergedError.
func verifyFollowing(ctx context.Context, c *sql.Conn, s, primary Settings) error {
	var target string
	if err := admin(ctx, primary, func(pc *sql.Conn) error {
		return pc.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&target)
	}); err != nil {
		return fmt.Errorf("read the primary's position: %w", err)
	}
	want, err := parseGTIDs(target)
	if err != nil {
		return fmt.Errorf("the primary's @@gtid_binlog_pos %q: %w", target, err)
	}
	last := ""
	for {
		ok, state, err := replicaHealth(ctx, c, primary)
		if err != nil {
			return err
		}
		last = state
		if ok {
			var r sql.NullInt64
			if target == "" {
				r = sql.NullInt64{Valid: true}
			} else if err := c.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 0.2)", target).Scan(&r); err != nil {
				return fmt.Errorf("MASTER_GTID_WAIT('%s'): %w", target, err)
			}
			if r.Valid && r.Int64 == 0 {
				var applied string
				if err := c.QueryRowContext(ctx, "SELECT @@gtid_slave_pos").Scan(&applied); err != nil {
					return err
				}
				have, err := parseGTIDs(applied)
				if err != nil {
					return fmt.Errorf("its @@gtid_slave_pos %q: %w", applied, err)
				}
				if coversExactly(have, want) {
					// The IO thread may have been refused since.
					if ok, state, err := replicaHealth(ctx, c, primary); err != nil || !ok {
						if err == nil {
							err = fmt.Errorf("replication from %s stopped: %s", primary.Addr(), state)
						}
						return err
					}
					return nil
				}
				last = fmt.Sprintf("applied %s, the primary's %s (the same sequence numbers from different servers)", applied, target)
			} else if !r.Valid {
				return fmt.Errorf("MASTER_GTID_WAIT('%s') returned NULL", target)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replication from %s not verified in time (%s): %w; see SHOW SLAVE STATUS at %s", primary.Addr(), last, ctx.Err(), s.Addr())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// replicaHealth reads the one replica connection: ok when it follows
// primary by GTID with both threads running; an error when it stopped
// with one, or is not what it should be; else state says where it is.
func replicaHealth(ctx context.Context, c *sql.Conn, primary Settings) (ok bool, state string, err error) {
	rows, err := slaves(ctx, c)
	if err != nil {
		return false, "", err
	}
	if len(rows) != 1 {
		return false, "", fmt.Errorf("%d replication connections, want the one to %s", len(rows), primary.Addr())
	}
	r := rows[0]
	if !sameUpstream(r, primary) {
		return false, "", fmt.Errorf("it replicates from %s:%s, not %s", r["Master_Host"], r["Master_Port"], primary.Addr())
	}
	if r["Using_Gtid"] != "Slave_Pos" {
		return false, "", fmt.Errorf("Using_Gtid=%s, want Slave_Pos", r["Using_Gtid"])
	}
	if r["Last_IO_Errno"] == strconv.Itoa(errDivergence) {
		return false, "", &divergedError{msg: fmt.Sprintf("%s refuses its position (IO error %d): %s", primary.Addr(), errDivergence, r["Last_IO_Error"])}
	}
	if r["Slave_SQL_Running"] == "No" && r["Last_SQL_Errno"] != "0" {
		return false, "", fmt.Errorf("the SQL thread stopped: error %s: %s", r["Last_SQL_Errno"], r["Last_SQL_Error"])
	}
	if r["Slave_IO_Running"] == "No" && r["Last_IO_Errno"] != "0" {
		return false, "", fmt.Errorf("the IO thread stopped: error %s: %s", r["Last_IO_Errno"], r["Last_IO_Error"])
	}
	state = fmt.Sprintf("IO thread %s, SQL thread %s", r["Slave_IO_Running"], r["Slave_SQL_Running"])
	if r["Last_IO_Error"] != "" {
		state += ": " + r["Last_IO_Error"]
	}
	return r["Slave_IO_Running"] == "Yes" && r["Slave_SQL_Running"] == "Yes", state, nil
}

// coversExactly says have holds, in each domain of want, the same GTID or
// a higher sequence number: a higher one was received from the primary
// (the replica had at most the same before), an equal one must be the
// same transaction.
func coversExactly(have, want map[uint32]gtid) bool {
	for d, w := range want {
		h, ok := have[d]
		if !ok || h.Seq < w.Seq || (h.Seq == w.Seq && h != w) {
			return false
		}
	}
	return true
}

// errantRange is the errant transactions of one domain: after After
// (exclusive; none when the primary has nothing of the domain) up to
// Last (inclusive).
type errantRange struct {
	Domain   uint32
	After    gtid
	HasAfter bool
	Last     gtid
}

// Count is the number of transactions in the range, as strict mode
// numbers them (one by one, unless gtid_seq_no was set by hand).
func (r errantRange) Count() uint64 { return r.Last.Seq - r.After.Seq }

// errantRanges compares the old primary's end (@@gtid_binlog_pos) with
// the switch point (the new primary's @@gtid_slave_pos: what it had
// applied from the old one when promoted) and applied (the old primary's
// own @@gtid_slave_pos). Per domain of end, the transactions numbered
// above the switch point are errant, all of a domain the switch point
// lacks: gtid_strict_mode numbers the shared history in order, and the
// promotion applied all the new primary had received.
//
// applied raises the switch point of a domain where it is further on:
// those transactions came by replication from the other site, the new
// primary (a replica that rejoined already and restarted holds
// transactions of the new primary beyond the switch point, none errant).
// A switch point that is wrong (a server promoted without having been a
// replica) is caught by the primary itself, which refuses a diverged
// position (error 1236), and Rejoin reclones.
func errantRanges(end, switchPoint, applied string) ([]errantRange, error) {
	f, err := parseGTIDs(end)
	if err != nil {
		return nil, fmt.Errorf("end: %w", err)
	}
	p, err := parseGTIDs(switchPoint)
	if err != nil {
		return nil, fmt.Errorf("switch point: %w", err)
	}
	a, err := parseGTIDs(applied)
	if err != nil {
		return nil, fmt.Errorf("applied: %w", err)
	}
	var out []errantRange
	for d, last := range f {
		base, has := p[d]
		if ad, ok := a[d]; ok && (!has || ad.Seq > base.Seq) {
			base, has = ad, true
		}
		if has && last.Seq <= base.Seq {
			continue
		}
		r := errantRange{Domain: d, Last: last}
		if has {
			r.After, r.HasAfter = base, true
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(x, y errantRange) int { return int(x.Domain) - int(y.Domain) })
	return out, nil
}

// lostInfo is what a rejoin lost and where it is kept.
type lostInfo struct {
	Server      string
	ServerID    int
	DataDir     string
	Primary     string
	PrimaryID   int
	SwitchPoint string
	Applied     string
	End         string
	Ranges      []errantRange // the comparison's
	Divergence  string        // the primary's refusal, when the comparison found nothing
	// Found in the binlog.
	GTIDs   []string
	Errant  string
	Count   int64
	SavedTo string
	At      time.Time
}

func (l *lostInfo) what() string {
	if l.Divergence != "" && l.Ranges == nil {
		return "diverged history"
	}
	return "errant transactions"
}

func (l *lostInfo) why() string {
	switch {
	case l.Errant != "":
		return fmt.Sprintf("it holds %d errant transactions, %s, saved in %s", l.Count, l.Errant, l.SavedTo)
	case len(l.Ranges) > 0:
		return fmt.Sprintf("it holds errant transactions after %s up to %s", l.SwitchPoint, l.End)
	case l.Divergence != "":
		return l.Divergence
	}
	return "nothing lost"
}

// startStop are mariadb-binlog's GTID positions and domains for the
// ranges: start exclusive, stop inclusive.
func (l *lostInfo) startStop() (start, stop, domains string) {
	var a, b, d []string
	for _, r := range l.Ranges {
		if r.HasAfter {
			a = append(a, r.After.String())
		}
		b = append(b, r.Last.String())
		d = append(d, strconv.FormatUint(uint64(r.Domain), 10))
	}
	return strings.Join(a, ","), strings.Join(b, ","), strings.Join(d, ",")
}

// key identifies a save, so that a rejoin run again finds it.
func (l *lostInfo) key() string {
	start, stop, _ := l.startStop()
	return fmt.Sprintf("siteflip-lost: server=%s end=%s start=%s stop=%s diverged=%v", l.Server, l.End, start, stop, l.Divergence != "")
}

const lostReadme = "LOST-TRANSACTIONS.txt"

// replaySed readies errant.sql for a replay at the new primary, as the
// readme says (tested in TestRejoinErrant).
const replaySed = `sed -e '/SET @@session.gtid_seq_no=/d' -e '/SET @@session.server_id=/d' errant.sql > replay.sql`

// gtidEventRE finds the GTID events in mariadb-binlog's output: a comment
// line "#… server id 1  end_log_pos 123 CRC32 0x…  GTID 0-1-58 trans".
var gtidEventRE = regexp.MustCompile(`(?m)^#.*\bGTID (\d+-\d+-\d+)\b`)

// saveLost writes the errant transactions, read from the binlogs in
// binlogDir (the data directory, or where it was moved), with
// mariadb-binlog into a new directory under in.Dir, and the readme. A
// save done before for the same positions is found and reused.
func saveLost(ctx context.Context, in Instance, binlogDir string, l *lostInfo) error {
	if dir, ok := findSave(in.Dir, l.key()); ok {
		return readSave(dir, l)
	}
	l.At = time.Now().UTC()
	dir := filepath.Join(in.Dir, "lost-"+l.At.Format("20060102T150405.000Z"))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	l.SavedTo = dir
	var cmdline string
	if len(l.Ranges) > 0 {
		files, err := binlogFiles(binlogDir)
		if err != nil {
			return err
		}
		start, stop, domains := l.startStop()
		args := []string{"--no-defaults", "-v", "--do-domain-ids=" + domains, "--stop-position=" + stop}
		if start != "" {
			args = append(args, "--start-position="+start)
		}
		part := filepath.Join(dir, "errant.sql.part")
		args = append(args, "--result-file="+part)
		cmdline = "mariadb-binlog " + strings.Join(args[:len(args)-1], " ") + " --result-file=errant.sql " + strings.Join(files, " ")
		cmd := exec.CommandContext(ctx, "mariadb-binlog", append(args, files...)...)
		if out, err := priority.CombinedOutput(cmd); err != nil {
			return fmt.Errorf("mariadb-binlog over %s: %w: %s", binlogDir, err, tail(out))
		}
		b, err := os.ReadFile(part)
		if err != nil {
			return err
		}
		for _, m := range gtidEventRE.FindAllSubmatch(b, -1) {
			l.GTIDs = append(l.GTIDs, string(m[1]))
		}
		if err := os.Rename(part, filepath.Join(dir, "errant.sql")); err != nil {
			return err
		}
		l.Count = int64(len(l.GTIDs))
		l.Errant = summarize(l.GTIDs)
	}
	text := l.readme(cmdline)
	if err := os.WriteFile(filepath.Join(dir, lostReadme+".part"), []byte(text), 0o640); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, lostReadme+".part"), filepath.Join(dir, lostReadme)); err != nil {
		return err
	}
	return syncDir(dir)
}

// findSave finds the save with key among in.Dir/lost-*.
func findSave(dir, key string) (string, bool) {
	saves, _ := filepath.Glob(filepath.Join(dir, "lost-*", lostReadme))
	for _, f := range saves {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte(key+"\n")) {
			return filepath.Dir(f), true
		}
	}
	return "", false
}

// readSave reads back the GTIDs of a save made before.
func readSave(dir string, l *lostInfo) error {
	l.SavedTo, l.GTIDs = dir, nil
	b, err := os.ReadFile(filepath.Join(dir, "errant.sql"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, m := range gtidEventRE.FindAllSubmatch(b, -1) {
		l.GTIDs = append(l.GTIDs, string(m[1]))
	}
	l.Count = int64(len(l.GTIDs))
	l.Errant = summarize(l.GTIDs)
	return nil
}

// summarize writes GTIDs as per-domain ranges, first..last.
func summarize(gtids []string) string {
	type span struct{ first, last string }
	var order []uint32
	spans := map[uint32]*span{}
	for _, s := range gtids {
		g, err := parseGTID(s)
		if err != nil {
			continue
		}
		sp, ok := spans[g.Domain]
		if !ok {
			sp = &span{first: s}
			spans[g.Domain] = sp
			order = append(order, g.Domain)
		}
		sp.last = s
	}
	var out []string
	for _, d := range order {
		sp := spans[d]
		if sp.first == sp.last {
			out = append(out, sp.first)
		} else {
			out = append(out, sp.first+".."+sp.last)
		}
	}
	return strings.Join(out, ",")
}

// binlogFiles lists the binlogs of binlogDir's index in order. The option
// file puts them in the data directory (log_bin=<data_dir>/binlog); the
// index may name them by a path from before the directory was moved, so
// they are looked for by name in binlogDir.
func binlogFiles(binlogDir string) ([]string, error) {
	index := filepath.Join(binlogDir, "binlog.index")
	f, err := os.Open(index)
	if err != nil {
		return nil, fmt.Errorf("the binlog index: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" {
			continue
		}
		p := filepath.Join(binlogDir, filepath.Base(name))
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s names %s: %w", index, name, err)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no binlog", index)
	}
	return out, nil
}

// readme is LOST-TRANSACTIONS.txt.
func (l *lostInfo) readme(cmdline string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("LOST TRANSACTIONS of the MariaDB server at %s (server_id %d, data directory %s)", l.Server, l.ServerID, l.DataDir)
	w("")
	w("Written by siteflip on %s, when this server rejoined %s (server_id %d)", l.At.Format(time.RFC3339), l.Primary, l.PrimaryID)
	w("as its replica.")
	w("")
	w("This server's end (@@gtid_binlog_pos):       %s", l.End)
	w("The new primary's switch point (what it had")
	w("applied of this server's, @@gtid_slave_pos): %s", l.SwitchPoint)
	w("What this server applied from a primary:     %s", orNone(l.Applied))
	w("")
	if l.Divergence != "" && len(l.Ranges) == 0 {
		w("The GTID comparison found no transaction of this server beyond the switch point, but")
		w("the new primary refused its position:")
		w("  %s", l.Divergence)
		w("The two histories differ at sequence numbers both have: what this server holds there")
		w("may be lost. Its binlogs stay in its old data directory (see below); list what it")
		w("wrote with")
		w("  mariadb-binlog --no-defaults -v <old data dir>/binlog.0* | less")
		w("and compare with the new primary's.")
	} else {
		w("Lost: %d transactions, %s.", l.Count, l.Errant)
		w("They were committed here after the switch point: the new primary never received them,")
		w("and this server, recloned from it, no longer has them.")
		if exp := l.expected(); exp != uint64(l.Count) {
			w("")
			w("WARNING: the positions say %d transactions, the binlogs held %d: some binlogs may have", exp, l.Count)
			w("been purged, or gtid_seq_no was set by hand. The old data directory keeps what is left.")
		}
		w("")
		w("GTIDs:")
		for i, g := range l.GTIDs {
			if i == 1000 {
				w("  … and %d more (see errant.sql)", len(l.GTIDs)-i)
				break
			}
			w("  %s", g)
		}
		w("")
		w("errant.sql holds exactly these transactions, decoded from the binlog (its files are now")
		w("in the old data directory, see below) by")
		w("  %s", cmdline)
		w("(start exclusive, stop inclusive). Read it: each transaction begins at a \"GTID D-S-N\"")
		w("comment; \"# Annotate_rows:\" / \"#Q>\" lines show the statement the client sent, the")
		w("\"###\" lines the rows it changed (decoded from the BINLOG '…' block that follows, which")
		w("is what a replay executes).")
		w("")
		w("To replay them, only after review (the rows may have changed on the new primary since;")
		w("a replay runs them as they were, not as the application would today): the file sets")
		w("each transaction's original GTID (SET @@session.server_id=…, gtid_seq_no=…), which the")
		w("new primary refuses under gtid_strict_mode (and a server_id not its own would make its")
		w("binlog look replicated). Remove those lines to have it log them as its own:")
		w("  %s", replaySed)
		w("  mariadb -h HOST -P PORT -u ACCOUNT -p < replay.sql   # at the new primary, %s", l.Primary)
		w("ACCOUNT needs BINLOG REPLAY besides the rights on the tables (root over the socket has it).")
	}
	w("")
	w("This server was recloned from %s with mariadb-backup; its old data directory, binlogs", l.Primary)
	w("included, is kept next to the new one as %s.old-<UTC time>: remove it once nothing more", l.DataDir)
	w("is needed from it.")
	w("")
	w("%s", l.key())
	return b.String()
}

func orNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

func (l *lostInfo) expected() uint64 {
	var n uint64
	for _, r := range l.Ranges {
		n += r.Count()
	}
	return n
}

// The reclone: MariaDB has no rewind.

// rejoinMarker is <data_dir>.siteflip-rejoin, there while a reclone is
// under way: what was lost (for the result) and where the old data
// directory goes, recorded before it moves.
type rejoinMarker struct {
	Began      time.Time
	Primary    string
	Lost       lostInfo
	Divergence string
	// Old is where the data directory is moved; set before the move.
	Old string
}

func markerPath(in Instance) string { return filepath.Clean(in.Settings.DataDir) + ".siteflip-rejoin" }

// moved says the old data directory is no longer in place: the one
// there, if any, is a copy of the primary's, partial until the marker
// goes.
func (m *rejoinMarker) moved() bool {
	if m.Old == "" {
		return false
	}
	_, err := os.Stat(m.Old)
	return err == nil
}

func readRejoinMarker(in Instance) (*rejoinMarker, error) {
	b, err := os.ReadFile(markerPath(in))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m rejoinMarker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("the rejoin marker %s is unreadable (%w): a reclone was under way; check that %s.old-* holds the old data directory, then remove the marker and run the rejoin again",
			markerPath(in), err, in.Settings.DataDir)
	}
	return &m, nil
}

func writeRejoinMarker(in Instance, m *rejoinMarker) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	p := markerPath(in)
	f, err := os.OpenFile(p+".part", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("write the rejoin marker: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(p+".part", p)
	}
	if err != nil {
		return fmt.Errorf("write the rejoin marker %s: %w", p, err)
	}
	return syncDir(filepath.Dir(p))
}

// recloneHere checks that a reclone from primary can run on this
// machine: mariadb-backup reads the primary's data directory, unless src
// streams a copy from the primary's machine.
func recloneHere(ctx context.Context, primary Settings, src Source) error {
	if _, err := exec.LookPath("mariadb-backup"); err != nil {
		return fmt.Errorf("mariadb-backup is missing (Debian's mariadb-backup package): %w", err)
	}
	if src != nil {
		return nil
	}
	var host, dir string
	if err := admin(ctx, primary, func(c *sql.Conn) error {
		return c.QueryRowContext(ctx, "SELECT @@hostname, @@datadir").Scan(&host, &dir)
	}); err != nil {
		return err
	}
	me, _ := os.Hostname()
	_, serr := os.Stat(filepath.Join(primary.DataDir, "ibdata1"))
	if host != me || filepath.Clean(dir) != filepath.Clean(primary.DataDir) || serr != nil {
		return fmt.Errorf("the primary's data directory %s is not on this machine (it runs on %s with @@datadir %s; this is %s): "+
			"across machines its agent streams the copy (the rejoin step of a run does it). By hand: on the primary's machine "+
			"`mariadb-backup --backup --stream=xbstream --target-dir=/tmp | ssh THIS-MACHINE mbstream -x -C DATADIR.new`; "+
			"here `mariadb-backup --prepare --target-dir=DATADIR.new`, stop this server, move DATADIR aside, "+
			"`mariadb-backup --move-back --target-dir=DATADIR.new --datadir=DATADIR`, `chown -R mysql: DATADIR`, start it, "+
			"`SET GLOBAL gtid_slave_pos='…'` (the third field of DATADIR.new/xtrabackup_binlog_info), "+
			"then run the rejoin again", primary.DataDir, host, dir, me)
	}
	return nil
}

// finishReclone replaces the local data directory by a backup of the
// primary's and makes the server follow it from the backup's position,
// verified. The marker says a reclone is under way until the end; run
// again after a crash it starts over from a new backup, the old data
// directory staying where it was moved.
func finishReclone(ctx context.Context, in Instance, primary Settings, m *rejoinMarker, src Source) (RejoinResult, error) {
	res := RejoinResult{Errant: m.Lost.Errant, ErrantCount: m.Lost.Count, SavedTo: m.Lost.SavedTo, Divergence: m.Divergence}
	s := in.Settings
	fail := func(step string, err error) (RejoinResult, error) {
		return res, fmt.Errorf("reclone mariadb at %s (%s) from %s: %s: %w; the marker %s stays: run the rejoin again to start the reclone over%s",
			s.Addr(), s.DataDir, primary.Addr(), step, err, markerPath(in), oldNote(m))
	}
	if err := recloneHere(ctx, primary, src); err != nil {
		return fail("check", err)
	}
	if err := writeRejoinMarker(in, m); err != nil {
		return res, err
	}
	data := filepath.Clean(s.DataDir)
	backup := data + ".new"
	if err := os.RemoveAll(backup); err != nil {
		return fail("remove an earlier backup", err)
	}
	rejoinTrace("backup")
	if src != nil {
		if err := unpack(ctx, src, backup); err != nil {
			return fail("copy the primary's server from its machine", err)
		}
	} else {
		cnf, err := backupOptions(in, primary)
		if err != nil {
			return fail("write the backup's options", err)
		}
		defer os.Remove(cnf)
		// --defaults-file first: it holds the account and its password
		// (not on the command line).
		if err := runTool(ctx, "mariadb-backup", "--defaults-file="+cnf, "--backup", "--target-dir="+backup, "--datadir="+primary.DataDir); err != nil {
			return fail("back up the primary", err)
		}
	}
	rejoinTrace("prepare")
	if err := runTool(ctx, "mariadb-backup", "--no-defaults", "--prepare", "--target-dir="+backup); err != nil {
		return fail("prepare the backup", err)
	}
	pos, err := backupGTID(ctx, backup, primary)
	if err != nil {
		return fail("read the backup's position", err)
	}

	rejoinTrace("stop")
	if _, running := in.Running(); running {
		if err := in.Stop(ctx); err != nil {
			return fail("stop the server", err)
		}
		for {
			if _, running := in.Running(); !running {
				break
			}
			select {
			case <-ctx.Done():
				return fail("stop the server", ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if m.moved() {
		// A reclone stopped midway: what is in place is a partial copy.
		if err := os.RemoveAll(data); err != nil {
			return fail("remove the partial copy", err)
		}
	} else if _, err := os.Stat(data); err == nil {
		m.Old = data + ".old-" + time.Now().UTC().Format("20060102T150405Z")
		if err := writeRejoinMarker(in, m); err != nil {
			return res, err
		}
		if err := os.Rename(data, m.Old); err != nil {
			return fail("move the old data directory aside", err)
		}
		if err := syncDir(filepath.Dir(data)); err != nil {
			return fail("move the old data directory aside", err)
		}
	}
	rejoinTrace("move-back")
	if err := os.MkdirAll(data, 0o750); err != nil {
		return fail("create the data directory", err)
	}
	if err := runTool(ctx, "mariadb-backup", "--no-defaults", "--move-back", "--target-dir="+backup, "--datadir="+data); err != nil {
		return fail("move the backup into place", err)
	}
	u, err := serverUser()
	if err != nil {
		return fail("chown", err)
	}
	if err := filepath.WalkDir(data, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return osuser.Give(u, p)
	}); err != nil {
		return fail("give the data directory to "+u.Username, err)
	}
	if err := os.RemoveAll(backup); err != nil {
		return fail("remove the emptied backup", err)
	}
	res.Recloned = true
	rejoinTrace("start")
	if _, err := in.Start(ctx); err != nil {
		return fail("start the recloned server", err)
	}
	rejoinTrace("follow")
	if err := followPrimary(ctx, s, primary, false, pos); err != nil {
		return fail("follow the primary from the backup's position "+pos, err)
	}
	rejoinTrace("done")
	if err := os.Remove(markerPath(in)); err != nil {
		return res, fmt.Errorf("reclone mariadb at %s: done, but remove the marker: %w", s.Addr(), err)
	}
	_ = syncDir(filepath.Dir(data))
	return res, nil
}

// recloneDone says the server runs from its recloned data directory and
// follows primary, verified: the steps after its start (the backup's
// GTID position, CHANGE MASTER, START SLAVE) are done.
func recloneDone(ctx context.Context, in Instance, primary Settings) (bool, error) {
	if _, running := in.Running(); !running {
		return false, nil
	}
	done := false
	err := admin(ctx, in.Settings, func(c *sql.Conn) error {
		rows, err := slaves(ctx, c)
		if err != nil || len(rows) != 1 || !followsHealthy(rows[0], primary) {
			return err
		}
		if err := verifyFollowing(ctx, c, in.Settings, primary); err != nil {
			return err
		}
		done = true
		return nil
	})
	return done, err
}

// removeStaleMarker removes the marker, if any, once the server follows
// the primary, verified.
func removeStaleMarker(in Instance, m *rejoinMarker) error {
	if m == nil {
		return nil
	}
	if err := os.Remove(markerPath(in)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the stale rejoin marker: %w", err)
	}
	return nil
}

func oldNote(m *rejoinMarker) string {
	if m.Old == "" {
		return ""
	}
	return "; the old data directory is at " + m.Old
}

// backupOptions writes, for mariadb-backup --backup, a private option
// file with the account it connects to the primary as.
func backupOptions(in Instance, primary Settings) (string, error) {
	f, err := os.CreateTemp(in.Dir, "backup-*.cnf")
	if err != nil {
		return "", err
	}
	q := func(v string) string { return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"` }
	_, err = fmt.Fprintf(f, "[mariadb-backup]\nhost=%s\nport=%d\nuser=%s\npassword=%s\n",
		primary.Host, primary.Port, q(primary.Admin), q(primary.AdminPassword))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// backupGTID is the primary's GTID position at the backup. mariadb-backup
// writes the binlog file and offset the backup ends at into
// xtrabackup_binlog_info (mariadb_backup_binlog_info from 11.1), and as
// a third field the primary's @@gtid_current_pos, which is its
// @@gtid_slave_pos in a domain whose last transaction does not carry
// its server_id (say, a replay of another server's binlog). The primary
// maps the file and offset exactly: BINLOG_GTID_POS; the third field is
// the fallback.
func backupGTID(ctx context.Context, dir string, primary Settings) (string, error) {
	var b []byte
	var err error
	for _, name := range []string{"xtrabackup_binlog_info", "mariadb_backup_binlog_info"} {
		if b, err = os.ReadFile(filepath.Join(dir, name)); err == nil {
			break
		}
	}
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return "", fmt.Errorf("%q: want the binlog file and offset", string(b))
	}
	var pos sql.NullString
	err = admin(ctx, primary, func(c *sql.Conn) error {
		return c.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", f[0], f[1]).Scan(&pos)
	})
	if err == nil && pos.Valid {
		if _, err := parseGTIDs(pos.String); err != nil {
			return "", fmt.Errorf("BINLOG_GTID_POS('%s', %s) at %s: %w", f[0], f[1], primary.Addr(), err)
		}
		return pos.String, nil
	}
	if len(f) < 3 {
		return "", nil // the primary had logged no GTID
	}
	if _, err := parseGTIDs(f[2]); err != nil {
		return "", fmt.Errorf("%q: %w", string(b), err)
	}
	return f[2], nil
}

// runTool runs a command, its output in the error.
func runTool(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, args[0], err, tail(out))
	}
	return nil
}
