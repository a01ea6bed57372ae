package postgres

import (
	byteorder "encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/testbed"
)

// writeControl writes the start of a control file with a version and a
// state.
func writeControl(t *testing.T, dir string, version, state uint32) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "global"), 0o700); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	byteorder.NativeEndian.PutUint32(b[8:], version)
	byteorder.NativeEndian.PutUint32(b[16:], state)
	if err := os.WriteFile(filepath.Join(dir, "global", "pg_control"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestControlState(t *testing.T) {
	tests := []struct {
		version, state uint32
		want           string
		bad            bool
	}{
		{1300, 6, ClusterInProduction, false},
		{1300, 5, ClusterInArchiveRecovery, false},
		{1300, 1, ClusterShutDown, false},
		{1300, 2, ClusterShutDownInRecovery, false},
		{1300, 4, ClusterInCrashRecovery, false},
		{1300, 7, "", true},
		{12, 6, "", true},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		writeControl(t, dir, tt.version, tt.state)
		got, err := ControlState(dir)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("version %d state %d: %q, %v; want %q (error %v)", tt.version, tt.state, got, err, tt.want, tt.bad)
		}
	}
	if _, err := ControlState(t.TempDir()); err == nil {
		t.Error("no control file: no error")
	}
}

// On real servers: the primary's control file says it is in production,
// the standby's that it is in archive recovery; FenceDataDir kills the
// first and leaves the second, which accepts no writes.
func TestFenceDataDirSparesStandbys(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL; skipped with -short")
	}
	p := startPair(t)
	if st, err := ControlState(p.primary.Settings.DataDir); err != nil || st != ClusterInProduction {
		t.Fatalf("primary: %q %v", st, err)
	}
	if st, err := ControlState(p.standby.Settings.DataDir); err != nil || st != ClusterInArchiveRecovery {
		t.Fatalf("standby: %q %v", st, err)
	}
	killed, err := FenceDataDir(p.standby.Settings.DataDir)
	if err != nil || killed {
		t.Fatalf("standby fenced: killed %v, %v", killed, err)
	}
	if _, running := Postmaster(p.standby.Settings.DataDir); !running {
		t.Fatal("the standby was killed")
	}
	killed, err = FenceDataDir(p.primary.Settings.DataDir)
	if err != nil || !killed {
		t.Fatalf("primary fenced: killed %v, %v", killed, err)
	}
	// SIGKILL is delivered a moment later.
	if !testbed.Poll(5*time.Second, func() bool { _, running := Postmaster(p.primary.Settings.DataDir); return !running }) {
		t.Fatal("the primary still runs")
	}
	if _, err := os.Stat(filepath.Join(p.primary.Settings.DataDir, "standby.signal")); err != nil {
		t.Errorf("the fenced primary has no boot guard: %v", err)
	}
}
