package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/resource"
)

// Drill copies (docs/design/drills.md). A drill copies the standby at a
// site with pg_basebackup, taken from the standby itself while it goes on
// replicating, into <drill_dir>/<run>/data, and starts the copy as a
// primary of its own that listens on the bubble's address only, at
// production's port, inside the bubble's network namespace when there is
// one. Everything the copy is lives in the run's directory, but for its
// unix socket (.s.PGSQL.PORT in drill_dir, so that its path stays short):
//
//	data/          its data dir
//	clone.json     written once the copy is complete: the clone's output
//	postgres.log   its server log
//	tblspc/OID/    its tablespaces, when production has any
//
// The agent's observer, boot guard and fencing look at data_dir only, so
// they never see a copy, and a copy never gets a boot guard: it is a
// throw-away primary.

const (
	drillData   = "data"
	drillDone   = "clone.json"
	drillLog    = "postgres.log"
	drillTblspc = "tblspc"
)

// Clone outputs besides resource.OutputDataAge.
const (
	// outEndLSN is where the copy's WAL ends: what its first start replays.
	outEndLSN = "end_lsn"
	// outBackupEndLSN is where pg_basebackup says the backup ends (the
	// standby's minimum recovery point): the copy is consistent from there.
	outBackupEndLSN = "backup_end_lsn"
	outTimeline     = "timeline"
	// outPrimaryLSN is what the primary had flushed as of its last message
	// to the standby, read when the copy was complete.
	outPrimaryLSN = "primary_flush_lsn"
	outReplayLSN  = "standby_replay_lsn"
	outStreaming  = "streaming"
	// outAgeBasis says how the data age was measured, in words.
	outAgeBasis = "data_age_basis"
	outDataDir  = "data_dir"
)

// drillConf goes into the copy's postgresql.auto.conf before it starts
// (after whatever production wrote there, which the copy inherits): it
// follows nobody, waits for no synchronous standby (siteflip writes
// synchronous_standby_names into production's), archives nothing, and
// writes its pid and logs nowhere production does.
var drillConf = [][2]string{
	{"primary_conninfo", ""},
	{"primary_slot_name", ""},
	{"synchronous_standby_names", ""},
	{"archive_mode", "off"},
	{"external_pid_file", ""},
	{"logging_collector", "off"},
}

// runIDPattern is what a drill's run ID may look like to name a directory:
// one path element, no "." or "..".
var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

func checkRunID(id string) error {
	if !runIDPattern.MatchString(id) {
		return fmt.Errorf("drill run ID %q cannot name a directory: want letters, digits, '.', '-' and '_', beginning with a letter or digit", id)
	}
	return nil
}

// Drill is resource r of group g at site as a part of the drill in bubble
// b. Without b.Run it only lists leftovers.
func (Type) Drill(g *config.Group, r *config.Resource, site string, b resource.Bubble) (resource.Drill, error) {
	s, err := settingsAt(g, r, site)
	if err != nil {
		return nil, err
	}
	d := &drill{where: fmt.Sprintf("group %s, resource %s at %s", g.Name, r.Name, site), site: site, s: *s, b: b}
	if s.DrillDir == "" {
		return nil, fmt.Errorf("%s: drill_dir is not set: set data_dir (drill_dir defaults to data_dir + %q) or drill_dir", d.where, drillDirSuffix)
	}
	if b.Run == "" {
		return d, nil
	}
	d.where += ", drill " + b.Run
	if err := checkRunID(b.Run); err != nil {
		return nil, fmt.Errorf("%s: %w", d.where, err)
	}
	if sock := d.s.DrillDir + "/.s.PGSQL." + strconv.Itoa(s.Port); len(sock) > maxSocketPath {
		return nil, fmt.Errorf("%s: the copy's unix socket %s would be %d bytes, more than PostgreSQL's limit of %d: set a shorter drill_dir", d.where, sock, len(sock), maxSocketPath)
	}
	return d, nil
}

// drill is one postgres resource's part of one drill at one site.
type drill struct {
	where string // group, resource, site and run, for errors
	site  string
	s     Settings // production's, of the standby copied
	b     resource.Bubble
}

