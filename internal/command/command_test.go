package command

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	cases := []struct {
		name    string
		c       Command
		code    int
		stdout  string
		wantErr string
	}{
		{name: "argv", c: Command{Argv: []string{"printf", "%s", "a; rm -rf /tmp/x $(id)"}}, code: 0, stdout: "a; rm -rf /tmp/x $(id)"},
		{name: "shell", c: Command{Argv: []string{"echo one; echo two"}, Shell: true}, code: 0, stdout: "one\ntwo\n"},
		{name: "env", c: Command{Argv: []string{"sh", "-c", `printf %s "$SITEFLIP_GROUP"`}, Env: []string{"SITEFLIP_GROUP=webshop"}}, code: 0, stdout: "webshop"},
		{name: "exit 3 with stderr tail", c: Command{Argv: []string{"sh", "-c", "echo out; echo first >&2; echo storage still read-only >&2; exit 3"}}, code: 3,
			stdout: "out\n", wantErr: "sh exited with status 3: first | storage still read-only"},
		{name: "stdout when stderr is empty", c: Command{Argv: []string{"sh", "-c", "echo only out; exit 1"}}, code: 1, stdout: "only out\n", wantErr: "exited with status 1: only out"},
		{name: "missing program", c: Command{Argv: []string{"/nonexistent/flip"}}, code: -1, wantErr: "flip could not run"},
		{name: "empty", c: Command{}, code: -1, wantErr: "command is empty"},
		{name: "shell with two items", c: Command{Argv: []string{"a", "b"}, Shell: true}, code: -1, wantErr: "shell: true runs one string"},
		{name: "timeout kills the group", c: Command{Argv: []string{"sh", "-c", "sleep 30 & sleep 30"}, Timeout: 200 * time.Millisecond}, code: -1,
			wantErr: "did not finish in 200ms and was killed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(context.Background(), tc.c)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("error %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
			if res.ExitCode != tc.code || res.Stdout != tc.stdout {
				t.Fatalf("exit %d stdout %q, want %d %q", res.ExitCode, res.Stdout, tc.code, tc.stdout)
			}
		})
	}
}

func TestOutputIsBounded(t *testing.T) {
	res, err := Run(context.Background(), Command{Argv: []string{"sh", "-c", "seq 1 100000"}, MaxOutput: 64})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) != 64 || !res.Truncated || !strings.HasSuffix(res.Stdout, "99999\n100000\n") {
		t.Fatalf("kept %d bytes (truncated %v) ending %q", len(res.Stdout), res.Truncated, res.Stdout[len(res.Stdout)-14:])
	}
}

func TestTailWrites(t *testing.T) {
	tl := &tail{max: 5}
	for _, w := range []string{"ab", "cd", "efg", "", "0123456789"} {
		tl.Write([]byte(w))
	}
	if tl.String() != "56789" || !tl.dropped {
		t.Fatalf("%q %v", tl.String(), tl.dropped)
	}
	tl = &tail{max: 5}
	tl.Write([]byte("abcde"))
	if tl.String() != "abcde" || tl.dropped {
		t.Fatalf("%q %v", tl.String(), tl.dropped)
	}
}
