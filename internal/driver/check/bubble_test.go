package check

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/resource"
)

// In a drill whose bubble is a network namespace, a check connects from
// inside it, where the copies serve; the same check outside the bubble
// reaches nothing there.
func TestInBubble(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping network namespace test in -short mode")
	}
	if err := netns.Available(); err != nil {
		t.Skipf("skipping network namespace test: %v", err)
	}
	n, err := netns.Create(t.Context(), netns.Options{Names: []string{"site"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	// An address from TEST-NET-1, which the namespace alone has.
	vip := netip.MustParseAddr("192.0.2.10")
	ns, err := n.AddIsolated(t.Context(), "bubble", vip)
	if err != nil {
		t.Fatal(err)
	}
	var web net.Listener
	var dns net.PacketConn
	if err := netns.Do(ns, func() error {
		var err error
		if web, err = net.Listen("tcp", vip.String()+":0"); err != nil {
			return err
		}
		dns, err = net.ListenPacket("udp", vip.String()+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Listener.Close()
	srv.Listener = web
	srv.Start()
	defer srv.Close()
	addr, server := web.Addr().String(), serveDNS(t, dns)

	targets := map[string]string{"web": addr, "name": server}
	b := resource.Bubble{Run: "r", Address: vip.String(), Netns: ns}
	for _, tc := range []struct{ name, settings, seen, outside string }{
		{"tcp", `{timeout: 300ms, tcp: {address: "{web}"}}`, "connected to " + addr,
			"check c: expected a connection to " + addr + ", seen "},
		{"http", `{timeout: 300ms, http: {url: "http://{web}/"}}`, "HTTP 200",
			"check c: expected HTTP 200 from http://" + addr + "/, seen "},
		{"dns", `{timeout: 300ms, dns: {server: "{name}", name: db.shop.example., address: 127.0.2.2}}`, "127.0.2.2",
			"check c: expected 127.0.2.2 in the A answer for db.shop.example. at " + server + ", seen "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := verifierOf(t, tc.settings)
			out, err := v.(resource.BubbleVerifier).InBubble(b).Verify(t.Context(), targets)
			if err != nil || out[resource.OutputSeen] != tc.seen {
				t.Errorf("inside the bubble: seen %q, %v; want %q", out[resource.OutputSeen], err, tc.seen)
			}
			// A real run's check dials from the agent's namespace, where
			// the address is nobody's (no answer, or no route to it).
			if _, err := v.Verify(t.Context(), targets); err == nil || !strings.HasPrefix(err.Error(), tc.outside) {
				t.Errorf("outside the bubble: %v\nwant: %s…", err, tc.outside)
			}
		})
	}
	// Unreachable inside the bubble, the error says where it looked.
	v := verifierOf(t, `{timeout: 300ms, tcp: {address: "192.0.2.10:1"}}`).(resource.BubbleVerifier).InBubble(b)
	want := "check c: expected a connection to 192.0.2.10:1 inside network namespace " + ns + ", seen connection refused"
	if _, err := v.Verify(t.Context(), nil); err == nil || err.Error() != want {
		t.Errorf("refused in the bubble: %v\nwant: %s", err, want)
	}
}
