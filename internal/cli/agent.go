package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/agent"
	"github.com/siteflip/siteflip/internal/logging"
	"github.com/siteflip/siteflip/internal/priority"
)

// newAgentCmd is `siteflip agent`.
func newAgentCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "agent --site NAME [--data DIR] [--etcd-endpoints URLS]",
		Short: "run the agent of one location (site or witness)",
		Long: `agent runs the agent of one location until SIGTERM or SIGINT stops it
cleanly; a second signal exits at once.`,
		Args: noArgs,
	}
	fs := c.Flags()
	site := fs.String("site", "", "`NAME` of the location this agent runs (required)")
	data := fs.String("data", "", "`DIR` for the embedded etcd member's data (required unless --etcd-endpoints)")
	endpoints := fs.String("etcd-endpoints", "", "comma-separated `URLS` of an existing etcd cluster to join instead of embedding a member")
	logFormat := fs.String("log-format", logging.FormatText, "`FORMAT`: text, or json for a log shipper (docs/logs.md)")
	logLevel := fs.String("log-level", "info", "`LEVEL`: debug, info, warn or error")
	nice := fs.Int("nice", priority.Agent, "`N`: the agent runs at this nice value (root or CAP_SYS_NICE), and what it starts at the normal one; 0 leaves its priority alone")
	c.RunE = func(*cobra.Command, []string) error {
		return runAgent(e, *site, *data, *endpoints, *logFormat, *logLevel, *nice)
	}
	return c
}

// runAgent runs one location's agent. SIGTERM or SIGINT stops it cleanly;
// a second signal exits at once.
func runAgent(e *env, site, data, endpoints, logFormat, logLevel string, nice int) error {
	if site == "" {
		return usageErrorf("--site NAME is required: name the location this agent runs")
	}
	log, err := logging.New(e.stderr, logFormat, logLevel)
	if err != nil {
		return usageErrorf("%v", err)
	}
	t, err := e.load()
	if err != nil {
		return err
	}
	var eps []string
	if endpoints != "" {
		eps = strings.Split(endpoints, ",")
	}
	if nice > 0 || nice < -20 {
		return usageErrorf("--nice %d: give a value from -20 (highest priority) to 0 (leave it alone); above 0 the agent would wait behind the databases it fences", nice)
	}
	if nice < 0 {
		// The serve lease is renewed every tenth of a lease: on a machine
		// busy with the databases the agent supervises (many promotions at
		// once), it must not wait behind them.
		if what, err := priority.Raise(nice); err != nil {
			log.Warn("the agent runs at the normal priority: a machine busy with its databases can make its serve lease run out", "error", err)
		} else {
			log.Info("the agent runs at a raised priority; the servers, services and tools it starts run at the normal one", "raised", what)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // the next signal is not caught...
		second := make(chan os.Signal, 1)
		signal.Notify(second, syscall.SIGTERM, syscall.SIGINT)
		<-second // ...except here, where it means: exit now.
		log.Warn("second signal: exiting at once")
		os.Exit(1)
	}()
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the siteflip binary to start the watchdog: %w", err)
	}
	return agent.Run(ctx, agent.Options{
		WatchdogExe: exe, WatchdogArgs: []string{"--log-format", logFormat, "--log-level", logLevel},
		Topology: t, Site: site, DataDir: data, EtcdEndpoints: eps,
		Logger: log, Version: Version,
	})
}
