package postgres

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/internal/priority"
)

// WAL positions, control files and timeline histories, read the way the
// server and pg_rewind read them.

// parseLSN parses a WAL position written as PostgreSQL prints it, "16/B374D848".
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if ok {
		h, herr := strconv.ParseUint(hi, 16, 32)
		l, lerr := strconv.ParseUint(lo, 16, 32)
		if herr == nil && lerr == nil {
			return h<<32 | l, nil
		}
	}
	return 0, fmt.Errorf("invalid WAL position %q: want the form PostgreSQL prints, e.g. 0/3000148", s)
}

// formatLSN prints a WAL position the way PostgreSQL does.
func formatLSN(v uint64) string {
	return fmt.Sprintf("%X/%X", v>>32, uint32(v))
}

// controlData is what siteflip needs from pg_controldata.
type controlData struct {
	SystemID      string // "Database system identifier"
	State         string // "Database cluster state", e.g. "shut down", "in production"
	Checkpoint    uint64 // "Latest checkpoint location": where that record starts
	CheckpointTLI int64  // "Latest checkpoint's TimeLineID"
	BlockSize     uint64 // "WAL block size"
	SegmentSize   uint64 // "Bytes per WAL segment"
}

// Cluster states as pg_controldata prints them (with LC_ALL=C).
const (
	stateShutDown           = ClusterShutDown
	stateShutDownInRecovery = ClusterShutDownInRecovery
)

// readControlData runs pg_controldata on dataDir. The server may be running
// or not; the file is read as it is on disk.
func readControlData(ctx context.Context, u *osUser, s Settings, dataDir string) (controlData, error) {
	path, err := binary(s, "pg_controldata")
	if err != nil {
		return controlData{}, err
	}
	// The field names are translated in other locales.
	out, err := runOutput(ctx, u, "read the control file", []string{"LC_ALL=C"}, path, "-D", dataDir)
	if err != nil {
		return controlData{}, err
	}
	cd, err := parseControlData(string(out))
	if err != nil {
		return controlData{}, fmt.Errorf("read the control file of %s: %w", dataDir, err)
	}
	return cd, nil
}

func parseControlData(out string) (controlData, error) {
	fields := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	var cd controlData
	var errs []error
	need := func(key string) string {
		v, ok := fields[key]
		if !ok || v == "" {
			errs = append(errs, fmt.Errorf("pg_controldata printed no %q", key))
		}
		return v
	}
	num := func(key string) uint64 {
		v := need(key)
		if v == "" {
			return 0
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("pg_controldata %q is %q, not a number", key, v))
		}
		return n
	}
	cd.SystemID = need("Database system identifier")
	cd.State = need("Database cluster state")
	if v := need("Latest checkpoint location"); v != "" {
		lsn, err := parseLSN(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("pg_controldata latest checkpoint location: %w", err))
		}
		cd.Checkpoint = lsn
	}
	cd.CheckpointTLI = int64(num("Latest checkpoint's TimeLineID"))
	cd.BlockSize = num("WAL block size")
	cd.SegmentSize = num("Bytes per WAL segment")
	if len(errs) == 0 && (cd.BlockSize == 0 || cd.SegmentSize == 0 || cd.SegmentSize%cd.BlockSize != 0) {
		errs = append(errs, fmt.Errorf("pg_controldata WAL block size %d and segment size %d make no sense", cd.BlockSize, cd.SegmentSize))
	}
	return cd, errors.Join(errs...)
}

// Page header sizes of a WAL page, MAXALIGNed as on every 64-bit build:
// SizeOfXLogShortPHD and, on the first page of a segment, SizeOfXLogLongPHD.
const (
	walShortPageHeader = 24
	walLongPageHeader  = 40
)

