// Package cli owns siteflip's command line: it parses each verb's flags,
// loads the topology and hands off to the package that does the work.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/buildinfo"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/plan"
)

// Version is the build's version (internal/buildinfo).
var Version = buildinfo.String()

// errUsage marks an error already explained by a usage message.
var errUsage = errors.New("usage")

// Exit codes, the same for every verb (docs/cli.md).
const (
	exitOK          = 0
	exitFailed      = 1 // the work was tried and failed: a run failed, a check found problems
	exitUsage       = 2 // the command line is wrong: unknown verb or flag, missing argument
	exitRefused     = 3 // an agent refused: a safety rule, the policy, a role, an unknown group or site
	exitUnreachable = 4 // no agent answered
	exitBusy        = 5 // the group is taken by a run already; try again when it ends
)

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	config         string // --config, $SITEFLIP_CONFIG or ./siteflip.yaml
	// cert and key are a person's own credential (--cert/--key, or
	// $SITEFLIP_CERT/$SITEFLIP_KEY), used instead of operator: in the
	// topology, so that runs and the audit trail name that person.
	cert, key string
}

type command struct {
	name, args, summary string
	run                 func(e *env, args []string) error
}

func commands() []command {
	return []command{
		{"agent", "--site NAME [--data DIR] [--etcd-endpoints URLS]", "run the agent of one location (site or witness)", runAgent},
		{"check", "", "validate and lint a topology; FILE:LINE:COL errors", runCheck},
		{"status", "[-o text|json] [--watch]", "sites, who sees whom, the controller, groups and replication lag", runStatus},
		{"failover", "GROUP [--to SITE] [--yes] [--accept-data-loss] [--force]", "unplanned: recover the group at the other site now", runAction(plan.Failover)},
		{"switchover", "GROUP --to SITE", "planned: move the group with no data loss", runAction(plan.Switchover)},
		{"reprotect", "GROUP", "rebuild replication toward the active site", runAction(plan.Reprotect)},
		{"failback", "GROUP", "switch over back to the preferred site", runAction(plan.Failback)},
		{"drill", "GROUP [--at SITE] [--keep DURATION] [--yes] | GROUP --cleanup", "recover a copy in the bubble, check it, tear it down", runAction(plan.Drill)},
		{"approve", "RUN [--step STEP] [--reason TEXT]", "let a run waiting at an approval step go on", runVerdict(true)},
		{"reject", "RUN [--step STEP] [--reason TEXT]", "stop a run waiting at an approval step", runVerdict(false)},
		{"runs", "[GROUP] [--since DURATION|TIME] [-o json]", "history of runs, who started them, RTO", runRuns},
		{"run", "ID [-o json]", "one run's timeline, step by step", runRun},
		{"report", "RUN [-o md|json|html] [--out FILE]", "one run's report: RTO and RPO against the targets, steps, checks", runReport},
		{"audit", "[--since DURATION|TIME] [-o json]", "who asked what of the agents, and what became of it", runAudit},
		{"pause", "GROUP|--all|--site S|--label K=V [--reason T]", "maintenance: no automatic failover for the group until resume", cobraVerb(newPauseCmd)},
		{"resume", "GROUP|--all|--site S|--label K=V", "end a pause: automatic failover on again", cobraVerb(newResumeCmd)},
		{"lab", "up [--netns]|down|disaster SITE|kill-agent SITE|heal SITE|pivot SITE -- CMD [--dir DIR]", "a complete multi-site lab on this machine", runLab},
		{"watchdog", "", "(started by the agent) fence primaries when the serve lease runs out", runWatchdog},
		{"version", "", "print the version", func(e *env, _ []string) error { fmt.Fprintln(e.stdout, "siteflip", Version); return nil }},
	}
}

