// Package cli owns siteflip's command line: it parses each verb's flags,
// loads the topology and hands off to the package that does the work.
// Every verb is a cobra command; exit codes are the same for all of them
// (docs/cli.md).
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/buildinfo"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/plan"
)

// Version is the build's version (internal/buildinfo).
var Version = buildinfo.String()

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
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a wrong command line: exit 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// refusedErrorf is a request the topology already refuses (an unknown
// group or site): exit 3, as an agent's refusal.
func refusedErrorf(format string, args ...any) error {
	return &exitError{code: exitRefused, err: fmt.Errorf(format, args...)}
}

type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	config         string // --config, $SITEFLIP_CONFIG or ./siteflip.yaml
	// cert and key are a person's own credential (--cert/--key, or
	// $SITEFLIP_CERT/$SITEFLIP_KEY), used instead of operator: in the
	// topology, so that runs and the audit trail name that person.
	cert, key string
	// ran is set once the command line is parsed and a verb's own code
	// runs (markRan): an error before is a usage error.
	ran bool
}

// command is one verb of the command line: the row that adds it to the
// tree. name, args and summary fill in what its cobra command leaves
// empty.
type command struct {
	name, args, summary string
	build               verb
}

// verb builds a verb's cobra command.
type verb func(e *env) *cobra.Command

// cobraVerb is a row's builder: cobraVerb(newXxxCmd).
func cobraVerb(build func(e *env) *cobra.Command) verb { return build }

// commands are the verbs, in the order help lists them. A new verb is one
// row here, built by its own newXxxCmd.
func commands() []command {
	return []command{
		{"agent", "--site NAME [--data DIR] [--etcd-endpoints URLS]", "run the agent of one location (site or witness)", cobraVerb(newAgentCmd)},
		{"check", "[--site NAME] [--servers] [-o text|json]", "validate and lint a topology; FILE:LINE:COL errors", cobraVerb(newCheckCmd)},
		{"cert", "init|site NAME|operator NAME --role R|renew NAME|list [--dir DIR]", "make and renew the CA, locations' and operators' certificates", cobraVerb(newCertCmd)},
		{"token", "[--role viewer|operator|admin] [--ttl 8h] [-o text|json]", "a login token for the dashboard, and a link to each location's", cobraVerb(newTokenCmd)},
		{"status", "[-o text|json] [--watch] [-v]", "sites, who sees whom, the controller, groups and replication lag", cobraVerb(newStatusCmd)},
		{"readiness", "[GROUP...|--all|--label K=V] [-o text|json]", "is every group ready to fail over now? each reason, and what fixes it", cobraVerb(newReadinessCmd)},
		{"whatif", "[--lose SITE[,SITE…]] [--lose-links A-B[,…]] [--at LAT,LON --radius 60km] [--level NAME] [-o text|json]", "what a disaster would do to every group, played against the live state", cobraVerb(newWhatIfCmd)},
		{"failover", "GROUP [--to SITE] [--yes] [--dry-run] [--accept-data-loss] [--force]", "unplanned: recover the group at the other site now", cobraVerb(newRunCmd(plan.Failover))},
		{"switchover", "GROUP --to SITE [--yes] [--dry-run] [--at TIME] | GROUP --cancel", "planned: move the group with no data loss", cobraVerb(newRunCmd(plan.Switchover))},
		{"reprotect", "GROUP [--yes] [--dry-run]", "rebuild replication toward the active site", cobraVerb(newRunCmd(plan.Reprotect))},
		{"failback", "GROUP [--yes] [--dry-run]", "switch over back to the preferred site", cobraVerb(newRunCmd(plan.Failback))},
		{"drill", "GROUP [--at SITE] [--keep DURATION] [--yes] [--dry-run] | GROUP --cleanup", "recover a copy in the bubble, check it, tear it down", cobraVerb(newRunCmd(plan.Drill))},
		{"approve", "RUN [--step STEP] [--reason TEXT]", "let a run waiting at an approval step go on", cobraVerb(newVerdictCmd(true))},
		{"reject", "RUN [--step STEP] [--reason TEXT]", "stop a run waiting at an approval step", cobraVerb(newVerdictCmd(false))},
		{"runs", "[GROUP] [--since DURATION|TIME] [-o json]", "history of runs, who started them, RTO", cobraVerb(newRunsCmd)},
		{"run", "ID [-o json]", "one run's timeline, step by step", cobraVerb(newRunShowCmd)},
		{"report", "RUN [-o md|json|html] [--out FILE]", "one run's report: RTO and RPO against the targets, steps, checks", cobraVerb(newReportCmd)},
		{"audit", "[--since DURATION|TIME] [-o json]", "who asked what of the agents, and what became of it", cobraVerb(newAuditCmd)},
		{"pause", "GROUP|--all|--site S|--label K=V [--reason T]", "maintenance: no automatic failover for the group until resume", cobraVerb(newPauseCmd)},
		{"resume", "GROUP|--all|--site S|--label K=V", "end a pause: automatic failover on again", cobraVerb(newResumeCmd)},
		{"lab", "up [--netns]|down|disaster SITE|kill-agent SITE|heal SITE|pivot SITE -- CMD [--dir DIR]", "a complete multi-site lab on this machine", cobraVerb(newLabCmd)},
		{"watchdog", "", "(started by the agent) fence primaries when the serve lease runs out", cobraVerb(newWatchdogCmd)},
		{"version", "", "print the version", cobraVerb(newVersionCmd)},
	}
}

