package access

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Login tokens let a browser, which cannot easily present a client
// certificate, act for a person (docs/design/dashboard.md). A token is
//
//	sft1.<payload>.<signature>
//
// both parts base64url without padding. The payload is JSON and carries
// the person's certificate; the signature, over "sft1.<payload>", is made
// with that certificate's key. An agent checks a token against the CA
// alone: no shared secret, no state. The role a token grants is capped
// again by access: at each request (Resolver.ResolveToken).

// Limits of tokens.
const (
	TokenPrefix      = "sft1."
	MaxTokenBytes    = 8 << 10
	MaxTokenLifetime = 24 * time.Hour
	// tokenSkew is how far in the future a token's issue time may lie:
	// the clocks of the machine that made it and the agent differ a little.
	tokenSkew = time.Minute
)

// ErrToken is wrapped by every reason a token is refused.
var ErrToken = errors.New("token refused")

// tokenPayload is a token's claims.
type tokenPayload struct {
	Subject  string `json:"sub"`  // the certificate's common name
	Role     string `json:"role"` // viewer, operator or admin
	IssuedAt int64  `json:"iat"`  // Unix seconds
	Expires  int64  `json:"exp"`  // Unix seconds
	Audience string `json:"aud"`  // the installation's name
	Cert     []byte `json:"cert"` // the person's leaf certificate, DER
}

var b64 = base64.RawURLEncoding.Strict()

