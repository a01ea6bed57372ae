// Package dns owns the dns resource: the names a protection group's clients
// use to find the active site. It checks a dns resource's per-site settings,
// answers the names authoritatively from an agent (Server), and pushes RFC
// 2136 updates signed with TSIG to existing servers such as BIND (Update),
// then reads the record back from them (Lookup) so that a step checks its
// effect instead of trusting the server's answer to the update.
package dns

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/siteflip/siteflip/internal/config"
)

// Settings is the per-site block of a dns resource: the name the group's
// clients use and the addresses it resolves to while this site is active.
// The caller decodes it strictly from YAML and passes it to Prepare.
type Settings struct {
	// Name is the record, fully qualified with the final dot.
	Name string `yaml:"name"`
	// Address is the one address this site contributes, IPv4 (an A
	// record) or IPv6 (AAAA). Addresses lists several instead.
	Address   string   `yaml:"address"`
	Addresses []string `yaml:"addresses"`
	// TTL is how long resolvers may keep the answer; default 5s. It is a
	// pointer so that an explicit 0 is told from a missing value.
	TTL *config.Duration `yaml:"ttl"`
	// Serve, when set, is the host:port this site's agent answers the
	// name on, authoritatively (port 53 when left out). The dns resources
	// of every group that serve on one address share its listener, each
	// answering its own name.
	Serve string `yaml:"serve"`
	// Zone is the zone the name belongs to: the zone the servers accept
	// updates for (required with Servers), and the apex Serve answers SOA
	// for (default: the name itself, as when the name is delegated to the
	// agents).
	Zone string `yaml:"zone"`
	// Servers are the host:port of existing servers (port 53 when left
	// out) that receive an RFC 2136 update signed with TSIG.
	Servers []string `yaml:"servers"`
	// TSIG is the key the updates are signed with; required with Servers.
	TSIG *TSIGSettings `yaml:"tsig"`
	// Timeout bounds one update or one verifying query to one server;
	// default 2s.
	Timeout config.Duration `yaml:"timeout"`
}

// TSIGSettings names a TSIG key. The secret is read from a file or an
// environment variable, never written in the topology.
type TSIGSettings struct {
	Name      string `yaml:"name"`      // the key's name as the server knows it, e.g. siteflip.
	Algorithm string `yaml:"algorithm"` // default hmac-sha256
	// SecretFile holds the base64 secret, or a key statement as
	// tsig-keygen writes it.
	SecretFile string `yaml:"secret_file"`
	SecretEnv  string `yaml:"secret_env"` // an environment variable holding the base64 secret
}

const (
	defaultTTL       = 5 * time.Second
	maxTTL           = 24 * time.Hour
	defaultTimeout   = 2 * time.Second
	defaultAlgorithm = "hmac-sha256"
	defaultPort      = "53"
)

// algorithms maps the names a topology may use to the wire names. MD5 is
// left out on purpose: it is broken and BIND no longer defaults to it.
var algorithms = map[string]string{
	"hmac-sha1":   mdns.HmacSHA1,
	"hmac-sha224": mdns.HmacSHA224,
	"hmac-sha256": mdns.HmacSHA256,
	"hmac-sha384": mdns.HmacSHA384,
	"hmac-sha512": mdns.HmacSHA512,
}

// SetDefaults fills the fields left empty and writes names and addresses
// in their canonical form: lower-case names, a TSIG key name with its final
// dot, :53 on addresses without a port, serve's IP address as netip writes
// it (one address, one spelling: the agent shares a listener by it).
func (s *Settings) SetDefaults() {
	if s.TTL == nil {
		d := config.Duration(defaultTTL)
		s.TTL = &d
	}
	if s.Timeout == 0 {
		s.Timeout = config.Duration(defaultTimeout)
	}
	s.Name = strings.ToLower(s.Name)
	s.Zone = strings.ToLower(s.Zone)
	if s.Serve != "" {
		s.Serve = withPort(s.Serve)
		if ap, err := netip.ParseAddrPort(s.Serve); err == nil {
			s.Serve = ap.String()
		}
	}
	for i, srv := range s.Servers {
		s.Servers[i] = withPort(srv)
	}
	if t := s.TSIG; t != nil {
		if t.Name != "" {
			t.Name = mdns.CanonicalName(t.Name)
		}
		if t.Algorithm == "" {
			t.Algorithm = defaultAlgorithm
		}
		t.Algorithm = strings.TrimSuffix(strings.ToLower(t.Algorithm), ".")
	}
}

// withPort adds port 53 to an address written without one.
func withPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	if a, err := netip.ParseAddr(strings.Trim(addr, "[]")); err == nil {
		return netip.AddrPortFrom(a, 53).String()
	}
	if !strings.Contains(addr, ":") {
		return net.JoinHostPort(addr, defaultPort)
	}
	return addr
}