// rootLong is the root command's help, after its one-line summary.
const rootLong = `siteflip recovers groups of services at another site when a site is lost.

Every command takes --config FILE (also $SITEFLIP_CONFIG, else ./siteflip.yaml when it
exists, else /etc/siteflip/siteflip.yaml), and
--cert FILE --key FILE (also $SITEFLIP_CERT, $SITEFLIP_KEY) for your own credential.

Instead of GROUP, failover, switchover, reprotect and failback take a selection: --all,
--site SITE (the groups active there), --label KEY=VALUE (repeatable); a group must match
every one given. --parallel N (default 8) bounds the runs going on at once.

Exit codes: 0 done, 1 failed (a run failed or rolled back, a check found problems),
2 usage (the command line is wrong), 3 refused (by an agent, or an unknown group or site),
4 unreachable (no agent answered), 5 busy (a run holds the group). See docs/cli.md.`

// newRootCmd is the whole command line.
func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "siteflip",
		Short:         "siteflip recovers groups of services at another site when a site is lost",
		Long:          rootLong,
		Version:       Version,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	cobra.EnableCommandSorting = false // help lists the verbs in the table's order
	root.SetVersionTemplate("siteflip {{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&e.config, "config", "", "topology `FILE` (default $SITEFLIP_CONFIG, else ./siteflip.yaml when it exists, else /etc/siteflip/siteflip.yaml)")
	pf.StringVar(&e.cert, "cert", "", "your own client certificate `FILE` (default $SITEFLIP_CERT, else operator.cert_file)")
	pf.StringVar(&e.key, "key", "", "its key `FILE` (default $SITEFLIP_KEY, else operator.key_file)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [VERB]",
		Short: "help about any verb",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return usageErrorf("no verb %q: `siteflip help` lists them", strings.Join(args, " "))
			}
			cmd.InitDefaultHelpFlag()
			cmd.InitDefaultVersionFlag()
			return cmd.Help()
		},
		ValidArgsFunction: func(c *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			var names []string
			if len(args) == 0 {
				for _, sub := range c.Root().Commands() {
					if sub.IsAvailableCommand() {
						names = append(names, sub.Name())
					}
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
	})
	for _, row := range commands() {
		c := row.build(e)
		if c.Use == "" || c.Use == row.name {
			c.Use = strings.TrimSpace(row.name + " " + row.args)
		}
		if c.Short == "" {
			c.Short = row.summary
		}
		root.AddCommand(c)
	}
	markRan(e, root)
	return root
}

// markRan makes every verb's RunE, and its subcommands', note that the
// command line was parsed: an error before it runs is a usage error.
func markRan(e *env, c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			e.ran = true
			return run(cmd, args)
		}
	}
	for _, sub := range c.Commands() {
		markRan(e, sub)
	}
}

