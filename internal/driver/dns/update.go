package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
)

// Errors an update or a lookup wraps, so that callers can tell a server
// that said no from one that did not answer.
var (
	// ErrRefused: the server refused (REFUSED): the zone is not dynamic
	// or its policy does not allow the key.
	ErrRefused = errors.New("update refused")
	// ErrKey: the server rejected the TSIG key (BADSIG, BADKEY, BADTIME).
	ErrKey = errors.New("tsig key rejected")
	// ErrNotAuthoritative: the server is not authoritative for the zone
	// (NOTAUTH without a TSIG error, NOTZONE, or a lookup answer without
	// the AA bit).
	ErrNotAuthoritative = errors.New("server not authoritative")
	// ErrNoAnswer: the server did not answer in time or could not be
	// reached.
	ErrNoAnswer = errors.New("no answer")
	// ErrFailed: the server answered with another error code.
	ErrFailed = errors.New("server error")
)

// TSIG is a key that signs updates. The zero TSIG sends updates unsigned.
type TSIG struct {
	Name      string // the key's name, e.g. "siteflip."
	Algorithm string // hmac-sha256 (default), hmac-sha512, …
	Secret    string // base64, as tsig-keygen prints it
}

// fudge is the clock difference a signed message tolerates (RFC 8945's
// recommended 300 s).
const fudge = 300

// fallbackTimeout bounds an update or lookup whose context has no
// deadline.
const fallbackTimeout = 5 * time.Second

// Update makes addrs the only A and AAAA records of name at server
// (host:port) in one RFC 2136 update of zone: it deletes both RRsets and
// adds addrs with ttl, which the server applies all or nothing. The update
// is signed with key unless key is the zero TSIG. It goes over TCP, which
// retransmits a lost packet and has no size limit; the update is
// idempotent, so a caller may retry it.
func Update(ctx context.Context, server, zone, name string, addrs []netip.Addr, ttl time.Duration, key TSIG) error {
	zone, name = mdns.CanonicalName(zone), mdns.CanonicalName(name)
	where := fmt.Sprintf("dns update of %s in zone %s at %s", name, zone, server)
	switch {
	case len(addrs) == 0:
		return fmt.Errorf("%s: no addresses given: give the active site's addresses", where)
	case !mdns.IsSubDomain(zone, name):
		return fmt.Errorf("%s: the name is not inside the zone: set zone to the zone the name belongs to", where)
	case ttl < time.Second:
		return fmt.Errorf("%s: ttl %s is less than a second", where, ttl)
	}
	secs := uint32(ttl / time.Second)

	m := new(mdns.Msg)
	m.SetUpdate(zone)
	m.RemoveRRset([]mdns.RR{
		&mdns.A{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET}},
		&mdns.AAAA{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeAAAA, Class: mdns.ClassINET}},
	})
	m.Insert(addressRRs(name, addrs, secs))

	c := &mdns.Client{Net: "tcp"}
	signed := key.Name != ""
	if signed {
		alg, err := algorithmName(key.Algorithm)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		keyName := mdns.CanonicalName(key.Name)
		m.SetTsig(keyName, alg, fudge, time.Now().Unix())
		c.TsigSecret = map[string]string{keyName: key.Secret}
	}

	ctx, cancel, allowed := withFallbackTimeout(ctx)
	defer cancel()
	r, _, err := c.ExchangeContext(ctx, m, server)
	if r != nil {
		// A rejected key comes back unsigned or signed with an empty MAC,
		// so the client's check of the answer's signature fails too: the
		// error code in the answer's TSIG says more.
		if t := r.IsTsig(); t != nil && t.Error != mdns.RcodeSuccess {
			return fmt.Errorf("%s: %w", where, keyError(int(t.Error), key))
		}
	}
	if err != nil {
		if r != nil && r.Rcode != mdns.RcodeSuccess {
			return fmt.Errorf("%s: %w", where, rcodeError(r.Rcode, signed, key, zone))
		}
		return fmt.Errorf("%s: %w", where, transportError(err, server, "tcp", allowed))
	}
	if r.Rcode != mdns.RcodeSuccess {
		return fmt.Errorf("%s: %w", where, rcodeError(r.Rcode, signed, key, zone))
	}
	if signed && r.IsTsig() == nil {
		return fmt.Errorf("%s: %w: the server answered NOERROR without signing its answer, so it cannot be trusted; check that %s is the server that holds key %s", where, ErrKey, server, key.Name)
	}
	return nil
}

