package access

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// now is the tests' clock.
var now = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

// testCA is a certificate authority made in memory.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a leaf for cn with key's public half and the given usages,
// valid from an hour before now for a month.
func (ca *testCA) issue(t *testing.T, cn string, key crypto.Signer, usages ...x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 1, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usages,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func ecKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mint(t *testing.T, installation string, cert *x509.Certificate, key crypto.Signer, role Role, ttl time.Duration, at time.Time) string {
	t.Helper()
	tok, err := Mint(installation, cert, key, role, ttl, at)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// reencode replaces a token's payload by edit's version of it, keeping
// the signature.
func reencode(t *testing.T, tok string, edit func(p *tokenPayload)) string {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(tok, TokenPrefix), ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var p tokenPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	edit(&p)
	raw, err = json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(raw) + "." + parts[1]
}

func TestVerify(t *testing.T) {
	ca, other := newTestCA(t, "lab CA"), newTestCA(t, "another CA")
	adaKey := ecKey(t)
	ada := ca.issue(t, "ada", adaKey, x509.ExtKeyUsageClientAuth)
	edKey := func() crypto.Signer {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serverOnlyKey, strangerKey := ecKey(t), ecKey(t)
	good := mint(t, "lab", ada, adaKey, Operator, 8*time.Hour, now)
	// Sign a hand-made payload with ada's key, as a careless or hostile
	// token maker could.
	signed := func(edit func(p *tokenPayload)) string {
		unsigned := reencode(t, good, edit)
		body := unsigned[:strings.LastIndex(unsigned, ".")]
		sig, err := sign(adaKey, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return body + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}

	tests := []struct {
		name   string
		token  string
		pool   *x509.CertPool
		inst   string
		at     time.Time
		cn     string
		role   Role
		errSub string
	}{
		{name: "good", token: good, cn: "ada", role: Operator},
		{name: "good until just before expiry", token: good, at: now.Add(8*time.Hour - time.Second), cn: "ada", role: Operator},
		{name: "ed25519", token: mint(t, "lab", ca.issue(t, "eddie", edKey, x509.ExtKeyUsageClientAuth), edKey, Viewer, time.Hour, now), cn: "eddie", role: Viewer},
		{name: "rsa", token: mint(t, "lab", ca.issue(t, "rosa", rsaKey, x509.ExtKeyUsageClientAuth), rsaKey, Admin, time.Hour, now), cn: "rosa", role: Admin},
		{name: "location certificate (server and client)", token: mint(t, "lab", ca.issue(t, "brussels", serverOnlyKey, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth), serverOnlyKey, Viewer, time.Hour, now), cn: "brussels", role: Viewer},
		{name: "made a few seconds ahead of this clock", token: mint(t, "lab", ada, adaKey, Viewer, time.Hour, now.Add(30*time.Second)), cn: "ada", role: Viewer},

		{name: "tampered payload", token: reencode(t, good, func(p *tokenPayload) { p.Role = "admin" }), errSub: "signature does not match"},
		{name: "tampered payload byte", token: flip(good, len(TokenPrefix)+10), errSub: "token refused"},
		{name: "tampered signature", token: flip(good, len(good)-5), errSub: "signature does not match"},
		{name: "signature cut", token: good[:len(good)-8], errSub: "token refused"},
		{name: "another CA", token: good, pool: other.pool, errSub: `certificate of "ada" in it is not a client certificate of this installation's CA`},
		{name: "another CA's certificate", token: mint(t, "lab", other.issue(t, "ada", strangerKey, x509.ExtKeyUsageClientAuth), strangerKey, Admin, time.Hour, now), errSub: "not a client certificate of this installation's CA"},
		{name: "expired", token: good, at: now.Add(8 * time.Hour), errSub: "the token expired at 2026-12-05T18:00:00Z; make a new one with `siteflip token`"},
		{name: "too long", token: signed(func(p *tokenPayload) { p.Expires = p.IssuedAt + int64(25*time.Hour/time.Second) }), errSub: "over the 24h0m0s a token may"},
		{name: "expires before made", token: signed(func(p *tokenPayload) { p.Expires = p.IssuedAt - 1 }), errSub: "before it was made"},
		{name: "made in the future", token: mint(t, "lab", ada, adaKey, Viewer, time.Hour, now.Add(2*time.Minute)), errSub: "in the future of this agent's clock"},
		{name: "wrong installation", token: good, inst: "prod", errSub: `it is for installation "lab", not "prod"`},
		{name: "names another", token: signed(func(p *tokenPayload) { p.Subject = "otto" }), errSub: `names "otto" but holds the certificate of "ada"`},
		{name: "unknown role", token: signed(func(p *tokenPayload) { p.Role = "root" }), errSub: `role "root"`},
		{name: "certificate without clientAuth", token: mint(t, "lab", ca.issue(t, "srv", serverOnlyKey, x509.ExtKeyUsageServerAuth), serverOnlyKey, Viewer, time.Hour, now), errSub: "incompatible key usage"},
		{name: "certificate expired", token: good, at: now.AddDate(0, 1, 1), errSub: "not a client certificate of this installation's CA"},
		{name: "no CA (TLS off)", token: good, pool: x509.NewCertPool(), errSub: "not a client certificate"},
		{name: "garbage", token: "hello", errSub: `does not begin with "sft1."`},
		{name: "empty", token: "", errSub: `does not begin with "sft1."`},
		{name: "JWT", token: "eyJhbGciOiJIUzI1NiJ9.e30.abc", errSub: `does not begin with "sft1."`},
		{name: "one part", token: "sft1.abc", errSub: "not of the form sft1.PAYLOAD.SIGNATURE"},
		{name: "three parts", token: good + ".x", errSub: "not of the form"},
		{name: "empty signature", token: strings.TrimRight(good, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), errSub: "not of the form"},
		{name: "padding", token: good + "=", errSub: "not base64url"},
		{name: "standard base64", token: "sft1.a+b/.c", errSub: "not base64url"},
		{name: "not JSON", token: TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".c2ln", errSub: "payload does not read"},
		{name: "unknown field", token: TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"ada","admin":true}`)) + ".c2ln", errSub: `unknown field "admin"`},
		{name: "two objects", token: TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(`{} {}`)) + ".c2ln", errSub: "data after its JSON object"},
		{name: "no certificate", token: TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"ada"}`)) + ".c2ln", errSub: "certificate in it does not read"},
		{name: "huge", token: TokenPrefix + strings.Repeat("A", MaxTokenBytes) + ".c2ln", errSub: "over 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, inst, at := ca.pool, "lab", now
			if tt.pool != nil {
				pool = tt.pool
			}
			if tt.inst != "" {
				inst = tt.inst
			}
			if !tt.at.IsZero() {
				at = tt.at
			}
			cn, role, exp, err := Verify(tt.token, pool, inst, at)
			if tt.errSub != "" {
				if err == nil || !errors.Is(err, ErrToken) || !strings.Contains(err.Error(), tt.errSub) {
					t.Fatalf("Verify: %v, want an error with %q", err, tt.errSub)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if cn != tt.cn || role != tt.role || exp.IsZero() {
				t.Errorf("Verify = %q, %s, %v; want %q, %s", cn, role, exp, tt.cn, tt.role)
			}
		})
	}
	if _, _, _, err := Verify(good, nil, "lab", now); err == nil || !strings.Contains(err.Error(), "TLS is off") {
		t.Errorf("Verify without a pool: %v", err)
	}
	if _, _, exp, _ := Verify(good, ca.pool, "lab", now); !exp.Equal(now.Add(8 * time.Hour)) {
		t.Errorf("expiry %v, want %v", exp, now.Add(8*time.Hour))
	}
}

func TestMintRefuses(t *testing.T) {
	ca := newTestCA(t, "lab CA")
	key := ecKey(t)
	ada := ca.issue(t, "ada", key, x509.ExtKeyUsageClientAuth)
	tests := []struct {
		name   string
		inst   string
		key    crypto.Signer
		role   Role
		ttl    time.Duration
		errSub string
	}{
		{name: "too long", inst: "lab", key: key, role: Viewer, ttl: 25 * time.Hour, errSub: "at most 24h0m0s"},
		{name: "no lifetime", inst: "lab", key: key, role: Viewer, ttl: 0, errSub: "above 0"},
		{name: "no role", inst: "lab", key: key, role: None, ttl: time.Hour, errSub: "use viewer, operator or admin"},
		{name: "another key", inst: "lab", key: ecKey(t), role: Viewer, ttl: time.Hour, errSub: "does not match the certificate"},
		{name: "no installation", inst: "", key: key, role: Viewer, ttl: time.Hour, errSub: "no installation"},
	}
	for _, tt := range tests {
		if _, err := Mint(tt.inst, ada, tt.key, tt.role, tt.ttl, now); err == nil || !strings.Contains(err.Error(), tt.errSub) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.errSub)
		}
	}
	tok := mint(t, "lab", ada, key, Admin, MaxTokenLifetime, now)
	if len(tok) > 2048 {
		t.Errorf("a token of a P-256 certificate is %d bytes; it should fit in a link", len(tok))
	}
}
