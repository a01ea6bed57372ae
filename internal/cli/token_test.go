package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/access"
	"github.com/siteflip/siteflip/internal/pki"
)

// TestTokenVerifies: the token siteflip token prints is one the agents
// take, for the role asked, until the time it says.
func TestTokenVerifies(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SITEFLIP_CONFIG", "")
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := Main(args, strings.NewReader(""), &out, &errOut); code != 0 {
			t.Fatalf("siteflip %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
		return out.String()
	}
	pkiDir := filepath.Join(dir, "pki")
	run("cert", "init", "--dir", pkiDir)
	run("cert", "operator", "otto", "--role", "operator", "--dir", pkiDir)
	topo := filepath.Join(dir, "siteflip.yaml")
	if err := os.WriteFile(topo, []byte(`name: shop
tls: {ca_file: pki/ca.crt}
operator: {cert_file: pki/otto.crt, key_file: pki/otto.key}
access: [{identity: otto, role: operator}]
sites:
  - name: brussels
    agent: {address: "10.1.0.10:7400"}
    etcd: {peer_url: "https://10.1.0.10:2380", client_url: "https://10.1.0.10:2379"}
    tls: {cert_file: pki/brussels.crt, key_file: pki/brussels.key}
  - name: antwerp
    agent: {address: "10.2.0.10:7400"}
    etcd: {peer_url: "https://10.2.0.10:2380", client_url: "https://10.2.0.10:2379"}
    tls: {cert_file: pki/antwerp.crt, key_file: pki/antwerp.key}
  - name: frankfurt
    role: witness
    agent: {address: "10.3.0.10:7400"}
    etcd: {peer_url: "https://10.3.0.10:2380", client_url: "https://10.3.0.10:2379"}
    tls: {cert_file: pki/frankfurt.crt, key_file: pki/frankfurt.key}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	var doc struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
		Links     []struct{ Site, URL string }
	}
	if err := json.Unmarshal([]byte(run("--config", topo, "token", "--role", "operator", "--ttl", "90m", "-o", "json")), &doc); err != nil {
		t.Fatal(err)
	}
	pool, err := pki.CAPool(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cn, role, exp, err := access.Verify(doc.Token, pool, "shop", time.Now())
	if err != nil || cn != "otto" || role != access.Operator || !exp.Equal(doc.ExpiresAt) {
		t.Errorf("Verify = %q, %s, %v, %v; want otto, operator, %v", cn, role, exp, err, doc.ExpiresAt)
	}
	if d := exp.Sub(before); d < 89*time.Minute || d > 91*time.Minute {
		t.Errorf("the token lasts %s, want 90m", d)
	}
	if len(doc.Links) != 3 || doc.Links[0].URL != "https://10.1.0.10:7400/#token="+doc.Token {
		t.Errorf("links %+v", doc.Links)
	}
	if _, _, _, err := access.Verify(doc.Token, pool, "shop", time.Now().Add(91*time.Minute)); err == nil {
		t.Error("the token holds after its expiry")
	}
}
