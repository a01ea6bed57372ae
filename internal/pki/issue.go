package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Validity defaults of the certificates an installation issues
// (siteflip cert): 825 days is the longest lifetime browsers accepted for
// a leaf, ten years for the CA that outlives several generations of them.
const (
	DefaultLeafDays = 825
	DefaultCADays   = 3650
	// Skew is how far in the past a certificate becomes valid: peers'
	// clocks may lag ours, and a certificate valid only from "now" would
	// be rejected by them for a while.
	Skew = labSkew
)

// File names of the CA in a certificate directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// Kinds of certificate an installation holds.
const (
	KindCA       = "ca"
	KindLocation = "location" // a site or the witness: server and client
	KindOperator = "operator" // a person or program: client only
)

// roleOU marks an operator certificate's subject with the role it was
// issued for. It is a hint for whoever lists the certificates: the
// topology's access: section alone grants roles.
const roleOU = "siteflip role "

// ErrExists is returned when issuing would replace a file.
var ErrExists = errors.New("file exists")

// Authority is an installation's certificate authority, with its key.
type Authority struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	Dir  string
}

// Leaf describes one certificate to issue.
type Leaf struct {
	Name string // CommonName and file base name
	Kind string // KindLocation or KindOperator
	Role string // KindOperator only: the role it is meant for (a hint)
	IPs  []net.IP
	DNS  []string
	Days int
}

// CheckLocationName refuses a name that cannot be a location's: the
// topology's rule is lowercase letters, digits, '-' or '_', starting and
// ending with a letter or digit, at most 63 characters.
func CheckLocationName(name string) error {
	if name == "" {
		return errors.New("location name is empty")
	}
	if len(name) > 63 {
		return fmt.Errorf("location name %q is longer than 63 characters", name)
	}
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		edge := i == 0 || i == len(name)-1
		if !alnum && (edge || r != '-' && r != '_') {
			hint := ""
			if strings.ToLower(name) != name {
				hint = fmt.Sprintf(" (try %q)", strings.ToLower(name))
			}
			return fmt.Errorf("location name %q must be lowercase letters, digits, '-' or '_', starting and ending with a letter or digit, as in the topology%s", name, hint)
		}
	}
	return checkFileName(name)
}

// CheckOperatorName refuses a name that cannot be an operator certificate's
// common name and file name: letters, digits, '.', '-', '_' and '@', not
// starting with '.'.
func CheckOperatorName(name string) error {
	if name == "" {
		return errors.New("name is empty; give the name the topology's access: section binds to a role")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_@", r)) {
			return fmt.Errorf("name %q has %q: use letters, digits, '.', '-', '_' or '@' (it becomes the file name %s.crt)", name, r, name)
		}
	}
	if name[0] == '.' {
		return fmt.Errorf("name %q starts with '.'; it would be a hidden file", name)
	}
	return checkFileName(name)
}

func checkFileName(name string) error {
	if strings.EqualFold(name, "ca") {
		return fmt.Errorf("name %q is reserved for the CA (ca.crt, ca.key); choose another", name)
	}
	return nil
}

// CheckRole refuses a role the topology does not know.
func CheckRole(role string) error {
	switch role {
	case "viewer", "operator", "admin":
		return nil
	case "":
		return errors.New("--role is missing: use viewer, operator or admin")
	}
	return fmt.Errorf("role %q is not a role: use viewer, operator or admin", role)
}

