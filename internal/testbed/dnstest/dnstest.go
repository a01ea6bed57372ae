// Package dnstest runs the small DNS servers tests answer from (miekg/dns),
// so that each test writes only its answers. It is apart from testbed,
// which uses the standard library alone.
package dnstest

import (
	"testing"

	mdns "github.com/miekg/dns"
)

// Serve starts srv, as set up (an Addr and Net to listen on, or a
// PacketConn or Listener of its own), returns once it serves, and shuts
// it down when the test ends.
func Serve(tb testing.TB, srv *mdns.Server) {
	tb.Helper()
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	errc := make(chan error, 1)
	go func() {
		if srv.PacketConn != nil || srv.Listener != nil {
			errc <- srv.ActivateAndServe()
			return
		}
		errc <- srv.ListenAndServe()
	}()
	select {
	case <-started:
	case err := <-errc:
		tb.Fatalf("dns server on %s/%s: %v", srv.Addr, srv.Net, err)
	}
	tb.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			tb.Error(err)
		}
		<-errc
	})
}