func (d *drill) runDir() string  { return filepath.Join(d.s.DrillDir, d.b.Run) }
func (d *drill) dataDir() string { return filepath.Join(d.runDir(), drillData) }

// instance is the copy: its own data dir, its socket in the run's
// directory, listening on the bubble's address at production's port, its
// cluster_name naming the drill.
func (d *drill) instance() Instance {
	c := d.s
	c.Host, c.ListenAddresses = d.b.Address, d.b.Address
	// The socket goes into drill_dir itself: a path under the run's
	// directory would hold the run ID and can pass PostgreSQL's limit.
	// Two copies never share it: they would share the bubble's address
	// and port too.
	c.DataDir, c.SocketDir = d.dataDir(), d.s.DrillDir
	c.ApplicationName = clusterName(d.b.Run)
	c.DrillDir, c.FenceCommand, c.DrillCloneCommand = "", nil, nil
	return Instance{Settings: c, Site: d.site, LogFile: filepath.Join(d.runDir(), drillLog), Netns: d.b.Netns}
}

// clusterName is the copy's cluster_name, which ps shows on every process
// of the copy.
func clusterName(run string) string {
	name := "drill-" + run
	if len(name) > maxNameLen {
		name = name[:maxNameLen]
	}
	return name
}

// checkPaths makes sure that what a drill makes and removes is where it
// must be: the run's directory, and its data dir, are directories of their
// own (not symbolic links), and neither they nor drill_dir are, hold or
// lie in production's data dir.
func (d *drill) checkPaths() error {
	if d.b.Run == "" {
		return errors.New("no drill run given")
	}
	run := d.runDir()
	if filepath.Dir(run) != filepath.Clean(d.s.DrillDir) {
		return fmt.Errorf("refusing %s: it is not right inside drill_dir %s", run, d.s.DrillDir)
	}
	for _, p := range []string{run, d.dataDir()} {
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("look at %s: %w", p, err)
		case fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("refusing %s: it is a symbolic link, and a drill makes and removes its copy in place; look at where it points and remove the link by hand", p)
		case !fi.IsDir():
			return fmt.Errorf("refusing %s: it is not a directory; remove it by hand", p)
		}
	}
	if d.s.DataDir == "" {
		return nil
	}
	prod := realDir(d.s.DataDir)
	for _, p := range []string{realDir(d.s.DrillDir), realDir(run)} {
		if p == prod || within(prod, p) || within(p, prod) {
			return fmt.Errorf("refusing %s: it is, holds or lies in production's data dir %s; set drill_dir to a directory of its own", p, d.s.DataDir)
		}
	}
	return nil
}

