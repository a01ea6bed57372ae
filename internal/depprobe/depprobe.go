// Package depprobe probes, once, an outside service a group requires (a
// config.Dependency) from one site: a TCP connection, an HTTP GET, a DNS
// query or an SQL SELECT 1 (docs/design/risk.md, "Dependency probes").
// The agent's loop (internal/agent, dependencies.go) decides how often and
// what a failure means; this package only asks and says what it saw.
package depprobe

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	mdns "github.com/miekg/dns"

	"github.com/siteflip/siteflip/internal/config"
)

// Result is what one probe saw.
type Result struct {
	// Target is what was probed, as a person reads it: "tcp
	// 10.2.0.5:389", "GET https://lic.example/health", "dns ldap.example.
	// A @ 10.0.0.53:53", "postgres 10.2.0.7:5432/app". It never holds a
	// password.
	Target    string
	Reachable bool
	// Latency is how long the probe took, answered or not.
	Latency time.Duration
	// Err says what failed, nil when Reachable. It never holds a password.
	Err error
}

// Engines of an sql dependency.
const (
	EnginePostgres = "postgres"
	EngineMariaDB  = "mariadb"
)

// maxBody is how much of an HTTP answer's body a probe reads: enough to
// let a small answer end cleanly, not a download.
const maxBody = 64 << 10

// Probe asks dep once at site's entry, within dep.Timeout (the default
// when nil) and ctx.
func Probe(ctx context.Context, dep config.Dependency, site config.DependencySite) Result {
	timeout := dep.Timeout.D()
	if timeout <= 0 {
		timeout = config.DefaultDependencyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var r Result
	switch dep.Type {
	case config.DependencyTCP:
		r = probeTCP(ctx, site)
	case config.DependencyHTTP:
		r = probeHTTP(ctx, site, timeout)
	case config.DependencyDNS:
		r = probeDNS(ctx, site)
	case config.DependencySQL:
		r = probeSQL(ctx, site)
	default:
		r.Err = fmt.Errorf("dependency %s: type %q is not one of tcp, http, dns, sql", dep.Name, dep.Type)
	}
	r.Latency = time.Since(start)
	r.Reachable = r.Err == nil
	if r.Err != nil && ctx.Err() == context.DeadlineExceeded {
		// The driver's words for a deadline vary ("i/o timeout", "context
		// deadline exceeded", "operation was canceled"); say it once.
		r.Err = fmt.Errorf("no answer within %s", timeout)
	}
	return r
}

func probeTCP(ctx context.Context, site config.DependencySite) Result {
	r := Result{Target: "tcp " + site.Address}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", site.Address)
	if err != nil {
		r.Err = fmt.Errorf("connect: %s", cause(err))
		return r
	}
	conn.Close()
	return r
}

// probeHTTP sends GET without a proxy (the probe asks whether this site
// reaches the service itself) and with the system's roots.
func probeHTTP(ctx context.Context, site config.DependencySite, timeout time.Duration) Result {
	u, err := url.Parse(site.URL)
	if err != nil {
		return Result{Target: "GET (a url that does not parse)", Err: fmt.Errorf("url does not parse: %w", err)}
	}
	r := Result{Target: "GET " + u.Redacted()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		r.Err = err
		return r
	}
	req.Header.Set("User-Agent", "siteflip-dependency-probe")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy, tr.DisableKeepAlives = nil, true
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: timeout}).Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is the Target already
		}
		r.Err = fmt.Errorf("no answer: %s", cause(err))
		return r
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	switch want := site.ExpectStatus; {
	case want != 0 && resp.StatusCode != want:
		r.Err = fmt.Errorf("answered %s, want %d", resp.Status, want)
	case want == 0 && (resp.StatusCode < 200 || resp.StatusCode > 399):
		r.Err = fmt.Errorf("answered %s, want 2xx or 3xx", resp.Status)
	}
	return r
}

