package cli

import (
	"os/signal"
	"syscall"

	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/logging"
	"github.com/siteflip/siteflip/internal/watchdog"
)

// watchdogNice is the watchdog's scheduling priority (nice value).
const watchdogNice = -10

// runWatchdog is the process the agent starts to fence its primaries when
// its serve lease runs out, even if the agent itself is stuck or dead.
func runWatchdog(e *env, args []string) error {
	fs := e.flags("watchdog")
	// The agent passes its own: the watchdog's lines go where the agent's
	// go, in the same format.
	logFormat := fs.String("log-format", logging.FormatText, "text or json")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	log, err := logging.New(e.stderr, *logFormat, *logLevel)
	if err != nil {
		return &exitError{exitUsage, err}
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