// caTemplate is the template of a new CA valid for days from now.
func caTemplate(name string, days int, now time.Time) (*x509.Certificate, error) {
	if strings.TrimSpace(name) == "" {
		return nil, errors.New("CA name is empty; give it a CommonName with --name")
	}
	if days < 1 {
		return nil, fmt.Errorf("--days %d: a CA must be valid for at least a day", days)
	}
	return &x509.Certificate{
		// A nil SerialNumber makes CreateCertificate pick a random one.
		Subject:               pkix.Name{CommonName: name, Organization: []string{"siteflip"}},
		NotBefore:             now.Add(-Skew),
		NotAfter:              now.Add(time.Duration(days) * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// It signs leaves only, never intermediates.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}, nil
}

// LeafTemplate returns the certificate template of l, signed by a CA
// valid until caNotAfter. A validity that would outlast the CA is cut to
// the CA's end; note then says so (else it is "").
func LeafTemplate(l Leaf, caNotAfter, now time.Time) (tmpl *x509.Certificate, note string, err error) {
	if l.Days < 1 {
		return nil, "", fmt.Errorf("--days %d: a certificate must be valid for at least a day", l.Days)
	}
	for _, ip := range l.IPs {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return nil, "", fmt.Errorf("certificate %q: invalid IP address %v", l.Name, ip)
		}
	}
	for _, d := range l.DNS {
		if d == "" || strings.ContainsAny(d, " /\\:") {
			return nil, "", fmt.Errorf("certificate %q: %q is not a DNS name", l.Name, d)
		}
	}
	tmpl = &x509.Certificate{
		Subject:     pkix.Name{CommonName: l.Name, Organization: []string{"siteflip"}},
		NotBefore:   now.Add(-Skew),
		NotAfter:    now.Add(time.Duration(l.Days) * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		IPAddresses: l.IPs,
		DNSNames:    l.DNS,
	}
	switch l.Kind {
	case KindLocation:
		if err := CheckLocationName(l.Name); err != nil {
			return nil, "", err
		}
		if len(l.IPs) == 0 && len(l.DNS) == 0 {
			return nil, "", fmt.Errorf("location %q: no address: give --address IP (the host of its agent and etcd URLs), or --config with a topology that has %s", l.Name, l.Name)
		}
		// Agents and etcd members both serve and dial one another.
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	case KindOperator:
		if err := CheckOperatorName(l.Name); err != nil {
			return nil, "", err
		}
		if err := CheckRole(l.Role); err != nil {
			return nil, "", err
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.Subject.OrganizationalUnit = []string{roleOU + l.Role}
	default:
		return nil, "", fmt.Errorf("certificate %q: unknown kind %q", l.Name, l.Kind)
	}
	if tmpl.NotAfter.After(caNotAfter) {
		note = fmt.Sprintf("certificate %s would outlast the CA (%d days asked); it expires with the CA on %s: renew the CA before then",
			l.Name, l.Days, caNotAfter.UTC().Format(time.DateOnly))
		tmpl.NotAfter = caNotAfter
	}
	if !tmpl.NotAfter.After(now) {
		return nil, "", fmt.Errorf("the CA expired on %s; make a new one (siteflip cert init in a new directory) and issue every certificate again", caNotAfter.UTC().Format(time.DateOnly))
	}
	return tmpl, note, nil
}

// LeafOf returns what to issue to renew c: the same name, kind, role and
// addresses, for days.
func LeafOf(c *x509.Certificate, days int) (Leaf, error) {
	l := Leaf{Name: c.Subject.CommonName, IPs: c.IPAddresses, DNS: c.DNSNames, Days: days}
	switch kind, role := Describe(c); kind {
	case KindLocation:
		l.Kind = KindLocation
	case KindOperator:
		l.Kind, l.Role = KindOperator, role
		if role == "" {
			return Leaf{}, fmt.Errorf("certificate %q carries no role hint; issue a new one with siteflip cert operator %s --role ROLE", l.Name, l.Name)
		}
	default:
		return Leaf{}, fmt.Errorf("certificate %q is a %s certificate, not a location's or an operator's", l.Name, kind)
	}
	return l, nil
}

// Describe says what kind of certificate c is, and for an operator's the
// role hint it was issued with ("" if none).
func Describe(c *x509.Certificate) (kind, role string) {
	if c.IsCA {
		return KindCA, ""
	}
	server := slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	client := slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	switch {
	case server && client:
		return KindLocation, ""
	case client:
		for _, ou := range c.Subject.OrganizationalUnit {
			if r, ok := strings.CutPrefix(ou, roleOU); ok {
				return KindOperator, r
			}
		}
		return KindOperator, ""
	case server:
		return "server only", ""
	}
	return "no TLS usage", ""
}

// CheckLocation lists what is wrong with c as the certificate of the
// location name reached at hosts (IP addresses or DNS names): its common
// name, its subject alternative names, its usages and its validity.
func CheckLocation(c *x509.Certificate, name string, hosts []string, now time.Time) []string {
	var probs []string
	if c.Subject.CommonName != name {
		probs = append(probs, fmt.Sprintf("its common name is %q, not the location's name %q; issue it again with siteflip cert site %s", c.Subject.CommonName, name, name))
	}
	var missing []string
	for _, h := range hosts {
		if c.VerifyHostname(h) != nil {
			missing = append(missing, h)
		}
	}
	if len(missing) > 0 {
		probs = append(probs, fmt.Sprintf("it is not valid for %s (its SANs: %s): peers dialling the location would reject it; issue it again with siteflip cert site %s --address …", strings.Join(missing, ", "), sans(c), name))
	}
	if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		probs = append(probs, "it lacks server or client authentication in its extended key usage; a location's certificate needs both (its agent and etcd member serve and dial)")
	}
	if now.After(c.NotAfter) {
		probs = append(probs, fmt.Sprintf("it expired on %s; renew it with siteflip cert renew %s", c.NotAfter.UTC().Format(time.DateOnly), name))
	} else if now.Before(c.NotBefore) {
		probs = append(probs, fmt.Sprintf("it is not valid before %s; check this machine's clock", c.NotBefore.UTC().Format(time.RFC3339)))
	}
	return probs
}

func sans(c *x509.Certificate) string {
	var s []string
	for _, ip := range c.IPAddresses {
		s = append(s, ip.String())
	}
	s = append(s, c.DNSNames...)
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// ReadCertificate reads the first certificate of the PEM file at path.
func ReadCertificate(path string) (*x509.Certificate, error) {
	data, err := readFile("certificate", path)
	if err != nil {
		return nil, err
	}
	return parseCertificate(path, data)
}

func parseCertificate(path string, data []byte) (*x509.Certificate, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("certificate %s: no PEM CERTIFICATE block found", path)
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", path, err)
		}
		return c, nil
	}
}

// InitCA makes a new CA in dir (created 0700 if needed): ca.crt (0644) and
// ca.key (0600). It refuses to replace an existing CA.
func InitCA(dir, name string, days int, now time.Time) (*Authority, error) {
	tmpl, err := caTemplate(name, days, now)
	if err != nil {
		return nil, err
	}
	crt, key := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	for _, p := range []string{crt, key} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%s: %w: %s already holds a CA, and replacing it would orphan every certificate it signed; to start over, move %s and %s away first (or give another --dir)",
				p, ErrExists, dir, crt, key)
		}
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate %q: %w", name, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create certificate directory: %w", err)
	}
	// The key first: a ca.crt without its key would look like a CA that
	// can sign, and a failed run leaves at worst a key nobody trusts.
	if err := writeFileAtomic(key, pemBytes("PRIVATE KEY", keyDER), 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(crt, pemBytes("CERTIFICATE", der), 0o644); err != nil {
		os.Remove(key)
		return nil, err
	}
	return &Authority{Cert: c, Key: k, Dir: dir}, nil
}

