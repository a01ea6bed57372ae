package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/siteflip/siteflip/internal/access"
	"github.com/siteflip/siteflip/internal/audit"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/coord"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

// apiServer is the agent's HTTP API (docs/design/safety.md): one router per
// listener, built from access.Endpoints, so that every endpoint is
// authorized and audited the same way and none exists without an entry in
// that table. The reads, the runs and the steps are its own; the health
// check, the lease, forcing and the membership are served by the
// components they belong to.
type apiServer struct {
	*base
	plane *plane
	store apiStore
	// resolver tells who calls, caPool checks their login tokens (nil
	// without TLS); audit records what they asked; heavy bounds the
	// requests that read the whole control plane.
	resolver *access.Resolver
	caPool   *x509.CertPool
	audit    *audit.Writer
	heavy    semaphore

	presence *presence
	lease    *serveLease
	local    *localResources
	force    *forcer
	// states is the shared, cached reading of the installation; events
	// and lags, the dashboard's live feed and lag history, read it.
	states *stateReader
	events *broadcaster
	lags   *lagHistory
}

// apiStore is what the API reads and changes in the control plane itself.
type apiStore interface {
	Runs(ctx context.Context, group string) ([]plan.Run, error)
	RecentRuns(ctx context.Context, n int) ([]plan.Run, error)
	Run(ctx context.Context, id string) (plan.Run, error)
	Audit(ctx context.Context, since time.Time, limit int) ([]audit.Record, error)
	StartRun(ctx context.Context, run plan.Run, recordRevision int64) error
	StepContext(ctx context.Context, group, runID string) (coord.StepContext, error)
	PutApproval(ctx context.Context, a status.Approval) (status.Approval, error)
	pauseStore
	scheduleAPIStore
}

// Limits of the API servers.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 60 * time.Second // a step extends its own
	idleTimeout       = 90 * time.Second
	maxHeaderBytes    = 32 << 10
	connsPerClient    = 64
	connsInAll        = 1024
	heavyAtOnce       = 16
)

// handlers are the agent's request handlers, by endpoint pattern.
func (srv *apiServer) handlers() map[string]http.HandlerFunc {
	metrics := promhttp.HandlerFor(srv.metrics.reg, promhttp.HandlerOpts{Registry: srv.metrics.reg})
	page := pageHandler()
	return map[string]http.HandlerFunc{
		"GET /healthz":                    srv.presence.handleHealthz,
		"GET /v1/status":                  srv.handleStatus,
		"GET /metrics":                    metrics.ServeHTTP,
		"GET /v1/runs":                    srv.handleRuns,
		"GET /v1/runs/{id}":               srv.handleRun,
		"GET /v1/audit":                   srv.handleAudit,
		"POST /v1/runs":                   srv.handleStartRun,
		"POST /v1/runs/{id}/verdict":      srv.handleVerdict,
		"POST /v1/force":                  srv.force.handleForce,
		"POST /v1/steps":                  srv.handleStep,
		"GET /v1/copy/{group}/{resource}": srv.handleCopy,
		"POST /v1/drills/{group}/cleanup": srv.handleDrillCleanup,
		"POST /v1/groups/{group}/pause":   srv.handlePause,
		"POST /v1/groups/{group}/resume":  srv.handleResume,
		"POST /v1/scheduled":              srv.handleSchedule,
		"DELETE /v1/scheduled/{group}":    srv.handleCancelScheduled,
		"POST /v1/lease":                  srv.lease.handleLease,
		"GET /v1/members":                 srv.force.handleMembers,
		"POST /v1/members":                srv.force.handleAddMember,
		"POST /v1/members/promote":        srv.force.handlePromoteMember,
		"GET /{$}":                        page,
		"GET /ui/{path...}":               page,
		"GET /v1/ui/config":               srv.handleUIConfig,
		"GET /v1/events":                  srv.handleEvents,
		"GET /v1/lag":                     srv.handleLag,
		"GET /v1/runs/{id}/report":        srv.handleReport,
		"GET /v1/whatif":                  srv.handleWhatIf,
	}
}

// routes returns the routers of the API and peer listeners. A handler
// without an entry in the access table, or an entry without a handler, is
// an error: an endpoint must never exist unguarded.
func (srv *apiServer) routes() (api, peer http.Handler, err error) {
	hs := srv.handlers()
	apiMux, peerMux := http.NewServeMux(), http.NewServeMux()
	for _, e := range access.Endpoints {
		h, ok := hs[e.Pattern]
		if !ok {
			return nil, nil, fmt.Errorf("endpoint %s is in the access table but has no handler", e.Pattern)
		}
		delete(hs, e.Pattern)
		guarded := srv.guard(e, h)
		if e.Listener == access.API || e.Listener == access.Both {
			apiMux.Handle(e.Pattern, guarded)
		}
		if e.Listener == access.Peer || e.Listener == access.Both {
			peerMux.Handle(e.Pattern, guarded)
		}
	}
	for p := range hs {
		return nil, nil, fmt.Errorf("handler %s has no entry in the access table", p)
	}
	return apiMux, peerMux, nil
}