// Prepare sets the defaults, makes a relative tsig.secret_file relative to
// dir (the topology's folder) and returns every problem with the settings;
// nil means they are usable. It has config.ResourceType's Prepare shape.
func Prepare(settings any, site, dir string) []config.FieldError {
	s := settings.(*Settings)
	s.SetDefaults()
	if t := s.TSIG; t != nil && t.SecretFile != "" && !filepath.IsAbs(t.SecretFile) {
		t.SecretFile = filepath.Join(dir, t.SecretFile)
	}
	return s.Check()
}

// Check reports every problem with the settings. Call it after SetDefaults.
func (s *Settings) Check() []config.FieldError {
	var errs []config.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, config.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}

	nameOK := false
	switch msg := checkFQDN(s.Name); {
	case s.Name == "":
		add("name", "is required: set the record clients look up, fully qualified, e.g. db.shop.example.")
	case msg != "":
		add("name", "%q %s", s.Name, msg)
	case strings.HasPrefix(s.Name, "*."):
		add("name", "%q is a wildcard: set the one name clients look up", s.Name)
	default:
		nameOK = true
	}
	switch msg := checkFQDN(s.Zone); {
	case s.Zone == "":
		if len(s.Servers) > 0 {
			add("zone", "is required with servers: set the zone the servers accept updates for, e.g. shop.example.")
		}
	case msg != "":
		add("zone", "%q %s", s.Zone, msg)
	case nameOK && !mdns.IsSubDomain(s.Zone, s.Name):
		add("zone", "%q does not contain the name %s: set the zone the name belongs to", s.Zone, s.Name)
	}

	fieldOfAddr := "address"
	switch {
	case s.Address == "" && len(s.Addresses) == 0:
		add("address", "is required: set the address this site's clients reach, e.g. 10.1.0.20 (an A record) or 2001:db8::20 (AAAA)")
	case s.Address != "" && len(s.Addresses) > 0:
		add("address", "address and addresses are both set: set only one of them")
	case len(s.Addresses) > 0:
		fieldOfAddr = "addresses"
	}
	seen := map[netip.Addr]bool{}
	for i, raw := range s.addressStrings() {
		field := fieldOfAddr
		if fieldOfAddr == "addresses" {
			field = fmt.Sprintf("addresses[%d]", i)
		}
		a, err := netip.ParseAddr(raw)
		switch {
		case err != nil:
			add(field, "%q is not an IP address: write an IPv4 or IPv6 address without a port or prefix length, e.g. 10.1.0.20", raw)
			continue
		case a.Zone() != "":
			add(field, "%q has a zone (%%%s): a DNS record cannot carry one; use a global address", raw, a.Zone())
			continue
		case a.IsUnspecified(), a.IsMulticast():
			add(field, "%q cannot be a client's destination: set the address clients connect to", raw)
			continue
		}
		a = a.Unmap()
		if seen[a] {
			add(field, "%s is listed twice", a)
		}
		seen[a] = true
	}

	switch ttl := s.ttl(); {
	case s.TTL == nil:
		add("ttl", "is missing: call SetDefaults first (default 5s)")
	case ttl == 0:
		add("ttl", "0 makes every lookup reach the servers and some resolvers replace it with their own, longer minimum: set 1s or more (default 5s)")
	case ttl > maxTTL:
		add("ttl", "%s is more than a day: clients would keep the old site's address that long after a failover; set a few seconds (default 5s)", ttl)
	case ttl%time.Second != 0:
		add("ttl", "%s is not a whole number of seconds, and DNS counts TTLs in seconds: write e.g. 5s", ttl)
	}

	if s.Serve != "" {
		if msg := checkListen(s.Serve); msg != "" {
			add("serve", "%q %s", s.Serve, msg)
		}
	}
	if s.Serve == "" && len(s.Servers) == 0 {
		add("serve", "neither serve nor servers is set: set serve to the address this agent answers the name on (e.g. 10.1.0.10:53), servers to the DNS servers to update, or both")
	}
	dup := map[string]bool{}
	for i, srv := range s.Servers {
		field := fmt.Sprintf("servers[%d]", i)
		if msg := checkServer(srv); msg != "" {
			add(field, "%q %s", srv, msg)
		}
		if dup[srv] {
			add(field, "%s is listed twice", srv)
		}
		dup[srv] = true
	}
	if len(s.Servers) > 0 {
		if s.TSIG == nil {
			add("tsig", "is required with servers: an unsigned update would let anyone who reaches the servers move the clients; set tsig.name and tsig.secret_file to a key the zone's update-policy allows")
		}
	}
	if t := s.TSIG; t != nil {
		if len(s.Servers) == 0 {
			add("tsig", "is set but servers is not: the key only signs updates to servers; set servers or remove tsig")
		}
		switch msg := checkFQDN(t.Name); {
		case t.Name == "":
			add("tsig.name", "is required: set the key's name as the server knows it, e.g. siteflip.")
		case msg != "":
			add("tsig.name", "%q %s", t.Name, msg)
		}
		if _, ok := algorithms[t.Algorithm]; !ok {
			if t.Algorithm == "hmac-md5" || strings.HasPrefix(t.Algorithm, "hmac-md5.") {
				add("tsig.algorithm", "hmac-md5 is not accepted: it is broken; make a new key with tsig-keygen (hmac-sha256)")
			} else {
				add("tsig.algorithm", "%q is not a TSIG algorithm siteflip knows: use hmac-sha256 (default), hmac-sha512, hmac-sha384, hmac-sha224 or hmac-sha1", t.Algorithm)
			}
		}
		switch {
		case t.SecretFile == "" && t.SecretEnv == "":
			add("tsig", "has no secret: set tsig.secret_file to a file holding the base64 secret (or tsig-keygen's output), or tsig.secret_env to an environment variable holding it")
		case t.SecretFile != "" && t.SecretEnv != "":
			add("tsig.secret_file", "secret_file and secret_env are both set: set only one of them")
		}
		if t.SecretEnv != "" && !config.EnvName(t.SecretEnv) {
			add("tsig.secret_env", "%q is not an environment variable name: use letters, digits and underscores, e.g. SITEFLIP_TSIG", t.SecretEnv)
		}
	}
	if s.Timeout <= 0 {
		add("timeout", "must be more than 0 (default 2s)")
	}
	return errs
}

