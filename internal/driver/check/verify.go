package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	mdns "github.com/miekg/dns"

	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/resource"
)

// maxBody is how much of an HTTP response's body a check reads.
const maxBody = 1 << 20

// verifier runs one check at one site.
type verifier struct {
	name    string // the check resource's
	s       *Settings
	sqlType string         // the type of sql.resource: typePostgres or typeMariaDB
	body    *regexp.Regexp // http.body, compiled
	// netns, in a drill whose bubble is a network namespace, is where
	// the check's connections start: the copies serve in there only.
	// "": from the agent's own namespace.
	netns string
	dial  netns.DialFunc // set with netns
}

var _ resource.BubbleVerifier = (*verifier)(nil)

// InBubble returns the check as it runs in a drill with bubble b: its
// connections start inside the bubble's namespace, when it has one.
func (v *verifier) InBubble(b resource.Bubble) resource.Verifier {
	if b.Netns == "" {
		return v
	}
	in := *v
	in.netns, in.dial = b.Netns, netns.Dialer(b.Netns)
	return &in
}

// inside names the bubble's namespace in what a check expected, when it
// runs in there.
func (v *verifier) inside() string {
	if v.netns == "" {
		return ""
	}
	return " inside network namespace " + v.netns
}

// failure is a check that ran and did not get the answer it expects:
// what it expected and what it saw.
type failure struct {
	expected, seen string
	err            error // what went wrong underneath, if anything
}

func (f *failure) Error() string { return "expected " + f.expected + ", seen " + f.seen }
func (f *failure) Unwrap() error { return f.err }

// Verify runs the check once, bounded by its timeout and ctx.
func (v *verifier) Verify(ctx context.Context, targets map[string]string) (map[string]string, error) {
	timeout := v.s.Timeout.D()
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := fromTargets(targets)
	var seen string
	var err error
	switch s := v.s; {
	case s.SQL != nil:
		seen, err = v.sql(cctx, targets)
	case s.HTTP != nil:
		seen, err = v.http(cctx, addr)
	case s.TCP != nil:
		seen, err = v.tcp(cctx, addr)
	case s.DNS != nil:
		seen, err = v.dns(cctx, addr)
	default:
		err = errors.New("no check is set: set one of sql, http, tcp or dns")
	}
	var f *failure
	if errors.As(err, &f) && f.err != nil && f.seen == "" {
		f.seen = describe(ctx, f.err, timeout)
	}
	if f != nil && seen == "" {
		seen = f.seen
	}
	out := map[string]string{}
	if seen != "" {
		out[resource.OutputSeen] = seen
	}
	if err != nil {
		return out, fmt.Errorf("check %s: %w", v.name, err)
	}
	return out, nil
}

