package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/siteflip/siteflip/internal/access"
	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/pki"
	"github.com/siteflip/siteflip/internal/testbed"
)

func get(t *testing.T, f pki.Files, url string) string {
	t.Helper()
	body, err := httpGet(f, url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return body
}

// httpGet fetches url trusting f.CA, presenting f.Cert when one is given.
func httpGet(f pki.Files, url string) (string, error) {
	var cfg *tls.Config
	if f.Cert != "" {
		var err error
		if cfg, err = pki.ClientConfig(f, ""); err != nil {
			return "", err
		}
	} else {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return "", err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		cfg = &tls.Config{RootCAs: pool}
	}
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// guarded is an agent with only what its router needs: who calls, and
// where audit records go.
func guarded(t *testing.T) (*agent, *auditSink) {
	t.Helper()
	r, err := access.NewResolver(true, map[string]string{"brussels": "brussels", "antwerp": "antwerp", "frankfurt": "frankfurt"},
		[]config.Access{{Identity: "ada", Role: "admin"}, {Identity: "otto", Role: "operator"}, {Identity: "vera", Role: "viewer"}})
	if err != nil {
		t.Fatal(err)
	}
	sink := &auditSink{}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := &base{topo: &config.Topology{Name: "test"}, site: &config.Site{Name: "brussels"}, log: quiet, metrics: newMetrics()}
	a := wire(b, parts{resolver: r, audit: audit.NewWriter(sink, quiet, time.Now)})
	return a, sink
}

type auditSink struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (s *auditSink) PutAudit(_ context.Context, recs []audit.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, recs...)
	return nil
}

// as returns a request as if sent with the certificate named cn.
func as(cn, method, path, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: cn}}}}
	return r
}

