package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/pki"
)

// Which files a topology's validation reads.
//
// Every machine of an installation holds the same topology, but only its
// own key: a location's machine its location's certificate and key, an
// operator's machine the operator's. Loading the topology therefore reads
// only what every machine has, the CA certificate (tls.ca_file), and the
// certificates of the locations when they happen to be present (they are
// public), to check that each names its location and covers its addresses.
// Keys are checked by whoever uses them: the agent its own location's at
// start, the command line the credential it presents, and check the ones
// of this machine (Topology.CheckCredentials).

// certificates checks each location certificate that is present here: its
// common name is the location's name, it is valid for the location's
// addresses and for both server and client use, and it chains to the CA.
func (v *validator) certificates() {
	t := v.t
	if !t.TLSEnabled() {
		return
	}
	roots, _ := pki.CAPool(t.TLS.CAFile) // nil when unreadable: reported already
	now := time.Now()
	for i := range t.Sites {
		s := &t.Sites[i]
		f := fmt.Sprintf("sites[%d].tls.cert_file", i)
		if s.TLS.CertFile == "" || v.undecoded[f] {
			continue
		}
		if _, err := os.Stat(s.TLS.CertFile); errors.Is(err, fs.ErrNotExist) {
			continue // another machine's; its agent checks it at start
		}
		c, err := pki.ReadCertificate(s.TLS.CertFile)
		if err != nil {
			v.add(f, "%v", err)
			continue
		}
		for _, p := range pki.CheckLocation(c, s.Name, t.Hosts(s), now) {
			v.add(f, "%s: %s", s.TLS.CertFile, p)
		}
		if roots != nil {
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: c.NotBefore.Add(time.Second), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				v.add(f, "%s: not signed by the CA of tls.ca_file (%s): %v; issue it with that CA (siteflip cert site %s)", s.TLS.CertFile, t.TLS.CAFile, err, s.Name)
			}
		}
	}
}

// CheckCredentials checks the credentials this machine uses, and returns
// their problems: the certificate, key and CA of each location in sites
// (whose agents run here), and op when it is not nil (the credential the
// command line presents). Each must exist, the key must match its
// certificate, and the certificate must chain to tls.ca_file. Without TLS
// there is nothing to check.
func (t *Topology) CheckCredentials(sites []string, op *Credential, opField string) []Problem {
	if !t.TLSEnabled() {
		return nil
	}
	var probs []Problem
	add := func(field, format string, args ...any) {
		probs = append(probs, Problem{File: t.File, Pos: t.pos.lookup(field), Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	for _, name := range sites {
		i := t.siteIndex(name)
		if i < 0 {
			add("sites", "there is no location %q (locations: %s)", name, strings.Join(t.SiteNames(), ", "))
			continue
		}
		s, f := &t.Sites[i], fmt.Sprintf("sites[%d].tls", i)
		if s.TLS.CertFile == "" || s.TLS.KeyFile == "" {
			continue // reported by validation
		}
		if _, err := pki.ServerConfig(pki.Files{CA: t.TLS.CAFile, Cert: s.TLS.CertFile, Key: s.TLS.KeyFile}); err != nil {
			add(f, "the agent of %s cannot use its credential: %v; put this location's own certificate and key there (siteflip cert site %s makes them where the CA is kept)", name, err, name)
			continue
		}
		if err := chains(t.TLS.CAFile, s.TLS.CertFile); err != nil {
			add(f+".cert_file", "%v; issue it with that CA (siteflip cert site %s)", err, name)
		}
	}
	if op != nil {
		if op.CertFile == "" {
			add(opField, "no credential to present to the agents: give --cert and --key (or $SITEFLIP_CERT, $SITEFLIP_KEY), or operator.cert_file and operator.key_file")
		} else if _, err := pki.ClientConfig(pki.Files{CA: t.TLS.CAFile, Cert: op.CertFile, Key: op.KeyFile}, ""); err != nil {
			add(opField, "the command line cannot use this credential: %v", err)
		} else if err := chains(t.TLS.CAFile, op.CertFile); err != nil {
			add(opField, "%v; the agents will refuse it", err)
		}
	}
	sortProblems(probs)
	return probs
}

// KeysHere lists the locations whose key file exists on this machine: the
// locations whose agents can run here.
func (t *Topology) KeysHere() []string {
	var out []string
	for _, s := range t.Sites {
		if s.TLS.KeyFile == "" {
			continue
		}
		if _, err := os.Stat(s.TLS.KeyFile); err == nil {
			out = append(out, s.Name)
		}
	}
	return out
}

// chains says whether the certificate at certPath is signed by the CA at
// caPath.
func chains(caPath, certPath string) error {
	roots, err := pki.CAPool(caPath)
	if err != nil {
		return err
	}
	c, err := pki.ReadCertificate(certPath)
	if err != nil {
		return err
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("%s is not valid under the CA of tls.ca_file (%s): %w", certPath, caPath, err)
	}
	return nil
}

func (t *Topology) siteIndex(name string) int {
	for i := range t.Sites {
		if t.Sites[i].Name == name {
			return i
		}
	}
	return -1
}

// CheckHere checks the credentials this machine would use. With site
// given, they are that location's (check --site NAME on a location's
// machine). Otherwise they are found by their keys: every location whose
// key file is here, and the operator credential of the topology when its
// key is here. own, when not nil, is the person's credential given on the
// command line (--cert/--key), checked instead of the topology's operator.
// It returns the problems, and says what this machine can run, for the
// summary line.
func (t *Topology) CheckHere(site string, own *Credential) ([]Problem, string) {
	if !t.TLSEnabled() {
		return nil, ""
	}
	var (
		sites = t.KeysHere()
		op    *Credential
		field = "operator"
		uses  []string
	)
	if site != "" {
		sites = []string{site}
	}
	switch {
	case own != nil:
		op = own
	case site == "" && t.Operator.KeyFile != "":
		if _, err := os.Stat(t.Operator.KeyFile); err == nil {
			op = &t.Operator
		}
	}
	probs := t.CheckCredentials(sites, op, field)
	for _, s := range sites {
		uses = append(uses, "the agent of "+s)
	}
	if op != nil {
		who := "the operator credential"
		if c, err := pki.ReadCertificate(op.CertFile); err == nil {
			who = c.Subject.CommonName
		}
		uses = append(uses, "commands as "+who)
	}
	if len(uses) == 0 {
		probs = append(probs, Problem{File: t.File, Pos: t.pos.lookup("tls"), Field: "tls", Warning: true,
			Msg: "this machine holds none of the keys the topology names: a location's machine needs its own (check --site NAME says what is missing), the command line needs operator: or --cert/--key"})
		return probs, "no credential here"
	}
	return probs, "this machine can run " + strings.Join(uses, ", ")
}
