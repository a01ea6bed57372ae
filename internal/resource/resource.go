// Package resource is the model every resource type lives behind
// (docs/design/resources.md): a type declares its class and implements the
// small capabilities that class needs. The types live in
// internal/driver/<type>; internal/driver holds their table, one row each,
// and is what the agent, the watchdog and the command line call. Nothing
// outside a type's own folder knows its name.
package resource

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/status"
	"github.com/siteflip/siteflip/internal/watchdog"
)

// Type is one resource type: what `type:` names in a topology, how its
// per-site settings are decoded and checked, and its class
// (config.ResourceType). What it can do beyond that is the capabilities
// below that it implements.
type Type interface {
	Name() string
	Config() config.ResourceType
}

// Observes: the agent observes the resource at its own site.
type Observes interface {
	Observer(g *config.Group, r *config.Resource, site string) (Observer, error)
}

// Observer watches one resource at one site.
type Observer interface {
	// Observe reports the resource's state; a failure is reported in the
	// returned view (Up false, Error set), never as a Go error.
	Observe(ctx context.Context) status.ResourceView
	Close()
}

// Steps: the resource carries out the steps of a plan at a site.
type Steps interface {
	Actor(g *config.Group, r *config.Resource, site string) (Actor, error)
}

// Actor carries out the recovery steps of one resource at one site. Every
// method is idempotent. Outputs are small string maps stored with the step
// (and fed to later steps of the same resource).
type Actor interface {
	// Fence stops the resource serving, verified.
	Fence(ctx context.Context) (map[string]string, error)
	// CatchUp waits until the resource here has all that the fenced one
	// wrote; fenced is the Fence step's output.
	CatchUp(ctx context.Context, fenced map[string]string) error
	// Promote makes the resource here serve, verified.
	Promote(ctx context.Context) (map[string]string, error)
	// Rejoin makes the resource here follow the one at primarySite.
	Rejoin(ctx context.Context, primarySite string) (map[string]string, error)
	// Unfence puts a fenced resource back in service (rollback).
	Unfence(ctx context.Context) error
}

// HardFence: the resource is stopped at once, without asking it, when its
// site's serve lease runs out, by the agent or by its watchdog
// (docs/design/fencing.md). Every data type implements it: a database
// the agent could have let write must be stoppable.
type HardFence interface {
	// GuardTarget is what the watchdog needs to fence resource r of group
	// g at site; ok is false when there is nothing to fence there. A
	// database the agent cannot stop is an error, and the agent does not
	// start.
	GuardTarget(g *config.Group, r *config.Resource, site string) (t watchdog.Target, ok bool, err error)
	// FenceNow fences t at once; killed says a server ran and was killed.
	FenceNow(t watchdog.Target) (killed bool, err error)
	// Endpoint (Reachable) is where the database serves at site, which
	// the other locations try before declaring the site lost.
	Reachable
}

// Reachable: the resource serves at an address of its own at a site,
// which checks reach through their placeholders and sql.resource (a
// database's server, a DNS listener in the agent). Every data type is
// reachable through HardFence.
type Reachable interface {
	// Endpoint is the host:port where the resource serves at site; ok is
	// false when it has none there.
	Endpoint(r *config.Resource, site string) (addr string, ok bool)
}

// Keeps: a database on the agent's own machine, which the agent keeps in
// line with its group's record between runs (docs/design/safety.md, "A
// database that starts without its agent comes up read-only").
type Keeps interface {
	Local(g *config.Group, r *config.Resource, site string) (Local, bool)
}