// Clone copies the standby with pg_basebackup from the standby itself
// (-X stream, -c fast), as the replication user, to the standby's own
// host and port; or, with drill_clone_command, with a storage snapshot
// taken between pg_backup_start and pg_backup_stop (cloneWithCommand).
// The standby goes on replicating all along; pg_basebackup holds only a
// temporary replication slot on the standby, dropped when it ends. A
// complete copy is kept and its output returned again; a half-made one,
// of an earlier attempt, is removed first. The output's "method" says
// which way the copy was made.
//
// The data age is measured right after the backup, on the standby (see
// dataAge): 0 when the copy holds all the WAL the primary had flushed as
// of its last message to the standby; otherwise the standby's replay lag,
// now minus the commit time of the newest transaction it had replayed.
func (d *drill) Clone(ctx context.Context) (map[string]string, error) {
	where := d.where + ": clone the standby"
	if err := d.checkPaths(); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if out, ok, err := d.cloned(); err != nil || ok {
		if err != nil {
			err = fmt.Errorf("%s: %w", where, err)
		}
		return out, err
	}
	u, err := runAsUser()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	before, err := readStandby(ctx, d.s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if !before.recovery {
		return nil, fmt.Errorf("%s: the server at %s is not a standby (it is out of recovery): a drill copies a standby, never a primary", where, d.s.addr())
	}
	if err := d.remove(ctx, u); err != nil {
		return nil, fmt.Errorf("%s: remove the half-made copy of an earlier attempt: %w", where, err)
	}
	if err := d.makeRunDir(u); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	dir := d.dataDir()
	if err := prepareDataDir(u, dir); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	var wal walRange
	method := methodBasebackup
	if len(d.s.DrillCloneCommand) > 0 {
		method = methodCloneCommand
		wal, err = d.cloneWithCommand(ctx, u, before)
	} else {
		wal, err = d.basebackup(ctx, u, before)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w; the next clone or the teardown removes the half-made copy", where, err)
	}
	// At once: what the primary had sent when the copy was complete.
	after, err := readStandby(ctx, d.s)
	if err != nil {
		return nil, fmt.Errorf("%s: the copy is made, but measuring its data age failed: %w", where, err)
	}
	if err := removeSocketLocks(dir); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	end := d.copyEnd(ctx, u, wal)
	age, known, basis := dataAge(end, after)
	out := map[string]string{
		outEndLSN:       formatLSN(end),
		outBackupEndLSN: formatLSN(wal.end),
		outTimeline:     strconv.FormatInt(wal.tli, 10),
		outReplayLSN:    after.replayLSN,
		outStreaming:    strconv.FormatBool(after.receiver == receiverStreaming),
		outAgeBasis:     basis,
		outDataDir:      dir,
		outMethod:       method,
	}
	if known {
		out[resource.OutputDataAge] = strconv.FormatFloat(age.Seconds(), 'f', 3, 64)
	}
	if after.primaryLSN != "" {
		out[outPrimaryLSN] = after.primaryLSN
	}
	b, err := json.Marshal(out)
	if err == nil {
		err = writeFileAs(u, filepath.Join(d.runDir(), drillDone), b)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: the copy is made, but recording it failed: %w", where, err)
	}
	return out, nil
}

// basebackup fills the copy's data dir, made empty by the caller, with
// pg_basebackup, and returns the backup's WAL range.
func (d *drill) basebackup(ctx context.Context, u *osUser, before standbyState) (walRange, error) {
	basebackup, err := binary(d.s, "pg_basebackup")
	if err != nil {
		return walRange{}, err
	}
	pw, err := d.s.ReplicationPassword()
	if err != nil {
		return walRange{}, err
	}
	dir := d.dataDir()
	var env []string
	if pw != "" {
		env = append(env, "PGPASSWORD="+pw)
	}
	args := []string{
		"-D", dir,
		"-X", "stream",
		"-c", "fast",
		"-w", // never prompt for a password
		"-d", conninfo(
			"host", d.s.Host,
			"port", strconv.Itoa(d.s.Port),
			"user", d.s.ReplicationUser,
			"application_name", "siteflip-"+clusterName(d.b.Run),
			"connect_timeout", "10",
		),
	}
	for _, ts := range before.tablespaces {
		// Written to the same paths as on the standby otherwise.
		args = append(args, tablespaceMapping(ts.location, filepath.Join(d.runDir(), drillTblspc, ts.oid)))
	}
	if err := run(ctx, u, "base backup from the standby at "+d.s.addr(), env, basebackup, args...); err != nil {
		return walRange{}, err
	}
	return readBackupRange(dir)
}

// cloned returns the output of a complete copy, if there is one.
func (d *drill) cloned() (map[string]string, bool, error) {
	b, err := os.ReadFile(filepath.Join(d.runDir(), drillDone))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the record of the copy: %w", err)
	}
	var out map[string]string
	if json.Unmarshal(b, &out) != nil || checkCluster(d.dataDir()) != nil {
		return nil, false, nil // half made after all
	}
	return out, true, nil
}

// makeRunDir creates the run's directory, owned by the server's user, and
// drill_dir, where the copy's socket goes.
func (d *drill) makeRunDir(u *osUser) error {
	if err := os.MkdirAll(d.s.DrillDir, 0o755); err != nil {
		return fmt.Errorf("create drill_dir %s: %w", d.s.DrillDir, err)
	}
	if err := u.chown(d.s.DrillDir); err != nil { // the copy's socket goes there
		return err
	}
	run := d.runDir()
	if err := os.Mkdir(run, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create %s: %w", run, err)
	}
	if err := os.Chmod(run, 0o700); err != nil {
		return fmt.Errorf("set mode 0700 on %s: %w", run, err)
	}
	return u.chown(run)
}

