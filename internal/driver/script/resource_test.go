package script

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/resource"
)

const site = "brussels"

// writeScript writes an executable sh script called name into dir and
// returns its path.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// prepared returns s with its defaults, checked.
func prepared(t *testing.T, s *Settings) (*config.Group, *config.Resource) {
	t.Helper()
	if errs := Prepare(s, site, ""); len(errs) > 0 {
		t.Fatalf("settings: %v", errs)
	}
	g := &config.Group{Name: "webshop"}
	return g, &config.Resource{Name: "storage", Type: "script", Settings: map[string]any{site: s}}
}

// newActor returns the script's actor at site, with no pause between
// attempts.
func newActor(t *testing.T, s *Settings) *actor {
	t.Helper()
	g, r := prepared(t, s)
	a, err := Type{}.Actor(g, r, site)
	if err != nil {
		t.Fatal(err)
	}
	a.(*actor).pause = 0
	return a.(*actor)
}

// readEnv reads the SITEFLIP_* and STORAGE_* variables of an env dump.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		name, value, _ := strings.Cut(l, "=")
		if !strings.HasPrefix(name, "SITEFLIP_") && !strings.HasPrefix(name, "STORAGE_") {
			continue
		}
		// What the script inherits from the test's own environment
		// (CI sets some SITEFLIP_ variables) is not the step's.
		if inherited, ok := os.LookupEnv(name); ok && inherited == value {
			continue
		}
		out[name] = value
	}
	return out
}

func TestType(t *testing.T) {
	if n, c := (Type{}).Name(), (Type{}).Config(); n != "script" || c.Class != config.ClassScript || c.Synchronous ||
		c.New == nil || c.Prepare == nil || c.Lint == nil {
		t.Errorf("Name %q, Config %+v", n, c)
	}
	if _, ok := (Type{}).Config().New().(*Settings); !ok {
		t.Error("New does not return *Settings")
	}
	_, err := Type{}.Actor(&config.Group{Name: "webshop"}, &config.Resource{Name: "storage"}, site)
	if want := "group webshop, script storage: no settings at site brussels"; err == nil || err.Error() != want {
		t.Errorf("Actor without settings: %v; want %s", err, want)
	}
}

// Each step kind runs its own command, in dir, told the run.
func TestStepsEnvironment(t *testing.T) {
	dir := t.TempDir()
	dump := writeScript(t, dir, "dump.sh", `env > "$1.env"; echo "$1 done"; echo "$1 note" >&2`)
	s := &Settings{Env: map[string]string{"STORAGE_ARRAY": "array-bxl"}, Dir: dir}
	s.Fence, s.CatchUp, s.Promote = []string{dump, "fence"}, []string{dump, "catch-up"}, []string{dump, "promote"}
	s.Rejoin, s.Unfence = []string{dump, "rejoin"}, []string{dump, "unfence"}
	a := newActor(t, s)
	ctx := t.Context()
	for _, tc := range []struct {
		step  string
		do    func() (map[string]string, error)
		extra map[string]string
	}{
		{"fence", func() (map[string]string, error) { return a.Fence(ctx) }, nil},
		{"catch-up", func() (map[string]string, error) { return nil, a.CatchUp(ctx, map[string]string{"lsn": "0/3000000"}) }, nil},
		{"promote", func() (map[string]string, error) { return a.Promote(ctx) }, nil},
		{"rejoin", func() (map[string]string, error) { return a.Rejoin(ctx, "antwerp") }, map[string]string{"SITEFLIP_PRIMARY": "antwerp"}},
		{"unfence", func() (map[string]string, error) { return nil, a.Unfence(ctx) }, nil},
	} {
		t.Run(tc.step, func(t *testing.T) {
			a.InRun(resource.RunInfo{Group: "webshop", Action: "failover", Run: "run-7", From: "antwerp", To: "brussels",
				Epoch: 12, Site: site, Step: tc.step})
			out, err := tc.do()
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"STORAGE_ARRAY":   "array-bxl",
				"SITEFLIP_GROUP":  "webshop",
				"SITEFLIP_ACTION": "failover",
				"SITEFLIP_RUN":    "run-7",
				"SITEFLIP_FROM":   "antwerp",
				"SITEFLIP_TO":     "brussels",
				"SITEFLIP_EPOCH":  "12",
				"SITEFLIP_SITE":   site,
				"SITEFLIP_STEP":   tc.step,
			}
			for k, v := range tc.extra {
				want[k] = v
			}
			if diff := cmp.Diff(want, readEnv(t, filepath.Join(dir, tc.step+".env"))); diff != "" {
				t.Errorf("environment (-want +got):\n%s", diff)
			}
			if out == nil {
				return // CatchUp and Unfence return no output
			}
			if out[resource.OutputStdout] != tc.step+" done\n" || out[resource.OutputStderr] != tc.step+" note\n" || out[outputTook] == "" {
				t.Errorf("output %v", out)
			}
			if _, err := time.ParseDuration(out[outputTook]); err != nil {
				t.Errorf("took %q: %v", out[outputTook], err)
			}
		})
	}
}

