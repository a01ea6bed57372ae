package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
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
// its stdout and stderr are then checked as after exec; and
//
//	[!] jsonpath FILE PATH [WANT]
//
// which parses FILE (stdout, stderr or a file) as one JSON value and
// fails unless PATH leads to a value (equal to WANT, when given). PATH is
// dot-separated: an object's key, an array's index, or # for the length
// of an array or object; . alone is the whole value. Strings compare as
// they are, other values as their JSON text. With JSON Lines (one value
// per line), PATH starts with the line's index.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Cmds:                map[string]func(ts *testscript.TestScript, neg bool, args []string){"exits": exits, "jsonpath": jsonpath},
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

func jsonpath(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: jsonpath FILE PATH [WANT]")
	}
	data := ts.ReadFile(args[0])
	var v any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		// JSON Lines: an array of the values, one per line.
		var lines []any
		for i, l := range strings.Split(strings.TrimRight(data, "\n"), "\n") {
			var lv any
			if err := json.Unmarshal([]byte(l), &lv); err != nil {
				ts.Fatalf("jsonpath: %s is neither one JSON value nor one per line: line %d: %v", args[0], i+1, err)
			}
			lines = append(lines, lv)
		}
		v = lines
	}
	got, err := walkJSON(v, args[1])
	switch {
	case err != nil && neg:
		return
	case err != nil:
		ts.Fatalf("jsonpath %s: %v", args[1], err)
	case len(args) == 2 && neg:
		ts.Fatalf("jsonpath %s: found %s", args[1], got)
	case len(args) == 2:
		return
	case (got == args[2]) == neg:
		ts.Fatalf("jsonpath %s: got %q, want %s%q", args[1], got, map[bool]string{true: "not ", false: ""}[neg], args[2])
	}
}

// walkJSON follows path into v and returns what it finds, strings as they
// are and anything else as JSON.
func walkJSON(v any, path string) (string, error) {
	if path != "." {
		for _, seg := range strings.Split(path, ".") {
			switch x := v.(type) {
			case map[string]any:
				if seg == "#" {
					v = float64(len(x))
					continue
				}
				next, ok := x[seg]
				if !ok {
					return "", fmt.Errorf("no key %q", seg)
				}
				v = next
			case []any:
				if seg == "#" {
					v = float64(len(x))
					continue
				}
				i, err := strconv.Atoi(seg)
				if err != nil || i < 0 || i >= len(x) {
					return "", fmt.Errorf("no index %q in an array of %d", seg, len(x))
				}
				v = x[i]
			default:
				return "", fmt.Errorf("%q: not an object or array", seg)
			}
		}
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// againstAgent serves agent as the agent of topology's location whose
// address reads ADDR (the first) and returns a
// function that runs the command line with that topology: its exit code,
// stdout and stderr.
func againstAgent(t *testing.T, topology string, agent http.Handler) func(args ...string) (int, string, string) {
	t.Helper()
	srv := httptest.NewServer(agent)
	t.Cleanup(srv.Close)
	topo := filepath.Join(t.TempDir(), "siteflip.yaml")
	if err := os.WriteFile(topo, []byte(strings.Replace(topology, "ADDR", srv.Listener.Addr().String(), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return func(args ...string) (int, string, string) {
		var o, e bytes.Buffer
		code := cli.Main(append([]string{"--config", topo}, args...), strings.NewReader(""), &o, &e)
		return code, o.String(), e.String()
	}
}