// tablespaceMapping is pg_basebackup's option that writes the tablespace
// at from to to; '=' in a path is escaped as pg_basebackup wants.
func tablespaceMapping(from, to string) string {
	esc := strings.NewReplacer("=", `\=`)
	return "--tablespace-mapping=" + esc.Replace(from) + "=" + esc.Replace(to)
}

// walRange is the WAL a base backup needs: from where it starts to where
// the copy is consistent.
type walRange struct {
	tli        int64
	start, end uint64
}

// readBackupRange reads the backup's WAL range from the backup_manifest
// pg_basebackup wrote into dir (PostgreSQL 13 and later).
func readBackupRange(dir string) (walRange, error) {
	path := filepath.Join(dir, "backup_manifest")
	b, err := os.ReadFile(path)
	if err != nil {
		return walRange{}, fmt.Errorf("read the backup's manifest: %w", err)
	}
	var m struct {
		Ranges []struct {
			Timeline int64  `json:"Timeline"`
			Start    string `json:"Start-LSN"`
			End      string `json:"End-LSN"`
		} `json:"WAL-Ranges"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return walRange{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(m.Ranges) == 0 {
		return walRange{}, fmt.Errorf("%s lists no WAL range", path)
	}
	first, last := m.Ranges[0], m.Ranges[len(m.Ranges)-1]
	start, err := parseLSN(first.Start)
	if err != nil {
		return walRange{}, fmt.Errorf("%s: %w", path, err)
	}
	end, err := parseLSN(last.End)
	if err != nil {
		return walRange{}, fmt.Errorf("%s: %w", path, err)
	}
	return walRange{tli: last.Timeline, start: start, end: end}, nil
}

// copyEnd is where the copy's WAL ends, which is what its first start
// replays: the backup ends where the copy becomes consistent (the
// standby's minimum recovery point, often behind its replay), but the WAL
// streamed during the backup usually goes on past that, and crash
// recovery replays all of it. pg_waldump finds the end; should it fail,
// the backup's end is where the copy certainly gets to.
func (d *drill) copyEnd(ctx context.Context, u *osUser, wal walRange) uint64 {
	dir := d.dataDir()
	cd, err := readControlData(ctx, u, d.s, dir)
	if err != nil {
		return wal.end
	}
	end, err := walEnd(ctx, u, d.s, dir, wal.tli, wal.end, cd)
	if err != nil || end < wal.end {
		return wal.end
	}
	return end
}

// receiverStreaming is pg_stat_wal_receiver.status while the standby
// streams.
const receiverStreaming = "streaming"

// standbyState is what the standby says of itself and of its primary.
type standbyState struct {
	recovery  bool
	now       time.Time // the standby's clock
	replayLSN string
	// replayedAt is the commit time of the newest transaction replayed
	// (the primary's clock); zero when none was since the standby started.
	replayedAt time.Time
	// receiver is the WAL receiver's status, "" when none runs.
	receiver string
	// primaryLSN is what the primary had flushed as of its last message
	// (latest_end_lsn), heardAt when that message came.
	primaryLSN string
	heardAt    time.Time
	// tablespaces are those outside the data dir.
	tablespaces []tablespace
}

type tablespace struct{ oid, location string }

const standbyQuery = `
SELECT pg_is_in_recovery(), now(), pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp(),
       r.status, r.latest_end_lsn::text, r.last_msg_receipt_time
FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true`

const tablespaceQuery = `
SELECT oid::text, pg_tablespace_location(oid) FROM pg_tablespace
WHERE pg_tablespace_location(oid) LIKE '/%' ORDER BY oid`

// readStandby asks the server s describes about its replication.
func readStandby(ctx context.Context, s Settings) (standbyState, error) {
	conn, err := connectAction(ctx, s, "siteflip-drill")
	if err != nil {
		return standbyState{}, err
	}
	defer closeConn(conn)
	var (
		st                  standbyState
		replayLSN, status   *string
		primaryLSN          *string
		replayedAt, heardAt *time.Time
	)
	if err := conn.QueryRow(ctx, standbyQuery).Scan(&st.recovery, &st.now, &replayLSN, &replayedAt, &status, &primaryLSN, &heardAt); err != nil {
		return standbyState{}, fmt.Errorf("ask the standby at %s about its replication: %w", s.addr(), err)
	}
	st.replayLSN, st.receiver, st.primaryLSN = deref(replayLSN), deref(status), deref(primaryLSN)
	st.replayedAt, st.heardAt = deref(replayedAt), deref(heardAt)
	rows, err := conn.Query(ctx, tablespaceQuery)
	if err == nil {
		for rows.Next() {
			var ts tablespace
			if err = rows.Scan(&ts.oid, &ts.location); err != nil {
				break
			}
			st.tablespaces = append(st.tablespaces, ts)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		return standbyState{}, fmt.Errorf("list the tablespaces of %s: %w", s.addr(), err)
	}
	return st, nil
}

// dataAge is the copy's data age, end being where its WAL ends and st
// what the standby said right after the copy was complete: what a
// failover at that moment would have lost.
//
//   - 0 when the standby streams and the copy holds all the WAL the
//     primary had flushed as of its last message to the standby
//     (latest_end_lsn). What the primary wrote since that message, at
//     most a network delay ago while it streams, is not counted.
//   - Otherwise, the standby's replay lag as the standby sees it: now
//     minus the commit time of the newest transaction it had replayed
//     (pg_last_xact_replay_timestamp), which is what is lost at most:
//     every transaction the copy lacks committed after that one. (The
//     copy usually holds at least what the standby replayed; when it ends
//     a little before, the figure is short by the time between the two,
//     milliseconds when the standby keeps up.) A standby that does not
//     stream cannot know what its primary wrote since: the figure is then
//     the upper bound.
//   - Unknown (known false) when the copy lacks WAL and the standby has
//     replayed no transaction since it started.
//
// The primary's replay_lag (see Standby.LagSeconds) measures the same
// thing from the other side, but a drill runs where the standby is and
// does not depend on reaching the primary. Times on two machines are
// compared; clock skew shows, as in every such measure.
func dataAge(end uint64, st standbyState) (age time.Duration, known bool, basis string) {
	copyEnd := formatLSN(end)
	primary, err := parseLSN(st.primaryLSN)
	streaming := st.receiver == receiverStreaming
	if streaming && err == nil && end >= primary {
		basis = fmt.Sprintf("the copy (to %s) holds all the WAL the primary had flushed (%s) as of its last message to the standby", copyEnd, st.primaryLSN)
		if !st.heardAt.IsZero() {
			basis += fmt.Sprintf(", received %.3fs before the copy was complete", max(0, st.now.Sub(st.heardAt).Seconds()))
		}
		return 0, true, basis
	}
	var why string
	switch {
	case !streaming && st.receiver == "":
		why = "the standby does not stream (no WAL receiver): what the primary wrote since it last streamed is not known here"
	case !streaming:
		why = fmt.Sprintf("the standby does not stream (its WAL receiver is %s): what the primary wrote since is not known here", st.receiver)
	case err != nil:
		why = "the standby does not say what the primary had flushed"
	default:
		why = fmt.Sprintf("the copy ends at %s, the primary had flushed %s", copyEnd, st.primaryLSN)
	}
	if st.replayedAt.IsZero() {
		return 0, false, fmt.Sprintf("unknown: %s, and the standby has replayed no transaction since it started", why)
	}
	age = max(0, st.now.Sub(st.replayedAt))
	return age, true, fmt.Sprintf("the standby's replay lag: %s; the newest transaction it had replayed committed at %s",
		why, st.replayedAt.UTC().Format(time.RFC3339Nano))
}

// Start starts the copy as a primary of its own, in the bubble, and proves
// it: it accepts connections, is out of recovery, follows nobody and
// commits a write. Before its first start the copy is cut off from
// production: no signal files (standby.signal is the standby's boot guard,
// which a copy must not have), no replication slots, the settings of
// drillConf. It listens on the bubble's address only, at production's
// port; with a bubble namespace it runs in there. Already running, it is
// only proved.
func (d *drill) Start(ctx context.Context) (map[string]string, error) {
	where := d.where + ": start the copy"
	if err := d.checkPaths(); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if d.b.Address == "" {
		return nil, fmt.Errorf("%s: the bubble has no address: set sites[].bubble.address to an address production clients never use", where)
	}
	if d.b.Netns == "" {
		if a, clash := clashes(d.b.Address, d.s); clash {
			return nil, fmt.Errorf("%s: production's server listens on %s, so a copy on %s at the same port would clash with it or be found by its clients: give the bubble an address of its own, or a network namespace (sites[].bubble.netns)", where, a, d.b.Address)
		}
	}
	if _, ok, err := d.cloned(); err != nil || !ok {
		if err == nil {
			err = errors.New("there is no complete copy: the clone step makes it")
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	u, err := runAsUser()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	inst := d.instance()
	if _, alive := postmasterAlive(inst.Settings.DataDir); !alive {
		if err := d.detach(u); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	if err := inst.Start(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err := d.prove(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w; see its log %s", where, err, inst.LogFile)
	}
	out := map[string]string{
		resource.OutputAddress: joinHostPort(d.b.Address, d.s.Port),
		outDataDir:             inst.Settings.DataDir,
	}
	if d.b.Netns != "" {
		out["netns"] = d.b.Netns
	}
	return out, nil
}

// clashes says whether production's server listens on address, or on
// every address.
func clashes(address string, s Settings) (string, bool) {
	for _, a := range append(splitDirectories(s.ListenAddresses), s.Host) {
		switch a {
		case address, "*", "0.0.0.0", "::":
			return a, true
		}
	}
	return "", false
}

// detach cuts the stopped copy off from production before it starts.
func (d *drill) detach(u *osUser) error {
	dir := d.dataDir()
	for _, name := range []string{standbySignal, recoverySignal, standbySignal + asideSuffix, recoverySignal + asideSuffix} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove the copy's %s: %w", name, err)
		}
	}
	slots := filepath.Join(dir, "pg_replslot")
	entries, err := os.ReadDir(slots)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("list the copy's replication slots: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(slots, e.Name())); err != nil {
			return fmt.Errorf("remove the copy's replication slot %s: %w", e.Name(), err)
		}
	}
	for _, kv := range drillConf {
		if err := setAutoConf(u, dir, kv[0], kv[1]); err != nil {
			return err
		}
	}
	return removeSocketLocks(dir)
}

// proveInterval is how often Start tries the copy until it answers.
const proveInterval = 100 * time.Millisecond

// prove waits until the copy accepts a connection, and checks that it is
// out of recovery, follows nobody and commits a write.
func (d *drill) prove(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	for {
		conn, err := d.connect(ctx, "siteflip-drill")
		if err == nil {
			err = proveIndependent(ctx, conn)
			closeConn(conn)
			return err
		}
		// The server refused the client (authentication, no such
		// database): waiting does not help. "Starting up" does.
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code != "57P03" {
			return fmt.Errorf("the copy refuses the connection: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the copy does not accept connections: %w", err)
		case <-time.After(proveInterval):
		}
	}
}

func proveIndependent(ctx context.Context, conn *pgx.Conn) error {
	var recovery bool
	var follows string
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), current_setting('primary_conninfo')`).Scan(&recovery, &follows); err != nil {
		return fmt.Errorf("ask the copy whether it is a primary: %w", err)
	}
	if recovery {
		return errors.New("the copy is in recovery: it came up as a standby, not as a primary of its own")
	}
	if follows != "" {
		return errors.New("the copy has a primary_conninfo: it must follow nobody")
	}
	if err := proveWritable(ctx, conn); err != nil {
		return fmt.Errorf("the copy does not commit a write: %w", err)
	}
	return nil
}

