// Package testbed owns the helpers that tests across siteflip share:
// picking free loopback ports, waiting for a condition, collecting output
// written while the test runs, reading back JSON log lines with every key
// checked to occur once, and counting a benchmark's CPU time. A test that
// needs one of these takes it from here rather than writing its own.
// Starting FRR, which the lab does too, lives in package frr.
//
// It imports the standard library only, so any test may use it.
package testbed

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pollEvery is how often Poll and WaitFor try their condition.
const pollEvery = 25 * time.Millisecond

var (
	issuedMu sync.Mutex
	issued   = map[int]bool{}
)

// FreePort returns a port on 127.0.0.1 that was free for both TCP and UDP
// a moment ago and that it has not returned before in this process: a
// port just released may be handed out again at once, and two helpers of
// one test must not get the same one.
func FreePort(tb testing.TB) int {
	tb.Helper()
	issuedMu.Lock()
	defer issuedMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		ln.Close()
		if err != nil {
			continue // taken for UDP
		}
		pc.Close()
		if !issued[port] {
			issued[port] = true
			return port
		}
	}
	tb.Fatal("free port: none free for TCP and UDP on 127.0.0.1 after 100 tries")
	return 0
}

// FreePorts returns n ports as FreePort does, all different.
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = FreePort(tb)
	}
	return ports
}

// Poll calls cond every 25 ms until it returns true or timeout has passed,
// and reports whether it did. For a test that says more than WaitFor on
// failure, or does not fail.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
}

// WaitFor polls cond as Poll does and fails the test, naming what it
// waited for, if cond does not hold within timeout.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Poll(timeout, cond) {
		tb.Fatalf("%s: not within %v", what, timeout)
	}
}

// Buffer collects output that other goroutines write while the test reads
// it: a child process's stdout and stderr, or a server's log.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// SharedDir returns a fresh directory that other OS users (the servers a
// test starts as postgres or mysql) can reach, unlike t.TempDir, which is
// private to its owner; it is removed when the test ends.
func SharedDir(tb testing.TB, prefix string) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// AcceptAll accepts and at once closes every connection to ln, until ln
// is closed: a TCP service that is up and says nothing.
func AcceptAll(ln net.Listener) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// RequireMariaDB skips the test in -short mode or when real MariaDB
// servers cannot be started here: a binary missing, or not root (the
// servers are administered as root over their sockets).
func RequireMariaDB(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("skipping real MariaDB test in -short mode: it starts servers")
	}
	for _, bin := range []string{"mariadbd", "mariadb-install-db", "mariadb"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Skipf("skipping real MariaDB test: %s is missing; apt-get install mariadb-server to run it", bin)
		}
	}
	if os.Geteuid() != 0 {
		tb.Skip("skipping real MariaDB test: its servers are administered as root over their sockets; run it as root")
	}
}

// ReportCPU starts counting the process's CPU time (user and system);
// the function it returns, called when the benchmark's loop has ended,
// reports it per iteration as cpu-ns/op. Unlike ns/op, it hardly moves
// when other processes share the machine's cores, and it counts the work
// of every goroutine of the process (the garbage collector's, a server's
// that a benchmark talks to).
func ReportCPU(b *testing.B) func() {
	start := cpuTime(b)
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
