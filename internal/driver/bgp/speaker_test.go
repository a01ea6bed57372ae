package bgp

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/siteflip/siteflip/internal/logging"
	"github.com/siteflip/siteflip/internal/testbed"
)

var vip = netip.MustParsePrefix("10.77.0.10/32")

// loopbackPair starts two speakers on the loopback: a (AS 65001) listens
// on a free port and b (AS 65000) dials it, so no root is needed. Both
// carry VPNv4 when vrf is set.
func loopbackPair(t *testing.T, vrf bool) (a, b *Speaker) {
	t.Helper()
	return loopbackPairLogs(t, vrf, nil)
}

// loopbackPairLogs is loopbackPair with a logging to logA (nil: the
// test's log).
func loopbackPairLogs(t *testing.T, vrf bool, logA *slog.Logger) (a, b *Speaker) {
	t.Helper()
	port := testbed.FreePort(t)
	sa := Settings{
		ASN:        65001,
		RouterID:   "10.1.0.10",
		ListenPort: port,
		Neighbors:  []Neighbor{{Address: "127.0.0.1", ASN: 65000, Port: testbed.FreePort(t)}},
		Prefixes:   []string{vip.String()},
		NextHop:    "10.1.0.10",
	}
	sb := Settings{
		ASN:       65000,
		RouterID:  "10.1.0.1",
		Neighbors: []Neighbor{{Address: "127.0.0.1", ASN: 65001, Port: port}},
		Prefixes:  []string{"10.99.0.0/24"},
	}
	if vrf {
		sa.RD, sa.ProductionRT, sa.StandbyRT, sa.BubbleRT = "65001:10", "65000:100", "65000:200", "65000:999"
		sb.RD, sb.ProductionRT, sb.StandbyRT = "65000:10", "65000:100", "65000:200"
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if logA == nil {
		logA = log.With("speaker", "a")
	}
	a, b = NewSpeaker(logA), NewSpeaker(log.With("speaker", "b"))
	if err := a.Start(t.Context(), sa); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	if err := b.Start(t.Context(), sb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	waitStatus(t, a, "session up", func(st Status) bool { return st.Neighbors[0].Established() })
	return a, b
}

// waitStatus polls the speaker's status until ok, for up to 20 s.
func waitStatus(t *testing.T, sp *Speaker, what string, ok func(Status) bool) Status {
	t.Helper()
	var st Status
	if !testbed.Poll(20*time.Second, func() bool {
		var err error
		if st, err = sp.Status(t.Context()); err != nil {
			t.Fatal(err)
		}
		return ok(st)
	}) {
		t.Fatalf("%s: not reached after 20 s; status %+v", what, st)
	}
	return st
}

// updatesFrom counts the UPDATE messages sp received from the neighbor.
func updatesFrom(t *testing.T, sp *Speaker, neighbor string) uint64 {
	t.Helper()
	srv, _, _, err := sp.running()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	err = srv.ListPeer(t.Context(), &api.ListPeerRequest{Address: neighbor}, func(p *api.Peer) {
		n = p.GetState().GetMessages().GetReceived().GetUpdate()
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// ribHas says whether the speaker's table (global or adj-in of its first
// neighbor) holds the prefix.
func ribHas(t *testing.T, sp *Speaker, table api.TableType, p netip.Prefix) bool {
	t.Helper()
	srv, s, _, err := sp.running()
	if err != nil {
		t.Fatal(err)
	}
	req := apiutil.ListPathRequest{TableType: table, Family: gobgp.RF_IPv4_UC}
	if table == api.TableType_TABLE_TYPE_ADJ_IN {
		req.Name = s.Neighbors[0].Address
	}
	found := false
	err = srv.ListPath(req, func(nlri gobgp.NLRI, _ []*apiutil.Path) {
		if n, ok := nlri.(*gobgp.IPAddrPrefix); ok && n.Prefix == p {
			found = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestSpeakerIgnoresRoutesReceived(t *testing.T) {
	a, b := loopbackPair(t, false)
	theirs := netip.MustParsePrefix("10.99.0.0/24")
	if err := b.Announce(t.Context(), []netip.Prefix{theirs}, 0); err != nil {
		t.Fatal(err)
	}
	testbed.WaitFor(t, 20*time.Second, "a receives "+theirs.String(), func() bool {
		return ribHas(t, a, api.TableType_TABLE_TYPE_ADJ_IN, theirs)
	})
	if ribHas(t, a, api.TableType_TABLE_TYPE_GLOBAL, theirs) {
		t.Errorf("a took %s from its neighbor into its RIB", theirs)
	}
	if !ribHas(t, b, api.TableType_TABLE_TYPE_GLOBAL, theirs) {
		t.Errorf("b lost its own %s", theirs)
	}
}

func TestSpeakerAnnounceWithdraw(t *testing.T) {
	a, _ := loopbackPair(t, false)
	ctx := t.Context()
	other := netip.MustParsePrefix("10.77.1.0/24")

	if err := a.Announce(ctx, []netip.Prefix{vip, other}, 0); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, a, "announced", func(st Status) bool { return len(st.Neighbors[0].Advertised) == 2 })
	n := st.Neighbors[0]
	if n.Address != netip.MustParseAddr("127.0.0.1") || n.ASN != 65000 || n.HoldTime != 9*time.Second || n.Since.IsZero() {
		t.Errorf("neighbor = %+v, want 127.0.0.1 AS 65000 established with hold time 9s", n)
	}
	got, ok := n.Unicast(vip)
	want := Route{Prefix: vip, NextHop: netip.MustParseAddr("10.1.0.10"), ASPath: []uint32{65001}, Prepend: 0}
	if !ok {
		t.Fatalf("%s not in adj-rib-out %v", vip, n.Advertised)
	}
	if d := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{})); d != "" {
		t.Errorf("route (-want +got):\n%s", d)
	}

	// Prepending replaces the route.
	if err := a.Announce(ctx, []netip.Prefix{vip}, 3); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, a, "prepended", func(st Status) bool {
		r, ok := st.Neighbors[0].Unicast(vip)
		return ok && r.Prepend == 3
	})
	if r, _ := st.Neighbors[0].Unicast(vip); !slices.Equal(r.ASPath, []uint32{65001, 65001, 65001, 65001}) {
		t.Errorf("as path %v, want 65001 four times", r.ASPath)
	}

	if err := a.Withdraw(ctx, []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, a, "withdrawn", func(st Status) bool { return len(st.Neighbors[0].Advertised) == 1 })
	if _, ok := st.Neighbors[0].Unicast(other); !ok {
		t.Errorf("%s gone too: %v", other, st.Neighbors[0].Advertised)
	}
	// Withdrawing again does nothing.
	if err := a.Withdraw(ctx, []netip.Prefix{vip}); err != nil {
		t.Errorf("second withdraw: %v", err)
	}
}

func TestSpeakerVPNReplacesInOneUpdate(t *testing.T) {
	a, b := loopbackPair(t, true)
	ctx := t.Context()
	waitStatus(t, b, "session up", func(st Status) bool { return st.Neighbors[0].Established() })
	peerOfB := "127.0.0.1"

	for i, rt := range []string{"65000:100", "65000:200", "65000:100", "65000:999"} {
		before := updatesFrom(t, b, peerOfB)
		if err := a.AnnounceVPN(ctx, []netip.Prefix{vip}, rt); err != nil {
			t.Fatal(err)
		}
		st := waitStatus(t, a, "announced with "+rt, func(st Status) bool {
			r, ok := st.Neighbors[0].VPN(vip)
			return ok && slices.Equal(r.RouteTargets, []string{rt})
		})
		r, _ := st.Neighbors[0].VPN(vip)
		if r.RD != "65001:10" || r.NextHop != netip.MustParseAddr("10.1.0.10") {
			t.Errorf("route %v, want rd 65001:10 via 10.1.0.10", r)
		}
		testbed.Poll(5*time.Second, func() bool { return updatesFrom(t, b, peerOfB) != before })
		time.Sleep(200 * time.Millisecond) // a second UPDATE would come now
		if got := updatesFrom(t, b, peerOfB) - before; got != 1 {
			t.Errorf("announce %d with %s: b received %d UPDATEs, want 1", i, rt, got)
		}
	}

	if err := a.Withdraw(ctx, []netip.Prefix{vip}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a, "withdrawn", func(st Status) bool { return len(st.Neighbors[0].Advertised) == 0 })
}

func TestSpeakerErrors(t *testing.T) {
	ctx := t.Context()
	sp := NewSpeaker(nil)
	if err := sp.Announce(ctx, []netip.Prefix{vip}, 0); !errors.Is(err, ErrNotStarted) {
		t.Errorf("announce before start: %v, want ErrNotStarted", err)
	}
	if _, err := sp.Status(ctx); !errors.Is(err, ErrNotStarted) {
		t.Errorf("status before start: %v, want ErrNotStarted", err)
	}
	if err := sp.Start(ctx, Settings{ASN: 65001}); err == nil {
		t.Error("start with bad settings: no error")
	}
	good := Settings{
		ASN: 65001, RouterID: "10.1.0.10",
		Neighbors: []Neighbor{{Address: "127.0.0.1", ASN: 65000, Port: testbed.FreePort(t)}},
		Prefixes:  []string{vip.String()},
	}
	if err := sp.Start(ctx, good); err != nil {
		t.Fatal(err)
	}
	defer sp.Stop()
	if err := sp.Start(ctx, good); !errors.Is(err, ErrStarted) {
		t.Errorf("second start: %v, want ErrStarted", err)
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"prepend -1", sp.Announce(ctx, []netip.Prefix{vip}, -1)},
		{"prepend 11", sp.Announce(ctx, []netip.Prefix{vip}, MaxPrepend+1)},
		{"no prefixes", sp.Announce(ctx, nil, 0)},
		{"host bits", sp.Announce(ctx, []netip.Prefix{netip.MustParsePrefix("10.77.0.10/24")}, 0)},
		{"ipv6", sp.Announce(ctx, []netip.Prefix{netip.MustParsePrefix("2001:db8::/64")}, 0)},
		{"withdraw host bits", sp.Withdraw(ctx, []netip.Prefix{netip.MustParsePrefix("10.77.0.10/24")})},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if err := sp.AnnounceVPN(ctx, []netip.Prefix{vip}, "65000:100"); !errors.Is(err, ErrNoVRF) {
		t.Errorf("vpn without rd: %v, want ErrNoVRF", err)
	}
	sp.Stop()
	sp.Stop()
	if err := sp.Withdraw(ctx, []netip.Prefix{vip}); !errors.Is(err, ErrNotStarted) {
		t.Errorf("withdraw after stop: %v, want ErrNotStarted", err)
	}
	// A stopped speaker starts again.
	good.ListenPort = testbed.FreePort(t)
	if err := sp.Start(ctx, good); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if err := sp.AnnounceVPN(ctx, []netip.Prefix{vip}, "x"); err == nil {
		t.Error("bad target: no error")
	}
}

// A session that goes down leaves a trace at info in the agent's log: the
// speaker writes GoBGP's session changes there.
func TestSpeakerLogsAFlap(t *testing.T) {
	var out testbed.Buffer
	log, err := logging.New(&out, logging.FormatJSON, "info")
	if err != nil {
		t.Fatal(err)
	}
	_, b := loopbackPairLogs(t, false, log.With("site", "brussels", "component", "bgp"))
	b.Stop() // a's neighbor goes away: its session goes down
	lines := func() (up, down bool) {
		for _, r := range testbed.LogRecords(t, out.String()) {
			if r["level"] != "INFO" && r["level"] != "WARN" {
				t.Errorf("at --log-level info: %v", r)
			}
			if r["component"] != "bgp" || r["site"] != "brussels" {
				t.Errorf("line %v: want component bgp, site brussels", r)
			}
			switch r["msg"] {
			case "bgp session established":
				up = up || r["peer"] == "127.0.0.1"
			case "bgp session down":
				down = down || r["peer"] == "127.0.0.1"
			}
		}
		return up, down
	}
	testbed.WaitFor(t, 20*time.Second, "a line saying the session went down", func() bool {
		_, down := lines()
		return down
	})
	if up, _ := lines(); !up {
		t.Errorf("no line says the session was established:\n%s", out.String())
	}
}
