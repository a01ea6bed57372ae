package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
)

// Record is one name a Server answers for.
type Record struct {
	// Zone is the apex the server is authoritative for (it answers SOA
	// there); "" means the name itself.
	Zone string
	Name string
	// Addrs are the active site's addresses. With none, the server
	// answers SERVFAIL for the name, so that resolvers ask another agent
	// rather than cache a negative answer.
	Addrs []netip.Addr
	TTL   time.Duration
}

// Server answers, authoritatively over UDP and TCP, the names of the groups
// whose dns resources serve from this agent, with the addresses of each
// group's active site. A change is seen by the next query: queries read an
// immutable table that a change replaces as a whole.
type Server struct {
	log  *slog.Logger
	addr netip.AddrPort
	udp  *mdns.Server
	tcp  *mdns.Server
	wg   sync.WaitGroup

	mu      sync.Mutex // serialises changes; queries never take it
	records map[string]Record
	serial  uint32
	table   atomic.Pointer[table]
}

// table is what queries read: the records by canonical name, the zones by
// apex with their SOA, and every name that exists in a zone (records, the
// apex, and the names between them, which exist without records).
type table struct {
	records map[string]*entry
	zones   map[string]*mdns.SOA
	exists  map[string]bool
}

type entry struct {
	addrs []netip.Addr
	ttl   uint32
}

// Listen starts a server on addr (host:port; port 0 picks a free port, the
// same for UDP and TCP). It answers nothing until Set is called. It logs
// to log (nil: nowhere), with its address as listen: a change of what it
// answers at info, each query at debug.
func Listen(addr string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, l, err := listenBoth(addr)
	if err != nil {
		return nil, fmt.Errorf("dns server on %s: %w", addr, err)
	}
	ap := l.Addr().(*net.TCPAddr).AddrPort()
	s := &Server{
		log:     log.With("listen", ap.String()),
		addr:    ap,
		records: map[string]Record{},
		serial:  uint32(time.Now().Unix()),
	}
	s.table.Store(&table{records: map[string]*entry{}, zones: map[string]*mdns.SOA{}, exists: map[string]bool{}})
	h := mdns.HandlerFunc(s.serve)
	s.udp = &mdns.Server{PacketConn: pc, Handler: h}
	s.tcp = &mdns.Server{Listener: l, Handler: h}
	for _, srv := range []*mdns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		errc := make(chan error, 1)
		s.wg.Go(func() { errc <- srv.ActivateAndServe() })
		select {
		case <-started:
		case err := <-errc:
			s.Close()
			pc.Close()
			l.Close()
			return nil, fmt.Errorf("dns server on %s: %w", addr, err)
		}
	}
	return s, nil
}

// listenBoth opens UDP and TCP on one port. With port 0 it takes the port
// the kernel gives UDP and tries again if TCP's is taken.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for range 10 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		taddr := addr
		if port == "0" {
			taddr = net.JoinHostPort(host, fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port))
		}
		l, err := net.Listen("tcp", taddr)
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		if port != "0" || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, err
		}
	}
	return nil, nil, fmt.Errorf("no port free for both UDP and TCP")
}