// checkFQDN returns "" for a valid fully qualified host-style name, else
// what is wrong with it.
func checkFQDN(name string) string {
	if name == "" {
		return "is empty"
	}
	if !strings.HasSuffix(name, ".") {
		return "is not fully qualified: end it with a dot, e.g. " + name + "."
	}
	if name == "." {
		return "is the root: set a name inside a zone"
	}
	if len(name) > 254 {
		return "is longer than 253 characters"
	}
	for i, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		switch {
		case l == "":
			return "has an empty label (two dots in a row)"
		case len(l) > 63:
			return fmt.Sprintf("has a label of %d characters; DNS allows 63", len(l))
		case l == "*" && i == 0:
		case !labelRE.MatchString(l):
			return fmt.Sprintf("has label %q: use letters, digits, hyphens and underscores, not starting or ending with a hyphen", l)
		}
	}
	return ""
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$`)

// checkListen checks a serve address: an IP literal (or nothing, for all
// addresses) and a port.
func checkListen(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "is not host:port: write e.g. 10.1.0.10:53"
	}
	if host != "" {
		if a, err := netip.ParseAddr(host); err != nil || a.Zone() != "" {
			return "must listen on an IP address of this site's agent host (or :53 for all), e.g. 10.1.0.10:53"
		}
	}
	if msg := checkPort(port); msg != "" {
		return msg
	}
	return ""
}

// checkServer checks a server address: a host and a port.
func checkServer(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "is not host:port: write e.g. 10.9.0.53:53 or ns1.shop.example:53"
	}
	return checkPort(port)
}

func checkPort(port string) string {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "has port " + strconv.Quote(port) + ": set a port from 1 to 65535 (DNS uses 53)"
	}
	return ""
}

func (s *Settings) addressStrings() []string {
	if s.Address != "" {
		return []string{s.Address}
	}
	return s.Addresses
}

// Addrs returns the addresses this site contributes, IPv4 in its 4-byte
// form. It skips what Check reports as invalid.
func (s *Settings) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, raw := range s.addressStrings() {
		if a, err := netip.ParseAddr(raw); err == nil && a.Zone() == "" {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// Apex returns the zone the name belongs to: Zone, or the name itself.
func (s *Settings) Apex() string {
	if s.Zone != "" {
		return s.Zone
	}
	return s.Name
}

// TTLDuration returns the record's TTL (the default when unset).
func (s *Settings) TTLDuration() time.Duration {
	if s.TTL == nil {
		return defaultTTL
	}
	return s.ttl()
}

func (s *Settings) ttl() time.Duration {
	if s.TTL == nil {
		return 0
	}
	return s.TTL.D()
}

// TTLWarning returns a warning when the TTL is too long for a group whose
// RTO target is rto, or "".
//
// A resolver that fetched the record just before the flip keeps the old
// site's address for up to one TTL afterwards, so the recovery clients see
// is the time to detect, promote and flip plus the TTL. Detection, quorum
// and promotion need their share of the target too, so the TTL may take at
// most half of it. Many clients cache on top of their resolver (the JVM,
// browsers, nscd), which is one more reason to keep the TTL short.
func (s *Settings) TTLWarning(rto time.Duration) string {
	ttl := s.TTLDuration()
	if rto <= 0 || 2*ttl <= rto {
		return ""
	}
	return fmt.Sprintf("ttl %s is more than half the group's rto_target %s: resolvers may keep the old site's address for %s after the flip, leaving too little of the target to detect the loss and promote; set ttl to %s or less",
		ttl, rto, ttl, (rto / 2).Truncate(time.Second))
}

// Lint returns the warnings about one site's settings in the light of its
// group. It has config.ResourceType's Lint shape.
func Lint(g *config.Group, settings any) []config.FieldError {
	s := settings.(*Settings)
	if w := s.TTLWarning(g.RTOTarget.D()); w != "" {
		return []config.FieldError{{Field: "ttl", Msg: w}}
	}
	return nil
}

// Claims returns what one site's settings hold alone at their site: the
// name on the serve address, where the agent's one listener answers it for
// one resource only. It has config.ResourceType's Claims shape.
func Claims(settings any) []config.Claim {
	s := settings.(*Settings)
	if s.Serve == "" {
		return nil
	}
	// As the agent's listener keys it: www.shop.example and
	// www.shop.example. are one name.
	return []config.Claim{{Field: "name", What: fmt.Sprintf("dns name %s on %s", mdns.CanonicalName(s.Name), s.Serve), Fix: "give one of them another name or another serve address"}}
}

// Across checks the settings of all sites of one resource together: every
// site contributes addresses to the same name in the same zone, with the
// same TTL, so that the answer changes only in its addresses. It has
// config.ResourceType's Across shape.
func Across(bySite map[string]any) map[string][]config.FieldError {
	sites := make([]string, 0, len(bySite))
	for site := range bySite {
		sites = append(sites, site)
	}
	sort.Strings(sites)
	out := map[string][]config.FieldError{}
	if len(sites) < 2 {
		return out
	}
	first := bySite[sites[0]].(*Settings)
	for _, site := range sites[1:] {
		s := bySite[site].(*Settings)
		differ := func(field, a, b string) {
			if a != b {
				out[site] = append(out[site], config.FieldError{Field: field,
					Msg: fmt.Sprintf("%s differs from %s at site %s: every site of a dns resource sets the same %s", a, b, sites[0], field)})
			}
		}
		differ("name", s.Name, first.Name)
		differ("zone", s.Apex(), first.Apex())
		differ("ttl", s.TTLDuration().String(), first.TTLDuration().String())
	}
	return out
}

// Key returns the TSIG key, its secret read from tsig.secret_file or
// tsig.secret_env. Without tsig it returns the zero TSIG (unsigned).
func (s *Settings) Key() (TSIG, error) {
	t := s.TSIG
	if t == nil {
		return TSIG{}, nil
	}
	var secret string
	switch {
	case t.SecretFile != "":
		b, err := os.ReadFile(t.SecretFile)
		if err != nil {
			return TSIG{}, fmt.Errorf("read tsig.secret_file %s: %w; write the key's base64 secret (or tsig-keygen's output) into it", t.SecretFile, err)
		}
		secret = secretFromFile(string(b))
		if secret == "" {
			return TSIG{}, fmt.Errorf("tsig.secret_file %s holds no secret: write the key's base64 secret (or tsig-keygen's output) into it", t.SecretFile)
		}
	case t.SecretEnv != "":
		v, ok := os.LookupEnv(t.SecretEnv)
		if !ok || strings.TrimSpace(v) == "" {
			return TSIG{}, fmt.Errorf("environment variable %s named by tsig.secret_env is not set or empty: export the key's base64 secret in siteflip's environment", t.SecretEnv)
		}
		secret = strings.TrimSpace(v)
	default:
		return TSIG{}, fmt.Errorf("tsig has no secret: set tsig.secret_file or tsig.secret_env")
	}
	if _, err := base64.StdEncoding.DecodeString(secret); err != nil {
		return TSIG{}, fmt.Errorf("the secret of tsig key %s is not base64 (%v): copy the secret as tsig-keygen printed it", t.Name, err)
	}
	return TSIG{Name: t.Name, Algorithm: t.Algorithm, Secret: secret}, nil
}

var secretRE = regexp.MustCompile(`secret\s+"([^"]*)"`)

// secretFromFile accepts either the bare base64 secret or a key statement,
// as written by tsig-keygen: key "name" { algorithm …; secret "…"; };
func secretFromFile(text string) string {
	if m := secretRE.FindStringSubmatch(text); m != nil {
		return strings.TrimSpace(m[1])
	}
	return strings.TrimSpace(text)
}
