package postgres

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLSN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"0/0", 0},
		{"0/3000148", 0x3000148},
		{"16/B374D848", 0x16_B374D848},
		{" FFFFFFFF/FFFFFFFF\n", math.MaxUint64},
		{"0/03000028", 0x3000028}, // pg_waldump pads
	} {
		got, err := parseLSN(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseLSN(%q) = %#x, %v; want %#x", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "0", "0/", "/1", "x/1", "1/100000000", "-1/0"} {
		if got, err := parseLSN(bad); err == nil {
			t.Errorf("parseLSN(%q) = %#x, want an error", bad, got)
		}
	}
	if got := formatLSN(0x16_0374D848); got != "16/374D848" {
		t.Errorf("formatLSN = %q, want 16/374D848", got)
	}
}

func TestRecordEnd(t *testing.T) {
	const (
		blk = 8192
		seg = 16 << 20
	)
	for _, tc := range []struct {
		name            string
		start, tot, end uint64
	}{
		// A shutdown checkpoint right after a segment's long page header.
		{"first on a segment", 0x3000028, 114, 0x30000A0},
		{"aligned already", 0x3000028, 120, 0x30000A0},
		{"ends on the page end", 0x3001000 - 24, 24, 0x3001000},
		// 16 bytes on this page, 100 after the next page's 24-byte header.
		{"crosses a page", 0x3002000 - 16, 116, 0x3002000 + 24 + 104},
		// Crossing into a new segment skips its 40-byte long header.
		{"crosses a segment", 0x4000000 - 16, 116, 0x4000000 + 40 + 104},
		// A full-page image bigger than a page: 8000 + 8168 + 32.
		{"spans three pages", 0x3000000 + 192, 16200, 0x3004000 + 24 + 32},
	} {
		if got := recordEnd(tc.start, tc.tot, blk, seg); got != tc.end {
			t.Errorf("%s: recordEnd(%s, %d) = %s, want %s", tc.name, formatLSN(tc.start), tc.tot, formatLSN(got), formatLSN(tc.end))
		}
	}
}

func TestWALSegmentName(t *testing.T) {
	if got, want := walSegmentName(1, 0x3000148, 16<<20), "000000010000000000000003"; got != want {
		t.Errorf("walSegmentName = %s, want %s", got, want)
	}
	if got, want := walSegmentName(0x1A, 0x2_FF000000, 16<<20), "0000001A00000002000000FF"; got != want {
		t.Errorf("walSegmentName = %s, want %s", got, want)
	}
	if got, want := walSegmentName(2, 0x1_40000000, 1<<30), "000000020000000100000001"; got != want {
		t.Errorf("walSegmentName with 1 GB segments = %s, want %s", got, want)
	}
	if got, want := historyFileName(10), "0000000A.history"; got != want {
		t.Errorf("historyFileName = %s, want %s", got, want)
	}
}