// LoadAuthority reads the CA of dir: ca.crt and ca.key.
func LoadAuthority(dir string) (*Authority, error) {
	crtPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	if _, err := os.Stat(crtPath); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no CA in %s (%s is missing): make one with siteflip cert init --dir %s, or give the directory that holds ca.crt and ca.key with --dir", dir, CACertFile, dir)
	}
	c, err := ReadCertificate(crtPath)
	if err != nil {
		return nil, err
	}
	if !c.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", crtPath)
	}
	data, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing: certificates can be issued only where the CA's key is kept (the machine that ran siteflip cert init)", keyPath)
	}
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", keyPath, err)
	}
	k, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", keyPath, err)
	}
	if pub, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(k.Public()) {
		return nil, fmt.Errorf("CA key %s does not match %s", keyPath, crtPath)
	}
	return &Authority{Cert: c, Key: k, Dir: dir}, nil
}

// Issued is a certificate written to disk.
type Issued struct {
	Cert     *x509.Certificate
	CertPath string
	KeyPath  string
	Note     string // set when the validity was cut to the CA's
}

// Issue writes a new key and certificate for l as DIR/NAME.key (0600) and
// DIR/NAME.crt (0644). It refuses to replace existing files.
func (a *Authority) Issue(l Leaf, now time.Time) (Issued, error) {
	crt, key := filepath.Join(a.Dir, l.Name+".crt"), filepath.Join(a.Dir, l.Name+".key")
	for _, p := range []string{crt, key} {
		if _, err := os.Lstat(p); err == nil {
			return Issued{}, fmt.Errorf("%s: %w; to replace the certificate keeping its names and addresses, run siteflip cert renew %s; to start over, remove %s and %s",
				p, ErrExists, l.Name, crt, key)
		}
	}
	return a.write(l, crt, key, now, nil)
}