// Addr returns the address the server listens on.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Close stops the server and waits for its goroutines.
func (s *Server) Close() error {
	var errs []error
	for _, srv := range []*mdns.Server{s.udp, s.tcp} {
		if srv != nil {
			if err := srv.Shutdown(); err != nil && !strings.Contains(err.Error(), "not started") {
				errs = append(errs, err)
			}
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// Set adds or replaces the record of r.Name.
func (s *Server) Set(r Record) error {
	r.Name = mdns.CanonicalName(r.Name)
	if r.Zone == "" {
		r.Zone = r.Name
	}
	r.Zone = mdns.CanonicalName(r.Zone)
	if !mdns.IsSubDomain(r.Zone, r.Name) || r.Zone == "." {
		return fmt.Errorf("dns server: %s is not inside zone %s", r.Name, r.Zone)
	}
	if r.TTL < time.Second {
		return fmt.Errorf("dns server: ttl %s of %s is less than a second", r.TTL, r.Name)
	}
	r.Addrs = slices.Clone(r.Addrs)
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, had := s.records[r.Name]
	s.records[r.Name] = r
	s.publish()
	if !had || prev.Zone != r.Zone || prev.TTL != r.TTL || !slices.Equal(prev.Addrs, r.Addrs) {
		s.logAnswer(r)
	}
	return nil
}

// logAnswer says what the server answers for r.Name from now on. s.mu is
// held.
func (s *Server) logAnswer(r Record) {
	if len(r.Addrs) == 0 {
		s.log.Info("dns answer changed: SERVFAIL, no site is known active", "name", r.Name, "zone", r.Zone, "serial", s.serial)
		return
	}
	s.log.Info("dns answer changed", "name", r.Name, "zone", r.Zone, "addrs", r.Addrs, "ttl", r.TTL, "serial", s.serial)
}

// SetActive makes addrs the answer for name, a name already Set; nil
// addrs make the server answer SERVFAIL for it (no site is known active).
func (s *Server) SetActive(name string, addrs []netip.Addr) error {
	name = mdns.CanonicalName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[name]
	if !ok {
		return fmt.Errorf("dns server: %s is not served here: Set it first", name)
	}
	changed := !slices.Equal(r.Addrs, addrs)
	r.Addrs = slices.Clone(addrs)
	s.records[name] = r
	s.publish()
	if changed {
		s.logAnswer(r)
	}
	return nil
}

// Remove stops answering for name.
func (s *Server) Remove(name string) {
	name = mdns.CanonicalName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, had := s.records[name]; !had {
		return
	}
	delete(s.records, name)
	s.publish()
	s.log.Info("dns name no longer answered", "name", name, "serial", s.serial)
}

// publish builds a new table from s.records and swaps it in. s.mu is held.
func (s *Server) publish() {
	s.serial++
	t := &table{records: make(map[string]*entry, len(s.records)), zones: map[string]*mdns.SOA{}, exists: map[string]bool{}}
	for name, r := range s.records {
		for n := name; n != ""; _, n, _ = strings.Cut(n, ".") {
			t.exists[n] = true
			if n == r.Zone {
				break
			}
		}
		ttl := uint32(r.TTL / time.Second)
		var addrs []netip.Addr
		for _, a := range r.Addrs {
			addrs = append(addrs, a.Unmap())
		}
		t.records[name] = &entry{addrs: addrs, ttl: ttl}
		soa, ok := t.zones[r.Zone]
		if !ok {
			soa = &mdns.SOA{
				Hdr:     mdns.RR_Header{Name: r.Zone, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: ttl},
				Ns:      r.Zone,
				Mbox:    "hostmaster." + r.Zone,
				Serial:  s.serial,
				Refresh: 3600,
				Retry:   600,
				Expire:  86400,
				Minttl:  ttl,
			}
			t.zones[r.Zone] = soa
		}
		// Negative answers are cached for the SOA's TTL and minimum:
		// keep them as short as the zone's shortest record.
		soa.Hdr.Ttl = min(soa.Hdr.Ttl, ttl)
		soa.Minttl = min(soa.Minttl, ttl)
	}
	s.table.Store(t)
}

// serve answers one query from the current table.
func (s *Server) serve(w mdns.ResponseWriter, req *mdns.Msg) {
	if req.Response {
		return
	}
	m := s.answer(s.table.Load(), req)
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(1232, false)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := mdns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil && opt.UDPSize() > mdns.MinMsgSize {
			size = int(min(opt.UDPSize(), 1232))
		}
		m.Truncate(size)
	}
	if len(req.Question) == 1 && s.log.Enabled(context.Background(), slog.LevelDebug) {
		q := req.Question[0]
		s.log.Debug("dns query", "from", w.RemoteAddr().String(), "name", q.Name, "type", mdns.TypeToString[q.Qtype],
			"rcode", mdns.RcodeToString[m.Rcode], "answers", len(m.Answer))
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns answer not sent", "to", w.RemoteAddr().String(), "error", err)
	}
}

// answer builds the reply to req.
func (s *Server) answer(t *table, req *mdns.Msg) *mdns.Msg {
	m := new(mdns.Msg)
	switch {
	case req.Opcode != mdns.OpcodeQuery:
		return m.SetRcode(req, mdns.RcodeNotImplemented)
	case len(req.Question) != 1:
		return m.SetRcodeFormatError(req)
	case req.IsEdns0() != nil && req.IsEdns0().Version() != 0:
		m.SetRcode(req, mdns.RcodeBadVers)
		return m
	}
	q := req.Question[0]
	if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
		return m.SetRcode(req, mdns.RcodeRefused)
	}
	name := mdns.CanonicalName(q.Name)
	e := t.records[name]
	zone := t.zoneOf(name)
	if zone == "" {
		return m.SetRcode(req, mdns.RcodeRefused)
	}
	soa := t.zones[zone]
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = false

	if e != nil && len(e.addrs) == 0 {
		m.Authoritative = false
		return m.SetRcode(req, mdns.RcodeServerFailure)
	}
	if name == zone && (q.Qtype == mdns.TypeSOA || q.Qtype == mdns.TypeANY) {
		rr := *soa
		rr.Hdr.Name = q.Name
		m.Answer = append(m.Answer, &rr)
	}
	if e != nil {
		for _, a := range e.addrs {
			switch {
			case a.Is4() && (q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY):
				m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: e.ttl}, A: a.AsSlice()})
			case a.Is6() && (q.Qtype == mdns.TypeAAAA || q.Qtype == mdns.TypeANY):
				m.Answer = append(m.Answer, &mdns.AAAA{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeAAAA, Class: mdns.ClassINET, Ttl: e.ttl}, AAAA: a.AsSlice()})
			}
		}
	}
	if len(m.Answer) > 0 {
		return m
	}
	// No data: the name exists but has nothing of this type; or it does
	// not exist.
	if !t.exists[name] {
		m.Rcode = mdns.RcodeNameError
	}
	m.Ns = append(m.Ns, soa)
	return m
}

// zoneOf returns the closest zone holding name, or "".
func (t *table) zoneOf(name string) string {
	for n := name; n != "." && n != ""; {
		if _, ok := t.zones[n]; ok {
			return n
		}
		_, n, _ = strings.Cut(n, ".")
		if n == "" {
			n = "."
		}
	}
	return ""
}
