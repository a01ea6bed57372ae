package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"

	"github.com/siteflip/siteflip/internal/logging"
	"github.com/siteflip/siteflip/internal/testbed"
)

var (
	brusselsAddrs = []netip.Addr{netip.MustParseAddr("10.1.0.20"), netip.MustParseAddr("2001:db8:1::20")}
	antwerpAddrs  = []netip.Addr{netip.MustParseAddr("10.2.0.20")}
)

func startServer(t *testing.T) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func ask(t testing.TB, server, proto, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := (&mdns.Client{Net: proto, Timeout: 5 * time.Second}).Exchange(m, server)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, mdns.TypeToString[qtype], proto, err)
	}
	return r
}

func TestServerAnswersActiveSite(t *testing.T) {
	s := startServer(t)
	addr := s.Addr().String()
	name := "db.shop.example."
	if err := s.Set(Record{Zone: "shop.example.", Name: name, Addrs: brusselsAddrs, TTL: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	got, ttl, err := Lookup(t.Context(), addr, name)
	if err != nil {
		t.Fatal(err)
	}
	if !equalAddrs(got, brusselsAddrs) || ttl != 5*time.Second {
		t.Fatalf("brussels active: %v ttl %s, want %v ttl 5s", got, ttl, brusselsAddrs)
	}

	if err := s.SetActive(name, antwerpAddrs); err != nil {
		t.Fatal(err)
	}
	got, ttl, err = Lookup(t.Context(), addr, name)
	if err != nil {
		t.Fatal(err)
	}
	if !equalAddrs(got, antwerpAddrs) || ttl != 5*time.Second {
		t.Fatalf("antwerp active: %v ttl %s, want %v ttl 5s", got, ttl, antwerpAddrs)
	}
	// TCP gives the same answer from the same port.
	r := ask(t, addr, "tcp", "DB.shop.example.", mdns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "10.2.0.20" || r.Answer[0].Header().Name != "DB.shop.example." {
		t.Fatalf("over TCP: %v", r)
	}

	// With no active site the server fails rather than deny the name, so
	// that resolvers ask another agent and cache nothing.
	if err := s.SetActive(name, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Lookup(t.Context(), addr, name); !errors.Is(err, ErrFailed) {
		t.Fatalf("Lookup with no active site: %v, want SERVFAIL", err)
	}
	if err := s.SetActive("app.shop.example.", antwerpAddrs); err == nil {
		t.Error("SetActive of a name never Set succeeded")
	}
	if err := s.Set(Record{Zone: "shop.example.", Name: "db.other.example.", Addrs: antwerpAddrs, TTL: time.Second}); err == nil {
		t.Error("Set of a name outside its zone succeeded")
	}
	s.Remove(name)
	r = ask(t, addr, "udp", name, mdns.TypeA)
	if r.Rcode != mdns.RcodeRefused {
		t.Errorf("after Remove: %s, want REFUSED (the zone is gone with its only name)", mdns.RcodeToString[r.Rcode])
	}
}

func TestServerAnswers(t *testing.T) {
	s := startServer(t)
	addr := s.Addr().String()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Set(Record{Zone: "shop.example.", Name: "db.shop.example.", Addrs: antwerpAddrs, TTL: 5 * time.Second}))
	must(s.Set(Record{Zone: "shop.example.", Name: "app.eu.shop.example.", Addrs: brusselsAddrs, TTL: 3 * time.Second}))
	must(s.Set(Record{Name: "dr.bank.example.", Addrs: antwerpAddrs, TTL: 2 * time.Second}))

	for _, tc := range []struct {
		name   string
		qtype  uint16
		rcode  int
		answer int  // records in the answer
		soa    bool // SOA in the authority section
	}{
		{"db.shop.example.", mdns.TypeA, mdns.RcodeSuccess, 1, false},
		{"db.shop.example.", mdns.TypeAAAA, mdns.RcodeSuccess, 0, true}, // no data
		{"db.shop.example.", mdns.TypeMX, mdns.RcodeSuccess, 0, true},
		{"app.eu.shop.example.", mdns.TypeANY, mdns.RcodeSuccess, 2, false},
		{"eu.shop.example.", mdns.TypeA, mdns.RcodeSuccess, 0, true}, // empty non-terminal
		{"www.shop.example.", mdns.TypeA, mdns.RcodeNameError, 0, true},
		{"shop.example.", mdns.TypeSOA, mdns.RcodeSuccess, 1, false},
		{"shop.example.", mdns.TypeA, mdns.RcodeSuccess, 0, true},
		{"dr.bank.example.", mdns.TypeA, mdns.RcodeSuccess, 1, false}, // the name is its own zone
		{"dr.bank.example.", mdns.TypeSOA, mdns.RcodeSuccess, 1, false},
		{"x.dr.bank.example.", mdns.TypeA, mdns.RcodeNameError, 0, true},
		{"bank.example.", mdns.TypeA, mdns.RcodeRefused, 0, false},
		{"example.", mdns.TypeSOA, mdns.RcodeRefused, 0, false},
		{"db.other.example.", mdns.TypeA, mdns.RcodeRefused, 0, false},
	} {
		r := ask(t, addr, "udp", tc.name, tc.qtype)
		what := tc.name + " " + mdns.TypeToString[tc.qtype]
		if r.Rcode != tc.rcode || len(r.Answer) != tc.answer || (len(r.Ns) == 1) != tc.soa {
			t.Errorf("%s: %s, %d answers, %d authority; want %s, %d answers, SOA %v\n%v",
				what, mdns.RcodeToString[r.Rcode], len(r.Answer), len(r.Ns), mdns.RcodeToString[tc.rcode], tc.answer, tc.soa, r)
			continue
		}
		if tc.rcode != mdns.RcodeRefused && !r.Authoritative {
			t.Errorf("%s: answer without the AA bit", what)
		}
		if tc.soa {
			// Negative answers are cached no longer than the zone's
			// shortest record lives.
			soa := r.Ns[0].(*mdns.SOA)
			if want := uint32(3); tc.name != "x.dr.bank.example." && (soa.Hdr.Ttl != want || soa.Minttl != want) {
				t.Errorf("%s: SOA ttl %d minimum %d, want %d", what, soa.Hdr.Ttl, soa.Minttl, want)
			}
		}
	}

	// Not a query: an update is not implemented.
	m := new(mdns.Msg)
	m.SetUpdate("shop.example.")
	m.Insert([]mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: "db.shop.example.", Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: antwerpAddrs[0].AsSlice()}})
	r, _, err := new(mdns.Client).Exchange(m, addr)
	if err != nil || r.Rcode != mdns.RcodeNotImplemented {
		t.Errorf("update to the server: %v, %v; want NOTIMP", r, err)
	}
}

// A change is atomic: a query sees the old addresses or the new ones,
// never a mix or nothing.
func TestServerSwapIsAtomic(t *testing.T) {
	s := startServer(t)
	addr := s.Addr().String()
	name := "db.shop.example."
	two := []netip.Addr{netip.MustParseAddr("10.1.0.20"), netip.MustParseAddr("10.1.0.21")}
	other := []netip.Addr{netip.MustParseAddr("10.2.0.20"), netip.MustParseAddr("10.2.0.21")}
	if err := s.Set(Record{Name: name, Addrs: two, TTL: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	// The flipper changes the answer in bursts, one burst per query, so
	// that changes and queries overlap without the flipper starving the
	// queries on a single CPU.
	burst := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		i := 0
		for range burst {
			for range 20 {
				next := two
				if i++; i%2 == 0 {
					next = other
				}
				if err := s.SetActive(name, next); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	defer wg.Wait()
	defer close(burst)
	for range 300 {
		select {
		case burst <- struct{}{}:
		default:
		}
		got, _, err := Lookup(t.Context(), addr, name)
		if err != nil {
			t.Fatal(err)
		}
		if !equalAddrs(got, two) && !equalAddrs(got, other) {
			t.Fatalf("a query saw %v, a mix of two sites", got)
		}
	}
}

func TestListenErrors(t *testing.T) {
	s := startServer(t)
	if _, err := Listen(s.Addr().String(), nil); err == nil {
		t.Error("a second server on a port in use started")
	}
	if _, err := Listen("no-port", nil); err == nil {
		t.Error("Listen without a port succeeded")
	}
}

// BenchmarkServerSetActive measures SetActive until a query over UDP
// answers the new addresses.
func BenchmarkServerSetActive(b *testing.B) {
	s, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	addr := s.Addr().String()
	name := "db.shop.example."
	if err := s.Set(Record{Name: name, Addrs: brusselsAddrs[:1], TTL: 5 * time.Second}); err != nil {
		b.Fatal(err)
	}
	sites := [][]netip.Addr{antwerpAddrs, brusselsAddrs[:1]}
	i := 0
	for b.Loop() {
		want := sites[i%2]
		i++
		if err := s.SetActive(name, want); err != nil {
			b.Fatal(err)
		}
		for {
			r := ask(b, addr, "udp", name, mdns.TypeA)
			if len(r.Answer) == 1 && r.Answer[0].(*mdns.A).A.Equal(want[0].AsSlice()) {
				break
			}
		}
	}
}

// The server says at info what it answers from now on, each time that
// changes, and logs each query at debug.
func TestServerLogs(t *testing.T) {
	var out testbed.Buffer
	log, err := logging.New(&out, logging.FormatJSON, "debug")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen("127.0.0.1:0", log.With("site", "brussels", "component", "dns"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	name := "db.shop.example."
	rec := Record{Zone: "shop.example.", Name: name, Addrs: brusselsAddrs, TTL: 5 * time.Second}
	if err := s.Set(rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(rec); err != nil { // the same again: nothing to say
		t.Fatal(err)
	}
	if err := s.SetActive(name, antwerpAddrs); err != nil {
		t.Fatal(err)
	}
	if err := s.SetActive(name, antwerpAddrs); err != nil {
		t.Fatal(err)
	}
	ask(t, s.Addr().String(), "udp", name, mdns.TypeA)
	if err := s.SetActive(name, nil); err != nil {
		t.Fatal(err)
	}
	s.Remove(name)
	s.Remove(name)

	type line struct{ Level, Msg, Addrs, Rcode string }
	var got []line
	for _, r := range testbed.LogRecords(t, out.String()) {
		if r["site"] != "brussels" || r["component"] != "dns" || r["listen"] != s.Addr().String() {
			t.Errorf("line %v: want site brussels, component dns, listen %s", r, s.Addr())
		}
		if r["msg"] != "dns query" && r["name"] != name {
			t.Errorf("line %v: want name %s", r, name)
		}
		l := line{Level: r["level"].(string), Msg: r["msg"].(string)}
		if a, ok := r["addrs"].([]any); ok {
			l.Addrs = strings.TrimSpace(fmt.Sprintln(a...))
		}
		l.Rcode, _ = r["rcode"].(string)
		got = append(got, l)
	}
	want := []line{
		{Level: "INFO", Msg: "dns answer changed", Addrs: "10.1.0.20 2001:db8:1::20"},
		{Level: "INFO", Msg: "dns answer changed", Addrs: "10.2.0.20"},
		{Level: "DEBUG", Msg: "dns query", Rcode: "NOERROR"},
		{Level: "INFO", Msg: "dns answer changed: SERVFAIL, no site is known active"},
		{Level: "INFO", Msg: "dns name no longer answered"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log (-want +got):\n%s\n%s", diff, out.String())
	}
}
