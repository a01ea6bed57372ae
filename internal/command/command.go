// Package command runs the commands operators write into a topology: a
// service's start, stop and status commands, its health command, and the
// steps of a script resource. A command is a program and its arguments,
// run without a shell unless the operator asks for one, so that names and
// values never reach a shell by accident. A run is bounded in time (its
// whole process group is killed when it runs out) and in what it keeps of
// its output.
package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/internal/priority"
)

// Command is one command to run.
type Command struct {
	// Argv is the program and its arguments. With Shell, it is one
	// string, the script /bin/sh runs.
	Argv  []string
	Shell bool
	// Env is added to the agent's environment (NAME=value).
	Env []string
	// Dir is the working directory; default "/".
	Dir string
	// Timeout bounds the run; 0 leaves it to ctx.
	Timeout time.Duration
	// MaxOutput bounds what is kept of stdout and of stderr, each: their
	// last MaxOutput bytes; default DefaultMaxOutput.
	MaxOutput int
	// Workload runs it at the normal priority, not the agent's raised one
	// (priority.Start): a service's start, a script. Fence, status and
	// health commands keep the agent's, so that a busy machine does not
	// make them late.
	Workload bool
}

// DefaultMaxOutput is what is kept of each output stream by default.
const DefaultMaxOutput = 16 << 10

// Result is what a run left.
type Result struct {
	// ExitCode is the program's exit status; -1 when it did not exit by
	// itself (killed, or not started).
	ExitCode int
	// Stdout and Stderr are the last bytes of each stream.
	Stdout, Stderr string
	// Truncated says an output was longer than what was kept.
	Truncated bool
	Took      time.Duration
}

// Name is how errors and logs name c: its program, or "sh -c" and the
// start of its script.
func (c Command) Name() string {
	switch {
	case len(c.Argv) == 0:
		return "(empty command)"
	case c.Shell:
		s := c.Argv[0]
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return fmt.Sprintf("sh -c %q", s)
	default:
		return filepath.Base(c.Argv[0])
	}
}

// Check says what is wrong with argv and shell as a topology writes
// them, or "" when nothing is.
func Check(argv []string, shell bool) string {
	switch {
	case len(argv) == 0:
		return "is empty: write the program and its arguments as a list, e.g. [systemctl, start, app]"
	case shell && len(argv) != 1:
		return fmt.Sprintf("has %d items but shell: true runs one string: write the whole command line as one string", len(argv))
	case strings.TrimSpace(argv[0]) == "":
		return "names no program"
	}
	return ""
}

// Run runs c to its end. A non-zero exit, a timeout or a failure to start
// is an error that names the command and ends with the last lines of its
// stderr (or stdout, when stderr is empty); the Result is filled in all
// the same.
func Run(ctx context.Context, c Command) (Result, error) {
	res := Result{ExitCode: -1}
	if why := Check(c.Argv, c.Shell); why != "" {
		return res, fmt.Errorf("command %s", why)
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	argv := c.Argv
	if c.Shell {
		argv = []string{"/bin/sh", "-c", c.Argv[0]}
	}
	max := c.MaxOutput
	if max <= 0 {
		max = DefaultMaxOutput
	}
	stdout, stderr := &tail{max: max}, &tail{max: max}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Dir = c.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// The command's children go with it: a timeout kills its whole
	// process group, and a child left holding the pipes is given up on.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	var err error
	if c.Workload {
		err = priority.Run(cmd)
	} else {
		err = cmd.Run()
	}
	res.Took = time.Since(start)
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	res.Truncated = stdout.dropped || stderr.dropped
	if cmd.ProcessState != nil && cmd.ProcessState.Exited() {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return res, nil
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && c.Timeout > 0 {
			return res, fmt.Errorf("%s did not finish in %s and was killed%s", c.Name(), c.Timeout, res.tail())
		}
		return res, fmt.Errorf("%s was stopped: %w%s", c.Name(), ctx.Err(), res.tail())
	case errors.As(err, &exit) && res.ExitCode >= 0:
		return res, fmt.Errorf("%s exited with status %d%s", c.Name(), res.ExitCode, res.tail())
	case errors.As(err, &exit):
		return res, fmt.Errorf("%s was killed (%s)%s", c.Name(), exit.ProcessState, res.tail())
	default:
		return res, fmt.Errorf("%s could not run: %w", c.Name(), err)
	}
}

// Tail returns the last n non-empty lines of text, joined by " | ".
func Tail(text string, n int) string {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// tail is the end of the error a failed run returns: the last lines of
// stderr, or of stdout when stderr is empty.
func (r Result) tail() string {
	out := Tail(r.Stderr, 6)
	if out == "" {
		out = Tail(r.Stdout, 6)
	}
	if out == "" {
		return ""
	}
	return ": " + out
}

// tail keeps the last max bytes written to it.
type tail struct {
	max     int
	buf     []byte
	dropped bool
}

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.dropped = t.dropped || len(t.buf) > 0 || len(p) > t.max
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.dropped = true
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

func (t *tail) String() string { return string(t.buf) }
