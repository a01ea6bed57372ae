//go:build !linux

package netns

import (
	"context"
	"fmt"
	"net"
)

// Do calls f in the named network namespace; namespaces exist only on
// Linux.
func Do(ns string, f func() error) error {
	return fmt.Errorf("network namespace %s: namespaces exist only on Linux", ns)
}

// DialFunc dials a network address, as net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Dialer returns a dial function whose connections start in the network
// namespace ns; for "" it dials from the process's own namespace.
func Dialer(ns string) DialFunc {
	d := &net.Dialer{}
	if ns == "" {
		return d.DialContext
	}
	return func(context.Context, string, string) (net.Conn, error) { return nil, Do(ns, nil) }
}