// Every endpoint of the access table is routed through the guard: a
// certificate of the CA bound to no role gets only the health check, and
// every refused request that may change state is audited with its caller.
func TestEveryEndpointIsGuarded(t *testing.T) {
	a, sink := guarded(t)
	apiMux, peerMux, err := a.api.routes()
	if err != nil {
		t.Fatal(err)
	}
	refusedAudited := 0
	for _, e := range access.Endpoints {
		method, path, _ := strings.Cut(e.Pattern, " ")
		path = strings.NewReplacer("{id}", "r1", "{$}", "", "{path...}", "app.js").Replace(path)
		mux := apiMux
		if e.Listener == access.Peer {
			mux = peerMux
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, as("mallory", method, path, "{}"))
		switch {
		case e.Rule == access.Public && w.Code != http.StatusOK:
			t.Errorf("%s: %d for a public endpoint", e.Pattern, w.Code)
		case e.Rule != access.Public && w.Code != http.StatusForbidden:
			t.Errorf("%s by a certificate bound to no role: %d, want 403 (%s)", e.Pattern, w.Code, w.Body)
		case e.Audit:
			refusedAudited++
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	a.api.audit.Run(ctx) // stores what is queued, then returns
	if len(sink.recs) != refusedAudited {
		t.Fatalf("%d audit records for %d refused state-changing requests", len(sink.recs), refusedAudited)
	}
	for _, r := range sink.recs {
		if r.Who != "mallory" || r.Result != audit.Refused || r.Code != http.StatusForbidden || r.Error == "" || r.Site != "brussels" {
			t.Errorf("audit record %+v: want mallory refused with 403 and the reason", r)
		}
	}
	// A lease request (on the peer listener only) reaches no route on the
	// API listener.
	w := httptest.NewRecorder()
	apiMux.ServeHTTP(w, as("antwerp", "POST", "/v1/lease", `{"site":"antwerp"}`))
	if w.Code != http.StatusNotFound && w.Code != http.StatusMethodNotAllowed {
		t.Errorf("the API listener routes the lease: %d", w.Code)
	}
}

// A step from a location that is not well formed is refused before the
// control plane is asked: strict JSON.
func TestStrictJSON(t *testing.T) {
	a, _ := guarded(t)
	apiMux, _, err := a.api.routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"run_id":"r1","step":"promote:db@antwerp","group":"webshop","kind":"promote","epoch":1,"primary":"antwerp"}`, // a field steps no longer take
		`{"run_id":"r1"} {"run_id":"r2"}`,
		`{"run_id":"r1"} x`,
		`{"run_id":"` + strings.Repeat("x", 70000) + `"}`,
		`not json`,
	} {
		w := httptest.NewRecorder()
		apiMux.ServeHTTP(w, as("antwerp", "POST", "/v1/steps", body))
		if w.Code != http.StatusBadRequest {
			t.Errorf("step body %.60q: %d, want 400 (%s)", body, w.Code, w.Body)
		}
	}
}

// One client cannot hold more than its share of connections.
func TestConnectionLimit(t *testing.T) {
	refused := 0
	var mu sync.Mutex
	ln, err := listen("127.0.0.1:0", nil, func() { mu.Lock(); refused++; mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	var conns []net.Conn
	for range connsPerClient + 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	counts := func() (accepted, refusedSoFar int) {
		mu.Lock()
		defer mu.Unlock()
		return len(held), refused
	}
	testbed.WaitFor(t, 5*time.Second, fmt.Sprintf("%d connections accepted and 3 refused", connsPerClient), func() bool {
		n, r := counts()
		return n == connsPerClient && r == 3
	})
	// Closing one makes room for one more.
	mu.Lock()
	held[0].Close()
	mu.Unlock()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, c)
	testbed.WaitFor(t, 5*time.Second, "one more accepted after one closed", func() bool {
		n, _ := counts()
		return n == connsPerClient+1
	})
	mu.Lock()
	for _, c := range held {
		c.Close()
	}
	mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func TestParseHealthz(t *testing.T) {
	at := time.Date(2026, 12, 4, 3, 9, 55, 947000123, time.UTC)
	now := at.Add(time.Hour)
	for body, want := range map[string]healthz{
		"ok brussels " + at.Format(time.RFC3339Nano) + "\n":                                      {started: at},
		"ok brussels " + at.Format(time.RFC3339Nano) + " " + now.Format(time.RFC3339Nano) + "\n": {started: at, now: now},
		"ok brussels " + at.Format(time.RFC3339Nano) + " later\n":                                {started: at},
		"ok brussels\n":              {}, // an agent that does not say
		"ok brussels yesterday\n":    {},
		"busy brussels 2026-12-04\n": {},
		"":                           {},
	} {
		if got := parseHealthz(body); !got.started.Equal(want.started) || !got.now.Equal(want.now) {
			t.Errorf("parseHealthz(%q) = %+v, want %+v", body, got, want)
		}
	}
}

// TestHealthzTime: /healthz says the agent's time, on its (shifted)
// clock, after the fields older readers know.
func TestHealthzTime(t *testing.T) {
	started := time.Date(2026, 12, 4, 3, 9, 55, 0, time.UTC)
	p := &presence{base: &base{site: &config.Site{Name: "brussels"}, started: started, clockOffset: time.Hour}}
	rec := httptest.NewRecorder()
	before := time.Now().Add(time.Hour)
	p.handleHealthz(rec, httptest.NewRequest("GET", "/healthz", nil))
	after := time.Now().Add(time.Hour)
	h := parseHealthz(rec.Body.String())
	if !h.started.Equal(started) {
		t.Errorf("started %s, want %s (%q)", h.started, started, rec.Body.String())
	}
	if h.now.Before(before.Truncate(time.Microsecond)) || h.now.After(after) {
		t.Errorf("time %s, want between %s and %s (%q)", h.now, before, after, rec.Body.String())
	}
}

func TestClockOffsetMs(t *testing.T) {
	send := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		peer time.Time
		rtt  time.Duration
		want *float64
	}{
		{"in step", send.Add(5 * time.Millisecond), 10 * time.Millisecond, new(0.0)},
		{"ahead", send.Add(1505 * time.Millisecond), 10 * time.Millisecond, new(1500.0)},
		{"behind", send.Add(-2 * time.Second), 40 * time.Millisecond, new(-2020.0)},
		{"sub-millisecond", send.Add(1500 * time.Microsecond), time.Millisecond, new(1.0)},
		{"an older agent says no time", time.Time{}, time.Millisecond, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, clockOffsetMs(tc.peer, send, tc.rtt)); diff != "" {
				t.Errorf("clockOffsetMs (-want +got):\n%s", diff)
			}
		})
	}
}
