package browser

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// caServer is an HTTPS server whose certificate a new CA signed; it
// presents the certificate alone, as a location's agent does.
func caServer(t *testing.T) (*httptest.Server, *x509.Certificate) {
	t.Helper()
	mustKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	mustCert := func(tpl, parent *x509.Certificate, pub, priv any) []byte {
		der, err := x509.CreateCertificate(rand.Reader, tpl, parent, pub, priv)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	now := time.Now()
	caKey := mustKey()
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	ca, err := x509.ParseCertificate(mustCert(caTpl, caTpl, &caKey.PublicKey, caKey))
	if err != nil {
		t.Fatal(err)
	}
	key := mustKey()
	der := mustCert(&x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "server"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature},
		ca, &key.PublicKey, caKey)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<!doctype html><title>trusted</title><p>hello</p>")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	// The browser without the CA refuses the handshake: not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, ca
}

func TestStartTrustsTheCAItIsGiven(t *testing.T) {
	if testing.Short() && os.Getenv("SITEFLIP_REQUIRE_BROWSER") != "1" {
		t.Skip("starts Chromium")
	}
	srv, ca := caServer(t)

	b := Start(t, Options{CAs: []*x509.Certificate{ca}, Width: 640, Height: 480})
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	if title, err := chromedp.Run(b.Ctx, chromedp.Title()); err != nil || title != "trusted" {
		t.Errorf("with the CA: title %q, %v", title, err)
	}
	if w, err := chromedp.Run(b.Ctx, chromedp.Evaluate[int](`window.innerWidth`)); err != nil || w != 640 {
		t.Errorf("window width %d, %v; want 640", w, err)
	}

	dir := t.TempDir()
	t.Setenv("SITEFLIP_SCREENSHOTS", dir)
	Screenshot(t, b.Ctx, "trusted")
	png, err := os.ReadFile(filepath.Join(dir, "trusted.png"))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("screenshot: %v, % x", err, png[:min(len(png), 8)])
	}

	other := Start(t, Options{})
	err = chromedp.Do(other.Ctx, chromedp.Navigate(srv.URL))
	if err == nil || !strings.Contains(err.Error(), "ERR_CERT_AUTHORITY_INVALID") {
		t.Errorf("without the CA: %v, want ERR_CERT_AUTHORITY_INVALID", err)
	}
}
