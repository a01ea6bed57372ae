// Command siteflip recovers groups of services at another site when a site is
// lost. It only dispatches to internal/cli.
package main

import (
	"os"

	"github.com/siteflip/siteflip/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
