package testbed

import (
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// FreePort never hands out a port twice, even one released at once, and
// the port can be bound for TCP and UDP.
func TestFreePort(t *testing.T) {
	seen := map[int]bool{}
	for _, p := range append(FreePorts(t, 20), FreePort(t)) {
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	p := strconv.Itoa(FreePort(t))
	ln, err := net.Listen("tcp", "127.0.0.1:"+p)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:"+p)
	if err != nil {
		t.Fatal(err)
	}
	pc.Close()
}

func TestPoll(t *testing.T) {
	n := 0
	if !Poll(time.Minute, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("Poll stopped after %d calls, want true after 3", n)
	}
	start := time.Now()
	if Poll(100*time.Millisecond, func() bool { return false }) {
		t.Error("Poll of a condition that never holds returned true")
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("Poll gave up after %v, before its timeout", d)
	}
}

// A shared directory is reachable by other users and gone after the test.
func TestSharedDir(t *testing.T) {
	var dir string
	t.Run("inner", func(t *testing.T) {
		dir = SharedDir(t, "sf-shared-")
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Fatalf("shared dir %s: %v, mode %v; want 0755", dir, err, fi.Mode().Perm())
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("shared dir %s still there after its test: %v", dir, err)
	}
}

// OneKeyOnce finds a key given twice at any depth, which decoding into a
// map would hide.
func TestOneKeyOnce(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
	}{
		{`{"msg":"a","site":"brussels","n":[1,{"x":1}],"o":{"k":{}}}`, true},
		{`{"msg":"a","site":"brussels","site":"antwerp"}`, false},
		{`{"msg":"a","msg":"b"}`, false},
		{`{"o":{"k":1,"k":2}}`, false},
		{`{"a":[{"k":1},{"k":2}],"b":{"k":1}}`, true}, // the same key in different objects is fine
		{`{"a":[{"k":1,"k":1}]}`, false},
		{`[1]`, false},
		{`{"a":1}{"b":2}`, false},
		{`{"a":1`, false},
	}
	for _, tt := range tests {
		if err := OneKeyOnce([]byte(tt.line)); (err == nil) != tt.ok {
			t.Errorf("OneKeyOnce(%s) = %v, want ok %v", tt.line, err, tt.ok)
		}
	}
}

// ReportCPU reports the CPU time per iteration of a loop that uses the CPU.
func TestReportCPU(t *testing.T) {
	var sink int
	r := testing.Benchmark(func(b *testing.B) {
		report := ReportCPU(b)
		for b.Loop() {
			for i := range 100_000 {
				sink += i
			}
		}
		report()
	})
	if cpu := r.Extra["cpu-ns/op"]; cpu <= 0 || r.N == 0 {
		t.Errorf("cpu-ns/op %v over %d iterations, want it counted", cpu, r.N)
	}
	_ = sink
}
