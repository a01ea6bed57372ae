package agent

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/access"
	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/pki"
	"github.com/siteflip/siteflip/internal/plan"
)

// authServer is brussels's API served over TLS as the agent serves it:
// the API listener's TLS, the CORS layer, the guarded router.
type authServer struct {
	url    string
	lab    map[string]pki.Files
	pool   *x509.CertPool
	agent  *agent
	sink   *auditSink
	origin string // antwerp's agent's origin, one of the installation's
}

func startAuthServer(t *testing.T) *authServer {
	t.Helper()
	dir := t.TempDir()
	ids := []pki.Identity{{Name: "brussels", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, {Name: "ada"}, {Name: "otto"}, {Name: "vera"}, {Name: "mallory"}}
	files, err := pki.GenerateLab(filepath.Join(dir, "pki"), "test CA", ids)
	if err != nil {
		t.Fatal(err)
	}
	lab := map[string]pki.Files{}
	for i, id := range ids {
		lab[id.Name] = files[i]
	}
	serverTLS, err := pki.ServerConfig(lab["brussels"])
	if err != nil {
		t.Fatal(err)
	}
	a, sink := guarded(t)
	a.api.caPool = serverTLS.ClientCAs
	a.api.store = oneRunStore{}
	apiMux, _, err := a.api.routes()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := listen("127.0.0.1:0", apiTLS(serverTLS), nil)
	if err != nil {
		t.Fatal(err)
	}
	topo := &config.Topology{Name: "test", TLS: config.TLS{CAFile: lab["brussels"].CA}, Sites: []config.Site{
		{Name: "brussels", Agent: config.Agent{Address: ln.Addr().String()}},
		{Name: "antwerp", Agent: config.Agent{Address: "127.0.2.1:7400"}},
	}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := newServer(cors(agentOrigins(topo), apiMux), t.Context(), quiet)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return &authServer{url: "https://" + ln.Addr().String(), lab: lab, pool: serverTLS.ClientCAs, agent: a, sink: sink, origin: "https://127.0.2.1:7400"}
}

// oneRunStore answers GET /v1/runs/{id}, a viewer's read, with a run of
// that id; nothing else.
type oneRunStore struct{ apiStore }

func (oneRunStore) Run(_ context.Context, id string) (plan.Run, error) { return plan.Run{ID: id}, nil }

// token mints a token of the lab identity name.
func (s *authServer) token(t *testing.T, name, installation string, role access.Role, ttl time.Duration, at time.Time) string {
	t.Helper()
	pair, err := pki.LoadKeyPair(s.lab[name].Cert, s.lab[name].Key)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := access.Mint(installation, pair.Leaf, pair.PrivateKey.(crypto.Signer), role, ttl, at)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends a request, with the certificate of cert when it is not "",
// and headers; it returns the response with its body read.
func (s *authServer) do(t *testing.T, cert, method, path string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	cfg := &tls.Config{RootCAs: s.pool}
	if cert != "" {
		pair, err := pki.LoadKeyPair(s.lab[cert].Cert, s.lab[cert].Key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// A browser comes with a login token instead of a client certificate: the
// token's role, capped by access:, decides; a request with neither, or
// with a token that does not hold, gets 401 and what to do.
func TestTokenAuth(t *testing.T) {
	s := startAuthServer(t)
	now := time.Now()
	vera := s.token(t, "vera", "test", access.Viewer, time.Hour, now)
	// vera is a viewer under access:; her admin token is worth a viewer's.
	veraAdmin := s.token(t, "vera", "test", access.Admin, time.Hour, now)
	adaViewer := s.token(t, "ada", "test", access.Viewer, time.Hour, now)
	tests := []struct {
		name, cert, method, path string
		headers                  map[string]string
		code                     int
		body                     string
	}{
		{name: "viewer token reads", method: "GET", path: "/v1/runs/r1", headers: bearer(vera), code: 200, body: `"id": "r1"`},
		{name: "viewer token may not pause", method: "POST", path: "/v1/groups/webshop/pause", headers: bearer(vera), code: 403, body: `\"vera\" (viewer, by token) may not do this: it needs the operator role`},
		{name: "token capped by access:", method: "POST", path: "/v1/groups/webshop/pause", headers: bearer(veraAdmin), code: 403, body: "it needs the operator role"},
		{name: "an admin's viewer token", method: "POST", path: "/v1/force", headers: bearer(adaViewer), code: 403, body: "it needs the admin role"},
		{name: "a person bound to no role", method: "GET", path: "/v1/runs/r1", headers: bearer(s.token(t, "mallory", "test", access.Admin, time.Hour, now)), code: 403, body: "bound to no role under access:"},
		{name: "nothing", method: "GET", path: "/v1/runs/r1", code: 401, body: "present a client certificate of the installation's CA, or a login token from `siteflip token`"},
		{name: "nothing, health check", method: "GET", path: "/healthz", code: 200, body: "ok brussels"},
		{name: "bad token, health check", method: "GET", path: "/healthz", headers: bearer("nonsense"), code: 200, body: "ok brussels"},
		{name: "expired token", method: "GET", path: "/v1/runs/r1", headers: bearer(s.token(t, "vera", "test", access.Viewer, time.Hour, now.Add(-2*time.Hour))), code: 401, body: "the token expired at"},
		{name: "another installation's token", method: "GET", path: "/v1/runs/r1", headers: bearer(s.token(t, "vera", "prod", access.Viewer, time.Hour, now)), code: 401, body: `it is for installation \"prod\", not \"test\"`},
		{name: "a location's token", method: "GET", path: "/v1/runs/r1", headers: bearer(s.token(t, "brussels", "test", access.Viewer, time.Hour, now)), code: 401, body: "tokens are for people"},
		{name: "a location's token for a step", method: "POST", path: "/v1/steps", headers: bearer(s.token(t, "brussels", "test", access.Viewer, time.Hour, now)), code: 401, body: "locations' certificates cannot make tokens"},
		{name: "garbage", method: "GET", path: "/v1/runs/r1", headers: bearer("sft1.garbage"), code: 401, body: "not of the form sft1.PAYLOAD.SIGNATURE"},
		{name: "basic auth", method: "GET", path: "/v1/runs/r1", headers: map[string]string{"Authorization": "Basic dmVyYTp4"}, code: 401, body: `holds a \"Basic\" credential`},
		// Certificates work as before, and win over a token.
		{name: "certificate", cert: "vera", method: "GET", path: "/v1/runs/r1", code: 200, body: `"id": "r1"`},
		{name: "certificate without a role", cert: "mallory", method: "GET", path: "/v1/runs/r1", code: 403, body: "bound to no role"},
		{name: "certificate and token", cert: "mallory", method: "GET", path: "/v1/runs/r1", headers: bearer(vera), code: 403, body: `\"mallory\"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.do(t, tt.cert, tt.method, tt.path, tt.headers)
			if resp.StatusCode != tt.code || !strings.Contains(body, tt.body) {
				t.Errorf("%s %s: %d %s\nwant %d with %q", tt.method, tt.path, resp.StatusCode, body, tt.code, tt.body)
			}
			if tt.code == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}

	// The audit says who came with a token.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s.agent.api.audit.Run(ctx)
	var vias []string
	for _, r := range s.sink.recs {
		if r.Who == "vera" && r.Request == "POST /v1/groups/{group}/pause" {
			vias = append(vias, r.Via)
			if r.Result != audit.Refused || r.Role != "viewer" {
				t.Errorf("audit record %+v: want vera refused as viewer", r)
			}
		}
	}
	if len(vias) != 2 || vias[0] != access.ViaToken || vias[1] != access.ViaToken {
		t.Errorf("vera's refused pauses were audited via %q, want two by token", vias)
	}
}

// With TLS off, a token changes nothing: reads are open, changes refused.
func TestTokenWithoutTLS(t *testing.T) {
	a, _ := guarded(t)
	r, err := access.NewResolver(false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.api.resolver = r
	p, err := a.api.principal(bearerRequest("GET", "/v1/runs/r1", "sft1.anything.at-all"))
	if err != nil || !p.Anonymous {
		t.Errorf("without TLS: %+v, %v; want anonymous", p, err)
	}
}

func bearerRequest(method, path, tok string) *http.Request {
	r, _ := http.NewRequest(method, path, nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

// The pages of the installation's agents may call the API across origins;
// other pages get nothing, and may not change anything even with a
// browser's client certificate.
func TestCORS(t *testing.T) {
	s := startAuthServer(t)
	vera := s.token(t, "vera", "test", access.Viewer, time.Hour, time.Now())
	preflight := func(origin string) map[string]string {
		return map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
	}

	resp, body := s.do(t, "", "OPTIONS", "/v1/groups/webshop/pause", preflight(s.origin))
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != s.origin ||
		h.Get("Access-Control-Allow-Methods") != "GET, POST, DELETE" || h.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" ||
		h.Get("Access-Control-Max-Age") != "600" || h.Get("Vary") != "Origin" || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("preflight from %s: %d %v %s", s.origin, resp.StatusCode, h, body)
	}
	resp, _ = s.do(t, "", "OPTIONS", "/v1/status", preflight("https://evil.example"))
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", resp.StatusCode, resp.Header)
	}
	// The page's own origin, whatever name it was opened by.
	resp, _ = s.do(t, "", "OPTIONS", "/v1/status", preflight(s.url))
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != s.url {
		t.Errorf("preflight from the agent's own origin: %d %v", resp.StatusCode, resp.Header)
	}

	resp, _ = s.do(t, "", "GET", "/v1/runs/r1", map[string]string{"Origin": s.origin, "Authorization": "Bearer " + vera})
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != s.origin || resp.Header.Get("Vary") != "Origin" {
		t.Errorf("read from %s: %d %v", s.origin, resp.StatusCode, resp.Header)
	}
	// A refusal reaches the page too: it can say why.
	resp, _ = s.do(t, "", "GET", "/v1/runs/r1", map[string]string{"Origin": s.origin})
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != s.origin {
		t.Errorf("401 to %s: %d %v", s.origin, resp.StatusCode, resp.Header)
	}
	resp, _ = s.do(t, "", "GET", "/v1/runs/r1", map[string]string{"Origin": "https://evil.example", "Authorization": "Bearer " + vera})
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("read from another origin got %v", resp.Header)
	}
	resp, body = s.do(t, "ada", "POST", "/v1/force", map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "only pages served by this installation's agents") {
		t.Errorf("a change from another origin with a certificate: %d %s", resp.StatusCode, body)
	}
	// Without an Origin (the command line), nothing changes.
	resp, _ = s.do(t, "vera", "GET", "/v1/runs/r1", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Vary") != "" || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a request without Origin: %d %v", resp.StatusCode, resp.Header)
	}
	// Not a preflight: the router answers as ever.
	resp, _ = s.do(t, "vera", "OPTIONS", "/v1/status", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("OPTIONS without Origin: %d", resp.StatusCode)
	}
}

func TestWebOrigin(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"https", "127.0.1.1:7400"}:         "https://127.0.1.1:7400",
		{"https", "Brussels.Example:443"}:   "https://brussels.example",
		{"http", "brussels.example:80"}:     "http://brussels.example",
		{"https", "[2001:db8::1]:7400"}:     "https://[2001:db8::1]:7400",
		{"https", "brussels.example"}:       "https://brussels.example",
		{"http", "brussels.example:7400"}:   "http://brussels.example:7400",
		{"https", "brussels.example:80"}:    "https://brussels.example:80",
		{"https", "[2001:DB8::1]:443"}:      "https://[2001:db8::1]",
		{"https", "brussels.example:07400"}: "https://brussels.example:07400",
	} {
		if got := webOrigin(in[0], in[1]); got != want {
			t.Errorf("webOrigin(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
	}
}

// The API listener lets a client without a certificate complete the
// handshake (to show a token); the lease listener still admits only the
// locations' certificates.
func TestListenerClientAuth(t *testing.T) {
	s := startAuthServer(t)
	server, err := pki.ServerConfig(s.lab["brussels"])
	if err != nil {
		t.Fatal(err)
	}
	if api := apiTLS(server); api.ClientAuth != tls.VerifyClientCertIfGiven || server.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("API listener's client auth %v (server's %v)", api.ClientAuth, server.ClientAuth)
	}
	ln, err := listen("127.0.0.1:0", peerTLS(server, []string{"brussels", "antwerp"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	handshakes := make(chan error, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handshakes <- c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	defer ln.Close()
	for _, who := range []string{"", "vera"} {
		cfg := &tls.Config{RootCAs: s.pool}
		if who != "" {
			pair, err := pki.LoadKeyPair(s.lab[who].Cert, s.lab[who].Key)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err == nil {
			c.Close()
		}
		if err := <-handshakes; err == nil {
			t.Errorf("the lease listener completed a handshake with %q", who)
		}
	}
	// A location's certificate passes.
	pair, err := pki.LoadKeyPair(s.lab["brussels"].Cert, s.lab["brussels"].Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: s.pool, Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-handshakes; err != nil {
		t.Errorf("the lease listener refused a location: %v", err)
	}
}