// probeDNS asks over UDP, and again over TCP when the answer is cut off.
func probeDNS(ctx context.Context, site config.DependencySite) Result {
	server := site.Address
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "53")
	}
	qname := mdns.Fqdn(site.Query)
	tname := strings.ToUpper(site.QType)
	if tname == "" {
		tname = "A"
	}
	r := Result{Target: fmt.Sprintf("dns %s %s @ %s", qname, tname, server)}
	qtype, ok := mdns.StringToType[tname]
	if !ok {
		r.Err = fmt.Errorf("qtype %q is not a DNS record type (A, AAAA, SRV, MX …)", site.QType)
		return r
	}
	m := new(mdns.Msg)
	m.SetQuestion(qname, qtype)
	ans, _, err := (&mdns.Client{Net: "udp"}).ExchangeContext(ctx, m, server)
	if err == nil && ans.Truncated {
		ans, _, err = (&mdns.Client{Net: "tcp"}).ExchangeContext(ctx, m, server)
	}
	switch {
	case err != nil:
		r.Err = fmt.Errorf("no answer: %s", cause(err))
	case ans.Rcode == mdns.RcodeNameError:
		r.Err = errors.New("answered NXDOMAIN: the name does not exist")
	case ans.Rcode != mdns.RcodeSuccess:
		r.Err = fmt.Errorf("answered %s", mdns.RcodeToString[ans.Rcode])
	case len(ans.Answer) == 0:
		r.Err = fmt.Errorf("answered with no %s record", tname)
	}
	return r
}

// probeSQL connects and runs SELECT 1. The connection string may hold a
// password: neither the Target nor an error shows it.
func probeSQL(ctx context.Context, site config.DependencySite) Result {
	r := Result{Target: site.Engine}
	dsn := site.DSN
	if site.DSNEnv != "" {
		dsn = os.Getenv(site.DSNEnv)
		if dsn == "" {
			r.Err = fmt.Errorf("environment variable %s (dsn_env) is not set in the agent's environment: set it to the connection string", site.DSNEnv)
			return r
		}
	}
	var password string
	var err error
	switch site.Engine {
	case EnginePostgres:
		password, err = selectPostgres(ctx, dsn, &r)
	case EngineMariaDB:
		password, err = selectMariaDB(ctx, dsn, &r)
	default:
		err = fmt.Errorf("engine %q is not postgres or mariadb", site.Engine)
	}
	if err != nil {
		msg := err.Error()
		if password != "" {
			msg = strings.ReplaceAll(msg, password, "xxxxx")
		}
		r.Err = errors.New(msg)
	}
	return r
}

// selectPostgres asks with pgx; it returns the password, for the caller
// to keep out of the error.
func selectPostgres(ctx context.Context, dsn string, r *Result) (string, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The parser's message may quote the string, password and all.
		return "", errors.New("the connection string does not parse as PostgreSQL's (key=value or postgres:// URL)")
	}
	r.Target = fmt.Sprintf("postgres %s/%s", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)), cfg.Database)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return cfg.Password, fmt.Errorf("connect: %s", cause(err))
	}
	defer func() {
		// Past the probe's own deadline too, but not for ever.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return cfg.Password, fmt.Errorf("SELECT 1: %s", cause(err))
	}
	return cfg.Password, nil
}

// selectMariaDB asks with the MySQL driver; it returns the password, for
// the caller to keep out of the error.
func selectMariaDB(ctx context.Context, dsn string, r *Result) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", errors.New("the connection string does not parse as the MariaDB driver's (user:password@tcp(host:port)/database)")
	}
	r.Target = fmt.Sprintf("mariadb %s/%s", cfg.Addr, cfg.DBName)
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return cfg.Passwd, err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return cfg.Passwd, fmt.Errorf("SELECT 1: %s", cause(err))
	}
	return cfg.Passwd, nil
}

// cause trims an error of a dial to what went wrong ("connection
// refused", "no route to host"): the address is in the Target already.
func cause(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return "cannot resolve " + de.Name + ": " + de.Err
	}
	return err.Error()
}
