package haproxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/internal/priority"
)

// ErrNoBinary: no haproxy program was found.
var ErrNoBinary = errors.New("haproxy is not installed")

// Binary returns the haproxy program: in PATH, or in /usr/sbin, where
// Debian puts it and which a user's PATH may lack.
func Binary() (string, error) {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy", nil
	}
	return "", fmt.Errorf("%w: no haproxy in PATH or /usr/sbin; apt-get install haproxy (scripts/deps.sh)", ErrNoBinary)
}

// Proc is one HAProxy process run in the foreground (-db) on a
// configuration file, as the lab and the tests run it. Its configuration
// must have a `stats socket Socket level admin` line: Start waits until
// the new process answers there.
type Proc struct {
	Bin    string // the haproxy program (Binary)
	Config string // haproxy.cfg
	Socket string // the admin runtime API, a unix socket path or host:port
	Log    string // the file its output is appended to
	// SysProcAttr, when set, is the process's: a session of its own for
	// one that outlives its starter, a parent-death signal for a test's.
	SysProcAttr *syscall.SysProcAttr

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
}

// startWait bounds how long Start waits for the new process to answer.
const startWait = 10 * time.Second

// Start starts HAProxy; with old > 0 it is a reload: the new process
// tells the old one (-sf) to finish and exit. Start returns once the new
// process answers on the runtime API with its own pid, or an error with
// the end of its output when it exits or does not answer within 10s.
func (p *Proc) Start(ctx context.Context, old int) error {
	args := []string{"-db", "-f", p.Config}
	if old > 0 {
		args = append(args, "-sf", strconv.Itoa(old))
	}
	logFile, err := os.OpenFile(p.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("start haproxy: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(p.Bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = p.SysProcAttr
	if err := priority.Start(cmd); err != nil {
		return fmt.Errorf("start haproxy: %w", err)
	}
	exited := make(chan struct{})
	// Reaped while this process runs; after that, by init.
	go func() { cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited

	admin := &Settings{RuntimeAPI: p.Socket}
	want := "Pid: " + strconv.Itoa(cmd.Process.Pid) + "\n"
	ctx, cancel := context.WithTimeout(ctx, startWait)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		info, err := command(cctx, admin, "show info")
		ccancel()
		if err == nil && strings.Contains(info, want) {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("haproxy %s exited at start: %s", strings.Join(args, " "), p.logTail())
		case <-ctx.Done():
			p.Stop()
			return fmt.Errorf("haproxy %s did not answer on %s within %s (last error %v): %s", strings.Join(args, " "), p.Socket, startWait, err, p.logTail())
		case <-tick.C:
		}
	}
}

// PID is the process's id, 0 before Start.
func (p *Proc) PID() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Stop kills HAProxy and waits for it to exit.
func (p *Proc) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// logTail is the end of what HAProxy wrote, for errors.
func (p *Proc) logTail() string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return "(no output: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "see " + p.Log + ":\n" + strings.Join(lines, "\n")
}