// describe says in a few words why a request got no answer.
func describe(parent context.Context, err error, timeout time.Duration) string {
	if parent.Err() != nil {
		return "stopped: " + parent.Err().Error()
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "no answer within " + timeout.String()
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Message
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return de.Err + " (" + de.Name + ")"
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// http sends GET and judges the response.
func (v *verifier) http(ctx context.Context, addr addressOf) (string, error) {
	h := v.s.HTTP
	u, err := expand(h.URL, addr, true)
	if err != nil {
		return "", fmt.Errorf("http.url: %w", err)
	}
	want := "HTTP " + strconv.Itoa(h.Status)
	if v.body != nil {
		want += " with a body matching " + strconv.Quote(v.body.String())
	}
	want += " from " + u + v.inside()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("http.url %s: %w", u, err)
	}
	req.Header.Set("User-Agent", "siteflip-check")
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if v.dial != nil {
		tr.DialContext = v.dial
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", &failure{expected: want, err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	seen := "HTTP " + strconv.Itoa(resp.StatusCode)
	if resp.StatusCode != h.Status {
		if loc := resp.Header.Get("Location"); loc != "" {
			seen += " to " + loc
		}
		return seen, &failure{expected: want, seen: seen}
	}
	if v.body != nil {
		if err != nil {
			seen += ", body cut off: " + describe(ctx, err, v.s.Timeout.D())
			return seen, &failure{expected: want, seen: seen, err: err}
		}
		if !v.body.Match(body) {
			seen += " with body " + excerpt(body)
			return seen, &failure{expected: want, seen: seen}
		}
	}
	return seen, nil
}

// excerpt quotes the start of a body.
func excerpt(b []byte) string {
	const max = 80
	if len(b) == 0 {
		return "empty"
	}
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + fmt.Sprintf("… (%d bytes)", len(b))
	}
	return strconv.Quote(string(b))
}

// tcp connects and closes.
func (v *verifier) tcp(ctx context.Context, addr addressOf) (string, error) {
	target, err := expand(v.s.TCP.Address, addr, true)
	if err != nil {
		return "", fmt.Errorf("tcp.address: %w", err)
	}
	dial := v.dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", target)
	if err != nil {
		return "", &failure{expected: "a connection to " + target + v.inside(), err: err}
	}
	conn.Close()
	return "connected to " + target, nil
}

// dns asks for the A or AAAA records of the name, by the family of the
// expected address, and looks for it in the answer.
func (v *verifier) dns(ctx context.Context, addr addressOf) (string, error) {
	d := v.s.DNS
	server, err := expand(d.Server, addr, true)
	if err != nil {
		return "", fmt.Errorf("dns.server: %w", err)
	}
	server = withPort(server)
	text, err := expand(d.Address, addr, false)
	if err != nil {
		return "", fmt.Errorf("dns.address: %w", err)
	}
	want, err := netip.ParseAddr(text)
	if err != nil {
		return "", fmt.Errorf("dns.address %q is not an IP address: write an IPv4 or IPv6 address, or {R.host}", text)
	}
	want = want.Unmap()
	qtype := mdns.TypeA
	if want.Is6() {
		qtype = mdns.TypeAAAA
	}
	name := mdns.Fqdn(d.Name)
	expected := fmt.Sprintf("%s in the %s answer for %s at %s%s", want, mdns.TypeToString[qtype], name, server, v.inside())
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	r, err := v.exchange(ctx, m, "udp", server)
	if err == nil && r.Truncated {
		r, err = v.exchange(ctx, m, "tcp", server)
	}
	if err != nil {
		return "", &failure{expected: expected, err: err}
	}
	if r.Rcode != mdns.RcodeSuccess {
		seen := mdns.RcodeToString[r.Rcode]
		return seen, &failure{expected: expected, seen: seen}
	}
	var got []string
	found := false
	for _, rr := range r.Answer {
		var a netip.Addr
		switch rr := rr.(type) {
		case *mdns.A:
			a, _ = netip.AddrFromSlice(rr.A.To4())
		case *mdns.AAAA:
			a, _ = netip.AddrFromSlice(rr.AAAA.To16())
		default:
			continue
		}
		a = a.Unmap()
		got = append(got, a.String())
		found = found || a == want
	}
	seen := strings.Join(got, ", ")
	if len(got) == 0 {
		seen = "no " + mdns.TypeToString[qtype] + " records"
	}
	if !found {
		return seen, &failure{expected: expected, seen: seen}
	}
	return seen, nil
}

// exchange asks server over network (udp or tcp), from the bubble's
// namespace when the check runs in one.
func (v *verifier) exchange(ctx context.Context, m *mdns.Msg, network, server string) (*mdns.Msg, error) {
	c := &mdns.Client{Net: network}
	if v.dial == nil {
		r, _, err := c.ExchangeContext(ctx, m, server)
		return r, err
	}
	conn, err := v.dial(ctx, network, server)
	if err != nil {
		return nil, err
	}
	co := &mdns.Conn{Conn: conn}
	defer co.Close()
	r, _, err := c.ExchangeWithConnContext(ctx, m, co)
	return r, err
}
