package driver

import (
	"context"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver/postgres"
)

// Local is a database on the agent's own machine, which the agent keeps
// in line with its group's record between runs (docs/design/safety.md,
// "A database that starts without its agent comes up read-only").
type Local interface {
	// Disk reads what the machine says of the database without asking
	// it: whether a server runs, and the control file's state.
	Disk(ctx context.Context) (DiskFacts, error)
	// StartPrimary starts it as the primary (or restarts it as one when it
	// came up read-only behind the boot guard), guard written back.
	StartPrimary(ctx context.Context) error
	// StartStandby starts it as it is configured on disk: a standby.
	StartStandby(ctx context.Context) error
	// Kill stops it at once, as a power cut would.
	Kill() error
	// EnsureGuard makes sure the boot guard is in place.
	EnsureGuard() error
}

// DiskFacts is what the machine says of a database.
type DiskFacts struct {
	Running bool
	// State is the control file's "Database cluster state": in
	// production, shut down, shut down in recovery, in archive recovery,
	// in crash recovery.
	State string
	// Guard says the boot guard (standby.signal) is in place.
	Guard bool
}

// Control file states.
const (
	StateInProduction     = postgres.ClusterInProduction
	StateShutDown         = postgres.ClusterShutDown
	StateShutDownRecovery = postgres.ClusterShutDownInRecovery
	StateArchiveRecovery  = postgres.ClusterInArchiveRecovery
	StateCrashRecovery    = postgres.ClusterInCrashRecovery
)

// NewLocal returns resource r of group g at site as a Local, when it is a
// database on this machine.
func NewLocal(g *config.Group, r *config.Resource, site string) (Local, bool) {
	switch r.Type {
	case "postgres":
		s, ok := r.Settings[site].(*postgres.Settings)
		if !ok {
			return nil, false
		}
		if local, _ := postgres.IsLocal(*s); !local {
			return nil, false
		}
		return pgLocal{pgInstance(*s, site)}, true
	}
	return nil, false
}

type pgLocal struct{ inst postgres.Instance }

var _ Local = pgLocal{}

func (p pgLocal) Disk(context.Context) (DiskFacts, error) {
	dir := p.inst.Settings.DataDir
	_, running := postgres.Postmaster(dir)
	d, err := postgres.ClusterState(dir)
	if err != nil {
		return DiskFacts{Running: running}, err
	}
	return DiskFacts{Running: running, State: d.State, Guard: d.StandbySignal}, nil
}

func (p pgLocal) StartPrimary(ctx context.Context) error { return p.inst.StartPrimary(ctx) }
func (p pgLocal) StartStandby(ctx context.Context) error { return p.inst.Start(ctx) }
func (p pgLocal) Kill() error                            { return postgres.KillDataDir(p.inst.Settings.DataDir) }
func (p pgLocal) EnsureGuard() error                     { return postgres.EnsureBootGuard(p.inst.Settings.DataDir) }
