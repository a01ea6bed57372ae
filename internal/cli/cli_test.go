package cli_test

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/siteflip/siteflip/internal/cli"
)

// TestMain lets the test binary double as the siteflip command: testscript
// installs it as "siteflip" on the scripts' PATH, and when run under that
// name it runs the real command line and exits with its code.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"siteflip": func() {
			// A script stands for a person at a terminal with
			// SITEFLIP_TEST_TERMINAL=1 (its stdin is a file).
			if os.Getenv("SITEFLIP_TEST_TERMINAL") == "1" {
				cli.AssumeTerminal()
			}
			os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
	})
}

// TestScripts runs the command-line scripts in testdata/script. Besides the
// standard testscript commands, a script can use
//
//	exits CODE PROGRAM [ARGS...]
//
// which runs PROGRAM like exec and fails unless it exits with exactly CODE;
// its stdout and stderr are then checked as after exec.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Cmds:                map[string]func(ts *testscript.TestScript, neg bool, args []string){"exits": exits},
		Setup: func(e *testscript.Env) error {
			// Under -race, a command that exits 0 sleeps a second first
			// (the race runtime's atexit_sleep_ms), which would make the
			// scripts slow. Keep any other GORACE option the caller set.
			if gorace := e.Getenv("GORACE"); !strings.Contains(gorace, "atexit_sleep_ms") {
				e.Setenv("GORACE", strings.TrimSpace(gorace+" atexit_sleep_ms=0"))
			}
			return nil
		},
	})
}

func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exits (give the expected code instead)")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil || want < 0 {
		ts.Fatalf("exits: %q is not an exit code", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with code %d, want %d", args[1], got, want)
	}
}
