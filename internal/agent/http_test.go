package agent

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/pki"
)

func get(t *testing.T, f pki.Files, url string) string {
	t.Helper()
	body, err := httpGet(f, url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return body
}

// httpGet fetches url trusting f.CA, presenting f.Cert when one is given.
func httpGet(f pki.Files, url string) (string, error) {
	var cfg *tls.Config
	if f.Cert != "" {
		var err error
		if cfg, err = pki.ClientConfig(f, ""); err != nil {
			return "", err
		}
	} else {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return "", err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		cfg = &tls.Config{RootCAs: pool}
	}
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
