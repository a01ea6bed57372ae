package dns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/testbed"
)

// drillGroup is group webshop with one dns resource, name, whose settings
// at brussels are s (defaults set and checked).
func drillGroup(t *testing.T, s *Settings) (*config.Group, *config.Resource) {
	t.Helper()
	s.SetDefaults()
	if errs := s.Check(); len(errs) > 0 {
		t.Fatalf("settings: %v", errs)
	}
	g := &config.Group{Name: "webshop", Resources: []config.Resource{{Name: "name", Type: "dns", Settings: map[string]any{"brussels": s}}}}
	return g, &g.Resources[0]
}

func newDrill(t *testing.T, g *config.Group, r *config.Resource, b resource.Bubble) resource.Drill {
	t.Helper()
	d, err := Type{}.Drill(g, r, "brussels", b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Teardown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return d
}

// lookupOne asks server for name and returns its one address, or what
// went wrong.
func lookupOne(t *testing.T, server, name string) string {
	t.Helper()
	addrs, _, err := Lookup(t.Context(), server, name)
	if err != nil {
		return err.Error()
	}
	if len(addrs) != 1 {
		return "answers " + strconv.Itoa(len(addrs)) + " addresses"
	}
	return addrs[0].String()
}

// A drill's server answers the group's name with the bubble address, on
// the bubble address at production's port; production's listener goes on
// answering production's address; the teardown frees the port.
func TestDrillAnswersInBubble(t *testing.T) {
	port := strconv.Itoa(testbed.FreePort(t))
	prodAddr, bubbleAddr := "127.0.0.1:"+port, "127.0.0.2:"+port
	g, r := drillGroup(t, &Settings{Name: "db.shop.example.", Address: "10.1.0.20", Serve: prodAddr})
	prod, err := newDNS(g, r, "brussels", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	prod.Follow(t.Context(), "brussels")
	if got := lookupOne(t, prodAddr, "db.shop.example."); got != "10.1.0.20" {
		t.Fatalf("production answers %s before the drill", got)
	}

	d := newDrill(t, g, r, resource.Bubble{Run: "run-1", Address: "127.0.0.2"})
	if out, err := d.Clone(t.Context()); err != nil || len(out) != 0 {
		t.Errorf("Clone: %v, %v; want nothing", out, err)
	}
	want := map[string]string{resource.OutputAddress: bubbleAddr}
	for range 2 { // idempotent
		out, err := d.Start(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, out); diff != "" {
			t.Errorf("Start (-want +got):\n%s", diff)
		}
	}
	if got := lookupOne(t, bubbleAddr, "db.shop.example."); got != "127.0.0.2" {
		t.Errorf("the bubble's server answers %s, want the bubble address", got)
	}
	if got := lookupOne(t, prodAddr, "db.shop.example."); got != "10.1.0.20" {
		t.Errorf("production answers %s during the drill", got)
	}

	// Another drill of the resource waits for this one's teardown.
	other := newDrill(t, g, r, resource.Bubble{Run: "run-2", Address: "127.0.0.2"})
	if _, err := other.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "the server of drill run-1 still runs on the bubble: tear that drill down first") {
		t.Errorf("Start of a second drill: %v", err)
	}
	sweep := newDrill(t, g, r, resource.Bubble{Address: "127.0.0.2"})
	if runs, err := sweep.Leftovers(); err != nil || !cmp.Equal(runs, []string{"run-1"}) {
		t.Errorf("Leftovers: %v, %v; want run-1", runs, err)
	}

	for range 2 { // idempotent
		if err := d.Teardown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if runs, err := sweep.Leftovers(); err != nil || len(runs) != 0 {
		t.Errorf("Leftovers after the teardown: %v, %v", runs, err)
	}
	// The port is free again on the bubble address, for UDP and TCP.
	pc, err := net.ListenPacket("udp", bubbleAddr)
	if err != nil {
		t.Errorf("UDP %s after the teardown: %v", bubbleAddr, err)
	} else {
		pc.Close()
	}
	l, err := net.Listen("tcp", bubbleAddr)
	if err != nil {
		t.Errorf("TCP %s after the teardown: %v", bubbleAddr, err)
	} else {
		l.Close()
	}
	if got := lookupOne(t, prodAddr, "db.shop.example."); got != "10.1.0.20" {
		t.Errorf("production answers %s after the drill", got)
	}
}

// A resource that only updates RFC 2136 servers has nothing to start in a
// drill; one that does both starts its server and leaves the servers.
func TestDrillRFC2136(t *testing.T) {
	tsig := &TSIGSettings{Name: "siteflip.", SecretEnv: "SITEFLIP_TSIG"}
	g, r := drillGroup(t, &Settings{Name: "db.shop.example.", Address: "10.1.0.20", Zone: "shop.example.", Servers: []string{"10.9.0.53"}, TSIG: tsig})
	out, err := newDrill(t, g, r, resource.Bubble{Run: "run-1", Address: "127.0.0.2"}).Start(t.Context())
	want := map[string]string{"skipped": "RFC 2136 servers are updated only for a configured drill zone; none is configured"}
	if err != nil || !cmp.Equal(out, want) {
		t.Errorf("Start: %v, %v; want %v", out, err, want)
	}

	port := strconv.Itoa(testbed.FreePort(t))
	g, r = drillGroup(t, &Settings{Name: "db.shop.example.", Address: "10.1.0.20", Serve: "127.0.0.1:" + port, Zone: "shop.example.", Servers: []string{"10.9.0.53"}, TSIG: tsig})
	out, err = newDrill(t, g, r, resource.Bubble{Run: "run-1", Address: "127.0.0.2"}).Start(t.Context())
	want = map[string]string{
		resource.OutputAddress: "127.0.0.2:" + port,
		"servers":              "not updated: RFC 2136 servers are updated only for a configured drill zone; none is configured",
	}
	if err != nil || !cmp.Equal(out, want) {
		t.Errorf("Start with serve and servers: %v, %v; want %v", out, err, want)
	}
}

func TestDrillRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		serve  string
		bubble resource.Bubble
		want   string
	}{
		{"no bubble", "127.0.0.1:5353", resource.Bubble{Run: "r"},
			"group webshop, resource name, drill r at brussels: site brussels has no bubble address: set sites[].bubble.address to an address production clients never use"},
		{"bad bubble", "127.0.0.1:5353", resource.Bubble{Run: "r", Address: "bubble"},
			`group webshop, resource name, drill r at brussels: bubble address "bubble" is not an IP address`},
		{"no run", "127.0.0.1:5353", resource.Bubble{Address: "127.0.0.2"},
			"group webshop, resource name at brussels: a drill's server needs the drill's run ID"},
		{"every address", ":5353", resource.Bubble{Run: "r", Address: "127.0.0.2"},
			`group webshop, resource name, drill r at brussels: production's listener takes port 5353 on every address (serve ":5353"), so the bubble's server cannot listen on 127.0.0.2: set serve to one address of the agent, or give the site's bubble a netns`},
		{"every IPv6 address", "[::]:5353", resource.Bubble{Run: "r", Address: "127.0.0.2"},
			`group webshop, resource name, drill r at brussels: production's listener takes port 5353 on every address (serve "[::]:5353"), so the bubble's server cannot listen on 127.0.0.2: set serve to one address of the agent, or give the site's bubble a netns`},
		{"production's address", "127.0.0.1:5353", resource.Bubble{Run: "r", Address: "127.0.0.1"},
			`group webshop, resource name, drill r at brussels: the bubble address 127.0.0.1 is production's listener (serve "127.0.0.1:5353"): give the site's bubble an address production clients never use, or a netns`},
		{"no such netns", "127.0.0.1:5353", resource.Bubble{Run: "r", Address: "127.0.0.1", Netns: "siteflip-nosuch"},
			"group webshop, resource name, drill r at brussels: network namespace siteflip-nosuch: open /run/netns/siteflip-nosuch: no such file or directory; create it with ip netns add siteflip-nosuch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, r := drillGroup(t, &Settings{Name: "db.shop.example.", Address: "10.1.0.20", Serve: tc.serve})
			d := newDrill(t, g, r, tc.bubble)
			if out, err := d.Start(t.Context()); err == nil || err.Error() != tc.want {
				t.Errorf("Start: %v, %v\nwant: %s", out, err, tc.want)
			}
			if runs, _ := d.Leftovers(); len(runs) != 0 {
				t.Errorf("Leftovers after a refused start: %v", runs)
			}
		})
	}
	if _, err := (Type{}).Drill(&config.Group{Name: "webshop"}, &config.Resource{Name: "name"}, "brussels", resource.Bubble{}); err == nil {
		t.Error("Drill without settings at the site: no error")
	}
}