func TestTimelines(t *testing.T) {
	const max = math.MaxUint64
	one, err := timelineChain("", 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]timelineSpan{{1, 0, max}}, one); diff != "" {
		t.Errorf("chain of timeline 1 (-want +got):\n%s", diff)
	}
	three, err := timelineChain("1\t0/3000148\tno recovery target specified\n\n# comment\n2\t0/5000000\tno recovery target specified\n", 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []timelineSpan{{1, 0, 0x3000148}, {2, 0x3000148, 0x5000000}, {3, 0x5000000, max}}
	if diff := cmp.Diff(want, three); diff != "" {
		t.Errorf("chain of timeline 3 (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"1", "x\t0/1", "1\tzz", "2\t0/1\n1\t0/2", "3\t0/1"} {
		if _, err := timelineChain(bad, 3); err == nil {
			t.Errorf("timelineChain(%q) succeeded, want an error", bad)
		}
	}

	two, _ := timelineChain("1\t0/3000148\treason\n", 2)
	otherTwo, _ := timelineChain("1\t0/3000100\treason\n", 2) // a timeline 2 of another promotion
	for _, tc := range []struct {
		name   string
		a, b   []timelineSpan
		fork   uint64
		shared bool
	}{
		{"old primary on 1, new on 2", one, two, 0x3000148, true},
		{"same timeline", two, two, max, true},
		{"two promotions", two, three, 0x5000000, true}, // 3 left this 2 there
		{"grandparent", one, three, 0x3000148, true},
		{"different timelines 2", two, otherTwo, 0x3000100, true},
		{"nothing shared", []timelineSpan{{2, 0, max}}, one, 0, false},
	} {
		fork, shared := forkPoint(tc.a, tc.b)
		if fork != tc.fork || shared != tc.shared {
			t.Errorf("%s: forkPoint = %s, %v; want %s, %v", tc.name, formatLSN(fork), shared, formatLSN(tc.fork), tc.shared)
		}
	}
}

func TestParseControlData(t *testing.T) {
	out := `pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7301234567890123456
Database cluster state:               shut down
pg_control last modified:             Mon 06 Jan 2025 10:11:12 AM UTC
Latest checkpoint location:           0/3000148
Latest checkpoint's REDO location:    0/3000148
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   2
WAL block size:                       8192
Bytes per WAL segment:                16777216
`
	got, err := parseControlData(out)
	if err != nil {
		t.Fatal(err)
	}
	want := controlData{
		SystemID: "7301234567890123456", State: "shut down", Checkpoint: 0x3000148, CheckpointTLI: 2,
		BlockSize: 8192, SegmentSize: 16 << 20,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseControlData (-want +got):\n%s", diff)
	}
	_, err = parseControlData(strings.Replace(out, "Latest checkpoint location:           0/3000148\n", "", 1))
	if err == nil || !strings.Contains(err.Error(), "Latest checkpoint location") {
		t.Errorf("control data without a checkpoint location: %v", err)
	}
}

func TestSetAutoConf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "postgresql.auto.conf")
	old := "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n" +
		"work_mem = '8MB'\n" +
		"primary_conninfo = 'host=old port=1'\n" +
		"PRIMARY_CONNINFO='host=older'\n" +
		"primary_slot_name = 'x'"
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	value := conninfo("host", "127.0.0.1", "password", `it's a \ secret`, "application_name", "site-a")
	if err := setAutoConf(nil, dir, "primary_conninfo", value); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n" +
		"work_mem = '8MB'\n" +
		"primary_slot_name = 'x'\n" +
		`primary_conninfo = 'host=''127.0.0.1'' password=''it\\''s a \\\\ secret'' application_name=''site-a'''` + "\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("postgresql.auto.conf (-want +got):\n%s", diff)
	}

	// A data dir without the file gets one.
	empty := t.TempDir()
	if err := setAutoConf(nil, empty, "primary_conninfo", "host=x"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(empty, "postgresql.auto.conf")); !strings.HasSuffix(string(got), "primary_conninfo = 'host=x'\n") {
		t.Errorf("new postgresql.auto.conf:\n%s", got)
	}
}

func TestSocketInDataDir(t *testing.T) {
	for _, tc := range []struct{ sockets, want string }{
		{"", ""},
		{"/var/run/postgresql", ""},
		{"/srv/pg/data", "/srv/pg/data"},
		{`/tmp, "/srv/pg/data/run"`, "/srv/pg/data/run"},
		{".", "/srv/pg/data"},
		{"/srv/pg/data2", ""},
		// A comma inside quotes is part of the name (a test named "a, b").
		{`"/tmp/run, b/x"`, ""},
		{`/tmp, "/srv/pg/data/a, b"`, "/srv/pg/data/a, b"},
		{`"/srv/pg/data/say ""hi"""`, `/srv/pg/data/say "hi"`},
	} {
		if got := socketInDataDir("/srv/pg/data/", tc.sockets); got != tc.want {
			t.Errorf("socketInDataDir(%q) = %q, want %q", tc.sockets, got, tc.want)
		}
	}
}

func TestLastSegment(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"000000020000000000000003", "000000020000000000000005", "000000030000000000000009", "000000020000000000000004.partial", "00000002.history"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for first, want := range map[string]string{
		"000000020000000000000003": "000000020000000000000005",
		"000000020000000000000006": "000000020000000000000006", // none after it
		"000000030000000000000001": "000000030000000000000009",
	} {
		if got := lastSegment(dir, first); got != want {
			t.Errorf("lastSegment(%s) = %s, want %s", first, got, want)
		}
	}
}

// TestPositions: a standby's position is the later of what it received
// and replayed, and two positions compare as WAL addresses do, not as
// strings ("9/0" is behind "10/0").
func TestPositions(t *testing.T) {
	for _, tc := range []struct{ replayed, received, want string }{
		{"0/3000148", "0/3000200", "0/3000200"},
		{"0/3000148", "0/3000000", "0/3000148"}, // receiver restarted at a segment's start
		{"0/3000148", "", "0/3000148"},
		{"", "0/3000200", "0/3000200"},
		{"", "", ""},
	} {
		if got := standbyPosition(tc.replayed, tc.received); got != tc.want {
			t.Errorf("standbyPosition(%q, %q) = %q, want %q", tc.replayed, tc.received, got, tc.want)
		}
	}
	for _, tc := range []struct {
		a, b string
		want int
		ok   bool
	}{
		{"9/0", "10/0", -1, true},
		{"16/B374D848", "16/B374D848", 0, true},
		{"1/0", "0/FFFFFFFF", 1, true},
		{"1/0", "x", 0, false},
	} {
		got, ok := comparePositions(tc.a, tc.b)
		if got != tc.want || ok != tc.ok {
			t.Errorf("comparePositions(%q, %q) = %d, %v; want %d, %v", tc.a, tc.b, got, ok, tc.want, tc.ok)
		}
	}
}