// Main runs the command line and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(e)
	if noVerb(root, args) {
		// No verb (perhaps global flags): the usage on stderr, and exit 2.
		root.InitDefaultHelpCmd()
		root.InitDefaultCompletionCmd()
		fmt.Fprint(stderr, root.UsageString())
		return exitUsage
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if !e.ran {
		code = exitUsage // cobra's own: an unknown verb or flag, a wrong number of arguments
	}
	if msg := err.Error(); msg != "" {
		name := "siteflip"
		if cmd != nil {
			name = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "%s: %s\n", name, msg)
	}
	if code == exitUsage && err.Error() != "" && cmd != nil {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// noVerb says whether args name no verb: nothing, or only global flags
// that parse (--help and --version are not defined yet, so they do not).
func noVerb(root *cobra.Command, args []string) bool {
	if len(args) == 0 {
		return true
	}
	c, _, err := root.Find(args)
	if err != nil || c != root {
		return false
	}
	return root.ParseFlags(args) == nil && root.Flags().NArg() == 0
}

// exitCode maps an error to the exit code scripts read (docs/cli.md).
func exitCode(err error) int {
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, api.ErrBusy):
		return exitBusy
	case errors.Is(err, api.ErrRefused):
		return exitRefused
	case errors.Is(err, api.ErrUnreachable):
		return exitUnreachable
	}
	return exitFailed
}

// newVersionCmd is `siteflip version`, the same as --version.
func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(e.stdout, "siteflip", Version)
			return nil
		},
	}
}

// noArgs refuses positional arguments, naming them.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected argument(s): %s", strings.Join(args, " "))
	}
	return nil
}

// maxArgs refuses more than n positional arguments, naming the extra ones.
func maxArgs(n int) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > n {
			return usageErrorf("unexpected argument(s): %s", strings.Join(args[n:], " "))
		}
		return nil
	}
}

// outputFlag adds -o/--output with its accepted formats; the first is the
// default.
func outputFlag(fs *pflag.FlagSet, formats ...string) *string {
	return fs.StringP("output", "o", formats[0], "output `FORMAT`: "+strings.Join(formats[:len(formats)-1], ", ")+" or "+formats[len(formats)-1])
}

// checkOutput refuses a -o format not among formats.
func checkOutput(got string, formats ...string) error {
	for _, f := range formats {
		if got == f {
			return nil
		}
	}
	return usageErrorf("-o %q: use %s or %s", got, strings.Join(formats[:len(formats)-1], ", "), formats[len(formats)-1])
}

// isTerminal says whether r is a terminal, where a person can answer a
// question; tests replace it.
var isTerminal = func(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// configPath resolves --config, then $SITEFLIP_CONFIG, then ./siteflip.yaml
// when it exists, then /etc/siteflip/siteflip.yaml (config.DefaultPath).
func (e *env) configPath() string {
	return config.DefaultPath(e.config)
}

// load reads and validates the topology, with the caller's own
// credential in place of operator: when one is given.
func (e *env) load() (*config.Topology, error) {
	t, err := config.Load(e.configPath(), driver.Types())
	if err != nil {
		return nil, err
	}
	if e.cert == "" {
		e.cert = os.Getenv("SITEFLIP_CERT")
	}
	if e.key == "" {
		e.key = os.Getenv("SITEFLIP_KEY")
	}
	if (e.cert == "") != (e.key == "") {
		return nil, usageErrorf("give both --cert and --key (or $SITEFLIP_CERT and $SITEFLIP_KEY), or neither")
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

// completeGroups completes a verb's GROUP with the topology's groups.
func (e *env) completeGroups(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	t, err := e.load()
	if err != nil || len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, g := range t.Groups {
		names = append(names, g.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeSites completes a flag's SITE with the topology's sites (not
// its witnesses, where no group runs).
func (e *env) completeSites(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	t, err := e.load()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, s := range t.Sites {
		if s.Role == config.RoleSite {
			names = append(names, s.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
