package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/report"
)

// newReportCmd is `siteflip report`.
func newReportCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "report RUN [-o md|json|html] [--out FILE]",
		Short: "one run's report: RTO and RPO against the targets, steps, checks",
		Args:  maxArgs(1),
	}
	output := outputFlag(c.Flags(), "md", "json", "html")
	out := c.Flags().String("out", "", "write the report to `FILE` and print its path, instead of writing it to stdout")
	c.RunE = func(_ *cobra.Command, pos []string) error { return runReport(e, pos, *output, *out) }
	return c
}

// runReport writes one run's report: what it did, its checks, and its
// RTO and RPO against the group's targets (docs/report.md).
func runReport(e *env, pos []string, output, out string) error {
	if len(pos) != 1 {
		return usageErrorf("name the run: siteflip report RUN (`siteflip runs` lists them)")
	}
	format, err := report.FormatOf(output)
	if err != nil {
		return usageErrorf("-o %q: use md, json or html", output)
	}
	t, c, err := e.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run, err := c.Run(ctx, pos[0])
	if err != nil {
		return err
	}
	// The targets are the group's as configured now; a group since removed
	// from the topology gets a report that measures without judging.
	g, _ := t.Group(run.Group)
	r := report.Build(run, g)
	if out == "" {
		return format.Write(e.stdout, r)
	}
	if err := writeFile(out, func(w io.Writer) error { return format.Write(w, r) }); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, out)
	return nil
}

// writeFile writes path whole or not at all: into a temporary file beside
// it, renamed over it once complete.
func writeFile(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	b := bufio.NewWriter(f)
	if err := write(b); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := b.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// A report is for sharing: readable by all, like a file the shell makes.
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
