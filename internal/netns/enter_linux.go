package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Do calls f on an OS thread that has entered the named network namespace
// (as `ip netns` names it, a file in /run/netns). A socket belongs to the
// namespace of the thread that creates it and stays there, so f dials or
// listens in ns, and the goroutines that use the socket afterwards may run
// anywhere. f must do its work on its own goroutine: a goroutine it starts
// runs in the process's namespace. The thread goes back to its own
// namespace afterwards; if it cannot, it stays locked to its goroutine and
// ends with it, so that no other goroutine ever runs in the wrong one.
func Do(ns string, f func() error) error {
	target, err := os.Open(filepath.Join(netnsDir, ns))
	if err != nil {
		return fmt.Errorf("network namespace %s: %w; create it with ip netns add %s", ns, err, ns)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open this thread's network namespace: %w", err)
			return
		}
		defer self.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := setns(self); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave network namespace %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}

// DialFunc dials a network address, as net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Dialer returns a dial function whose connections start in the network
// namespace ns; for "" it dials from the process's own namespace. Give it
// IP addresses: a name is resolved outside the namespace, on other
// threads.
func Dialer(ns string) DialFunc {
	// No fast fallback between IPv4 and IPv6: it dials on a goroutine of
	// its own, which would be outside the namespace.
	d := &net.Dialer{KeepAlive: 5 * time.Minute, FallbackDelay: -1}
	if ns == "" {
		return d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := Do(ns, func() error {
			var err error
			conn, err = d.DialContext(ctx, network, addr)
			return err
		})
		if err != nil && conn != nil {
			conn.Close()
			conn = nil
		}
		return conn, err
	}
}