// recordEnd returns where a WAL record that starts at start and is tot
// bytes long ends, as the server counts it: past the record's last byte
// and the padding to the next 8-byte boundary, with the header of every
// page the record continues on skipped. This is the position a standby
// reports as pg_last_wal_replay_lsn() after replaying the record, and the
// switch point a promotion right after it writes into the timeline history.
func recordEnd(start, tot, blockSize, segSize uint64) uint64 {
	pos, rem := start, tot
	for {
		off := pos % blockSize
		if off == 0 { // a continuation page
			hdr := uint64(walShortPageHeader)
			if pos%segSize == 0 {
				hdr = walLongPageHeader
			}
			pos += hdr
			off = hdr
		}
		if avail := blockSize - off; rem > avail {
			rem -= avail
			pos += avail
			continue
		}
		pos += rem
		return (pos + 7) &^ 7
	}
}

// walRecordLine matches a record as pg_waldump prints it:
// "rmgr: XLOG len (rec/tot): 114/ 114, tx: 0, lsn: 0/03000028, prev ...".
var walRecordLine = regexp.MustCompile(`len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*\d+, lsn: ([0-9A-Fa-f]+/[0-9A-Fa-f]+)`)

// walEnd returns where the valid WAL on timeline tli in dataDir ends: the
// end of the last record pg_waldump can read, starting from the record at
// from. This is where crash recovery would stop, so it is also right for a
// server that was killed. The server must not be running.
func walEnd(ctx context.Context, u *osUser, s Settings, dataDir string, tli int64, from uint64, cd controlData) (uint64, error) {
	path, err := binary(s, "pg_waldump")
	if err != nil {
		return 0, err
	}
	var last string
	// pg_waldump reads until it finds no valid record and then fails: an
	// exit status of 1 after at least one record is the normal end. The
	// segment to start from is named: otherwise pg_waldump learns the
	// segment size from whichever WAL file it finds first, and a segment
	// the server had just made ready (all zeros) stops it before it reads
	// anything.
	first := walSegmentName(tli, from, cd.SegmentSize)
	stderr, err := runLines(ctx, u, path, []string{
		"--path=" + filepath.Join(dataDir, "pg_wal"),
		"--timeline=" + strconv.FormatInt(tli, 10),
		"--start=" + formatLSN(from),
		first, lastSegment(filepath.Join(dataDir, "pg_wal"), first),
	}, func(line string) {
		if strings.HasPrefix(line, "rmgr:") {
			last = line
		}
	})
	if ctx.Err() != nil {
		return 0, fmt.Errorf("read WAL of %s from %s: %w", dataDir, formatLSN(from), ctx.Err())
	}
	if last == "" {
		if err == nil {
			err = errors.New("it printed no record")
		}
		return 0, fmt.Errorf("read WAL of %s on timeline %d from %s: pg_waldump: %w%s; the WAL the control file points at is missing or damaged", dataDir, tli, formatLSN(from), err, outputTail(stderr))
	}
	m := walRecordLine.FindStringSubmatch(last)
	if m == nil {
		return 0, fmt.Errorf("read WAL of %s: cannot parse pg_waldump's line %q", dataDir, last)
	}
	tot, err := strconv.ParseUint(m[1], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("read WAL of %s: record length in %q: %w", dataDir, last, err)
	}
	start, err := parseLSN(m[2])
	if err != nil {
		return 0, fmt.Errorf("read WAL of %s: %w", dataDir, err)
	}
	return recordEnd(start, tot, cd.BlockSize, cd.SegmentSize), nil
}

// runLines runs a PostgreSQL tool as u, hands every line of its standard
// output to line as it comes (the output may be far too big to keep), and
// returns the tool's standard error.
func runLines(ctx context.Context, u *osUser, path string, args []string, line func(string)) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	u.prepare(cmd, "LC_ALL=C")
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := priority.Start(cmd); err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(stdout, 64<<10)
	var readErr error
	for {
		l, err := r.ReadString('\n')
		if l != "" {
			line(strings.TrimRight(l, "\n"))
		}
		if err != nil {
			if err != io.EOF {
				readErr = err
				_, _ = io.Copy(io.Discard, r)
			}
			break
		}
	}
	err = cmd.Wait()
	if err == nil {
		err = readErr
	}
	return stderr.Bytes(), err
}

