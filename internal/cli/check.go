package cli

import (
	"fmt"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
)

// runCheck validates and lints the topology: every problem on its own line,
// exit 1 when any is an error.
func runCheck(e *env, args []string) error {
	fs := e.flags("check")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	path := e.configPath()
	t, probs, err := config.Check(path, driver.Types())
	if err != nil {
		return err
	}
	for _, p := range probs {
		fmt.Fprintln(e.stdout, p.String())
	}
	if n := len(config.Errors(probs)); n > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%s: %d problem(s)", path, n)}
	}
	groups, resources := len(t.Groups), 0
	for _, g := range t.Groups {
		resources += len(g.Resources)
	}
	fmt.Fprintf(e.stdout, "%s: ok: %d locations, %d groups, %d resources\n", path, len(t.Sites), groups, resources)
	return nil
}
