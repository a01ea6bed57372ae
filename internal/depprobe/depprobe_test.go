package depprobe

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/testbed"
	"github.com/siteflip/siteflip/internal/testbed/dnstest"
)

// probeCase is one probe and what it must see.
type probeCase struct {
	name      string
	typ       string
	site      config.DependencySite
	target    string
	reachable bool
	err       string // a part of the error; "" when reachable
}

func runProbes(t *testing.T, cases []probeCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			timeout := config.Duration(2 * time.Second)
			r := Probe(t.Context(), config.Dependency{Name: "dep", Type: c.typ, Timeout: &timeout}, c.site)
			if r.Target != c.target {
				t.Errorf("target %q, want %q", r.Target, c.target)
			}
			if r.Reachable != c.reachable {
				t.Errorf("reachable %v (error %v), want %v", r.Reachable, r.Err, c.reachable)
			}
			switch {
			case c.err == "" && r.Err != nil:
				t.Errorf("error %q, want none", r.Err)
			case c.err != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), c.err)):
				t.Errorf("error %v, want one with %q", r.Err, c.err)
			}
			if r.Latency <= 0 {
				t.Errorf("latency %v, want it measured", r.Latency)
			}
		})
	}
}

// closedAddr is an address on 127.0.0.1 where nothing listens.
func closedAddr(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(testbed.FreePort(t)))
}

// acceptingAddr is an address on 127.0.0.1 that accepts connections and
// closes them, until the test ends.
func acceptingAddr(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	testbed.AcceptAll(ln)
	return ln.Addr().String()
}

func TestTCP(t *testing.T) {
	up, down := acceptingAddr(t), closedAddr(t)
	runProbes(t, []probeCase{
		{"accepts", config.DependencyTCP, config.DependencySite{Address: up}, "tcp " + up, true, ""},
		{"refused", config.DependencyTCP, config.DependencySite{Address: down}, "tcp " + down, false, "connect: connection refused"},
	})
}

func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(strings.Repeat("x", 1<<20))) // more than a probe reads
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	down := "http://" + closedAddr(t) + "/health"
	runProbes(t, []probeCase{
		{"200", config.DependencyHTTP, config.DependencySite{URL: srv.URL + "/ok"}, "GET " + srv.URL + "/ok", true, ""},
		{"redirect followed", config.DependencyHTTP, config.DependencySite{URL: srv.URL + "/moved"}, "GET " + srv.URL + "/moved", true, ""},
		{"503", config.DependencyHTTP, config.DependencySite{URL: srv.URL + "/health"}, "GET " + srv.URL + "/health", false,
			"answered 503 Service Unavailable, want 2xx or 3xx"},
		{"204 expected", config.DependencyHTTP, config.DependencySite{URL: srv.URL + "/empty", ExpectStatus: 204}, "GET " + srv.URL + "/empty", true, ""},
		{"200 when 204 expected", config.DependencyHTTP, config.DependencySite{URL: srv.URL + "/ok", ExpectStatus: 204}, "GET " + srv.URL + "/ok", false,
			"answered 200 OK, want 204"},
		{"no password in the target", config.DependencyHTTP, config.DependencySite{URL: strings.Replace(srv.URL, "://", "://probe:s3cret@", 1) + "/ok"},
			"GET " + strings.Replace(srv.URL, "://", "://probe:xxxxx@", 1) + "/ok", true, ""},
		{"refused", config.DependencyHTTP, config.DependencySite{URL: down}, "GET " + down, false, "no answer: connection refused"},
	})
}

// startDNS serves on a free port of 127.0.0.1, over UDP and TCP:
// ldap.example. A 10.2.0.5; big.example. A, whose UDP answer is cut off
// (truncated) and whose TCP answer holds 10.2.0.6; empty.example. with no
// record; every other name NXDOMAIN.
func startDNS(t *testing.T) string {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testbed.FreePort(t)))
	a := func(name, ip string) mdns.RR {
		return &mdns.A{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)}
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		_, overUDP := w.LocalAddr().(*net.UDPAddr)
		switch strings.ToLower(q.Name) {
		case "ldap.example.":
			m.Answer = []mdns.RR{a(q.Name, "10.2.0.5")}
		case "big.example.":
			if overUDP {
				m.Truncated = true
			} else {
				m.Answer = []mdns.RR{a(q.Name, "10.2.0.6")}
			}
		case "empty.example.":
		default:
			m.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	for _, network := range []string{"udp", "tcp"} {
		dnstest.Serve(t, &mdns.Server{Addr: addr, Net: network, Handler: h})
	}
	return addr
}

func TestDNS(t *testing.T) {
	server, down := startDNS(t), closedAddr(t)
	at := func(s string) string { return " @ " + s }
	runProbes(t, []probeCase{
		{"answered", config.DependencyDNS, config.DependencySite{Address: server, Query: "ldap.example"}, "dns ldap.example. A" + at(server), true, ""},
		{"truncated over UDP, answered over TCP", config.DependencyDNS, config.DependencySite{Address: server, Query: "big.example.", QType: "a"},
			"dns big.example. A" + at(server), true, ""},
		{"nxdomain", config.DependencyDNS, config.DependencySite{Address: server, Query: "gone.example."}, "dns gone.example. A" + at(server), false,
			"answered NXDOMAIN: the name does not exist"},
		{"empty answer", config.DependencyDNS, config.DependencySite{Address: server, Query: "empty.example.", QType: "SRV"},
			"dns empty.example. SRV" + at(server), false, "answered with no SRV record"},
		{"unknown qtype", config.DependencyDNS, config.DependencySite{Address: server, Query: "ldap.example.", QType: "BOGUS"},
			"dns ldap.example. BOGUS" + at(server), false, `qtype "BOGUS" is not a DNS record type`},
		// Nothing answers on UDP: the query waits for its whole timeout.
		{"no server", config.DependencyDNS, config.DependencySite{Address: down, Query: "ldap.example."}, "dns ldap.example. A" + at(down), false, "no answer"},
	})
}

// A probe that gets no answer ends at the dependency's timeout and says
// so.
func TestTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Accepts the connection (the kernel does) and never answers.
	url := "http://" + ln.Addr().String() + "/health"
	timeout := config.Duration(200 * time.Millisecond)
	r := Probe(t.Context(), config.Dependency{Name: "lic", Type: config.DependencyHTTP, Timeout: &timeout}, config.DependencySite{URL: url})
	if r.Reachable || r.Err == nil || r.Err.Error() != "no answer within 200ms" {
		t.Errorf("reachable %v, error %v; want unreachable: no answer within 200ms", r.Reachable, r.Err)
	}
	if r.Latency < 200*time.Millisecond || r.Latency > 2*time.Second {
		t.Errorf("latency %v, want about the timeout, 200ms", r.Latency)
	}
}