// A script that was not told its run gets what it knows: group, site and
// step; the rest is empty, not inherited from the agent.
func TestStepsNotTold(t *testing.T) {
	t.Setenv("SITEFLIP_RUN", "from-the-agent")
	dir := t.TempDir()
	a := newActor(t, &Settings{Promote: []string{writeScript(t, dir, "dump.sh", `env > "$0.env"`)}})
	if _, err := a.Promote(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"SITEFLIP_GROUP": "webshop", "SITEFLIP_SITE": site, "SITEFLIP_STEP": "promote",
		"SITEFLIP_ACTION": "", "SITEFLIP_RUN": "", "SITEFLIP_FROM": "", "SITEFLIP_TO": "", "SITEFLIP_EPOCH": "",
	}
	if diff := cmp.Diff(want, readEnv(t, filepath.Join(dir, "dump.sh.env"))); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
}

// A kind without a command does nothing and says why.
func TestStepsSkipped(t *testing.T) {
	a := newActor(t, &Settings{Drill: []string{"false"}})
	ctx := t.Context()
	for _, tc := range []struct {
		step string
		do   func() (map[string]string, error)
	}{
		{"fence", func() (map[string]string, error) { return a.Fence(ctx) }},
		{"promote", func() (map[string]string, error) { return a.Promote(ctx) }},
		{"rejoin", func() (map[string]string, error) { return a.Rejoin(ctx, "antwerp") }},
	} {
		out, err := tc.do()
		if want := map[string]string{resource.OutputSkipped: "no " + tc.step + " command at brussels"}; err != nil || !cmp.Equal(out, want) {
			t.Errorf("%s: %v, %v; want %v", tc.step, out, err, want)
		}
	}
	if err := a.CatchUp(ctx, nil); err != nil {
		t.Errorf("CatchUp: %v", err)
	}
	if err := a.Unfence(ctx); err != nil {
		t.Errorf("Unfence: %v", err)
	}
}

func TestStepsFail(t *testing.T) {
	dir := t.TempDir()
	// count.sh fails as many times as $1 says, then succeeds; count
	// holds the attempts made.
	count := writeScript(t, dir, "count.sh", `n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count
if [ $n -le "$1" ]; then echo "attempt $n"; echo "array busy" >&2; echo "still read-only" >&2; exit 1; fi
echo "read-write after $n"`)
	const idem = "; the step is run again after a controller loss, so the command must be idempotent"
	for _, tc := range []struct {
		name     string
		fails    string
		retries  int
		attempts string
		out      map[string]string
		err      string
	}{
		{name: "exit 1", fails: "1", attempts: "1",
			err: "group webshop, script storage at brussels: promote: count.sh exited with status 1: array busy | still read-only" + idem},
		{name: "retried", fails: "1", retries: 1, attempts: "2",
			out: map[string]string{resource.OutputStdout: "read-write after 2\n", resource.OutputStderr: "", outputAttempts: "2"}},
		{name: "retries run out", fails: "9", retries: 2, attempts: "3",
			err: "group webshop, script storage at brussels: promote (3 attempts): count.sh exited with status 1: array busy | still read-only" + idem},
		{name: "first time", fails: "0", retries: 3, attempts: "1",
			out: map[string]string{resource.OutputStdout: "read-write after 1\n", resource.OutputStderr: ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(dir, "count"))
			a := newActor(t, &Settings{Promote: []string{count, tc.fails}, Retries: tc.retries, Dir: dir})
			out, err := a.Promote(t.Context())
			switch {
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Errorf("error %v\nwant: %s", err, tc.err)
			case tc.err == "" && err != nil:
				t.Errorf("error %v", err)
			}
			if out != nil {
				delete(out, outputTook)
			}
			if diff := cmp.Diff(tc.out, out); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "count")); strings.TrimSpace(string(b)) != tc.attempts {
				t.Errorf("%s attempts; want %s", strings.TrimSpace(string(b)), tc.attempts)
			}
		})
	}
}

