package cli

import (
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/watchdog"
)

// watchdogNice is the watchdog's scheduling priority (nice value).
const watchdogNice = -10

// newWatchdogCmd is `siteflip watchdog`, which the agent starts.
func newWatchdogCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "watchdog",
		Short: "(started by the agent) fence primaries when the serve lease runs out",
		Args:  noArgs,
		RunE:  func(*cobra.Command, []string) error { return runWatchdog(e) },
	}
}

// runWatchdog is the process the agent starts to fence its primaries when
// its serve lease runs out, even if the agent itself is stuck or dead.
func runWatchdog(e *env) error {
	// Signals meant for the agent (a service manager stopping it) must not
	// end the guard: only the agent's release or the end of its pipe do.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	log := slog.New(slog.NewTextHandler(e.stderr, nil)).With("component", "watchdog")
	// A loaded machine must not delay the fence: ahead of ordinary
	// processes when allowed (root), as it is after the agent's start.
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, watchdogNice); err != nil {
		log.Debug("watchdog: cannot raise its priority", "error", err)
	}
	return watchdog.Run(e.stdin, driver.FenceNow, log)
}