// Main runs the command line and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	global := flag.NewFlagSet("siteflip", flag.ContinueOnError)
	global.SetOutput(stderr)
	global.StringVar(&e.config, "config", "", "topology `FILE` (default $SITEFLIP_CONFIG, else ./siteflip.yaml)")
	global.StringVar(&e.cert, "cert", os.Getenv("SITEFLIP_CERT"), "your own client certificate `FILE` (default $SITEFLIP_CERT, else operator.cert_file)")
	global.StringVar(&e.key, "key", os.Getenv("SITEFLIP_KEY"), "its key `FILE` (default $SITEFLIP_KEY, else operator.key_file)")
	global.Usage = func() { usage(stderr) }
	if err := global.Parse(args); err != nil {
		return 2
	}
	rest := global.Args()
	if len(rest) == 0 {
		usage(stderr)
		return 2
	}
	for _, c := range commands() {
		if c.name != rest[0] {
			continue
		}
		err := c.run(e, rest[1:])
		var ee *exitError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
			return 2
		case errors.As(err, &ee):
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintf(stderr, "siteflip %s: %v\n", c.name, ee.err)
			}
			return ee.code
		default:
			fmt.Fprintf(stderr, "siteflip %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "siteflip: unknown command %q\n\n", rest[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: siteflip [--config FILE] COMMAND [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %-49s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nEvery command takes --config FILE (also $SITEFLIP_CONFIG, default ./siteflip.yaml), and")
	fmt.Fprintln(w, "--cert FILE --key FILE (also $SITEFLIP_CERT, $SITEFLIP_KEY) for your own credential.")
	fmt.Fprintln(w, "\nInstead of GROUP, failover, switchover, reprotect and failback take a selection: --all,")
	fmt.Fprintln(w, "--site SITE (the groups active there), --label KEY=VALUE (repeatable); a group must match")
	fmt.Fprintln(w, "every one given. --parallel N (default 8) bounds the runs going on at once.")
}

// cobraVerb runs a verb built with cobra under the flag-based dispatcher,
// until every verb is a cobra command.
func cobraVerb(build func(e *env) *cobra.Command) func(e *env, args []string) error {
	return func(e *env, args []string) error {
		c := build(e)
		c.SetArgs(args)
		c.SetIn(e.stdin)
		c.SetOut(e.stdout)
		c.SetErr(e.stderr)
		c.SilenceErrors = true
		c.SilenceUsage = true
		return c.Execute()
	}
}

// flags returns a flag set for a command that also accepts --config after
// the verb.
func (e *env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("siteflip "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&e.config, "config", e.config, "topology `FILE`")
	return fs
}

// configPath resolves --config, then $SITEFLIP_CONFIG, then ./siteflip.yaml.
func (e *env) configPath() string {
	if e.config != "" {
		return e.config
	}
	if p := os.Getenv("SITEFLIP_CONFIG"); p != "" {
		return p
	}
	return "siteflip.yaml"
}

// load reads and validates the topology, with the caller's own
// credential in place of operator: when one is given.
func (e *env) load() (*config.Topology, error) {
	t, err := config.Load(e.configPath(), driver.Types())
	if err != nil {
		return nil, err
	}
	if (e.cert == "") != (e.key == "") {
		return nil, errors.New("give both --cert and --key (or $SITEFLIP_CERT and $SITEFLIP_KEY), or neither")
	}
	if e.cert != "" {
		t.Operator = config.Credential{CertFile: e.cert, KeyFile: e.key}
	}
	return t, nil
}

// client loads the topology and returns a client of its agents.
func (e *env) client() (*config.Topology, *api.Client, error) {
	t, err := e.load()
	if err != nil {
		return nil, nil, err
	}
	c, err := api.NewClient(t)
	if err != nil {
		return nil, nil, err
	}
	return t, c, nil
}

// parse parses flags and refuses stray arguments beyond max positional ones.
func parse(fs *flag.FlagSet, args []string, max int) ([]string, error) {
	// Allow flags after positional arguments: "lab disaster brussels --dir X".
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) > max {
		return nil, fmt.Errorf("unexpected argument(s): %s", strings.Join(pos[max:], " "))
	}
	return pos, nil
}
