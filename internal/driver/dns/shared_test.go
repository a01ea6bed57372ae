package dns

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/testbed"
)

// sharedAddr is a free address for the shared server of one test.
func sharedAddr(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(testbed.FreePort(t)))
}

// servedGroup is group group with one dns resource, res, that answers name
// on serve at brussels: with 10.1.0.<host> while brussels is active and
// 10.2.0.<host> while antwerp is.
func servedGroup(t *testing.T, group, res, name, serve string, host int) *config.Group {
	t.Helper()
	at := func(site string, net int) *Settings {
		s := &Settings{Name: name, Address: fmt.Sprintf("10.%d.0.%d", net, host), Serve: serve}
		if errs := Prepare(s, site, "/"); len(errs) > 0 {
			t.Fatalf("settings at %s: %v", site, errs)
		}
		return s
	}
	g := &config.Group{Name: group, Resources: []config.Resource{{Name: res, Type: "dns",
		Settings: map[string]any{"brussels": at("brussels", 1), "antwerp": at("antwerp", 2)}}}}
	return g
}

// startServed starts g's resource at brussels; the test closes it when
// it ends, if the test has not (Close may be called twice).
func startServed(t *testing.T, g *config.Group) resource.Network {
	t.Helper()
	n, err := newDNS(g, &g.Resources[0], "brussels", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// answers is what addr answers for each name, as lookupOne says it, with
// "not served" for a name the server refuses.
func answers(t *testing.T, addr string, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range names {
		got := lookupOne(t, addr, name)
		if strings.Contains(got, ErrNotAuthoritative.Error()+" (REFUSED)") {
			got = "not served"
		}
		out[name] = got
	}
	return out
}

// Two groups' names on one address share one listener, and each follows
// its own group's active site; closing one leaves the other answering, and
// closing the last frees the address.
func TestSharedServer(t *testing.T) {
	addr := sharedAddr(t)
	const shopName, crmName = "db.shop.example.", "crm.bank.example."
	shop := startServed(t, servedGroup(t, "webshop", "name", shopName, addr, 20))
	crm := startServed(t, servedGroup(t, "crm", "name", crmName, addr, 30))
	if shop.(*dnsNet).server != crm.(*dnsNet).server {
		t.Fatal("two resources serving on one address have a server each")
	}
	ctx := t.Context()
	for _, step := range []struct {
		what string
		do   func()
		want map[string]string
	}{
		{"before any site is known", func() {},
			map[string]string{shopName: "not served", crmName: "not served"}},
		{"each follows its own active site", func() { shop.Follow(ctx, "brussels"); crm.Follow(ctx, "antwerp") },
			map[string]string{shopName: "10.1.0.20", crmName: "10.2.0.30"}},
		{"webshop fails over, crm stays", func() { shop.Follow(ctx, "antwerp") },
			map[string]string{shopName: "10.2.0.20", crmName: "10.2.0.30"}},
		{"crm activates here, webshop stays", func() {
			if _, err := crm.Activate(ctx); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{shopName: "10.2.0.20", crmName: "10.1.0.30"}},
		{"webshop closes", shop.Close,
			map[string]string{shopName: "not served", crmName: "10.1.0.30"}},
		// A late Follow must not bring the name back on the server crm
		// still uses.
		{"webshop follows after its close", func() { shop.Follow(ctx, "brussels") },
			map[string]string{shopName: "not served", crmName: "10.1.0.30"}},
		{"webshop closes again", shop.Close,
			map[string]string{shopName: "not served", crmName: "10.1.0.30"}},
	} {
		step.do()
		if diff := cmp.Diff(step.want, answers(t, addr, shopName, crmName)); diff != "" {
			t.Fatalf("%s: answers (-want +got):\n%s", step.what, diff)
		}
	}

	crm.Close()
	srv, err := Listen(addr, nil)
	if err != nil {
		t.Fatalf("the address is not free once its last name is closed: %v", err)
	}
	srv.Close()
}

// A name answered on an address by one resource cannot be answered there
// by another, of any group; other names, or the name elsewhere, can.
func TestSharedServerClaims(t *testing.T) {
	for _, tc := range []struct {
		name                string
		group, res, dnsName string
		otherAddr           bool
		err                 string
	}{
		{"another group, the same name", "crm", "name", "db.shop.example.", false,
			"dns name db.shop.example. on ADDR is answered by group webshop, resource name already, so group crm, resource name cannot answer it there too: give one of them another name or another serve address"},
		{"the same group, another resource", "webshop", "alias", "DB.shop.example.", false,
			"dns name db.shop.example. on ADDR is answered by group webshop, resource name already, so group webshop, resource alias cannot answer it there too: give one of them another name or another serve address"},
		{"another name", "crm", "name", "crm.shop.example.", false, ""},
		{"the same name on another address", "crm", "name", "db.shop.example.", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := sharedAddr(t)
			first := startServed(t, servedGroup(t, "webshop", "name", "db.shop.example.", addr, 20))
			first.Follow(t.Context(), "brussels")

			serve := addr
			if tc.otherAddr {
				serve = sharedAddr(t)
			}
			g := servedGroup(t, tc.group, tc.res, tc.dnsName, serve, 30)
			second, err := newDNS(g, &g.Resources[0], "brussels", nil)
			switch want := strings.ReplaceAll(tc.err, "ADDR", addr); {
			case want == "" && err != nil:
				t.Fatalf("newDNS: %v", err)
			case want == "":
				second.Close()
			case err == nil:
				second.Close()
				t.Fatalf("newDNS succeeded; want %q", want)
			case err.Error() != want:
				t.Fatalf("newDNS:\n got %v\nwant %s", err, want)
			}
			if got := lookupOne(t, addr, "db.shop.example."); got != "10.1.0.20" {
				t.Errorf("the first resource answers %s after the second started, want 10.1.0.20", got)
			}
			// A refused resource holds nothing: the address is free once
			// the first is closed.
			first.Close()
			srv, err := Listen(addr, nil)
			if err != nil {
				t.Fatalf("the address is not free once the first is closed: %v", err)
			}
			srv.Close()
		})
	}
}

// An address another program holds is an error, and leaves nothing
// behind: the next start, once the address is free, listens.
func TestSharedServerAddressTaken(t *testing.T) {
	addr := sharedAddr(t)
	other, err := Listen(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := servedGroup(t, "webshop", "name", "db.shop.example.", addr, 20)
	if n, err := newDNS(g, &g.Resources[0], "brussels", nil); err == nil {
		n.Close()
		t.Fatal("newDNS on an address in use succeeded")
	}
	other.Close()
	startServed(t, g).Follow(t.Context(), "brussels")
	if got := lookupOne(t, addr, "db.shop.example."); got != "10.1.0.20" {
		t.Errorf("answers %s, want 10.1.0.20", got)
	}
}

// Groups start and stop side by side: every start and close is
// counted, and the address is free once all are closed.
func TestSharedServerConcurrent(t *testing.T) {
	addr := sharedAddr(t)
	const groups = 20
	type started struct {
		g *config.Group
		n resource.Network
	}
	all := make([]started, groups)
	for i := range all {
		all[i].g = servedGroup(t, fmt.Sprintf("g%d", i), "name", fmt.Sprintf("g%d.shop.example.", i), addr, 20)
	}
	var wg sync.WaitGroup
	for i := range all {
		wg.Go(func() {
			n, err := newDNS(all[i].g, &all[i].g.Resources[0], "brussels", nil)
			if err != nil {
				t.Error(err)
				return
			}
			n.Follow(t.Context(), "brussels")
			all[i].n = n
		})
	}
	wg.Wait()
	for _, s := range all {
		if s.n != nil {
			t.Cleanup(s.n.Close)
		}
	}
	if t.Failed() {
		return
	}
	for i := range all {
		if got := lookupOne(t, addr, fmt.Sprintf("g%d.shop.example.", i)); got != "10.1.0.20" {
			t.Errorf("g%d answers %s, want 10.1.0.20", i, got)
		}
	}
	for _, s := range all {
		wg.Go(s.n.Close)
	}
	wg.Wait()
	srv, err := Listen(addr, nil)
	if err != nil {
		t.Fatalf("the address is not free once every name is closed: %v", err)
	}
	srv.Close()
}
