package priority

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// processNice reads the nice value of process pid (its main thread) from
// /proc/pid/stat, field 19.
func processNice(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	n, err := strconv.Atoi(f[16]) // field 19 is the 17th after the name
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func threadNices(t *testing.T) map[int]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, e := range tasks {
		tid, _ := strconv.Atoi(e.Name())
		if n, err := Nice(tid); err == nil {
			out[tid] = n
		}
	}
	return out
}

// startSleep starts a child that lives until the test ends, with start.
func startSleep(t *testing.T, start func(*exec.Cmd) error) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := start(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// checkThreads: every thread at the agent's priority but the spawner's.
func checkThreads(t *testing.T) {
	t.Helper()
	spawnerThreads := 0
	for tid, n := range threadNices(t) {
		switch n {
		case Agent:
		case 0:
			spawnerThreads++
		default:
			t.Errorf("thread %d at nice %d", tid, n)
		}
	}
	if spawnerThreads != 1 {
		t.Errorf("%d threads at the normal priority, want the spawner's alone", spawnerThreads)
	}
}

func TestRaise(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raising a priority needs root (CAP_SYS_NICE)")
	}
	if _, err := Raise(Agent); err != nil {
		t.Fatal(err)
	}
	checkThreads(t)
	// Threads the runtime makes later, for goroutines blocked in system
	// calls, take the raised priority, not the spawner's.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ts := syscall.NsecToTimespec(int64(50 * time.Millisecond))
			_ = syscall.Nanosleep(&ts, nil)
		})
	}
	wg.Wait()
	if n := processNice(t, startSleep(t, Start)); n != 0 {
		t.Errorf("child started with Start at nice %d, want 0", n)
	}
	checkThreads(t)
	// Without Start, a child shares the agent's priority: what Start is for.
	if n := processNice(t, startSleep(t, (*exec.Cmd).Start)); n != Agent {
		t.Errorf("child started with cmd.Start at nice %d, want the agent's %d", n, Agent)
	}
	out, err := CombinedOutput(exec.Command("sh", "-c", "echo $(cut -d' ' -f19 /proc/self/stat)"))
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Errorf("CombinedOutput: %q, %v; want the child's nice 0", out, err)
	}
}

// TestRaiseSession: the agent leads its session, as the lab and service
// managers start it; its session's scheduling group is raised with it,
// and a server started in a session of its own (as postgres is) is in a
// group at the normal priority.
func TestRaiseSession(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raising a priority needs root (CAP_SYS_NICE)")
	}
	if _, err := os.Stat(autogroupFile); err != nil {
		t.Skip("this kernel does not group by session")
	}
	if os.Getenv("PRIORITY_SESSION_LEADER") != "" {
		t.Skip("run by TestRaiseSession itself")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSessionLeader$", "-test.v")
	cmd.Env = append(os.Environ(), "PRIORITY_SESSION_LEADER=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"agent's group: nice -10", "server's group: nice 0"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the session leader's output lacks %q:\n%s", want, out)
		}
	}
}

// TestSessionLeader is TestRaiseSession's child.
func TestSessionLeader(t *testing.T) {
	if os.Getenv("PRIORITY_SESSION_LEADER") == "" {
		t.Skip("run by TestRaiseSession")
	}
	what, err := Raise(Agent)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(what)
	t.Logf("agent's group: %s", groupNice(t, os.Getpid()))
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := Start(cmd); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	t.Logf("server's group: %s", groupNice(t, cmd.Process.Pid))
}

// groupNice is the nice of pid's session group: "nice N".
func groupNice(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/autogroup")
	if err != nil {
		t.Fatal(err)
	}
	_, nice, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	return nice
}
