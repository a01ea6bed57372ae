package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/netns"
)

// runLab runs `siteflip lab up|down|disaster SITE|heal SITE|pivot SITE -- CMD`,
// and the commands the lab's processes and topology run: writer, db-init,
// app, storage and service.
func runLab(e *env, args []string) error {
	// What follows "--" is pivot's command, with flags of its own.
	var command []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, command = args[:i], args[i+1:]
	}
	fs := e.flags("lab")
	dir := fs.String("dir", lab.DefaultDir, "`DIR` of the lab")
	withNet := fs.Bool("netns", false, "up: put each location in its own network namespace on a bridge (root only)")
	db := fs.String("db", "", "up: the databases the lab runs: postgres (group webshop), mariadb (group news) or both; default both when MariaDB can run here, else postgres. With --groups, what each group holds: none (the default) or postgres (a primary at brussels, a standby at antwerp)")
	group := fs.String("group", "", "writer: the group it writes to")
	groups := fs.Int("groups", 0, "up: the scale lab: `N` groups and no others, all active at brussels, a name each (svc-NNNN.scale.lab.); with --db postgres each (pg-NNNN) also a small PostgreSQL database")
	stack := fs.Bool("stack", true, "up: run webshop as a web stack: storage, an app per site, HAProxy in front, a web writer (needs PostgreSQL)")
	sites := fs.Int("sites", 2, "up: `N` sites: 2 (brussels, antwerp, and the witness frankfurt) or 3 (brussels, antwerp and liege, no witness; without the web stack)")
	onSite := fs.String("site", "", "app, storage, service: the `SITE` they are at")
	urls := fs.String("http", "", "writer: order over HTTP at the first healthy of these `URL`s (comma-separated)")
	pos, err := parse(fs, args, 3)
	if err != nil {
		return err
	}
	// Only service takes a verb, a site's service: at most a verb and a
	// location otherwise.
	if len(pos) == 3 && pos[0] != "service" {
		return fmt.Errorf("unexpected argument(s): %s", pos[2])
	}
	if len(pos) == 0 {
		return fmt.Errorf("say what to do: lab up [--netns] [--db postgres|mariadb|both] [--sites 2|3] | down | disaster SITE | kill-agent SITE | heal SITE | pivot SITE -- CMD [ARG...]")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	o := lab.Options{Dir: *dir, Exe: exe, Out: e.stdout, DB: *db, Stack: *stack, Groups: *groups, Sites: *sites}
	if *groups < 0 {
		return fmt.Errorf("--groups %d: give a number of groups, 0 or more", *groups)
	}
	if o.Groups > 0 {
		if o.DB == "" {
			o.DB = lab.DBNone // the scale lab: data-less groups
		}
		if !flagSet(fs, "stack") {
			o.Stack = false // the stack is webshop's, which the scale lab does not run
		}
	}
	if o.Sites == 3 {
		// Three sites run webshop alone: news and the web stack are
		// two-site groups; given explicitly, up refuses them.
		if o.DB == "" {
			o.DB = lab.DBPostgres
		}
		if !flagSet(fs, "stack") {
			o.Stack = false
		}
	}
	switch o.DB {
	case "":
		o.DB = lab.DBPostgres
		if lab.MariaDBAvailable() == nil {
			o.DB = lab.DBBoth
		}
	case lab.DBPostgres, lab.DBMariaDB, lab.DBBoth, lab.DBNone:
	default:
		return fmt.Errorf("--db %q: use postgres (group webshop), mariadb (group news), both, or none (with --groups N)", o.DB)
	}
	if (o.DB == lab.DBMariaDB || o.DB == lab.DBNone) && !flagSet(fs, "stack") {
		o.Stack = false // the stack is webshop's, on PostgreSQL
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	site := func() (string, error) {
		if len(pos) != 2 {
			return "", fmt.Errorf("lab %s needs a location: lab %s SITE", pos[0], pos[0])
		}
		return pos[1], nil
	}
	if command != nil && pos[0] != "pivot" {
		return fmt.Errorf("unexpected argument(s): -- %s", strings.Join(command, " "))
	}
	switch pos[0] {
	case "pivot":
		s, err := site()
		if err != nil {
			return err
		}
		return pivot(ctx, e, o, s, command)
	case "up":
		if !*withNet {
			return lab.Up(ctx, o)
		}
		if err := netns.Available(); err != nil {
			return fmt.Errorf("lab up --netns: %w", err)
		}
		n, err := netns.Create(ctx, netns.Options{Names: o.NetNames()})
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
		return lab.InitDatabase(ctx, o, *group, s)
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
		w := lab.Writer{Dir: *dir, Group: *group, Interval: 100 * time.Millisecond, Out: e.stdout}
		if *urls != "" {
			w.URLs = strings.Split(*urls, ",")
		}
		return w.Run(ctx)
	case "app": // run by the app's service resource (lab service start), not by people
		if *onSite == "" || len(pos) != 1 {
			return fmt.Errorf("lab app needs a site and nothing else: lab app --site SITE")
		}
		return lab.App{Dir: *dir, Site: *onSite, Out: e.stdout}.Run(ctx)
	case "storage": // the storage script's commands
		if *onSite == "" || len(pos) != 2 {
			return fmt.Errorf("lab storage needs a site and a mode: lab storage --site SITE %s|%s", lab.StorageReadOnly, lab.StorageReadWrite)
		}
		return lab.SetStorage(o, *onSite, pos[1], runStep())
	case "service": // the app service's commands
		if *onSite == "" || len(pos) != 3 {
			return fmt.Errorf("lab service needs a verb, a site and a service: lab service start|stop|status --site SITE app")
		}
		err := lab.Service(ctx, o, pos[1], *onSite, pos[2])
		if errors.Is(err, lab.ErrNotRunning) {
			// 3, as an init script's status says "not running".
			return &exitError{code: 3, err: err}
		}
		return err
	}
	return fmt.Errorf("unknown lab command %q: use up, down, disaster SITE, kill-agent SITE, heal SITE or pivot SITE -- CMD", pos[0])
}

// flagSet says whether the flag name was given.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// runStep names, for the storage script's output, the step of a run that
// runs it, from the SITEFLIP_* environment the script resource sets; ""
// when run by hand.
func runStep() string {
	step, action := os.Getenv("SITEFLIP_STEP"), os.Getenv("SITEFLIP_ACTION")
	if step == "" {
		return ""
	}
	why := step + " step"
	if action != "" {
		why += " of " + action
	}
	if run := os.Getenv("SITEFLIP_RUN"); run != "" {
		why += " " + run
	}
	if epoch := os.Getenv("SITEFLIP_EPOCH"); epoch != "" {
		why += ", epoch " + epoch
	}
	return why
}

// pivot runs command in site's drill bubble, with this process's input and
// output, and exits with its exit code.
func pivot(ctx context.Context, e *env, o lab.Options, site string, command []string) error {
	if len(command) == 0 {
		return fmt.Errorf("lab pivot needs a command: lab pivot %s -- CMD [ARG...], e.g. -- psql -h VIP -U siteflip webshop", site)
	}
	// Not ended with ctx: a ^C at the terminal reaches the command too,
	// which decides (psql cancels its query and goes on).
	cmd, err := lab.PivotCommand(context.WithoutCancel(ctx), o, site, command[0], command[1:]...)
	if err != nil {
		return err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, e.stderr
	err = cmd.Run()
	var xe *exec.ExitError
	if errors.As(err, &xe) && xe.ExitCode() >= 0 {
		return &exitError{code: xe.ExitCode(), err: errors.New("")}
	}
	if err != nil {
		return fmt.Errorf("run %s in the bubble of %s: %w", command[0], site, err)
	}
	return nil
}
