// Package check owns the check resource (class check): one question asked
// of the recovered stack at a site, an SQL query, an HTTP request, a TCP
// connection or a DNS lookup, and the answer it must get
// (docs/design/drills.md, "Checks"). It checks a check's per-site
// settings, fills in the addresses of the group's other resources
// (placeholders) and runs the check once (Verifier). A check holds no
// data, is not observed and takes no recovery step.
package check

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/siteflip/siteflip/internal/config"
)

// Settings is the per-site block of a check resource: exactly one of SQL,
// HTTP, TCP and DNS, and a timeout. The caller decodes it strictly from
// YAML and passes it to Prepare.
type Settings struct {
	// Timeout bounds one run of the check; default 5s. It is a pointer so
	// that an explicit 0 is told from a missing value.
	Timeout *config.Duration `yaml:"timeout"`
	SQL     *SQL             `yaml:"sql"`
	HTTP    *HTTP            `yaml:"http"`
	TCP     *TCP             `yaml:"tcp"`
	DNS     *DNS             `yaml:"dns"`
}

// SQL runs a query on the server of a data resource of the group, in a
// read-only transaction, and judges its first row.
type SQL struct {
	// Resource names the data resource (postgres or mariadb) whose server
	// is asked, at the address the check is given for it: production's
	// server after a real run, the drill's copy in a drill.
	Resource string `yaml:"resource"`
	// Database is the database to connect to; default: the server's own
	// (PostgreSQL: the user's name; MariaDB: none).
	Database string `yaml:"database"`
	User     string `yaml:"user"`
	// PasswordFile holds the password (surrounding white space is
	// trimmed); PasswordEnv names an environment variable holding it.
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// Query is one statement that returns rows.
	Query string `yaml:"query"`
	// Expect, when set, is the text the first column of the first row
	// must equal, as the server writes it (psql and mysql show the same).
	Expect *string `yaml:"expect"`
	// MinRows, when more than 0, is how many rows the query must return
	// at least.
	MinRows int `yaml:"min_rows"`
	// NewerThan, when set, is how old the timestamp in the first column
	// of the first row may be at most (a timestamp without a time zone
	// is read as UTC).
	NewerThan *config.Duration `yaml:"newer_than"`
}

// HTTP sends GET to a URL and judges the response. Redirects are not
// followed, and no proxy is used: the check asks the stack itself.
type HTTP struct {
	URL string `yaml:"url"`
	// Status is the status the response must have; default 200.
	Status int `yaml:"status"`
	// Body, when set, is a regular expression (Go syntax) the first MiB of
	// the body must match.
	Body string `yaml:"body"`
}

// TCP connects to an address and closes the connection.
type TCP struct {
	Address string `yaml:"address"` // host:port
}

// DNS asks a server for the A (or AAAA) records of a name and expects an
// address among them.
type DNS struct {
	// Server is the host:port of the server to ask (port 53 when left
	// out); it may be a resolver: the answer need not be authoritative.
	Server string `yaml:"server"`
	Name   string `yaml:"name"`
	// Address is the IPv4 (A) or IPv6 (AAAA) address the answer must
	// hold.
	Address string `yaml:"address"`
}

const (
	defaultTimeout = 5 * time.Second
	defaultStatus  = 200
	defaultDNSPort = "53"
)

// Prepare sets the defaults, makes a relative sql.password_file relative
// to dir (the topology's folder) and returns every problem with the
// settings; nil means they are usable. It has config.ResourceType's
// Prepare shape.
func Prepare(settings any, site, dir string) []config.FieldError {
	s := settings.(*Settings)
	s.SetDefaults()
	if q := s.SQL; q != nil && q.PasswordFile != "" && !filepath.IsAbs(q.PasswordFile) && dir != "" {
		q.PasswordFile = filepath.Join(dir, q.PasswordFile)
	}
	return s.Check()
}

// SetDefaults fills the fields left empty.
func (s *Settings) SetDefaults() {
	if s.Timeout == nil {
		d := config.Duration(defaultTimeout)
		s.Timeout = &d
	}
	if h := s.HTTP; h != nil && h.Status == 0 {
		h.Status = defaultStatus
	}
}

// kinds lists the kinds of check that are set, in their YAML names.
func (s *Settings) kinds() []string {
	var out []string
	for _, k := range []struct {
		name string
		set  bool
	}{{"sql", s.SQL != nil}, {"http", s.HTTP != nil}, {"tcp", s.TCP != nil}, {"dns", s.DNS != nil}} {
		if k.set {
			out = append(out, k.name)
		}
	}
	return out
}

