package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Identity is one certificate the lab issues.
type Identity struct {
	Name string   // file base name and CommonName, e.g. "brussels" or "operator"
	IPs  []net.IP // IP SANs
	DNS  []string // DNS SANs
}

const (
	labValidity = 365 * 24 * time.Hour
	// Peers' clocks may lag ours; a certificate valid only from "now"
	// would be rejected by them for a while.
	labSkew = time.Hour
)

// GenerateLab creates dir (0700) if needed and writes dir/ca.crt, and for each identity dir/NAME.crt and dir/NAME.key (0600).
// Keys are ECDSA P-256; every leaf has both ServerAuth and ClientAuth extended key usage (etcd peers and agents are both); validity 1 year, NotBefore 1h in the past for clock skew. Returns the Files of each identity in order.
//
// The CA's private key is discarded, so the lab cannot issue more
// certificates later: to add an identity, generate the whole lab again.
// Existing files of the same names are replaced. Certificates are written
// 0644 (they are public), keys 0600.
func GenerateLab(dir, caName string, ids []Identity) ([]Files, error) {
	if err := validateLab(dir, caName, ids); err != nil {
		return nil, err
	}

	now := time.Now()
	notBefore, notAfter := now.Add(-labSkew), now.Add(labValidity)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate lab CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		// SerialNumber is left nil: CreateCertificate then picks a random
		// RFC 5280 serial, so two labs never share one.
		Subject:               pkix.Name{CommonName: caName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The lab CA signs leaves only, never intermediates.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create lab CA certificate %q: %w", caName, err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse lab CA certificate %q: %w", caName, err)
	}

	// Build everything in memory first so a bad identity leaves dir untouched.
	caPath := filepath.Join(dir, "ca.crt")
	outs := []labFile{{caPath, pemBytes("CERTIFICATE", caDER), 0o644}}
	files := make([]Files, 0, len(ids))
	for _, id := range ids {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate key for identity %q: %w", id.Name, err)
		}
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: id.Name},
			NotBefore:   notBefore,
			NotAfter:    notAfter,
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: id.IPs,
			DNSNames:    id.DNS,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, fmt.Errorf("create certificate for identity %q: %w", id.Name, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("encode key for identity %q: %w", id.Name, err)
		}
		f := Files{
			CA:   caPath,
			Cert: filepath.Join(dir, id.Name+".crt"),
			Key:  filepath.Join(dir, id.Name+".key"),
		}
		outs = append(outs,
			labFile{f.Cert, pemBytes("CERTIFICATE", der), 0o644},
			labFile{f.Key, pemBytes("PRIVATE KEY", keyDER), 0o600},
		)
		files = append(files, f)
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create lab directory: %w", err)
	}
	for _, o := range outs {
		if err := writeFileAtomic(o.path, o.data, o.perm); err != nil {
			return nil, err
		}
	}
	return files, nil
}

func validateLab(dir, caName string, ids []Identity) error {
	if dir == "" {
		return errors.New("lab directory is empty; give a directory to write the certificates to")
	}
	if strings.TrimSpace(caName) == "" {
		return errors.New("lab CA name is empty; give the CA a CommonName")
	}
	seen := make(map[string]string, len(ids))
	for i, id := range ids {
		name := id.Name
		switch {
		case name == "":
			return fmt.Errorf("identity %d: name is empty; it becomes the file name and CommonName", i)
		case strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, os.PathSeparator):
			return fmt.Errorf("identity %q: name contains a path separator; use a bare name such as \"brussels\"", name)
		case name == "." || name == "..":
			return fmt.Errorf("identity %q: name is not a usable file name; use a bare name such as \"brussels\"", name)
		case strings.EqualFold(name, "ca"):
			return fmt.Errorf("identity %q: name is reserved for the lab CA (ca.crt); choose another", name)
		}
		// Compare case-insensitively: on macOS and Windows "A.crt" and
		// "a.crt" are the same file, and one would silently overwrite the other.
		if prev, dup := seen[strings.ToLower(name)]; dup {
			return fmt.Errorf("identity %q: duplicate name (clashes with %q); each identity needs its own files", name, prev)
		}
		seen[strings.ToLower(name)] = name
		for _, ip := range id.IPs {
			if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
				return fmt.Errorf("identity %q: invalid IP SAN %v; use net.ParseIP", name, ip)
			}
		}
		for _, d := range id.DNS {
			if d == "" {
				return fmt.Errorf("identity %q: empty DNS SAN; remove it", name)
			}
		}
	}
	return nil
}

type labFile struct {
	path string
	data []byte
	perm os.FileMode
}

// writeFileAtomic writes via a temporary file and rename, so a reader
// never sees half a key, and an existing file's looser mode is not kept.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