// reqInfo is what the guard knows of a request, and what the handler adds
// for the audit record.
type reqInfo struct {
	principal access.Principal
	note      auditNote
}

// auditNote is what a handler tells the audit record.
type auditNote struct {
	Action, Group, Run, Reason, Ticket string
	// Failed: the request was allowed but did not work (a step answered
	// with an error inside a 200).
	Failed bool
}

type reqInfoKey struct{}

// requestInfo returns the request's info; handlers fill in its note.
func requestInfo(r *http.Request) *reqInfo {
	if i, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}

// guard authorizes a request by the access table, limits the heavy ones,
// and leaves an audit record of every request that may change state.
func (srv *apiServer) guard(e access.Endpoint, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, authErr := srv.principal(r)
		info := &reqInfo{principal: p}
		sw := &statusWriter{ResponseWriter: w}
		switch ok, why := access.Allow(e.Rule, info.principal); {
		case authErr != nil && e.Rule != access.Public:
			sw.Header().Set("WWW-Authenticate", `Bearer realm="siteflip"`)
			writeError(sw, http.StatusUnauthorized, fmt.Errorf("%s at %s: %w", e.Pattern, srv.site.Name, authErr))
		case !ok:
			writeError(sw, http.StatusForbidden, fmt.Errorf("%s at %s: %s", e.Pattern, srv.site.Name, why))
		case e.Heavy && !srv.heavy.acquire():
			writeError(sw, http.StatusServiceUnavailable, fmt.Errorf("%s is busy answering %d such requests; ask again, or ask another location", srv.site.Name, heavyAtOnce))
		default:
			if e.Heavy {
				defer srv.heavy.release()
			}
			h(sw, r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info)))
		}
		if !e.Audit {
			return
		}
		code := sw.status()
		// Leases are the heartbeat between locations: only requests refused
		// for who sent them or what they said are worth a record, not the
		// grants, nor the refusals of a site marked lost (the protocol).
		if e.Pattern == "POST /v1/lease" && code != http.StatusForbidden && code != http.StatusBadRequest {
			return
		}
		rec := audit.Record{
			Site: srv.site.Name, Who: info.principal.Name, Role: info.principal.RoleName(), Via: info.principal.Via, From: r.RemoteAddr,
			Request: e.Pattern, Action: info.note.Action, Group: info.note.Group, Run: info.note.Run,
			Reason: info.note.Reason, Ticket: info.note.Ticket, Code: code, Error: sw.errorText(),
		}
		switch {
		case code >= 400 && code < 500:
			rec.Result = audit.Refused
		case code >= 500 || info.note.Failed:
			rec.Result = audit.Failed
		default:
			rec.Result = audit.Done
			rec.Routine = e.Pattern == "POST /v1/steps"
		}
		srv.audit.Record(rec)
	})
}

