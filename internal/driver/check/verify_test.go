package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/resource"
	"github.com/siteflip/siteflip/internal/testbed"
	"github.com/siteflip/siteflip/internal/testbed/dnstest"
)

// verifierOf prepares the settings text and makes the check "c" of a group
// that holds the resources it may name.
func verifierOf(t *testing.T, text string) resource.Verifier {
	t.Helper()
	s, probs, errs := decode(t, text, t.TempDir())
	if len(probs) > 0 || len(errs) > 0 {
		t.Fatalf("settings %s: %v %v", text, probs, errs)
	}
	g := &config.Group{Name: "webshop", Resources: []config.Resource{
		{Name: "db", Type: "postgres", Class: config.ClassData, Data: true},
		{Name: "news", Type: "mariadb", Class: config.ClassData, Data: true},
		{Name: "web", Type: "haproxy", Class: config.ClassTraffic},
		{Name: "name", Type: "dns", Class: config.ClassTraffic},
		{Name: "c", Type: "check", Class: config.ClassCheck, Settings: map[string]any{"brussels": s}},
	}}
	v, err := Type{}.Verifier(g, &g.Resources[len(g.Resources)-1], "brussels")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// verifyCase is one run of a check: what it sees, and its error ("" for
// none).
type verifyCase struct {
	name     string
	settings string
	seen     string
	err      string
}

func runCases(t *testing.T, targets map[string]string, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := verifierOf(t, tc.settings).Verify(t.Context(), targets)
			if got := out[resource.OutputSeen]; got != tc.seen {
				t.Errorf("seen %q, want %q", got, tc.seen)
			}
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("error: %v", err)
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Errorf("error: %v\nwant:  %s", err, tc.err)
			}
		})
	}
}

func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			fmt.Fprint(w, `{"status": "ok"}`)
		case "/down":
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
		case "/moved":
			http.Redirect(w, r, "/health", http.StatusFound)
		case "/slow":
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	closed := closedPort(t)
	targets := map[string]string{"web": addr, "db": closed}
	runCases(t, targets, []verifyCase{
		{"up", `{http: {url: "http://{web}/health"}}`, "HTTP 200", ""},
		{"host and port", `{http: {url: "http://{web.host}:{web.port}/health", body: '"status":\s*"ok"'}}`, "HTTP 200", ""},
		{"literal", `{http: {url: "` + srv.URL + `/health"}}`, "HTTP 200", ""},
		{"body differs", `{http: {url: "http://{web}/health", body: "ready"}}`, `HTTP 200 with body "{\"status\": \"ok\"}"`,
			`check c: expected HTTP 200 with a body matching "ready" from http://` + addr + `/health, seen HTTP 200 with body "{\"status\": \"ok\"}"`},
		{"down", `{http: {url: "http://{web}/down"}}`, "HTTP 503",
			"check c: expected HTTP 200 from http://" + addr + "/down, seen HTTP 503"},
		{"expected down", `{http: {url: "http://{web}/down", status: 503, body: unreachable}}`, "HTTP 503", ""},
		{"redirect not followed", `{http: {url: "http://{web}/moved"}}`, "HTTP 302 to /health",
			"check c: expected HTTP 200 from http://" + addr + "/moved, seen HTTP 302 to /health"},
		{"refused", `{http: {url: "http://{db}/"}}`, "connection refused",
			"check c: expected HTTP 200 from http://" + closed + "/, seen connection refused"},
		{"slow", `{timeout: 50ms, http: {url: "http://{web}/slow"}}`, "no answer within 50ms",
			"check c: expected HTTP 200 from http://" + addr + "/slow, seen no answer within 50ms"},
		{"no address", `{http: {url: "http://{name}/"}}`, "",
			"check c: http.url: no address for resource name here: it has none at this site; write the address in full instead of {name}"},
	})
}

// closedPort is a loopback host:port where nothing listens.
func closedPort(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(testbed.FreePort(t)))
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-accepted }()
	addr := ln.Addr().String()
	closed := closedPort(t)
	runCases(t, map[string]string{"db": addr, "web": closed}, []verifyCase{
		{"up", `{tcp: {address: "{db}"}}`, "connected to " + addr, ""},
		{"host and port", `{tcp: {address: "{db.host}:{db.port}"}}`, "connected to " + addr, ""},
		{"literal", `{tcp: {address: "` + addr + `"}}`, "connected to " + addr, ""},
		{"refused", `{tcp: {address: "{web}"}}`, "connection refused", "check c: expected a connection to " + closed + ", seen connection refused"},
		{"no address", `{tcp: {address: "{name}"}}`, "", "check c: tcp.address: no address for resource name here: it has none at this site; write the address in full instead of {name}"},
	})
}

// startDNS starts a miekg/dns server on a free port of 127.0.0.1 that
// answers db.shop.example. A with 127.0.2.2, AAAA with nothing, and
// every other name with NXDOMAIN.
func startDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(testbed.FreePort(t))))
	if err != nil {
		t.Fatal(err)
	}
	return serveDNS(t, pc)
}

