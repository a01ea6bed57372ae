package bgp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/testbed"
)

// A Go process cannot move one goroutine into another network namespace:
// the namespace belongs to an OS thread, and GoBGP dials, accepts and
// keeps sessions on goroutines that run on any thread. So each site's
// speaker runs in a process of its own, the test binary started again
// inside the site's namespace with siteEnv set (see siteMain), driven by
// one JSON request a line on stdin and answering one JSON line on stdout.
// Killing that process is how a test kills a site's speaker.
const siteEnv = "SITEFLIP_BGP_SITE"

type siteRequest struct {
	// Op is start, announce, vpn, withdraw, status or stop for the
	// speaker; listen and count to count UDP datagrams arriving on Port;
	// stream and unstream to send datagrams to Target every millisecond.
	Op       string         `json:"op"`
	Settings *Settings      `json:"settings,omitempty"`
	Prefixes []netip.Prefix `json:"prefixes,omitempty"`
	Prepend  int            `json:"prepend,omitempty"`
	RT       string         `json:"rt,omitempty"`
	Port     int            `json:"port,omitempty"`
	Target   string         `json:"target,omitempty"`
}

type siteReply struct {
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
	Count  int64   `json:"count,omitempty"` // datagrams received (count) or sent (unstream)
}

// siteMain is the speaker process of one site. It logs to stderr.
func siteMain() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sp := NewSpeaker(log)
	defer sp.Stop()
	ctx := context.Background()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 1<<20)
	out := json.NewEncoder(os.Stdout)
	var (
		received atomic.Int64
		stream   func() int64 // stops the stream, returns how many were sent
	)
	for in.Scan() {
		var req siteRequest
		var rep siteReply
		err := json.Unmarshal(in.Bytes(), &req)
		if err == nil {
			switch req.Op {
			case "start":
				err = sp.Start(ctx, *req.Settings)
			case "announce":
				err = sp.Announce(ctx, req.Prefixes, req.Prepend)
			case "vpn":
				err = sp.AnnounceVPN(ctx, req.Prefixes, req.RT)
			case "withdraw":
				err = sp.Withdraw(ctx, req.Prefixes)
			case "status":
				var st Status
				if st, err = sp.Status(ctx); err == nil {
					rep.Status = &st
				}
			case "stop":
				sp.Stop()
			case "listen":
				err = listenUDP(req.Port, &received)
			case "count":
				rep.Count = received.Load()
			case "stream":
				stream, err = streamUDP(req.Target)
			case "unstream":
				if stream != nil {
					rep.Count, stream = stream(), nil
				}
			default:
				err = fmt.Errorf("unknown op %q", req.Op)
			}
		}
		if err != nil {
			rep.Error = err.Error()
		}
		if err := out.Encode(rep); err != nil {
			os.Exit(1)
		}
	}
}

// listenUDP counts the datagrams arriving on the port into n.
func listenUDP(port int, n *atomic.Int64) error {
	pc, err := net.ListenPacket("udp4", ":"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	return nil
}

// streamUDP sends a datagram to target every millisecond until stopped.
func streamUDP(target string) (stop func() int64, err error) {
	c, err := net.Dial("udp4", target)
	if err != nil {
		return nil, err
	}
	var sent atomic.Int64
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				// An ICMP error from a moment without a route fails the
				// next write; the datagram is lost all the same.
				c.Write([]byte("siteflip"))
				sent.Add(1)
			}
		}
	}()
	return func() int64 {
		close(quit)
		<-done
		c.Close()
		return sent.Load()
	}, nil
}

// site is a speaker process running in a namespace.
type site struct {
	t    testing.TB
	name string
	addr netip.Addr
	cmd  *exec.Cmd

	mu     sync.Mutex // one request at a time
	stdin  io.WriteCloser
	stdout *bufio.Scanner
	stderr *testbed.Buffer
	done   chan struct{} // closed when the process has exited
}

// startSite starts the speaker process of a location of the net. Cleanup
// kills it and, if the test failed, logs what it wrote to stderr.
func startSite(t testing.TB, n *netns.Net, name string) *site {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := n.Command(context.Background(), name, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), siteEnv+"=1")
	s := &site{t: t, name: name, addr: n.Addr(name), cmd: cmd, stderr: &testbed.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stdout = bufio.NewScanner(stdout)
	s.stdout.Buffer(nil, 1<<20)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start speaker of %s: %v", name, err)
	}
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("speaker of %s logged:\n%s", name, s.stderr.String())
		}
	})
	return s
}

// do sends one request and returns the reply.
func (s *site) do(req siteRequest) (siteReply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(req)
	if _, err := s.stdin.Write(append(b, '\n')); err != nil {
		return siteReply{}, fmt.Errorf("speaker of %s: %w", s.name, err)
	}
	if !s.stdout.Scan() {
		return siteReply{}, fmt.Errorf("speaker of %s: no reply to %s: %v", s.name, req.Op, s.stdout.Err())
	}
	var rep siteReply
	if err := json.Unmarshal(s.stdout.Bytes(), &rep); err != nil {
		return siteReply{}, fmt.Errorf("speaker of %s: reply %q: %w", s.name, s.stdout.Text(), err)
	}
	if rep.Error != "" {
		return siteReply{}, fmt.Errorf("speaker of %s: %s: %s", s.name, req.Op, rep.Error)
	}
	return rep, nil
}

// must sends a request and fails the test on error.
func (s *site) must(req siteRequest) siteReply {
	s.t.Helper()
	rep, err := s.do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return rep
}

func (s *site) start(set Settings) { s.t.Helper(); s.must(siteRequest{Op: "start", Settings: &set}) }

func (s *site) announce(prepend int, ps ...netip.Prefix) {
	s.t.Helper()
	s.must(siteRequest{Op: "announce", Prefixes: ps, Prepend: prepend})
}

func (s *site) announceVPN(rt string, ps ...netip.Prefix) {
	s.t.Helper()
	s.must(siteRequest{Op: "vpn", Prefixes: ps, RT: rt})
}

func (s *site) withdraw(ps ...netip.Prefix) {
	s.t.Helper()
	s.must(siteRequest{Op: "withdraw", Prefixes: ps})
}

func (s *site) status() Status { s.t.Helper(); return *s.must(siteRequest{Op: "status"}).Status }

// waitStatus polls the site's status until ok, for up to 30 s.
func (s *site) waitStatus(what string, ok func(Status) bool) Status {
	s.t.Helper()
	var st Status
	if !testbed.Poll(30*time.Second, func() bool { st = s.status(); return ok(st) }) {
		s.t.Fatalf("%s: %s not reached after 30 s; status %+v", s.name, what, st)
	}
	return st
}

// kill ends the process with SIGKILL, as a crash would: the kernel closes
// its sessions.
func (s *site) kill() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Errorf("speaker of %s did not exit", s.name)
	}
}