// statusWriter remembers a response's status and the start of an error
// body, for the audit record.
type statusWriter struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	if s.code >= 300 && s.body.Len() < 2048 {
		s.body.Write(p[:min(len(p), 2048-s.body.Len())])
	}
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (a step sets
// its own write deadline).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

func (s *statusWriter) errorText() string {
	var e struct{ Error string }
	if s.body.Len() > 0 && json.Unmarshal(s.body.Bytes(), &e) == nil {
		return e.Error
	}
	return ""
}

// semaphore bounds the heavy requests served at once.
type semaphore chan struct{}

func (s semaphore) acquire() bool {
	select {
	case s <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s semaphore) release() { <-s }

// caller is the name in the client certificate of a request, or "" when
// TLS is off.
func caller(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	return r.TLS.PeerCertificates[0].Subject.CommonName
}

// errNoCredential is the answer to a request that shows nobody.
var errNoCredential = errors.New("who is asking is not known: present a client certificate of the installation's CA, " +
	"or a login token from `siteflip token` (Authorization: Bearer sft1.…)")

// principal is who sent r: the holder of its client certificate, else the
// person of its login token, whose role is capped by access: now
// (docs/design/dashboard.md). Without TLS everybody is anonymous and
// tokens mean nothing. An error says why the request shows nobody.
func (srv *apiServer) principal(r *http.Request) (access.Principal, error) {
	if !srv.resolver.TLS() || (r.TLS != nil && len(r.TLS.PeerCertificates) > 0) {
		return srv.resolver.Resolve(caller(r)), nil
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return access.Principal{}, errNoCredential
	}
	scheme, tok, _ := strings.Cut(auth, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return access.Principal{}, fmt.Errorf("the Authorization header holds a %q credential; send `Authorization: Bearer sft1.…` with a token from `siteflip token`", scheme)
	}
	cn, role, _, err := access.Verify(strings.TrimSpace(tok), srv.caPool, srv.topo.Name, srv.now())
	if err != nil {
		return access.Principal{}, err
	}
	return srv.resolver.ResolveToken(cn, role)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// decodeJSON decodes the request body into v strictly: one JSON object of
// at most limit bytes, no unknown field, nothing after it.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("the body is over %d bytes", limit)
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

// newServer returns an API server with the agent's timeouts.
func newServer(h http.Handler, ctx context.Context, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// Requests in flight end with the agent, not after it.
		BaseContext: func(net.Listener) context.Context { return ctx },
		// Failed handshakes (a client without a certificate, a person at
		// the peer listener) are the client's problem; keep them out of
		// the agent's log.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// listen opens addr with the per-client and total connection limits, and
// TLS when cfg is set.
func listen(addr string, cfg *tls.Config, refused func()) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ln = &limitListener{Listener: ln, perClient: connsPerClient, inAll: connsInAll, byClient: map[string]int{}, refused: refused}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	return ln, nil
}

// apiTLS is the server configuration of the API listener: a client
// certificate of the CA is verified when given but not required, so that
// a browser may come with a login token instead. The guard asks for one or
// the other everywhere but on the public endpoints.
func apiTLS(server *tls.Config) *tls.Config {
	if server == nil {
		return nil
	}
	cfg := server.Clone()
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	return cfg
}

// peerTLS is the server configuration of the peer listener: only the
// locations' certificates complete a handshake.
func peerTLS(server *tls.Config, siteCNs []string) *tls.Config {
	if server == nil {
		return nil
	}
	cfg := server.Clone()
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 || !slices.Contains(siteCNs, cs.PeerCertificates[0].Subject.CommonName) {
			return errors.New("the lease listener admits only the locations' certificates")
		}
		return nil
	}
	return cfg
}

// limitListener closes connections beyond perClient open ones from one
// address, or beyond inAll in all, as soon as they are accepted.
type limitListener struct {
	net.Listener
	perClient, inAll int
	refused          func()

	mu       sync.Mutex
	byClient map[string]int
	open     int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		l.mu.Lock()
		if l.open >= l.inAll || l.byClient[host] >= l.perClient {
			l.mu.Unlock()
			c.Close()
			if l.refused != nil {
				l.refused()
			}
			continue
		}
		l.open++
		l.byClient[host]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, release: sync.OnceFunc(func() {
			l.mu.Lock()
			l.open--
			if l.byClient[host]--; l.byClient[host] <= 0 {
				delete(l.byClient, host)
			}
			l.mu.Unlock()
		})}, nil
	}
}

type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// agentOrigins are the web origins of the installation's agents, as a
// browser writes them: the dashboard served by one agent reads the others
// when its own location is lost.
func agentOrigins(t *config.Topology) []string {
	scheme := "https"
	if !t.TLSEnabled() {
		scheme = "http" // the agents serve plain HTTP then
	}
	var out []string
	for _, s := range t.Sites {
		out = append(out, webOrigin(scheme, s.Agent.Address))
	}
	return out
}

// webOrigin is scheme://host[:port] as browsers send it in Origin: the
// host in lower case, the scheme's default port left out.
func webOrigin(scheme, hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return scheme + "://" + strings.ToLower(hostport)
	}
	host = strings.ToLower(host)
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" {
		return scheme + "://" + host
	}
	return scheme + "://" + host + ":" + port
}

// Cross-origin answers (docs/design/dashboard.md, Cross-origin).
const (
	corsMethods = "GET, POST, DELETE"
	corsHeaders = "Authorization, Content-Type"
	corsMaxAge  = "600"
)

// cors lets pages served by the installation's agents (origins) call this
// API: their requests get Access-Control-Allow-Origin, and their preflights
// under /v1/ are answered here, before the router (which would answer 405).
// Other origins get no CORS headers, a refused preflight, and no request
// that may change state: a browser that holds a client certificate must
// not act on behalf of another site's page. Requests without an Origin
// (the command line, agents) pass untouched. No credentials mode: tokens
// travel in the Authorization header.
func cors(origins []string, next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, o := range origins {
		allowed[o] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		// The page's own origin, whatever name it was opened by.
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		ok := allowed[origin] || origin == webOrigin(scheme, r.Host)
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		switch {
		case preflight && strings.HasPrefix(r.URL.Path, "/v1/"):
			if !ok {
				writeError(w, http.StatusForbidden, fmt.Errorf("origin %s is not one of this installation's agents; open the dashboard at one of them", origin))
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		case ok:
			h.Set("Access-Control-Allow-Origin", origin)
		case r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions:
			writeError(w, http.StatusForbidden, fmt.Errorf("%s %s from a page of origin %s: refused; only pages served by this installation's agents may change anything", r.Method, r.URL.Path, origin))
			return
		}
		next.ServeHTTP(w, r)
	})
}