// lastSegment is the name of the last WAL segment file in dir on first's
// timeline, first itself if there is none after it.
func lastSegment(dir, first string) string {
	last := first
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := e.Name()
		if len(n) == 24 && strings.Trim(n, "0123456789ABCDEF") == "" && n[:8] == first[:8] && n > last {
			last = n
		}
	}
	return last
}

// walSegmentName is the file name of the WAL segment that holds lsn on
// timeline tli.
func walSegmentName(tli int64, lsn, segSize uint64) string {
	segNo := lsn / segSize
	perID := (uint64(1) << 32) / segSize
	return fmt.Sprintf("%08X%08X%08X", tli, segNo/perID, segNo%perID)
}

// historyFileName is the name of timeline tli's history file in pg_wal.
func historyFileName(tli int64) string {
	return fmt.Sprintf("%08X.history", tli)
}

// timelineSpan is one timeline of a server's history: WAL from Begin up
// to End was written on timeline TLI.
type timelineSpan struct {
	TLI        int64
	Begin, End uint64
}

// timelineChain turns the history file of timeline current (empty for
// timeline 1, which has none) into the server's timelines, oldest first;
// the last one is current and has no end.
func timelineChain(history string, current int64) ([]timelineSpan, error) {
	var chain []timelineSpan
	var begin uint64
	for n, line := range strings.Split(history, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("timeline history line %d %q: want a timeline and a switch point", n+1, line)
		}
		tli, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || tli < 1 {
			return nil, fmt.Errorf("timeline history line %d %q: bad timeline %q", n+1, line, f[0])
		}
		end, err := parseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("timeline history line %d %q: %w", n+1, line, err)
		}
		if len(chain) > 0 && tli <= chain[len(chain)-1].TLI {
			return nil, fmt.Errorf("timeline history line %d %q: timelines out of order", n+1, line)
		}
		chain = append(chain, timelineSpan{TLI: tli, Begin: begin, End: end})
		begin = end
	}
	if len(chain) > 0 && chain[len(chain)-1].TLI >= current {
		return nil, fmt.Errorf("timeline history of timeline %d lists timeline %d as an ancestor", current, chain[len(chain)-1].TLI)
	}
	return append(chain, timelineSpan{TLI: current, Begin: begin, End: math.MaxUint64}), nil
}

// forkPoint returns where two servers' histories part, as pg_rewind
// computes it: the end of the last timeline they share, on the server
// that left it first. Two servers on the same timeline never part
// (math.MaxUint64). ok is false when they share no timeline at all.
func forkPoint(a, b []timelineSpan) (lsn uint64, ok bool) {
	i := 0
	for i < len(a) && i < len(b) && a[i].TLI == b[i].TLI && a[i].Begin == b[i].Begin {
		i++
	}
	if i == 0 {
		return 0, false
	}
	return min(a[i-1].End, b[i-1].End), true
}

// setAutoConf sets key to value in the postgresql.auto.conf of a stopped
// server, replacing every earlier setting of key, the way ALTER SYSTEM
// writes it. The file is replaced atomically and stays u's.
func setAutoConf(u *osUser, dataDir, key, value string) error {
	path := filepath.Join(dataDir, "postgresql.auto.conf")
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(old), "\n") {
		if line == "" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSpace(line), "=")
		if strings.EqualFold(strings.TrimSpace(name), key) {
			continue
		}
		b.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			b.WriteByte('\n')
		}
	}
	if b.Len() == 0 {
		b.WriteString("# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n")
	}
	// The configuration parser undoes backslash escapes, and a quote in a
	// quoted value is doubled.
	fmt.Fprintf(&b, "%s = '%s'\n", key, strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(value))
	return writeFileAs(u, path, []byte(b.String()))
}

// writeFileAs writes path atomically (a temporary file renamed over it)
// with mode 0600, owned by u.
func writeFileAs(u *osUser, path string, data []byte) error {
	tmp := path + ".siteflip-tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := u.chown(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
