package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/jsonview"
)

// newCheckCmd is `siteflip check`.
func newCheckCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "check [--site NAME] [--servers] [-o text|json]",
		Short: "validate and lint a topology; FILE:LINE:COL errors",
		Long: `check validates and lints the topology: every problem on its own line,
FILE:LINE:COL: field: problem, and exit 1 when any is an error (warnings
do not count). It also checks the credentials this machine uses: those
whose keys are here, or with --site NAME that location's, as its agent
would at start. With -o json it writes one document (docs/json.md) whose
problems have file, line, column, field, message and severity.`,
		Args: noArgs,
	}
	site := c.Flags().String("site", "", "check the credential of location `NAME` (run it on that location's machine); without it, the credentials whose keys are here")
	servers := c.Flags().Bool("servers", false, "also ask every database server, read-only, whether it is set up as siteflip needs (binary log, GTIDs, grants …), with the statement that fixes each problem")
	output := outputFlag(c.Flags(), "text", "json")
	c.RunE = func(*cobra.Command, []string) error { return runCheck(e, *site, *servers, *output) }
	return c
}

// runCheck validates and lints the topology: every problem on its own line,
// exit 1 when any is an error.
func runCheck(e *env, site string, servers bool, output string) error {
	if err := checkOutput(output, "text", "json"); err != nil {
		return err
	}
	if servers && output == "json" {
		return usageErrorf("--servers writes text only: leave out -o json, or --servers")
	}
	path := e.configPath()
	t, probs, err := config.Check(path, driver.Types())
	if err != nil {
		return err
	}
	// Each machine holds only its own key (docs/certificates.md): check the
	// ones this machine uses, once the topology itself is sound.
	here := ""
	if len(config.Errors(probs)) == 0 {
		var own *config.Credential
		if e.cert != "" || e.key != "" {
			own = &config.Credential{CertFile: e.cert, KeyFile: e.key}
		}
		var local []config.Problem
		local, here = t.CheckHere(site, own)
		probs = append(probs, local...)
	}
	if output == "json" {
		out := make([]jsonview.CheckProblem, 0, len(probs))
		for _, p := range probs {
			sev := "error"
			if p.Warning {
				sev = "warning"
			}
			out = append(out, jsonview.CheckProblem{File: p.File, Line: p.Pos.Line, Column: p.Pos.Col, Field: p.Field, Message: p.Msg, Severity: sev,
				Kind: p.Kind, Group: p.Group, Sites: p.Sites})
		}
		if err := jsonview.Write(e.stdout, jsonview.CheckOf(out)); err != nil {
			return err
		}
	} else {
		for _, p := range probs {
			fmt.Fprintln(e.stdout, p.String())
		}
	}
	if n := len(config.Errors(probs)); n > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%s: %d problem(s)", path, n)}
	}
	if output == "json" {
		return nil
	}
	if servers {
		if n := checkServers(e, t); n > 0 {
			return &exitError{code: 1, err: fmt.Errorf("%s: %d problem(s) with the servers", path, n)}
		}
	}
	groups, resources := len(t.Groups), 0
	for _, g := range t.Groups {
		resources += len(g.Resources)
	}
	if here != "" {
		fmt.Fprintf(e.stdout, "%s: %s\n", path, here)
	}
	fmt.Fprintf(e.stdout, "%s: ok: %d locations, %d groups, %d resources\n", path, len(t.Sites), groups, resources)
	return nil
}

// checkServers asks every database server of t, each site's, whether it is
// set up as its type needs; it prints each problem and returns how many.
func checkServers(e *env, t *config.Topology) int {
	n := 0
	for i := range t.Groups {
		g := &t.Groups[i]
		for j := range g.Resources {
			r := &g.Resources[j]
			for _, site := range g.Sites {
				if _, here := r.Settings[site]; !here {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				problems, ok, err := driver.CheckServer(ctx, g, r, site)
				cancel()
				switch {
				case !ok:
					continue
				case err != nil:
					fmt.Fprintf(e.stdout, "group %s, resource %s at %s: cannot ask the server: %v\n", g.Name, r.Name, site, err)
					n++
				case len(problems) == 0:
					fmt.Fprintf(e.stdout, "group %s, resource %s at %s: server ok\n", g.Name, r.Name, site)
				}
				for _, p := range problems {
					fmt.Fprintf(e.stdout, "group %s, resource %s at %s: %s\n", g.Name, r.Name, site, p)
					n++
				}
			}
		}
	}
	return n
}
