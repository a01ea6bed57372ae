package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/netns"
)

// runLab runs `siteflip lab up|down|disaster SITE|heal SITE`.
func runLab(e *env, args []string) error {
	fs := e.flags("lab")
	dir := fs.String("dir", lab.DefaultDir, "`DIR` of the lab")
	withNet := fs.Bool("netns", false, "up: put each location in its own network namespace on a bridge (root only)")
	pos, err := parse(fs, args, 2)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("say what to do: lab up [--netns] | down | disaster SITE | kill-agent SITE | heal SITE")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	o := lab.Options{Dir: *dir, Exe: exe, Out: e.stdout}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	site := func() (string, error) {
		if len(pos) != 2 {
			return "", fmt.Errorf("lab %s needs a location: lab %s SITE", pos[0], pos[0])
		}
		return pos[1], nil
	}
	switch pos[0] {
	case "up":
		if !*withNet {
			return lab.Up(ctx, o)
		}
		if err := netns.Available(); err != nil {
			return fmt.Errorf("lab up --netns: %w", err)
		}
		n, err := netns.Create(ctx, netns.Options{Names: lab.NetNames()})
		if err != nil {
			return err
		}
		o.Net, o.NetOwned = n, true
		if err := lab.Up(ctx, o); err != nil {
			_ = n.Close() // new, and used by nothing that still runs
			return err
		}
		return nil
	case "db-init": // run by lab up in a site's namespace, not by people
		s, err := site()
		if err != nil {
			return err
		}
		return lab.InitDatabase(ctx, o, s)
	case "down":
		return lab.Down(o)
	case "kill-agent":
		s, err := site()
		if err != nil {
			return err
		}
		return lab.KillAgent(o, s)
	case "disaster":
		s, err := site()
		if err != nil {
			return err
		}
		return lab.Disaster(o, s)
	case "heal":
		s, err := site()
		if err != nil {
			return err
		}
		return lab.Heal(ctx, o, s)
	case "writer": // started by lab up, not by people
		return lab.Writer{Dir: *dir, Interval: 100 * time.Millisecond, Out: e.stdout}.Run(ctx)
	}
	return fmt.Errorf("unknown lab command %q: use up, down, disaster SITE, kill-agent SITE or heal SITE", pos[0])
}
