package dns

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/testbed"
)

func TestUpdateNoServer(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testbed.FreePort(t)))
	err := Update(t.Context(), addr, "shop.example.", "db.shop.example.", antwerpAddrs, 5*time.Second, TSIG{})
	wantErr(t, err, ErrNoAnswer, "nothing listens on TCP "+addr, "is the DNS server running")
}

// A server that accepts the connection and never answers: the update gives
// up at the context's deadline and says which server and what to check.
func TestUpdateTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns []net.Conn
	var mu sync.Mutex
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err = Update(ctx, l.Addr().String(), "shop.example.", "db.shop.example.", antwerpAddrs, 5*time.Second, TSIG{})
	wantErr(t, err, ErrNoAnswer, "no answer from "+l.Addr().String()+" within", "firewall")
}

func TestUpdateBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, zone, rec string
		addrs           []netip.Addr
		ttl             time.Duration
		key             TSIG
		says            string
	}{
		{"no addresses", "shop.example.", "db.shop.example.", nil, 5 * time.Second, TSIG{}, "no addresses"},
		{"outside the zone", "shop.example.", "db.other.example.", antwerpAddrs, 5 * time.Second, TSIG{}, "not inside the zone"},
		{"ttl under a second", "shop.example.", "db.shop.example.", antwerpAddrs, 0, TSIG{}, "less than a second"},
		{"unknown algorithm", "shop.example.", "db.shop.example.", antwerpAddrs, time.Second, TSIG{Name: "k.", Algorithm: "rot13", Secret: bindSecret}, "not a TSIG algorithm"},
	} {
		err := Update(t.Context(), "127.0.0.1:1", tc.zone, tc.rec, tc.addrs, tc.ttl, tc.key)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.says)
		}
	}
}

func TestLookupNotAuthoritative(t *testing.T) {
	// A name the embedded server has parked is SERVFAIL; one outside its
	// zones is REFUSED: neither is taken for "no addresses".
	s := startServer(t)
	_, _, err := Lookup(t.Context(), s.Addr().String(), "db.nowhere.example.")
	wantErr(t, err, ErrNotAuthoritative, "REFUSED")
}