// Renew issues the certificate DIR/NAME.crt again, with the same subject,
// addresses and usages and a new key, for days. The old files are kept as
// NAME.crt.old and NAME.key.old.
func (a *Authority) Renew(name string, days int, now time.Time) (Issued, error) {
	crt, key := filepath.Join(a.Dir, name+".crt"), filepath.Join(a.Dir, name+".key")
	if name == "" || strings.ContainsAny(name, `/\`) || strings.EqualFold(name, "ca") {
		return Issued{}, fmt.Errorf("%q is not the name of a certificate in %s (the CA itself is renewed by making a new one)", name, a.Dir)
	}
	old, err := ReadCertificate(crt)
	if err != nil {
		return Issued{}, fmt.Errorf("renew %s: %w (siteflip cert list --dir %s shows the certificates there)", name, err, a.Dir)
	}
	l, err := LeafOf(old, days)
	if err != nil {
		return Issued{}, err
	}
	if l.Name != name {
		return Issued{}, fmt.Errorf("%s holds the certificate of %q, not %q; rename the files to match", crt, l.Name, name)
	}
	return a.write(l, crt, key, now, func() error {
		// Keep the old pair beside the new until the new is in place.
		for _, p := range []string{crt, key} {
			data, err := os.ReadFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("keep %s: %w", p, err)
			}
			perm := os.FileMode(0o600)
			if p == crt {
				perm = 0o644
			}
			if err := writeFileAtomic(p+".old", data, perm); err != nil {
				return err
			}
		}
		return nil
	})
}

// write issues l and writes it to crt and key; before, when set, runs once
// everything is ready in memory and before any file of l is replaced.
func (a *Authority) write(l Leaf, crt, key string, now time.Time, before func() error) (Issued, error) {
	tmpl, note, err := LeafTemplate(l, a.Cert.NotAfter, now)
	if err != nil {
		return Issued{}, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issued{}, fmt.Errorf("generate key for %q: %w", l.Name, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, &k.PublicKey, a.Key)
	if err != nil {
		return Issued{}, fmt.Errorf("create certificate for %q: %w", l.Name, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return Issued{}, fmt.Errorf("parse certificate for %q: %w", l.Name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return Issued{}, fmt.Errorf("encode key for %q: %w", l.Name, err)
	}
	if before != nil {
		if err := before(); err != nil {
			return Issued{}, err
		}
	}
	if err := writeFileAtomic(key, pemBytes("PRIVATE KEY", keyDER), 0o600); err != nil {
		return Issued{}, err
	}
	if err := writeFileAtomic(crt, pemBytes("CERTIFICATE", der), 0o644); err != nil {
		return Issued{}, err
	}
	return Issued{Cert: c, CertPath: crt, KeyPath: key, Note: note}, nil
}

// Info describes one certificate file, as siteflip cert list shows it.
type Info struct {
	File     string    `json:"file"`
	Name     string    `json:"name"` // common name
	Kind     string    `json:"kind"` // ca, location, operator, …
	Role     string    `json:"role,omitempty"`
	IPs      []string  `json:"ip_addresses"`
	DNS      []string  `json:"dns_names"`
	Usage    []string  `json:"usage"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft int       `json:"days_left"`
	HasKey   bool      `json:"has_key"`
	Problem  string    `json:"problem,omitempty"` // the file could not be read
}

// List describes every *.crt file in dir, sorted by name.
func List(dir string, now time.Time) ([]Info, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.crt"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("certificate directory: %w", unwrapPath(err))
	}
	sort.Strings(paths)
	out := make([]Info, 0, len(paths))
	for _, p := range paths {
		in := Info{File: filepath.Base(p), IPs: []string{}, DNS: []string{}, Usage: []string{}}
		_, err := os.Stat(strings.TrimSuffix(p, ".crt") + ".key")
		in.HasKey = err == nil
		c, err := ReadCertificate(p)
		if err != nil {
			in.Problem = err.Error()
			out = append(out, in)
			continue
		}
		in.Name, in.Issuer, in.NotAfter = c.Subject.CommonName, c.Issuer.CommonName, c.NotAfter.UTC()
		in.Kind, in.Role = Describe(c)
		for _, ip := range c.IPAddresses {
			in.IPs = append(in.IPs, ip.String())
		}
		in.DNS = append(in.DNS, c.DNSNames...)
		for _, u := range c.ExtKeyUsage {
			switch u {
			case x509.ExtKeyUsageServerAuth:
				in.Usage = append(in.Usage, "server")
			case x509.ExtKeyUsageClientAuth:
				in.Usage = append(in.Usage, "client")
			}
		}
		if c.IsCA {
			in.Usage = append(in.Usage, "cert-sign")
		}
		in.DaysLeft = DaysLeft(c.NotAfter, now)
		out = append(out, in)
	}
	return out, nil
}

// DaysLeft is how many whole days remain until notAfter; negative once
// it has passed.
func DaysLeft(notAfter, now time.Time) int {
	d := notAfter.Sub(now)
	if d < 0 {
		return -int((-d + 24*time.Hour - 1) / (24 * time.Hour))
	}
	return int(d / (24 * time.Hour))
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// CAPool reads the CA bundle at path (one or more PEM certificates) into a
// pool of only those certificates.
func CAPool(path string) (*x509.CertPool, error) { return loadCA(path) }