// A command that runs too long is killed, and each attempt has the whole
// timeout.
func TestStepsTimeout(t *testing.T) {
	dir := t.TempDir()
	slow := writeScript(t, dir, "slow.sh", `echo x >> attempts; exec sleep 30`)
	d := config.Duration(100 * time.Millisecond)
	a := newActor(t, &Settings{Fence: []string{slow}, Timeout: &d, Retries: 1, Dir: dir})
	_, err := a.Fence(t.Context())
	want := "group webshop, script storage at brussels: fence (2 attempts): slow.sh did not finish in 100ms and was killed; " +
		"the step is run again after a controller loss, so the command must be idempotent"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant: %s", err, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "attempts")); string(b) != "x\nx\n" {
		t.Errorf("attempts %q; want two", b)
	}
}

// The step's context ends the pause between attempts: no attempt starts
// after it.
func TestStepsStoppedBetweenAttempts(t *testing.T) {
	dir := t.TempDir()
	fail := writeScript(t, dir, "fail.sh", `echo x >> attempts; echo "no array" >&2; exit 2`)
	a := newActor(t, &Settings{Fence: []string{fail}, Retries: 5, Dir: dir})
	a.pause = time.Hour
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := a.Fence(ctx)
	if err == nil || !strings.Contains(err.Error(), "fence: fail.sh exited with status 2: no array") {
		t.Errorf("error %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "attempts")); string(b) != "x\n" {
		t.Errorf("attempts %q; want one", b)
	}
}

// Without shell, a value with shell metacharacters reaches the program
// as one argument, untouched.
func TestArgumentsAsList(t *testing.T) {
	dir := t.TempDir()
	args := writeScript(t, dir, "args.sh", `printf '%s\n' "$#" "$@" > args`)
	evil := "a; rm -rf / $(id) `id` && echo pwned > pwned | x"
	a := newActor(t, &Settings{Promote: []string{args, evil, "mode=read-write"}, Dir: dir})
	if _, err := a.Promote(t.Context()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "args"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "2\n" + evil + "\nmode=read-write\n"; string(b) != want {
		t.Errorf("arguments %q; want %q", b, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("a shell ran the value")
	}
}

// With shell: true, the command is a command line for /bin/sh.
func TestShell(t *testing.T) {
	dir := t.TempDir()
	a := newActor(t, &Settings{Shell: true, Dir: dir, Env: map[string]string{"STORAGE_ARRAY": "array-bxl"},
		Promote: []string{`echo "$SITEFLIP_STEP on $STORAGE_ARRAY" > line && cat line; echo done`}})
	out, err := a.Promote(t.Context())
	if err != nil || out[resource.OutputStdout] != "promote on array-bxl\ndone\n" {
		t.Errorf("%v, %v", out, err)
	}
}

// A step keeps the end of its command's output, bounded.
func TestOutputBounded(t *testing.T) {
	a := newActor(t, &Settings{Fence: []string{"sh", "-c", "seq 1 100000; seq 1 100000 >&2"}})
	out, err := a.Fence(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{resource.OutputStdout, resource.OutputStderr} {
		if v := out[k]; len(v) != maxOutput || !strings.HasSuffix(v, "99999\n100000\n") {
			t.Errorf("%s: %d bytes ending %q; want %d ending in 100000", k, len(v), v[max(0, len(v)-14):], maxOutput)
		}
	}
}

func TestDrill(t *testing.T) {
	dir := t.TempDir()
	dump := writeScript(t, dir, "dump.sh", `env > "$1.env"; echo "$1 in the bubble"`)
	g, r := prepared(t, &Settings{Drill: []string{dump, "drill"}, Cleanup: []string{dump, "cleanup"}, Dir: dir})
	b := resource.Bubble{Run: "drill-3", Address: "10.99.0.5", Netns: "sf-drill-3"}
	d, err := Type{}.Drill(g, r, site, b)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if out, err := d.Clone(ctx); err != nil || !cmp.Equal(out, map[string]string{resource.OutputSkipped: "a script holds no data"}) {
		t.Errorf("Clone: %v, %v", out, err)
	}
	d.(resource.InRun).InRun(resource.RunInfo{Group: "webshop", Action: "drill", Run: "drill-3", To: site, Epoch: 4, Site: site, Step: "start"})
	out, err := d.Start(ctx)
	if err != nil || out[resource.OutputStdout] != "drill in the bubble\n" {
		t.Errorf("Start: %v, %v", out, err)
	}
	want := map[string]string{
		"SITEFLIP_GROUP": "webshop", "SITEFLIP_ACTION": "drill", "SITEFLIP_RUN": "drill-3", "SITEFLIP_FROM": "",
		"SITEFLIP_TO": site, "SITEFLIP_EPOCH": "4", "SITEFLIP_SITE": site, "SITEFLIP_STEP": "start",
		"SITEFLIP_BUBBLE_ADDRESS": "10.99.0.5", "SITEFLIP_BUBBLE_NETNS": "sf-drill-3",
	}
	if diff := cmp.Diff(want, readEnv(t, filepath.Join(dir, "drill.env"))); diff != "" {
		t.Errorf("drill environment (-want +got):\n%s", diff)
	}
	// Not told: the run is the bubble's all the same.
	d, err = Type{}.Drill(g, r, site, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Teardown(ctx); err != nil {
		t.Errorf("Teardown: %v", err)
	}
	got := readEnv(t, filepath.Join(dir, "cleanup.env"))
	if got["SITEFLIP_STEP"] != "teardown" || got["SITEFLIP_RUN"] != "drill-3" || got["SITEFLIP_BUBBLE_ADDRESS"] != "10.99.0.5" {
		t.Errorf("cleanup environment %v", got)
	}
	if runs, err := d.Leftovers(); runs != nil || err != nil {
		t.Errorf("Leftovers: %v, %v", runs, err)
	}
}

// A script without drill commands takes part in a drill by doing nothing.
func TestDrillWithoutCommands(t *testing.T) {
	g, r := prepared(t, &Settings{Promote: []string{"true"}})
	d, err := Type{}.Drill(g, r, site, resource.Bubble{Run: "drill-3", Address: "10.99.0.5"})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := d.Start(t.Context()); err != nil || !cmp.Equal(out, map[string]string{resource.OutputSkipped: "no drill command at brussels"}) {
		t.Errorf("Start: %v, %v", out, err)
	}
	if err := d.Teardown(t.Context()); err != nil {
		t.Errorf("Teardown: %v", err)
	}
}

// A failing cleanup fails the teardown, which is run again.
func TestDrillCleanupFails(t *testing.T) {
	g, r := prepared(t, &Settings{Cleanup: []string{"sh", "-c", "echo 'VM still registered' >&2; exit 1"}})
	d, err := Type{}.Drill(g, r, site, resource.Bubble{Run: "drill-3"})
	if err != nil {
		t.Fatal(err)
	}
	want := "group webshop, script storage at brussels: cleanup: sh exited with status 1: VM still registered; " +
		"the step is run again after a controller loss, so the command must be idempotent"
	if err := d.Teardown(t.Context()); err == nil || err.Error() != want {
		t.Errorf("Teardown: %v\nwant: %s", err, want)
	}
}
