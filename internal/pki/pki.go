// Package pki owns TLS for siteflip: it loads mutual-TLS configurations
// from the certificate files named in the config, and generates a
// throwaway certificate authority for the lab.
package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Files names PEM files of one identity: the CA bundle that peers must chain to, and this identity's certificate and key.
type Files struct {
	CA   string // CA certificate bundle (PEM)
	Cert string // certificate (PEM)
	Key  string // private key (PEM)
}

// ServerConfig returns a TLS config for a server that requires and verifies client certificates signed by f.CA (mutual TLS). MinVersion TLS 1.2.
//
// The files are read once, now; pick up rotated files by calling it again.
func ServerConfig(f Files) (*tls.Config, error) {
	pool, err := loadCA(f.CA)
	if err != nil {
		return nil, err
	}
	cert, err := loadKeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}, nil
}

// ClientConfig returns a TLS config for a client that presents f.Cert/f.Key and verifies the server against f.CA. serverName may be "" (then Go's default: the dialled host, which may be an IP matched against IP SANs).
//
// The files are read once, now; pick up rotated files by calling it again.
func ClientConfig(f Files, serverName string) (*tls.Config, error) {
	pool, err := loadCA(f.CA)
	if err != nil {
		return nil, err
	}
	cert, err := loadKeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
	}, nil
}

// loadCA reads a bundle of one or more PEM certificates into a pool that
// contains only them: peers must chain to our CA, not to the system roots.
func loadCA(path string) (*x509.CertPool, error) {
	data, err := readFile("CA bundle", path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA bundle %s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("CA bundle %s: no PEM CERTIFICATE block found; it must hold the CA certificate(s) in PEM (-----BEGIN CERTIFICATE-----)", path)
	}
	return pool, nil
}

// LoadKeyPair reads a certificate and its key, checking that they match;
// the result's Leaf is the certificate and its PrivateKey a crypto.Signer.
// Errors name the file at fault.
func LoadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	return loadKeyPair(certPath, keyPath)
}

// loadKeyPair does what tls.LoadX509KeyPair does, but its errors say which
// of the two files is at fault, so an operator knows which one to fix.
func loadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	certPEM, err := readFile("certificate", certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	var chain [][]byte
	for rest := certPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			chain = append(chain, block.Bytes)
		}
	}
	if len(chain) == 0 {
		return tls.Certificate{}, fmt.Errorf("certificate %s: no PEM CERTIFICATE block found; it must hold this identity's certificate in PEM (-----BEGIN CERTIFICATE-----)", certPath)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate %s: %w", certPath, err)
	}

	keyPEM, err := readFile("private key", keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("private key %s: %w", keyPath, err)
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return tls.Certificate{}, fmt.Errorf("private key %s does not match certificate %s; use the key that was generated with this certificate", keyPath, certPath)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// parseKey accepts the three unencrypted PEM key encodings in common use
// (PKCS#8, SEC 1 EC, PKCS#1 RSA), skipping other blocks such as EC PARAMETERS.
func parseKey(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM PRIVATE KEY block found; it must hold an unencrypted private key in PEM (-----BEGIN PRIVATE KEY-----)")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("key is encrypted; siteflip needs an unencrypted key file (protect it with file permissions instead)")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s block: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", key)
		}
		return signer, nil
	}
}

// readFile reads path, naming what the file was meant to be so the
// error points at the right config entry.
func readFile(what, path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%s: no file given; set its path in the config", what)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		// Drop os.PathError's own "open PATH" prefix; we name the path ourselves.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s %s: %w; check the path in the config", what, path, err)
		}
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return data, nil
}

// CommonName returns the subject common name of the first certificate in
// a PEM bundle.
func CommonName(certPEM []byte) (string, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", errors.New("no PEM CERTIFICATE block found")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("parse certificate: %w", err)
	}
	return cert.Subject.CommonName, nil
}

// NotAfter returns when the certificate in the PEM file at path expires.
func NotAfter(path string) (time.Time, error) {
	data, err := readFile("certificate", path)
	if err != nil {
		return time.Time{}, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return time.Time{}, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	return c.NotAfter, nil
}
