package postgres

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/testbed"
)

// freeze stops a process and everything descended from it at once: a
// fenced server must not answer a client while its boot guard is written.
func TestFreezeStopsTheTree(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & sleep 60 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = KillServer(pid)
		_ = cmd.Wait()
	})
	var kids []int
	testbed.WaitFor(t, 5*time.Second, "the shell's two children", func() bool {
		var err error
		if kids, err = descendants(pid); err != nil {
			t.Fatal(err)
		}
		return len(kids) >= 2
	})
	freeze(pid)
	// A signal is delivered when the process next runs: wait for it.
	for _, p := range append([]int{pid}, kids...) {
		var state byte
		if !testbed.Poll(5*time.Second, func() bool {
			var ok bool
			_, state, ok = procStat(p)
			return ok && state == 'T'
		}) {
			t.Fatalf("pid %d in state %q five seconds after freeze, want T (stopped)", p, state)
		}
	}
	if err := KillServer(pid); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("the frozen shell ended with %v, want killed", err)
	}
}