func addressRRs(name string, addrs []netip.Addr, ttl uint32) []mdns.RR {
	rrs := make([]mdns.RR, 0, len(addrs))
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			rrs = append(rrs, &mdns.A{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: ttl}, A: a.AsSlice()})
		} else {
			rrs = append(rrs, &mdns.AAAA{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeAAAA, Class: mdns.ClassINET, Ttl: ttl}, AAAA: a.AsSlice()})
		}
	}
	return rrs
}

func algorithmName(alg string) (string, error) {
	if alg == "" {
		alg = defaultAlgorithm
	}
	wire, ok := algorithms[strings.TrimSuffix(strings.ToLower(alg), ".")]
	if !ok {
		return "", fmt.Errorf("%q is not a TSIG algorithm siteflip knows: use hmac-sha256", alg)
	}
	return wire, nil
}

func keyError(tsigErr int, key TSIG) error {
	code := mdns.RcodeToString[tsigErr]
	switch tsigErr {
	case mdns.RcodeBadSig:
		return fmt.Errorf("%w (BADSIG): the server knows key %s but the signature does not match: the secret or the algorithm (%s) differs from the server's; copy the secret from the server's key statement into tsig.secret_file", ErrKey, key.Name, key.Algorithm)
	case mdns.RcodeBadKey:
		return fmt.Errorf("%w (BADKEY): the server has no key %s with algorithm %s: check that tsig.name and tsig.algorithm match a key statement in the server's configuration", ErrKey, key.Name, key.Algorithm)
	case mdns.RcodeBadTime:
		return fmt.Errorf("%w (BADTIME): this host's clock and the server's differ by more than %d s: synchronise both with NTP", ErrKey, fudge)
	}
	return fmt.Errorf("%w (%s): check tsig.name, tsig.algorithm and the secret against the server's key statement", ErrKey, code)
}

func rcodeError(rcode int, signed bool, key TSIG, zone string) error {
	code := mdns.RcodeToString[rcode]
	switch rcode {
	case mdns.RcodeRefused:
		if !signed {
			return fmt.Errorf("%w (REFUSED): the server refused the unsigned update: set tsig to a key that the zone's update-policy (or allow-update) allows", ErrRefused)
		}
		return fmt.Errorf("%w (REFUSED): the server refused the update: is zone %s dynamic on it, and does its update-policy (or allow-update) allow key %s?", ErrRefused, zone, key.Name)
	case mdns.RcodeNotAuth:
		if signed {
			return fmt.Errorf("%w (NOTAUTH): the server is not authoritative for zone %s or did not accept key %s: check that it is a primary server of the zone and that the key's name and secret match its key statement", ErrNotAuthoritative, zone, key.Name)
		}
		return fmt.Errorf("%w (NOTAUTH): the server is not authoritative for zone %s: point servers at a primary server of the zone", ErrNotAuthoritative, zone)
	case mdns.RcodeNotZone:
		return fmt.Errorf("%w (NOTZONE): the name is not inside zone %s as the server sees it: check zone", ErrNotAuthoritative, zone)
	case mdns.RcodeServerFailure:
		return fmt.Errorf("%w (SERVFAIL): the server failed to apply the update: see its log (BIND needs the zone's directory writable by its user for the journal)", ErrFailed)
	case mdns.RcodeNotImplemented:
		return fmt.Errorf("%w (NOTIMP): the server does not accept dynamic updates: use a server with RFC 2136 support (BIND, or PowerDNS with a SQL backend)", ErrFailed)
	case mdns.RcodeFormatError:
		return fmt.Errorf("%w (FORMERR): the server could not parse the update", ErrFailed)
	}
	return fmt.Errorf("%w (%s)", ErrFailed, code)
}