// connect opens a connection to the copy, as production's user, inside the
// bubble's namespace when there is one.
func (d *drill) connect(ctx context.Context, appName string) (*pgx.Conn, error) {
	s := d.instance().Settings
	pw, err := s.Password()
	if err != nil {
		return nil, err
	}
	cfg, err := connConfig(s, appName, pw)
	if err != nil {
		return nil, err
	}
	if d.b.Netns != "" {
		cfg.DialFunc = pgconn.DialFunc(netns.Dialer(d.b.Netns))
	}
	conn, err := connectConfig(ctx, s, cfg)
	if err != nil {
		return nil, oneLineError{err}
	}
	return conn, nil
}

// Teardown stops the copy at once and removes the run's directory. It
// refuses a run directory that is not a plain directory right inside
// drill_dir, or that has anything to do with production's data dir.
func (d *drill) Teardown(ctx context.Context) error {
	where := d.where + ": tear the copy down"
	if err := d.checkPaths(); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	u, err := runAsUser()
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := d.remove(ctx, u); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// stopWait bounds the immediate shutdown of a copy, and how long its
// processes get to go after SIGKILL.
const stopWait = 30 * time.Second

// remove stops everything that works on the copy and removes the run's
// directory. The caller has checked the paths.
func (d *drill) remove(ctx context.Context, u *osUser) error {
	runDir, dir := d.runDir(), d.dataDir()
	if _, err := os.Lstat(runDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if pid, alive := postmasterAlive(dir); alive {
		if pgctl, err := binary(d.s, "pg_ctl"); err == nil {
			sctx, cancel := context.WithTimeout(ctx, stopWait)
			// Its failure shows below: the server still runs.
			_ = run(sctx, u, "immediate shutdown of the drill copy", nil, pgctl, "stop", "-D", dir, "-m", "immediate", "-w", "-t", pgctlWait(sctx))
			cancel()
		}
		if _, still := postmasterAlive(dir); still {
			if err := KillServer(pid); err != nil {
				return err
			}
		}
	}
	// Whatever is left: backends of a killed postmaster, a pg_basebackup
	// still writing a copy for an agent that died.
	var procs []int
	deadline := time.Now().Add(stopWait)
	for procs = copyProcesses(dir); len(procs) > 0 && time.Now().Before(deadline); procs = copyProcesses(dir) {
		for _, p := range procs {
			if err := syscall.Kill(p, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("kill pid %d, which works on the copy: %w", p, err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(procs) > 0 {
		return fmt.Errorf("processes %v still work on the copy %s after SIGKILL: find out what holds them (ps -o pid,stat,wchan -p ...)", procs, dir)
	}
	freeSysVSegment(dir) // a killed postmaster's; nothing when it shut down
	if err := os.RemoveAll(runDir); err != nil {
		return fmt.Errorf("remove %s: %w", runDir, err)
	}
	return nil
}

// copyProcesses lists the live processes that work on dir: server
// processes (their working directory is dir) and programs given dir as an
// argument (pg_basebackup -D dir).
func copyProcesses(dir string) []int {
	pids := serverProcesses(dir)
	names := map[string]bool{filepath.Clean(dir): true, realDir(dir): true}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return pids
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || slices.Contains(pids, pid) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range strings.Split(string(b), "\x00") {
			if names[arg] {
				if _, state, ok := procStat(pid); ok && state != 'Z' && state != 'X' {
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	return pids
}

// Leftovers lists the runs that have a directory in drill_dir.
func (d *drill) Leftovers() ([]string, error) {
	entries, err := os.ReadDir(d.s.DrillDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: list the drill copies in %s: %w", d.where, d.s.DrillDir, err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && checkRunID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// inNetns returns the command that runs path with args in the network
// namespace ns as u: ip netns exec enters the namespace, as root, and
// executes setpriv, which becomes u and executes path, so that the process
// is path itself, as without a namespace.
func inNetns(u *osUser, ns, path string, args ...string) (*exec.Cmd, error) {
	if u == nil {
		return nil, fmt.Errorf("entering network namespace %s needs root: run siteflip as root", ns)
	}
	ip, err := systemTool("ip", "iproute2")
	if err != nil {
		return nil, err
	}
	setpriv, err := systemTool("setpriv", "util-linux")
	if err != nil {
		return nil, err
	}
	argv := append([]string{"netns", "exec", ns, setpriv,
		"--reuid=" + strconv.FormatUint(uint64(u.uid), 10),
		"--regid=" + strconv.FormatUint(uint64(u.gid), 10),
		"--clear-groups", "--", path}, args...)
	cmd := exec.Command(ip, argv...)
	u.prepare(cmd)
	cmd.SysProcAttr.Credential = nil // ip runs as root; setpriv drops it
	return cmd, nil
}

// systemTool finds a system program, also in the sbin directories a PATH
// may lack.
func systemTool(name, debianPackage string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: install the Debian package %s", name, debianPackage)
}