// Mint makes a token for the holder of cert, signed with its key, for the
// installation, granting at most role for ttl from now.
func Mint(installation string, cert *x509.Certificate, signer crypto.Signer, role Role, ttl time.Duration, now time.Time) (string, error) {
	switch {
	case installation == "":
		return "", errors.New("mint token: no installation name")
	case cert == nil || signer == nil:
		return "", errors.New("mint token: no certificate or key")
	case cert.Subject.CommonName == "":
		return "", errors.New("mint token: the certificate has no common name")
	case role < Viewer || role > Admin:
		return "", fmt.Errorf("mint token: role %s: use viewer, operator or admin", role)
	case ttl <= 0 || ttl > MaxTokenLifetime:
		return "", fmt.Errorf("mint token: lifetime %s: give one above 0 and at most %s", ttl, MaxTokenLifetime)
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(signer.Public()) {
		return "", errors.New("mint token: the key does not match the certificate; use the key made with it")
	}
	payload, err := json.Marshal(tokenPayload{
		Subject: cert.Subject.CommonName, Role: role.String(),
		IssuedAt: now.Unix(), Expires: now.Add(ttl).Unix(),
		Audience: installation, Cert: cert.Raw,
	})
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	signed := TokenPrefix + b64.EncodeToString(payload)
	sig, err := sign(signer, []byte(signed))
	if err != nil {
		return "", fmt.Errorf("mint token: sign with the key of %q: %w", cert.Subject.CommonName, err)
	}
	tok := signed + "." + b64.EncodeToString(sig)
	if len(tok) > MaxTokenBytes {
		return "", fmt.Errorf("mint token: it would be %d bytes, over %d: the certificate is too large", len(tok), MaxTokenBytes)
	}
	return tok, nil
}

// sign signs msg with SHA-256 (Ed25519 hashes by itself).
func sign(signer crypto.Signer, msg []byte) ([]byte, error) {
	switch signer.Public().(type) {
	case ed25519.PublicKey:
		return signer.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey, *rsa.PublicKey:
		sum := sha256.Sum256(msg)
		return signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	}
	return nil, fmt.Errorf("keys of type %T are not supported; use ECDSA, Ed25519 or RSA", signer.Public())
}

// signatureAlgorithm is the algorithm sign uses for a public key.
func signatureAlgorithm(pub any) (x509.SignatureAlgorithm, bool) {
	switch pub.(type) {
	case ed25519.PublicKey:
		return x509.PureEd25519, true
	case *ecdsa.PublicKey:
		return x509.ECDSAWithSHA256, true
	case *rsa.PublicKey:
		return x509.SHA256WithRSA, true
	}
	return x509.UnknownSignatureAlgorithm, false
}

// remake is what every refusal tells the person to do.
const remake = "make a new one with `siteflip token`"

// Verify checks a token for the installation against the CA pool at now,
// and returns the certificate's common name, the token's role and its
// expiry. Every error wraps ErrToken and says what to do.
func Verify(token string, pool *x509.CertPool, installation string, now time.Time) (cn string, role Role, exp time.Time, err error) {
	refuse := func(format string, args ...any) (string, Role, time.Time, error) {
		return "", None, time.Time{}, fmt.Errorf("%w: %s", ErrToken, fmt.Sprintf(format, args...))
	}
	if pool == nil {
		return refuse("this agent has no CA to check tokens against (TLS is off)")
	}
	if len(token) > MaxTokenBytes {
		return refuse("it is %d bytes, over %d: it is not a siteflip token; %s", len(token), MaxTokenBytes, remake)
	}
	body, ok := strings.CutPrefix(token, TokenPrefix)
	if !ok {
		return refuse("it does not begin with %q: it is not a siteflip token, or it was cut short when copied; %s", TokenPrefix, remake)
	}
	payloadB64, sigB64, ok := strings.Cut(body, ".")
	if !ok || payloadB64 == "" || sigB64 == "" || strings.Contains(sigB64, ".") {
		return refuse("it is not of the form sft1.PAYLOAD.SIGNATURE; it was perhaps cut short when copied; %s", remake)
	}
	payloadJSON, err1 := b64.DecodeString(payloadB64)
	sig, err2 := b64.DecodeString(sigB64)
	if err1 != nil || err2 != nil {
		return refuse("it is not base64url; it was perhaps changed when copied; %s", remake)
	}
	var p tokenPayload
	dec := json.NewDecoder(bytes.NewReader(payloadJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return refuse("its payload does not read: %v; %s", err, remake)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return refuse("its payload has data after its JSON object; %s", remake)
	}
	cert, err := x509.ParseCertificate(p.Cert)
	if err != nil {
		return refuse("the certificate in it does not read: %v; %s", err, remake)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return refuse("the certificate of %q in it is not a client certificate of this installation's CA at %s: %v; "+
			"make the token with a certificate from this installation's CA (siteflip cert operator NAME)", cert.Subject.CommonName, now.UTC().Format(time.RFC3339), err)
	}
	alg, ok := signatureAlgorithm(cert.PublicKey)
	if !ok {
		return refuse("the key of %q is of type %T, which tokens do not support; use ECDSA, Ed25519 or RSA", cert.Subject.CommonName, cert.PublicKey)
	}
	if err := cert.CheckSignature(alg, []byte(TokenPrefix+payloadB64), sig); err != nil {
		return refuse("its signature does not match: it was changed after it was made; %s", remake)
	}
	// From here on the payload is the certificate holder's word.
	if p.Subject != cert.Subject.CommonName {
		return refuse("it names %q but holds the certificate of %q; %s", p.Subject, cert.Subject.CommonName, remake)
	}
	if p.Audience != installation {
		return refuse("it is for installation %q, not %q: make one with `siteflip token` and this installation's topology", p.Audience, installation)
	}
	role, ok = ParseRole(p.Role)
	if !ok {
		return refuse("its role %q is not viewer, operator or admin; %s", p.Role, remake)
	}
	iat, exp := time.Unix(p.IssuedAt, 0), time.Unix(p.Expires, 0)
	switch {
	case !exp.After(iat):
		return refuse("it expires (%s) before it was made (%s); %s", stamp(exp), stamp(iat), remake)
	case exp.Sub(iat) > MaxTokenLifetime:
		return refuse("it lasts %s, over the %s a token may; %s", exp.Sub(iat), MaxTokenLifetime, remake)
	case iat.After(now.Add(tokenSkew)):
		return refuse("it was made at %s, in the future of this agent's clock (%s): check the clocks of both machines (NTP)", stamp(iat), stamp(now))
	case !now.Before(exp):
		return refuse("the token expired at %s; %s", stamp(exp), remake)
	}
	return cert.Subject.CommonName, role, exp, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