// transportError turns a failure to get an answer into one that says which
// server and what to check.
func transportError(err error, server, proto string, allowed time.Duration) error {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w: nothing listens on %s %s (connection refused): is the DNS server running, and are the address and port right?", ErrNoAnswer, strings.ToUpper(proto), server)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w from %s within %s: is the server up, and does a firewall let %s through to it from this site?", ErrNoAnswer, server, allowed, strings.ToUpper(proto))
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%w from %s: %w", ErrNoAnswer, server, err)
	case errors.Is(err, mdns.ErrSig), errors.Is(err, mdns.ErrSecret), errors.Is(err, mdns.ErrTime):
		return fmt.Errorf("%w: the signature of the answer from %s does not verify (%v), so whether the update was applied is unknown: check the secret against the server's key statement, then look the name up", ErrKey, server, err)
	}
	return fmt.Errorf("%w from %s: %w", ErrNoAnswer, server, err)
}

// withFallbackTimeout bounds ctx by fallbackTimeout when it has no
// deadline, and returns how long it allows, for messages.
func withFallbackTimeout(ctx context.Context) (context.Context, context.CancelFunc, time.Duration) {
	if dl, ok := ctx.Deadline(); ok {
		return ctx, func() {}, time.Until(dl).Round(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, fallbackTimeout)
	return ctx, cancel, fallbackTimeout
}

// Lookup asks server (host:port) for the A and AAAA records of name, the
// way a step verifies an update or an agent's answer. It returns the
// addresses sorted and the smallest TTL among them. A name that does not
// exist or has no addresses gives no addresses and no error. The server
// must answer with authority: a resolver's cached answer proves nothing.
func Lookup(ctx context.Context, server, name string) ([]netip.Addr, time.Duration, error) {
	name = mdns.Fqdn(name)
	ctx, cancel, allowed := withFallbackTimeout(ctx)
	defer cancel()
	var addrs []netip.Addr
	var minTTL uint32
	first := true
	for _, qtype := range []uint16{mdns.TypeA, mdns.TypeAAAA} {
		r, err := query(ctx, server, name, qtype, allowed)
		if err != nil {
			return nil, 0, fmt.Errorf("dns lookup of %s %s at %s: %w", name, mdns.TypeToString[qtype], server, err)
		}
		for _, rr := range r.Answer {
			if !strings.EqualFold(rr.Header().Name, name) {
				continue
			}
			var a netip.Addr
			switch rr := rr.(type) {
			case *mdns.A:
				a, _ = netip.AddrFromSlice(rr.A.To4())
			case *mdns.AAAA:
				a, _ = netip.AddrFromSlice(rr.AAAA.To16())
			default:
				continue
			}
			addrs = append(addrs, a)
			if ttl := rr.Header().Ttl; first || ttl < minTTL {
				minTTL, first = ttl, false
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return addrs, time.Duration(minTTL) * time.Second, nil
}

// query asks one question over UDP, and again over TCP when the answer is
// truncated, and checks the answer's code and authority.
func query(ctx context.Context, server, name string, qtype uint16, allowed time.Duration) (*mdns.Msg, error) {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	m.SetEdns0(1232, false)
	proto := "udp"
	r, _, err := (&mdns.Client{Net: proto}).ExchangeContext(ctx, m, server)
	if err == nil && r.Truncated {
		proto = "tcp"
		r, _, err = (&mdns.Client{Net: proto}).ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, transportError(err, server, proto, allowed)
	}
	switch r.Rcode {
	case mdns.RcodeSuccess, mdns.RcodeNameError:
	case mdns.RcodeRefused:
		return nil, fmt.Errorf("%w (REFUSED): the server does not serve %s: check the name and that the server holds its zone", ErrNotAuthoritative, name)
	case mdns.RcodeServerFailure:
		return nil, fmt.Errorf("%w (SERVFAIL): the server cannot answer for %s now (an agent answers SERVFAIL while it does not know the active site)", ErrFailed, name)
	default:
		return nil, fmt.Errorf("%w (%s)", ErrFailed, mdns.RcodeToString[r.Rcode])
	}
	if !r.Authoritative {
		return nil, fmt.Errorf("%w: the answer for %s is not authoritative (a resolver or a cache answered): point the check at a primary server of the zone", ErrNotAuthoritative, name)
	}
	return r, nil
}