// Local is a database on the agent's machine.
type Local interface {
	// Disk reads what the machine says of the database without asking
	// it: whether a server runs, and its state on disk.
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

// Resumer is a Local whose replica does not replicate again by itself
// once restarted: MariaDB's boot guard holds skip_slave_start. A
// PostgreSQL standby streams again on its own, and has no Resumer.
type Resumer interface {
	// ResumeReplication starts the running replica's replication as it
	// is configured, when it is stopped as a restart leaves it: not
	// while it runs or connects, nor when it stopped on an error, which a
	// person must read first. It says whether it started it.
	ResumeReplication(ctx context.Context) (bool, error)
}

// DiskFacts is what the machine says of a database.
type DiskFacts struct {
	Running bool
	// State is how the database left its data on disk (the State*
	// constants).
	State string
	// Guard says the boot guard is in place: started without its agent,
	// it comes up read-only.
	Guard bool
}

// States of a database's data on disk.
const (
	// StateInProduction: it ran as a primary and did not shut down.
	StateInProduction = "in production"
	// StateShutDown: a primary shut down cleanly.
	StateShutDown = "shut down"
	// StateShutDownRecovery: a standby shut down cleanly.
	StateShutDownRecovery = "shut down in recovery"
	// StateArchiveRecovery: it ran as a standby and did not shut down.
	StateArchiveRecovery = "in archive recovery"
	// StateCrashRecovery: it was recovering from a crash when it stopped.
	StateCrashRecovery = "in crash recovery"
)

// Checks: the type can ask its server at a site whether it is set up as
// the type needs (`siteflip check --servers`, and the agent at start).
type Checks interface {
	// CheckServer returns each problem found with the server of r at
	// site, what is wrong and the statement that fixes it, one per
	// string; an error when the server cannot be asked.
	CheckServer(ctx context.Context, g *config.Group, r *config.Resource, site string) ([]string, error)
}

// Clones: the server of a resource can be copied whole, while it serves,
// to another site's machine through the agents (a reclone across
// machines).
type Clones interface {
	// Copy writes a copy of the server of r at site, on this machine, to
	// w, in the form the type's rejoin reads.
	Copy(ctx context.Context, g *config.Group, r *config.Resource, site string, w io.Writer) error
}

// Fetch gets from the agent of site the copy of its server (Clones.Copy);
// closing it says whether it came whole.
type Fetch func(ctx context.Context, site string) (io.ReadCloser, error)

// CopiesFrom: an actor whose rejoin may reclone from a copy of another
// site's server takes how to fetch one.
type CopiesFrom interface {
	CopyWith(Fetch)
}

// Synchronizes: the resource can make its standby confirm every commit
// (a resource with `synchronous: true`).
type Synchronizes interface {
	Sync(g *config.Group, r *config.Resource, site string) (Synchronous, error)
}

// Synchronous is synchronous replication driven from the primary's site,
// towards the standby at the group's other site. Each call checks the
// server rather than assuming.
type Synchronous interface {
	// Read says what the server does now.
	Read(ctx context.Context) (SyncState, error)
	// Require makes commits wait for the standby.
	Require(ctx context.Context) error
	// Release lets commits through without the standby.
	Release(ctx context.Context) error
	// SyncedSince says whether the standby has flushed everything written
	// up to since (a position from an earlier call; "" starts: it returns
	// the position to wait for).
	SyncedSince(ctx context.Context, since string) (flushed bool, pos string, err error)
}

// SyncState is what a primary says of synchronous replication towards
// its standby.
type SyncState struct {
	// Enabled: commits of new sessions wait for some standby.
	Enabled bool
	// Requires: they wait for this resource's standby.
	Requires bool
	// Confirms: the standby confirms commits now.
	Confirms bool
	// Streaming: the standby is connected and streaming.
	Streaming bool
	// Blocking: commits wait and no standby confirms them.
	Blocking bool
	// LongestWait is how long the earliest waiting commit has waited.
	LongestWait time.Duration
	// Weakened lists the settings that let commits stop waiting for the
	// standby (a role or database that opts out).
	Weakened []string
}

// Moves: the resource moves clients rather than holding data (class
// traffic). It runs in the agent as long as the agent runs, and logs to
// log, the agent's logger (nil: nowhere), adding its component and, on
// what concerns one group, group and resource.
type Moves interface {
	Start(g *config.Group, r *config.Resource, site string, log *slog.Logger) (Network, error)
}

// Network is a traffic resource at one site: it sends the group's clients
// to a site (docs/design/network.md). Every method verifies its effect.
type Network interface {
	// Activate makes this site the one clients reach.
	Activate(ctx context.Context) (map[string]string, error)
	// Soften keeps this site reachable but no longer preferred (the fence
	// step: make before break).
	Soften(ctx context.Context) error
	// Park makes this site attract no clients (the standby posture).
	Park(ctx context.Context) error
	// Withdraw stops attracting clients at once, best effort: the serve
	// lease ran out.
	Withdraw()
	// Observe reports whether this site is the one clients reach (role
	// primary) or ready to be (standby, Streaming true).
	Observe(ctx context.Context) status.ResourceView
	// Follow tells the resource which site is active, for the parts that
	// answer for every site (an authoritative DNS server in every agent).
	Follow(ctx context.Context, active string)
	Close()
}

// Drills: the resource can be recovered into a drill's bubble at a site,
// from the standby there, without touching production or its replication
// (docs/design/drills.md).
type Drills interface {
	Drill(g *config.Group, r *config.Resource, site string, b Bubble) (Drill, error)
}

// Bubble is where a drill runs at a site: an address production clients
// never use, and optionally a network namespace that holds it.
type Bubble struct {
	// Run is the drill's run ID: it names everything the drill creates, so
	// that leftovers can be told from the drill in progress.
	Run string
	// Address is the bubble's IP address at the site: a drill copy
	// listens there and nowhere else.
	Address string
	// Netns, when set, is the network namespace the copy runs in (then
	// Address may be production's own service address).
	Netns string
}

// Drill is one resource's part of one drill at one site. Every method is
// idempotent; Teardown also removes a half-made clone.
type Drill interface {
	// Clone makes a consistent copy of the standby here, its replication
	// untouched. Output: OutputDataAge at least.
	Clone(ctx context.Context) (map[string]string, error)
	// Start starts the copy in the bubble, as an independent primary that
	// knows nothing of production. Output: OutputAddress.
	Start(ctx context.Context) (map[string]string, error)
	// Teardown stops the copy and removes everything the drill made.
	Teardown(ctx context.Context) error
	// Leftovers lists the run IDs of every drill of this resource whose
	// remains are on this machine (the bubble's Run is ignored).
	Leftovers() ([]string, error)
}

// Step outputs every drill copy gives.
const (
	// OutputDataAge is the clone's data age in seconds (a decimal): now
	// minus the newest write it holds; the RPO a failover at that moment
	// would have had.
	OutputDataAge = "data_age"
	// OutputAddress is where the copy serves, host:port.
	OutputAddress = "address"
)

// Verifies: the resource is a check (class check): it proves that the
// recovered stack works.
type Verifies interface {
	Verifier(g *config.Group, r *config.Resource, site string) (Verifier, error)
}

// Verifier runs one check at one site.
type Verifier interface {
	// Verify runs the check once, bounded by its own timeout and ctx.
	// targets gives, per resource of the group with an address of its own
	// (Reachable), the host:port to ask: production's server at the
	// active site, or the drill's copy. The output says what was seen
	// (OutputSeen); the error says what was expected and what was seen
	// instead.
	Verify(ctx context.Context, targets map[string]string) (map[string]string, error)
}

// BubbleVerifier is a Verifier that can run in a drill's bubble: in a
// bubble with a network namespace, where the copies are reachable from
// inside only, its connections start in there.
type BubbleVerifier interface {
	Verifier
	// InBubble returns the check as it runs in a drill with bubble b;
	// the Verifier itself is left as it is, for real runs.
	InBubble(b Bubble) Verifier
}

// OutputSeen is what a check saw, in words.
const OutputSeen = "seen"

// RunInfo is the run a step belongs to.
type RunInfo struct {
	Group  string
	Action string // plan.Action
	Run    string // the run's ID
	From   string // the active site when the run was planned
	To     string // the active site once it is done (a drill: the drill site)
	Epoch  int64  // the group's epoch when the run was planned
	Site   string // where the step runs
	Step   string // the step's kind (plan.Kind)
}

// InRun: an actor or drill that is told which run its next step belongs
// to, before the step (a script passes it on in its environment).
type InRun interface {
	InRun(RunInfo)
}

// Yields: a program the agent stops when its site's serve lease runs out
// (a service with stop_on_lease_loss): it may act on the data, so it must
// not outlive the site's right to serve.
type Yields interface {
	// Yield returns how to stop resource r of group g at site; ok is
	// false when it is not to be stopped on lease loss.
	Yield(g *config.Group, r *config.Resource, site string) (stop func(ctx context.Context) error, ok bool)
}

// Outputs of a service or script step.
const (
	// OutputSkipped says why a step did nothing (a script with no command
	// for the step's kind, a service with no drill commands).
	OutputSkipped = "skipped"
	// OutputStdout and OutputStderr are the end of a command's output,
	// kept in the run (bounded).
	OutputStdout = "stdout"
	OutputStderr = "stderr"
)
