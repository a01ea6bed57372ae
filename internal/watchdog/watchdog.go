// Package watchdog fences a location's primaries when its serve lease runs
// out, even if the agent that renews the lease is stuck or dead. The agent
// starts the watchdog as a child process in a process group of its own and
// tells it, over the child's standard input, which primaries to guard and
// how long the lease still runs. See docs/design/fencing.md.
package watchdog

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Target is one database the watchdog fences when the lease runs out.
type Target struct {
	Name string `json:"name"` // group/resource, for the log
	Kind string `json:"kind"` // resource type, e.g. postgres
	// DataDir is where a database on this machine lives; it is killed.
	DataDir string `json:"data_dir,omitempty"`
	// Settings are, for a database elsewhere, the resource's settings,
	// which hold its fence command (opaque here).
	Settings json.RawMessage `json:"settings,omitempty"`
}

// message is one line from the agent.
type message struct {
	// Guard replaces the list of guarded primaries.
	Guard []Target `json:"guard"`
	// LeaseMs is how long the lease still ran when the agent wrote the
	// line, at SentUnixNano (wall clock, the same machine's): the time the
	// line took to be read is taken off, so that a loaded machine does
	// not make the watchdog late.
	LeaseMs      int64 `json:"lease_ms"`
	SentUnixNano int64 `json:"sent_unix_nano,omitempty"`
	// Release ends the watchdog without fencing (the agent stops cleanly).
	Release bool `json:"release,omitempty"`
}

// transit is how long a line sent at sent (wall clock) took to be read at
// now; 0 when it cannot tell, or when the clock seems to have been set
// meanwhile (more than a second, or backwards).
func transit(sent int64, now time.Time) time.Duration {
	if sent == 0 {
		return 0
	}
	d := now.Sub(time.Unix(0, sent))
	if d < 0 || d > time.Second {
		return 0
	}
	return d
}

// FenceFunc fences one target at once.
type FenceFunc func(Target) (killed bool, err error)

// Run reads the agent's messages from in and fences the guarded targets
// when the lease runs out. It returns after a release, or after fencing
// once in has ended (the agent is gone); while the agent is there it goes
// on guarding after a fence, since the lease may be granted again.
func Run(in io.Reader, fence FenceFunc, log *slog.Logger) error {
	lines := make(chan message)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m message
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				log.Warn("watchdog: ignoring a line it cannot read", "error", err)
				continue
			}
			lines <- m
		}
		readErr <- sc.Err()
	}()
	var (
		guard    []Target
		deadline time.Time
		timer    = time.NewTimer(time.Hour)
		agentOK  = true
	)
	timer.Stop()
	fenceAll := func() {
		for _, t := range guard {
			start := time.Now()
			killed, err := fence(t)
			if err != nil {
				log.Error("watchdog: fencing failed", "resource", t.Name, "data_dir", t.DataDir, "error", err)
				continue
			}
			if killed || t.DataDir == "" { // nothing to say when nothing ran here
				log.Warn("watchdog: serve lease ran out; primary fenced", "resource", t.Name, "took", time.Since(start).Round(time.Microsecond))
			}
		}
		guard = nil
	}
	for {
		select {
		case m := <-lines:
			if m.Release {
				log.Info("watchdog: released by the agent")
				return nil
			}
			guard = m.Guard
			deadline = time.Now().Add(time.Duration(m.LeaseMs)*time.Millisecond - transit(m.SentUnixNano, time.Now()))
			timer.Reset(time.Until(deadline))
		case err := <-readErr:
			agentOK = false
			readErr = nil
			if len(guard) == 0 {
				return err
			}
			log.Warn("watchdog: the agent is gone; fencing when the lease runs out", "in", time.Until(deadline).Round(time.Millisecond))
			if !time.Now().Before(deadline) {
				fenceAll()
				return err
			}
		case <-timer.C:
			if len(guard) > 0 {
				fenceAll()
			}
			if !agentOK {
				return nil
			}
		}
	}
}

// Guard is the agent's end of a running watchdog.
type Guard struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	in   io.WriteCloser
	dir  string
	done chan struct{}
}

// Start starts `EXE watchdog ARGS...` in a process group of its own, so
// that a signal to the agent's group does not reach it, and records its
// PID in dir/watchdog.pid.
func Start(exe, dir string, args ...string) (*Guard, error) {
	cmd := exec.Command(exe, append([]string{"watchdog"}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the watchdog (%s watchdog): %w", exe, err)
	}
	g := &Guard{cmd: cmd, in: in, dir: dir, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(g.done) }()
	if dir != "" {
		if err := os.WriteFile(PIDFile(dir), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
			g.Release()
			return nil, fmt.Errorf("record the watchdog's pid: %w", err)
		}
	}
	return g, nil
}

// PIDFile is where Start records the watchdog's PID.
func PIDFile(dir string) string { return filepath.Join(dir, "watchdog.pid") }

// Exited is closed when the watchdog process has ended.
func (g *Guard) Exited() <-chan struct{} { return g.done }

// Update tells the watchdog what to guard and for how long the lease runs.
func (g *Guard) Update(guard []Target, lease time.Duration) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if guard == nil {
		guard = []Target{}
	}
	data, err := json.Marshal(message{Guard: guard, LeaseMs: max(lease.Milliseconds(), 0), SentUnixNano: time.Now().UnixNano()})
	if err != nil {
		return err
	}
	if _, err := g.in.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("tell the watchdog: %w", err)
	}
	return nil
}

// Abandon lets go of the watchdog without releasing it: it sees the agent
// gone and fences when the lease runs out. The agent does this when it
// stops because of an error.
func (g *Guard) Abandon() {
	g.mu.Lock()
	defer g.mu.Unlock()
	_ = g.in.Close()
}

// Release stops the watchdog without fencing and waits for it to end: the
// agent stops cleanly and deliberately.
func (g *Guard) Release() {
	g.mu.Lock()
	data, _ := json.Marshal(message{Release: true})
	_, err := g.in.Write(append(data, '\n'))
	g.in.Close()
	g.mu.Unlock()
	if err != nil {
		_ = g.cmd.Process.Kill()
	}
	select {
	case <-g.done:
	case <-time.After(2 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
	if g.dir != "" {
		_ = os.Remove(PIDFile(g.dir))
	}
}

// ErrNoWatchdog is returned by ReadPID when no watchdog is recorded.
var ErrNoWatchdog = errors.New("no watchdog recorded")

// ReadPID returns the PID recorded in dir by Start.
func ReadPID(dir string) (int, error) {
	data, err := os.ReadFile(PIDFile(dir))
	if err != nil {
		return 0, ErrNoWatchdog
	}
	return strconv.Atoi(string(trimNL(data)))
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
