package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/siteflip/siteflip/internal/agent"
)

// runAgent runs one location's agent. SIGTERM or SIGINT stops it cleanly;
// a second signal exits at once.
func runAgent(e *env, args []string) error {
	fs := e.flags("agent")
	site := fs.String("site", "", "`NAME` of the location this agent runs (required)")
	data := fs.String("data", "", "`DIR` for the embedded etcd member's data (required unless --etcd-endpoints)")
	endpoints := fs.String("etcd-endpoints", "", "comma-separated `URLS` of an existing etcd cluster to join instead of embedding a member")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *site == "" {
		return fmt.Errorf("--site NAME is required: name the location this agent runs")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", *logLevel)
	}
	t, err := e.load()
	if err != nil {
		return err
	}
	var eps []string
	if *endpoints != "" {
		eps = strings.Split(*endpoints, ",")
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

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
		WatchdogExe: exe,
		Topology:    t, Site: *site, DataDir: *data, EtcdEndpoints: eps,
		Logger: log, Version: Version,
	})
}