// Check reports every problem with the settings. Call it after
// SetDefaults.
func (s *Settings) Check() []config.FieldError {
	var errs []config.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, config.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	switch kinds := s.kinds(); len(kinds) {
	case 0:
		add("sql", "no check is set: set one of sql, http, tcp or dns, the question the check asks")
	case 1:
	case 2:
		add(kinds[1], "%s and %s are both set: a check asks one question; make one check resource for each", kinds[0], kinds[1])
	default:
		add(kinds[1], "%s and %s are all set: a check asks one question; make one check resource for each", strings.Join(kinds[:len(kinds)-1], ", "), kinds[len(kinds)-1])
	}
	switch {
	case s.Timeout == nil:
		add("timeout", "is missing: call SetDefaults first (default 5s)")
	case s.Timeout.D() <= 0:
		add("timeout", "must be more than 0 (default 5s)")
	}
	if q := s.SQL; q != nil {
		if q.Resource == "" {
			add("sql.resource", "is required: name the data resource of the group whose server the query goes to, e.g. db")
		} else if !validName(q.Resource) {
			add("sql.resource", "%q is not a resource name: name a data resource of the group, e.g. db", q.Resource)
		}
		if q.User == "" {
			add("sql.user", "is required: set the user the check connects as (one that may only read is enough)")
		}
		if strings.TrimSpace(q.Query) == "" {
			add("sql.query", "is required: write one statement that returns rows, e.g. SELECT count(*) FROM orders")
		}
		if q.PasswordFile != "" && q.PasswordEnv != "" {
			add("sql.password_file", "password_file and password_env are both set: set only one of them")
		}
		if q.PasswordEnv != "" && !config.EnvName(q.PasswordEnv) {
			add("sql.password_env", "%q is not an environment variable name: use letters, digits and underscores, e.g. SITEFLIP_CHECK_PASSWORD", q.PasswordEnv)
		}
		if q.MinRows < 0 {
			add("sql.min_rows", "%d is negative: set how many rows the query must return at least, e.g. 1", q.MinRows)
		}
		if q.NewerThan != nil && q.NewerThan.D() <= 0 {
			add("sql.newer_than", "must be more than 0: set how old the newest row may be, e.g. 10m")
		}
	}
	if h := s.HTTP; h != nil {
		switch {
		case h.URL == "":
			add("http.url", "is required: set the URL to GET, e.g. http://{web}/health")
		default:
			if msg := checkURL(h.URL); msg != "" {
				add("http.url", "%q %s", h.URL, msg)
			}
		}
		if h.Status < 100 || h.Status > 599 {
			add("http.status", "%d is not an HTTP status: set the status the response must have, from 100 to 599 (default 200)", h.Status)
		}
		if h.Body != "" {
			if _, err := regexp.Compile(h.Body); err != nil {
				add("http.body", "%q is not a regular expression (%v): write one in Go's syntax, e.g. \"status\":\\s*\"ok\"", h.Body, err)
			}
		}
	}
	if t := s.TCP; t != nil {
		switch {
		case t.Address == "":
			add("tcp.address", "is required: set the host:port to connect to, e.g. {db} or 10.1.0.20:5432")
		default:
			if msg := checkHostPort(t.Address, false); msg != "" {
				add("tcp.address", "%q %s", t.Address, msg)
			}
		}
	}
	if d := s.DNS; d != nil {
		switch {
		case d.Server == "":
			add("dns.server", "is required: set the host:port of the DNS server to ask, e.g. {name} or 10.1.0.53:53")
		default:
			if msg := checkHostPort(d.Server, true); msg != "" {
				add("dns.server", "%q %s", d.Server, msg)
			}
		}
		switch {
		case d.Name == "":
			add("dns.name", "is required: set the name to look up, e.g. db.shop.example.")
		case !isDomainName(d.Name):
			add("dns.name", "%q is not a domain name: write the name clients look up, e.g. db.shop.example.", d.Name)
		}
		switch {
		case d.Address == "":
			add("dns.address", "is required: set the IPv4 or IPv6 address the answer must hold, e.g. 10.1.0.20 or {db.host}")
		default:
			if msg := checkAddress(d.Address); msg != "" {
				add("dns.address", "%q %s", d.Address, msg)
			}
		}
	}
	return errs
}

// sample stands for every placeholder when Check looks at the shape of a
// value: an address of the documentation range.
func sample(placeholder) (host, port string, ok bool) { return "192.0.2.1", "1", true }

// checkURL returns "" for a usable http or https URL, else what is wrong.
func checkURL(raw string) string {
	text, err := expand(raw, sample, true)
	if err != nil {
		return err.Error()
	}
	u, err := url.Parse(text)
	switch {
	case err != nil:
		return "is not a URL: write e.g. http://{web}/health or https://shop.example/health"
	case u.Scheme != "http" && u.Scheme != "https":
		return "is not an http or https URL: write e.g. http://{web}/health"
	case u.Host == "":
		return "has no host: write e.g. http://{web}/health"
	}
	return ""
}

// checkHostPort returns "" for host:port (host and port may be
// placeholders), else what is wrong. optionalPort allows a bare host.
func checkHostPort(raw string, optionalPort bool) string {
	text, err := expand(raw, sample, true)
	if err != nil {
		return err.Error()
	}
	if optionalPort {
		text = withPort(text)
	}
	host, port, err := net.SplitHostPort(text)
	if err != nil || host == "" {
		return "is not host:port: write e.g. {db}, {db.host}:5432 or 10.1.0.20:5432"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "has port " + strconv.Quote(port) + ": set a port from 1 to 65535"
	}
	return ""
}

// checkAddress returns "" for an IP address or a {R.host} placeholder,
// else what is wrong.
func checkAddress(raw string) string {
	text, err := expand(raw, sample, false)
	if err != nil {
		return err.Error()
	}
	a, err := netip.ParseAddr(text)
	switch {
	case err != nil:
		return "is not an IP address: write an IPv4 or IPv6 address, e.g. 10.1.0.20, or {db.host}"
	case a.Zone() != "":
		return "has a zone: a DNS answer carries none"
	}
	return ""
}

// withPort adds port 53 to a DNS server written without one.
func withPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), defaultDNSPort)
}

func isDomainName(name string) bool {
	_, ok := mdns.IsDomainName(name)
	return ok && name != "." && !strings.ContainsAny(name, " \t")
}

// addrField is a field whose value may hold placeholders.
type addrField struct{ field, text string }

// addressFields lists the fields that may hold placeholders.
func (s *Settings) addressFields() []addrField {
	var out []addrField
	if h := s.HTTP; h != nil {
		out = append(out, addrField{"http.url", h.URL})
	}
	if t := s.TCP; t != nil {
		out = append(out, addrField{"tcp.address", t.Address})
	}
	if d := s.DNS; d != nil {
		out = append(out, addrField{"dns.server", d.Server}, addrField{"dns.address", d.Address})
	}
	return out
}