// In a bubble namespace, the drill's server listens on production's own
// address inside it, and production's listener outside is left alone.
func TestDrillInNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping network namespace test in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping network namespace test: it needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping network namespace test: no ip command; apt-get install iproute2 to run it")
	}
	b := make([]byte, 4)
	rand.Read(b)
	ns := "sfdns" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("skipping network namespace test: ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", ns, err, out)
	}

	addr := "127.0.0.1:" + strconv.Itoa(testbed.FreePort(t))
	g, r := drillGroup(t, &Settings{Name: "db.shop.example.", Address: "10.1.0.20", Serve: addr})
	prod, err := newDNS(g, r, "brussels", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	prod.Follow(t.Context(), "brussels")

	d := newDrill(t, g, r, resource.Bubble{Run: "run-1", Address: "127.0.0.1", Netns: ns})
	out, err := d.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if out[resource.OutputAddress] != addr {
		t.Errorf("Start: %v, want address %s", out, addr)
	}
	var inside []netip.Addr
	if err := netns.Do(ns, func() error {
		var err error
		inside, _, err = Lookup(t.Context(), addr, "db.shop.example.")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(inside) != 1 || inside[0].String() != "127.0.0.1" {
		t.Errorf("inside %s the name is %v, want the bubble address 127.0.0.1", ns, inside)
	}
	if got := lookupOne(t, addr, "db.shop.example."); got != "10.1.0.20" {
		t.Errorf("production answers %s during the drill", got)
	}
	if err := d.Teardown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := netns.Do(ns, func() error {
		_, _, err := Lookup(t.Context(), addr, "db.shop.example.")
		return err
	}); err == nil {
		t.Errorf("inside %s the drill's server still answers after the teardown", ns)
	}
}
