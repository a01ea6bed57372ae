package postgres

import (
	byteorder "encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The start of PostgreSQL's control file (global/pg_control), whose layout
// has not changed since the field pg_control_version was put there to say
// so: system_identifier (8 bytes), pg_control_version (4),
// catalog_version_no (4), state (4, the DBState enum).
const (
	controlStateOffset = 16
	minControlVersion  = 1000 // 9.x and later
	maxControlVersion  = 9999
)

// dbStates are the values of the DBState enum, in order.
var dbStates = []string{
	"starting up", ClusterShutDown, ClusterShutDownInRecovery, ClusterShuttingDown,
	ClusterInCrashRecovery, ClusterInArchiveRecovery, ClusterInProduction,
}

// ControlState reads the cluster state from dataDir's control file
// directly: no program runs, so it is cheap enough to call every tenth of
// a second, and works while the server hangs. A running server keeps it
// current: "in archive recovery" while it is a standby (it accepts no
// writes), "in production" from the moment it accepts them.
func ControlState(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "global", "pg_control")
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read the control file: %w", err)
	}
	defer f.Close()
	var head [controlStateOffset + 4]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return "", fmt.Errorf("read the control file %s: %w", path, err)
	}
	version := byteorder.NativeEndian.Uint32(head[8:12])
	state := byteorder.NativeEndian.Uint32(head[controlStateOffset:])
	if version < minControlVersion || version > maxControlVersion || int(state) >= len(dbStates) {
		return "", fmt.Errorf("the control file %s does not look like PostgreSQL's (version %d, state %d)", path, version, state)
	}
	return dbStates[state], nil
}

// FenceDataDir stops the server on dataDir from accepting writes at once,
// as a power cut would: it kills it (KillDataDir), unless its control file
// says it runs as a standby, which accepts no writes and is left to serve
// reads and to be promoted by a person after a quorum loss. Anything else
// — a primary, a server in crash recovery, a control file that cannot be
// read — is killed. killed says a server was killed.
func FenceDataDir(dataDir string) (killed bool, err error) {
	if _, running := postmasterAlive(dataDir); running {
		if state, err := ControlState(dataDir); err == nil && state == ClusterInArchiveRecovery {
			return false, nil
		}
	}
	_, running := postmasterAlive(dataDir)
	return running, KillDataDir(dataDir)
}
