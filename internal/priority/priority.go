// Package priority keeps the agent ahead of the work it supervises on a
// busy machine (docs/design/scale.md, "The agent's priority").
//
// The agent renews its serve lease every tenth of a lease (40 ms by
// default) and fences its databases when nobody granted it one for a whole
// lease. Thirty PostgreSQL servers promoted at once on two cores starved it
// for longer than that: it fenced the databases it had just promoted. So
// the agent (its embedded etcd member and its watchdog included) runs at a
// raised priority, nice -10, and the databases, proxies, services and tools
// it starts run at the priority it had before, at most nice 0: they never
// share the raised one.
//
// With the kernel's automatic grouping (sched_autogroup_enabled, on in
// Debian's kernels), the CPU is first shared among sessions, and a nice
// value only weighs among the threads of one session: a database server
// in a session of its own would take as much as the whole agent. So Raise
// also raises the agent's session group (/proc/self/autogroup) when the
// agent leads its session, as it does when a service manager or the lab
// starts it; it never raises a session it shares with its launcher.
//
// On Linux a nice value belongs to a thread, and a new thread or process
// takes the one of the thread that made it. Raise sets every thread of the
// process; Start forks the child from a thread kept at the normal priority
// for that purpose. The Go runtime makes its own new threads from a
// template thread, never from a thread locked by LockOSThread, so the
// raised priority stays with every runtime thread.
package priority

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Agent is the nice value Raise gives the agent.
const Agent = -10

var (
	mu     sync.Mutex
	normal int         // the children's nice value, once raised
	spawn  chan func() // run on the thread at the normal priority
	raised bool
)

// Raise sets every thread of this process to nice level (negative: a
// higher priority), and its session's group when it leads its session
// (the package comment), and makes Start start children at the nice value
// the process had, or 0 if that was lower. It needs CAP_SYS_NICE (root);
// the error says what to do without it. It returns what it raised, in
// words, for the log. Called again, it does nothing.
func Raise(level int) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if raised {
		return "already raised", nil
	}
	was, err := Nice(0)
	if err != nil {
		return "", err
	}
	if was <= level {
		// Already as high (a service manager's Nice=): the children still
		// run at the normal priority.
		level = was
	}
	if err := setAll(level); err != nil {
		return "", fmt.Errorf("raise the agent's priority to nice %d: %w; run it as root, give it CAP_SYS_NICE, or set Nice=%d in its service unit", level, err, level)
	}
	what, err := raiseSession(level)
	if err != nil {
		return "", err
	}
	normal = max(was, 0)
	spawn = make(chan func())
	ready := make(chan error)
	go spawner(ready)
	if err := <-ready; err != nil {
		return "", err
	}
	raised = true
	return what, nil
}

// autogroupFile is the scheduling group of this process's session; it
// exists when the kernel groups by session.
const autogroupFile = "/proc/self/autogroup"

// raiseSession raises the session's scheduling group to nice level when
// the kernel groups by session and this process leads its session.
func raiseSession(level int) (string, error) {
	cur, err := os.ReadFile(autogroupFile)
	if err != nil {
		return fmt.Sprintf("its threads to nice %d (no session groups in this kernel)", level), nil
	}
	if sid, err := unix.Getsid(0); err != nil || sid != os.Getpid() {
		return fmt.Sprintf("its threads to nice %d, not its session's group (%s): it shares its session with what started it; "+
			"start it in a session of its own (a service manager does), or its databases' sessions each weigh as much as it", level, strings.TrimSpace(string(cur))), nil
	}
	if err := os.WriteFile(autogroupFile, []byte(strconv.Itoa(level)), 0); err != nil {
		return "", fmt.Errorf("raise the agent's session group to nice %d (%s): %w", level, autogroupFile, err)
	}
	return fmt.Sprintf("its threads and its session's group to nice %d", level), nil
}

// setAll sets every thread of the process to nice level, until a pass
// finds none left to set: a thread made during a pass by one not set yet
// took the old value.
func setAll(level int) error {
	for range 10 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		changed := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			cur, err := Nice(tid)
			if err != nil {
				continue // the thread ended
			}
			if cur == level {
				continue
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, level); err != nil {
				return err
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("threads kept appearing while their priority was set")
}

// spawner locks itself to a thread, sets that thread to the normal
// priority and runs what Start gives it there, forever.
func spawner(ready chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread serves only this
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), normal); err != nil {
		ready <- fmt.Errorf("set the thread that starts children to nice %d: %w", normal, err)
		return
	}
	ready <- nil
	for f := range spawn {
		f()
	}
}

// Start starts cmd at the normal priority once Raise raised the agent's,
// and as cmd.Start otherwise: for servers, proxies, services and tools,
// never for the watchdog, which keeps the agent's.
func Start(cmd *exec.Cmd) error {
	mu.Lock()
	r := raised
	mu.Unlock()
	if !r {
		return cmd.Start()
	}
	done := make(chan error, 1)
	spawn <- func() { done <- cmd.Start() }
	return <-done
}

// Run is cmd.Run, started with Start.
func Run(cmd *exec.Cmd) error {
	if err := Start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// CombinedOutput is cmd.CombinedOutput, started with Start.
func CombinedOutput(cmd *exec.Cmd) ([]byte, error) {
	if cmd.Stdout != nil || cmd.Stderr != nil {
		return nil, fmt.Errorf("priority: Stdout or Stderr already set")
	}
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := Run(cmd)
	return b.Bytes(), err
}

// Nice returns the nice value of thread tid (0: the calling thread).
func Nice(tid int) (int, error) {
	// The system call returns 20 - nice, so that it is never negative.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return 0, err
	}
	return 20 - p, nil
}