// serveDNS answers on pc as startDNS says, until the test ends.
func serveDNS(t *testing.T, pc net.PacketConn) string {
	t.Helper()
	addr := pc.LocalAddr().String()
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		switch {
		case !strings.EqualFold(q.Name, "db.shop.example."):
			m.Rcode = mdns.RcodeNameError
		case q.Qtype == mdns.TypeA:
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: net.ParseIP("127.0.2.2")})
		}
		w.WriteMsg(m)
	})
	dnstest.Serve(t, &mdns.Server{PacketConn: pc, Handler: h})
	return addr
}

func TestDNS(t *testing.T) {
	server := startDNS(t)
	closed := closedPort(t)
	targets := map[string]string{"name": server, "db": "127.0.2.2:5432", "web": closed}
	runCases(t, targets, []verifyCase{
		{"found", `{dns: {server: "{name}", name: db.shop.example., address: "{db.host}"}}`, "127.0.2.2", ""},
		{"literal", `{dns: {server: "` + server + `", name: DB.shop.example, address: 127.0.2.2}}`, "127.0.2.2", ""},
		{"other address", `{dns: {server: "{name}", name: db.shop.example., address: 127.0.2.9}}`, "127.0.2.2",
			"check c: expected 127.0.2.9 in the A answer for db.shop.example. at " + server + ", seen 127.0.2.2"},
		{"no AAAA", `{dns: {server: "{name}", name: db.shop.example., address: "2001:db8::2"}}`, "no AAAA records",
			"check c: expected 2001:db8::2 in the AAAA answer for db.shop.example. at " + server + ", seen no AAAA records"},
		{"no such name", `{dns: {server: "{name}", name: www.shop.example., address: 127.0.2.2}}`, "NXDOMAIN",
			"check c: expected 127.0.2.2 in the A answer for www.shop.example. at " + server + ", seen NXDOMAIN"},
		{"no server", `{dns: {server: "{web}", name: db.shop.example., address: 127.0.2.2}}`, "connection refused",
			"check c: expected 127.0.2.2 in the A answer for db.shop.example. at " + closed + ", seen connection refused"},
	})
}

// A check stopped from outside says so rather than blaming the server.
func TestVerifyStopped(t *testing.T) {
	v := verifierOf(t, `{tcp: {address: "{db}"}}`)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	out, err := v.Verify(ctx, map[string]string{"db": closedPort(t)})
	if !errors.Is(err, context.Canceled) || out[resource.OutputSeen] != "stopped: context canceled" {
		t.Errorf("Verify after cancel: %v, %v", out, err)
	}
}

func TestJudge(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	str := func(s string) *string { return &s }
	dur := func(d time.Duration) *config.Duration { c := config.Duration(d); return &c }
	count := func(n string) rows { return rows{column: "count", first: &cell{text: n}, count: 1} }
	at := func(ts time.Time) rows {
		return rows{column: "max", first: &cell{text: ts.Format("2006-01-02 15:04:05Z07"), time: ts, isTime: true}, count: 1}
	}
	for _, tc := range []struct {
		name string
		q    SQL
		res  rows
		seen string
		err  string
	}{
		{"anything", SQL{}, count("42"), "count=42", ""},
		{"no rows, nothing expected", SQL{}, rows{column: "id"}, "no rows", ""},
		{"expect", SQL{Expect: str("42")}, count("42"), "count=42", ""},
		{"expect other", SQL{Expect: str("42")}, count("41"), "count=41", `expected count "42", seen count "41"`},
		{"expect, no rows", SQL{Expect: str("42")}, rows{column: "count"}, "no rows", `expected count "42", seen no rows`},
		{"expect, null", SQL{Expect: str("")}, rows{column: "v", first: &cell{null: true}, count: 1}, "v=NULL", `expected v "", seen NULL`},
		{"min rows", SQL{MinRows: 3}, rows{column: "id", first: &cell{text: "1"}, count: 3}, "id=1, 3 rows", ""},
		{"too few rows", SQL{MinRows: 3}, rows{column: "id", first: &cell{text: "1"}, count: 2}, "id=1, 2 rows", "expected at least 3 rows, seen 2 rows"},
		{"new enough", SQL{NewerThan: dur(10 * time.Minute)}, at(now.Add(-4 * time.Minute)), "max=2025-03-01 11:56:00Z (4m0s old)", ""},
		{"from the future", SQL{NewerThan: dur(10 * time.Minute)}, at(now.Add(time.Minute)), "max=2025-03-01 12:01:00Z (0s old)", ""},
		{"too old", SQL{NewerThan: dur(10 * time.Minute)}, at(now.Add(-2 * time.Hour)), "max=2025-03-01 10:00:00Z (2h0m0s old)",
			"expected max at most 10m0s old, seen 2025-03-01 10:00:00Z, 2h0m0s old"},
		{"not a timestamp", SQL{NewerThan: dur(time.Minute)}, count("42"), "count=42",
			`expected count at most 1m0s old, seen "42", not a timestamp: select a timestamp column first`},
		{"all wrong", SQL{MinRows: 1, Expect: str("1"), NewerThan: dur(time.Minute)}, rows{column: "max"}, "no rows",
			`expected at least 1 row and max "1" and max at most 1m0s old, seen 0 rows; no rows`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen, err := tc.q.judge(tc.res, now)
			if seen != tc.seen {
				t.Errorf("seen %q, want %q", seen, tc.seen)
			}
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("error: %v", err)
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Errorf("error: %v\nwant:  %s", err, tc.err)
			}
		})
	}
}
