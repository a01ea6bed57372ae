package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/netns"
)

// labFlags are the flags of `siteflip lab`.
type labFlags struct {
	dir, db, group, onSite, urls string
	withNet, stack               bool
	groups, sites                int
}

// newLabCmd is `siteflip lab`.
func newLabCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "lab up [--netns]|down|disaster SITE|kill-agent SITE|heal SITE|pivot SITE -- CMD [--dir DIR]",
		Short: "a complete multi-site lab on this machine",
		Long: `lab runs a complete multi-site lab on this machine: lab up starts it, lab
down removes it; disaster SITE cuts a location's power, kill-agent SITE
stops its agent, heal SITE brings it back; pivot SITE -- CMD [ARG...] runs
CMD in SITE's drill bubble (namespaced lab); ldap start|stop|status SITE
runs the directory webshop requires at SITE (lab up starts it at brussels
only). writer, db-init, app,
storage and service are run by the lab itself.`,
	}
	var o labFlags
	fs := c.Flags()
	fs.StringVar(&o.dir, "dir", lab.DefaultDir, "`DIR` of the lab")
	fs.BoolVar(&o.withNet, "netns", false, "up: put each location in its own network namespace on a bridge (root only)")
	fs.StringVar(&o.db, "db", "", "up: `DB`, the databases the lab runs: postgres (group webshop), mariadb (group news) or both; default both when MariaDB can run here, else postgres. With --groups, what each group holds: none (the default) or postgres (a primary at brussels, a standby at antwerp)")
	fs.StringVar(&o.group, "group", "", "writer: the `GROUP` it writes to")
	fs.IntVar(&o.groups, "groups", 0, "up: the scale lab: `N` groups and no others, all active at brussels, a name each (svc-NNNN.scale.lab.); with --db postgres each (pg-NNNN) also a small PostgreSQL database")
	fs.BoolVar(&o.stack, "stack", true, "up: run webshop as a web stack: storage, an app per site, HAProxy in front, a web writer (needs PostgreSQL)")
	fs.IntVar(&o.sites, "sites", 2, "up: `N` sites: 2 (brussels, antwerp, and the witness frankfurt) or 3 (brussels, antwerp and liege, no witness; without the web stack)")
	fs.StringVar(&o.onSite, "site", "", "app, storage, service: the `SITE` they are at")
	fs.StringVar(&o.urls, "http", "", "writer: order over HTTP at the first healthy of these `URL`s (comma-separated)")
	c.RunE = func(c *cobra.Command, args []string) error {
		// What follows "--" is pivot's command, with flags of its own.
		var command []string
		if i := c.ArgsLenAtDash(); i >= 0 {
			args, command = args[:i], args[i:]
		}
		return runLab(e, c.Flags(), args, command, o)
	}
	return c
}

// runLab runs `siteflip lab up|down|disaster SITE|heal SITE|pivot SITE -- CMD`,
// and the commands the lab's processes and topology run: writer, db-init,
// app, storage and service.
func runLab(e *env, fs *pflag.FlagSet, pos, command []string, lf labFlags) error {
	dir, withNet, db, group, groups, stack, sites, onSite, urls := &lf.dir, &lf.withNet, &lf.db, &lf.group, &lf.groups, &lf.stack, &lf.sites, &lf.onSite, &lf.urls
	if len(pos) > 3 {
		return usageErrorf("unexpected argument(s): %s", strings.Join(pos[3:], " "))
	}
	// Only service and ldap take a verb and more: at most a verb and a
	// location otherwise.
	if len(pos) == 3 && pos[0] != "service" && pos[0] != "ldap" {
		return usageErrorf("unexpected argument(s): %s", pos[2])
	}
	if len(pos) == 0 {
		return usageErrorf("say what to do: lab up [--netns] [--db postgres|mariadb|both] [--sites 2|3] | down | disaster SITE | kill-agent SITE | heal SITE | pivot SITE -- CMD [ARG...]")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	o := lab.Options{Dir: *dir, Exe: exe, Out: e.stdout, DB: *db, Stack: *stack, Groups: *groups, Sites: *sites}
	if *groups < 0 {
		return usageErrorf("--groups %d: give a number of groups, 0 or more", *groups)
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
		return usageErrorf("--db %q: use postgres (group webshop), mariadb (group news), both, or none (with --groups N)", o.DB)
	}
	if (o.DB == lab.DBMariaDB || o.DB == lab.DBNone) && !flagSet(fs, "stack") {
		o.Stack = false // the stack is webshop's, on PostgreSQL
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	site := func() (string, error) {
		if len(pos) != 2 {
			return "", usageErrorf("lab %s needs a location: lab %s SITE", pos[0], pos[0])
		}
		return pos[1], nil
	}
	if command != nil && pos[0] != "pivot" {
		return usageErrorf("unexpected argument(s): -- %s", strings.Join(command, " "))
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
			return usageErrorf("lab app needs a site and nothing else: lab app --site SITE")
		}
		return lab.App{Dir: *dir, Site: *onSite, Out: e.stdout}.Run(ctx)
	case "storage": // the storage script's commands
		if *onSite == "" || len(pos) != 2 {
			return usageErrorf("lab storage needs a site and a mode: lab storage --site SITE %s|%s", lab.StorageReadOnly, lab.StorageReadWrite)
		}
		return lab.SetStorage(o, *onSite, pos[1], runStep())
	case "ldap":
		if len(pos) == 2 && pos[1] == "serve" { // run by the lab, not by people
			if *onSite == "" {
				return usageErrorf("lab ldap serve needs a site: lab ldap serve --site SITE")
			}
			return lab.ServeLDAP(ctx, o, *onSite)
		}
		if len(pos) != 3 {
			return usageErrorf("lab ldap needs a verb and a site: lab ldap start|stop|status SITE")
		}
		err := lab.LDAP(ctx, o, pos[1], pos[2])
		if errors.Is(err, lab.ErrNotRunning) {
			return &exitError{code: 3, err: err}
		}
		return err
	case "service": // the app service's commands
		if *onSite == "" || len(pos) != 3 {
			return usageErrorf("lab service needs a verb, a site and a service: lab service start|stop|status --site SITE app")
		}
		err := lab.Service(ctx, o, pos[1], *onSite, pos[2])
		if errors.Is(err, lab.ErrNotRunning) {
			// 3, as an init script's status says "not running".
			return &exitError{code: 3, err: err}
		}
		return err
	}
	return usageErrorf("unknown lab command %q: use up, down, disaster SITE, kill-agent SITE, heal SITE, ldap start|stop SITE or pivot SITE -- CMD", pos[0])
}

// flagSet says whether the flag name was given.
func flagSet(fs *pflag.FlagSet, name string) bool { return fs.Changed(name) }

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
		return usageErrorf("lab pivot needs a command: lab pivot %s -- CMD [ARG...], e.g. -- psql -h VIP -U siteflip webshop", site)
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
