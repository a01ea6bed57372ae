package cli

import (
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/logging"
	"github.com/siteflip/siteflip/internal/watchdog"
)

// watchdogNice is the watchdog's scheduling priority (nice value).
const watchdogNice = -10

// newWatchdogCmd is `siteflip watchdog`, which the agent starts.
func newWatchdogCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "watchdog",
		Short: "(started by the agent) fence primaries when the serve lease runs out",
		Args:  noArgs,
	}
	// The agent passes its own: the watchdog's lines go where the agent's
	// go, in the same format.
	logFormat := c.Flags().String("log-format", logging.FormatText, "`FORMAT`: text or json")
	logLevel := c.Flags().String("log-level", "info", "`LEVEL`: debug, info, warn or error")
	c.RunE = func(*cobra.Command, []string) error { return runWatchdog(e, *logFormat, *logLevel) }
	return c
}

// runWatchdog is the process the agent starts to fence its primaries when
// its serve lease runs out, even if the agent itself is stuck or dead.
func runWatchdog(e *env, logFormat, logLevel string) error {
	log, err := logging.New(e.stderr, logFormat, logLevel)
	if err != nil {
		return usageErrorf("%v", err)
	}
	log = log.With("component", "watchdog")
	// Signals meant for the agent (a service manager stopping it) must not
	// end the guard: only the agent's release or the end of its pipe do.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	// A loaded machine must not delay the fence: ahead of ordinary
	// processes when allowed (root), as it is after the agent's start.
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, watchdogNice); err != nil {
		log.Debug("watchdog: cannot raise its priority", "error", err)
	}
	return watchdog.Run(e.stdin, driver.FenceNow, log)
}
